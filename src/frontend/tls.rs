//! HTTPS for the listener: the certificate chain and key of `http.certFile`/`http.keyFile`,
//! loaded at start-up (a bad pair stops the start) and re-read when either file changes, so
//! a renewed certificate takes effect without a restart.

use rustls::InconsistentKeys;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Why the certificate pair cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("http.certFile and http.keyFile must be set together")]
    HalfConfigured,
    #[error("http.certFile {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("http.keyFile {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("http.keyFile {key} does not belong to the certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// How often a handshake may look at the files' modification times.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The TLS acceptor of `http.certFile`/`http.keyFile`, or `None` when neither is set.
pub fn acceptor(
    cert_file: &str,
    key_file: &str,
) -> Result<Option<tokio_rustls::TlsAcceptor>, TlsError> {
    match (cert_file.is_empty(), key_file.is_empty()) {
        (true, true) => return Ok(None),
        (false, false) => {}
        _ => return Err(TlsError::HalfConfigured),
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let resolver = ReloadingCertificate::load(
        PathBuf::from(cert_file),
        PathBuf::from(key_file),
        provider.clone(),
    )?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

/// Serves the current pair and swaps in a new one when the files' modification times move;
/// a pair that fails to load keeps the previous one in service (and says so in the log).
#[derive(Debug)]
struct ReloadingCertificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    stamps: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

impl ReloadingCertificate {
    fn load(
        cert_path: PathBuf,
        key_path: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<ReloadingCertificate, TlsError> {
        let stamps = (modified(&cert_path), modified(&key_path));
        let key = load_pair(&cert_path, &key_path, &provider)?;
        Ok(ReloadingCertificate {
            cert_path,
            key_path,
            provider,
            current: Mutex::new(Loaded {
                key: Arc::new(key),
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    fn current(&self) -> Option<Arc<CertifiedKey>> {
        let mut loaded = self.current.lock().ok()?;
        if loaded.checked.elapsed() >= RELOAD_CHECK_INTERVAL {
            loaded.checked = Instant::now();
            let stamps = (modified(&self.cert_path), modified(&self.key_path));
            if stamps != loaded.stamps {
                match load_pair(&self.cert_path, &self.key_path, &self.provider) {
                    Ok(key) => {
                        tracing::info!(cert = %self.cert_path.display(), "TLS certificate reloaded");
                        loaded.key = Arc::new(key);
                        loaded.stamps = stamps;
                    }
                    Err(error) => {
                        tracing::warn!("keeping the previous TLS certificate: {error}");
                    }
                }
            }
        }
        Some(loaded.key.clone())
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let certificate_error = |reason: String| TlsError::Certificate {
        path: cert_path.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert_path)
        .map_err(|error| certificate_error(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| certificate_error(error.to_string()))?;
    if chain.is_empty() {
        return Err(certificate_error("no PEM CERTIFICATE block".into()));
    }
    let key_error = |reason: String| TlsError::Key {
        path: key_path.to_path_buf(),
        reason,
    };
    let key =
        PrivateKeyDer::from_pem_file(key_path).map_err(|error| key_error(error.to_string()))?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| key_error(error.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // A key that cannot tell its public half is checked by the first handshake instead.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::Mismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            })
        }
        Err(other) => Err(TlsError::Rustls(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_files_or_neither() {
        assert!(acceptor("", "").unwrap().is_none());
        assert!(matches!(
            acceptor("cert.pem", ""),
            Err(TlsError::HalfConfigured)
        ));
    }

    #[test]
    fn missing_files_name_the_key() {
        let Err(error) = acceptor("/nonexistent/cert.pem", "/nonexistent/key.pem") else {
            panic!("missing files accepted");
        };
        assert!(
            error
                .to_string()
                .starts_with("http.certFile /nonexistent/cert.pem")
        );
    }
}
