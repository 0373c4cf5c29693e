//! Secure Boot signing keys: the [`Signer`] every signature over a boot binary goes through
//! (an RSA PKCS#1 v1.5 signature of a SHA-256 digest, and the certificate that verifies it),
//! and [`PemSigner`], the signer made from a key file and a certificate file. A KMS or HSM
//! signer implements the same trait; nothing that signs knows where the key lives.

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

/// The Secure Boot keys of a factory: the signer of boot binaries, its certificate as PEM
/// (served as it was read), and the PCR policy key.
pub struct SecureBootKeys {
    pub signer: Arc<dyn Signer>,
    pub certificate_pem: String,
    pub pcr_key: RsaPrivateKey,
}

impl std::fmt::Debug for SecureBootKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecureBootKeys")
    }
}

impl SecureBootKeys {
    /// Reads the file provider's three files; the error names the configuration key.
    pub fn load(
        signing_key: &Path,
        signing_cert: &Path,
        pcr_key: &Path,
    ) -> Result<SecureBootKeys, SecureBootKeyError> {
        let read = |key: &'static str, path: &Path| {
            if path.as_os_str().is_empty() {
                return Err(SecureBootKeyError::NotSet { key });
            }
            std::fs::read_to_string(path).map_err(|error| SecureBootKeyError::Unreadable {
                key,
                path: path.display().to_string(),
                reason: error.to_string(),
            })
        };
        let unusable = |key: &'static str| {
            move |reason| SecureBootKeyError::Unusable {
                key,
                reason: Box::new(reason),
            }
        };
        let key_pem = read(SIGNING_KEY, signing_key)?;
        let certificate_pem = read(SIGNING_CERT, signing_cert)?;
        let pcr_pem = read(PCR_KEY, pcr_key)?;
        // Which file is wrong: the key first, then whether the certificate is its own.
        rsa_key(&key_pem).map_err(unusable(SIGNING_KEY))?;
        let signer =
            PemSigner::from_pem(&key_pem, &certificate_pem).map_err(unusable(SIGNING_CERT))?;
        let pcr_key = rsa_key(&pcr_pem).map_err(unusable(PCR_KEY))?;
        Ok(SecureBootKeys {
            signer: Arc::new(signer),
            certificate_pem,
            pcr_key,
        })
    }
}
