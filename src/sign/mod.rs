//! Cosign-format signatures: the "simple signing" payload that names an image by manifest
//! digest, signed with ECDSA P-256 over SHA-256 (DER signature, base64 in an annotation).
//!
//! A leaf module: keys, payloads, signing and verification, no I/O. [`secureboot`] holds the
//! RSA signers of Secure Boot, [`pkcs7`] the SignedData they make, [`prebuilt`] the check of
//! operator-supplied enrollment databases.

pub mod pkcs7;
pub mod prebuilt;
pub mod public_key;
pub mod secureboot;
pub mod sigstore;

pub use public_key::{HashAlgorithm, VerifyingKey};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::Signature;
use p256::ecdsa::signature::Signer;
use p256::elliptic_curve::Generate;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use serde::{Deserialize, Serialize};

/// Media type of the payload layer of a cosign signature manifest.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Annotation of that layer that carries the base64 DER signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `type` of a cosign container image signature payload.
const PAYLOAD_TYPE: &str = "cosign container image signature";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("invalid private key: {0}")]
    PrivateKey(String),
    #[error("invalid public key: {0}")]
    PublicKey(String),
    #[error("invalid signature payload: {0}")]
    Payload(String),
}

/// A private signing key.
#[derive(Clone)]
pub struct SigningKey(p256::ecdsa::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(P-256)")
    }
}

impl SigningKey {
    /// Reads a PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`) PEM.
    pub fn from_pem(pem: &str) -> Result<SigningKey, SignError> {
        p256::ecdsa::SigningKey::from_pkcs8_pem(pem)
            .or_else(|_| p256::SecretKey::from_sec1_pem(pem).map(p256::ecdsa::SigningKey::from))
            .map(SigningKey)
            .map_err(|error| SignError::PrivateKey(error.to_string()))
    }

    /// A new random key (from the operating system's generator).
    pub fn generate() -> SigningKey {
        SigningKey(p256::ecdsa::SigningKey::from(p256::SecretKey::generate()))
    }

    /// PKCS#8 PEM.
    pub fn to_pem(&self) -> Result<String, SignError> {
        self.0
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|error| SignError::PrivateKey(error.to_string()))
    }

    /// Signs `message` (hashed with SHA-256; RFC 6979 nonces, so the same input gives the
    /// same signature) and returns the DER signature.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: Signature = self.0.sign(message);
        signature.to_der().as_bytes().to_vec()
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey::from_p256(*self.0.verifying_key())
    }
}

/// The cosign simple-signing payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimpleSigning {
    pub critical: Critical,
    pub optional: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Critical {
    pub identity: Identity,
    pub image: ImageDigest,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageDigest {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl SimpleSigning {
    /// The payload for the image `repository` (no tag) with manifest digest `digest`.
    pub fn new(repository: &str, digest: &str) -> SimpleSigning {
        SimpleSigning {
            critical: Critical {
                identity: Identity {
                    docker_reference: repository.to_string(),
                },
                image: ImageDigest {
                    docker_manifest_digest: digest.to_string(),
                },
                kind: PAYLOAD_TYPE.to_string(),
            },
            optional: None,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn parse(bytes: &[u8]) -> Result<SimpleSigning, SignError> {
        let payload: SimpleSigning =
            serde_json::from_slice(bytes).map_err(|error| SignError::Payload(error.to_string()))?;
        if payload.critical.kind != PAYLOAD_TYPE {
            return Err(SignError::Payload(format!(
                "type is {:?}, not {PAYLOAD_TYPE:?}",
                payload.critical.kind
            )));
        }
        Ok(payload)
    }
}

pub fn encode_signature(der: &[u8]) -> String {
    STANDARD.encode(der)
}

pub fn decode_signature(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../../fixtures/keys/cosign.key");
    const PUBLIC: &str = include_str!("../../fixtures/keys/cosign.pub");
    const OTHER_PUBLIC: &str = include_str!("../../fixtures/keys/other.pub");

    #[test]
    fn sign_and_verify() {
        let key = SigningKey::from_pem(KEY).unwrap();
        let public = VerifyingKey::from_pem(PUBLIC).unwrap();
        assert_eq!(key.verifying_key(), public);
        assert_eq!(public.to_pem(), PUBLIC);
        let payload = SimpleSigning::new("ghcr.io/siderolabs/imager", "sha256:00").to_bytes();
        let signature = key.sign(&payload);
        assert_eq!(signature, key.sign(&payload), "deterministic");
        assert!(public.verify(&payload, &signature));
        assert!(!public.verify(b"other", &signature));
        assert!(
            !VerifyingKey::from_pem(OTHER_PUBLIC)
                .unwrap()
                .verify(&payload, &signature)
        );
        let decoded = decode_signature(&encode_signature(&signature)).unwrap();
        assert_eq!(decoded, signature);
        assert_eq!(
            SimpleSigning::parse(&payload)
                .unwrap()
                .critical
                .image
                .docker_manifest_digest,
            "sha256:00"
        );
    }
}
