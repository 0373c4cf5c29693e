//! Secure Boot signing keys: the [`Signer`] every signature over a boot binary goes through
//! (an RSA PKCS#1 v1.5 signature of a SHA-256 digest, and the certificate that verifies it),
//! and [`PemSigner`], the signer made from a key file and a certificate file. A KMS or HSM
//! signer implements the same trait; nothing that signs knows where the key lives.

use super::prebuilt::{PrebuiltDatabases, check_authenticated_write};
use der::{DecodePem, Encode};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;
use std::path::Path;
use std::sync::Arc;
use x509_cert::Certificate;

const SIGNING_KEY: &str = "secureBoot.file.signingKeyPath";
const SIGNING_CERT: &str = "secureBoot.file.signingCertPath";
const PCR_KEY: &str = "secureBoot.file.pcrKeyPath";
const PK_AUTH: &str = "secureBoot.file.pkAuthPath";
const KEK_AUTH: &str = "secureBoot.file.kekAuthPath";
const DB_AUTH: &str = "secureBoot.file.dbAuthPath";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecureBootKeyError {
    #[error("{key} is not set")]
    NotSet { key: &'static str },
    #[error("{key}: cannot read {path}: {reason}")]
    Unreadable {
        key: &'static str,
        path: String,
        reason: String,
    },
    #[error("{key}: {reason}")]
    Unusable {
        key: &'static str,
        reason: Box<SecureBootKeyError>,
    },
    #[error("not an RSA private key in PKCS#1 or PKCS#8 PEM ({0})")]
    NotRsa(String),
    #[error("not an X.509 certificate in PEM ({0})")]
    Certificate(String),
    #[error("the certificate's public key is not the signing key's")]
    Mismatch,
    #[error("RSA signing failed: {0}")]
    Sign(String),
    /// Some of the pre-built enrollment databases are configured, not all three.
    #[error(
        "{missing} not set, but {set}: the pre-built enrollment databases are all three \
         or none"
    )]
    Incomplete { missing: String, set: String },
    #[error("not an authenticated EFI variable write of a signature database: {0}")]
    Database(String),
}

/// What signs boot binaries: an RSA key that signs SHA-256 digests, and its certificate.
pub trait Signer: Send + Sync {
    /// The PKCS#1 v1.5 signature (with the SHA-256 DigestInfo) of `digest`.
    fn sign_sha256(&self, digest: &[u8; 32]) -> Result<Vec<u8>, SecureBootKeyError>;

    /// The certificate that verifies the signatures.
    fn certificate(&self) -> &Certificate;
}

/// A signer from PEM text: the key as PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`),
/// the certificate as `CERTIFICATE`.
pub struct PemSigner {
    key: RsaPrivateKey,
    certificate: Certificate,
}

impl std::fmt::Debug for PemSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PemSigner(RSA)")
    }
}

impl PemSigner {
    /// Refuses a key that is not RSA and a certificate for another key.
    pub fn from_pem(key_pem: &str, certificate_pem: &str) -> Result<PemSigner, SecureBootKeyError> {
        let key = rsa_key(key_pem)?;
        let certificate = Certificate::from_pem(certificate_pem)
            .map_err(|error| SecureBootKeyError::Certificate(error.to_string()))?;
        let public = RsaPublicKey::from(&key)
            .to_public_key_der()
            .map_err(|error| SecureBootKeyError::NotRsa(error.to_string()))?;
        let certified = certificate
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|error| SecureBootKeyError::Certificate(error.to_string()))?;
        if public.as_bytes() != certified.as_slice() {
            return Err(SecureBootKeyError::Mismatch);
        }
        Ok(PemSigner { key, certificate })
    }
}

impl Signer for PemSigner {
    fn sign_sha256(&self, digest: &[u8; 32]) -> Result<Vec<u8>, SecureBootKeyError> {
        self.key
            .sign(Pkcs1v15Sign::new::<Sha256>(), digest)
            .map_err(|error| SecureBootKeyError::Sign(error.to_string()))
    }

    fn certificate(&self) -> &Certificate {
        &self.certificate
    }
}

fn rsa_key(pem: &str) -> Result<RsaPrivateKey, SecureBootKeyError> {
    RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|pkcs8| {
            RsaPrivateKey::from_pkcs1_pem(pem)
                .map_err(|pkcs1| format!("PKCS#8: {pkcs8}; PKCS#1: {pkcs1}"))
        })
        .map_err(SecureBootKeyError::NotRsa)
}

/// Where the file provider's keys are; an empty path is a key that is not set. The three
/// enrollment databases are optional, together.
#[derive(Debug, Clone, Copy)]
pub struct KeyFiles<'a> {
    pub signing_key: &'a Path,
    pub signing_cert: &'a Path,
    pub pcr_key: &'a Path,
    pub pk_auth: &'a Path,
    pub kek_auth: &'a Path,
    pub db_auth: &'a Path,
}

/// The Secure Boot keys of a factory: the signer of boot binaries, its certificate as PEM
/// (served as it was read), the PCR policy key, and the operator's own enrollment databases
/// if there are any (else they are generated from the signer).
pub struct SecureBootKeys {
    pub signer: Arc<dyn Signer>,
    pub certificate_pem: String,
    pub pcr_key: RsaPrivateKey,
    pub prebuilt: Option<PrebuiltDatabases>,
}

impl std::fmt::Debug for SecureBootKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecureBootKeys")
    }
}

fn unreadable(key: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SecureBootKeyError {
    move |error| SecureBootKeyError::Unreadable {
        key,
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}

fn unusable(key: &'static str) -> impl FnOnce(SecureBootKeyError) -> SecureBootKeyError {
    move |reason| SecureBootKeyError::Unusable {
        key,
        reason: Box::new(reason),
    }
}

impl SecureBootKeys {
    /// Reads the file provider's files; the error names the configuration key.
    pub fn load(files: &KeyFiles<'_>) -> Result<SecureBootKeys, SecureBootKeyError> {
        let read = |key: &'static str, path: &Path| {
            if path.as_os_str().is_empty() {
                return Err(SecureBootKeyError::NotSet { key });
            }
            std::fs::read_to_string(path).map_err(unreadable(key, path))
        };
        let key_pem = read(SIGNING_KEY, files.signing_key)?;
        let certificate_pem = read(SIGNING_CERT, files.signing_cert)?;
        let pcr_pem = read(PCR_KEY, files.pcr_key)?;
        // Which file is wrong: the key first, then whether the certificate is its own.
        rsa_key(&key_pem).map_err(unusable(SIGNING_KEY))?;
        let signer =
            PemSigner::from_pem(&key_pem, &certificate_pem).map_err(unusable(SIGNING_CERT))?;
        let pcr_key = rsa_key(&pcr_pem).map_err(unusable(PCR_KEY))?;
        Ok(SecureBootKeys {
            signer: Arc::new(signer),
            certificate_pem,
            pcr_key,
            prebuilt: load_prebuilt(files)?,
        })
    }
}

/// The operator's `.auth` files, if all three are configured.
fn load_prebuilt(files: &KeyFiles<'_>) -> Result<Option<PrebuiltDatabases>, SecureBootKeyError> {
    let paths = [
        (PK_AUTH, files.pk_auth),
        (KEK_AUTH, files.kek_auth),
        (DB_AUTH, files.db_auth),
    ];
    let (set, missing): (Vec<_>, Vec<_>) = paths
        .iter()
        .partition(|(_, path)| !path.as_os_str().is_empty());
    if set.is_empty() {
        return Ok(None);
    }
    if !missing.is_empty() {
        let names = |keys: &[&(&str, &Path)]| {
            keys.iter()
                .map(|(key, _)| *key)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let verb = |keys: &[&(&str, &Path)]| if keys.len() == 1 { "is" } else { "are" };
        return Err(SecureBootKeyError::Incomplete {
            missing: format!("{} {}", names(&missing), verb(&missing)),
            set: format!("{} {}", names(&set), verb(&set)),
        });
    }
    let read = |(key, path): (&'static str, &Path)| {
        let bytes = std::fs::read(path).map_err(unreadable(key, path))?;
        check_authenticated_write(&bytes)
            .map_err(|reason| unusable(key)(SecureBootKeyError::Database(reason)))?;
        Ok::<_, SecureBootKeyError>(bytes)
    };
    Ok(Some(PrebuiltDatabases {
        pk: read(paths[0])?,
        kek: read(paths[1])?,
        db: read(paths[2])?,
    }))
}
