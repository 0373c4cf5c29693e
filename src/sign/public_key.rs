//! Public keys that check cosign signatures: ECDSA P-256 and P-384, RSA (PKCS#1 v1.5) and
//! Ed25519, each with the hash its signer used (upstream's `publicKeyHashAlgo`; Ed25519
//! signs the message itself, so the hash does not apply to it).

use super::SignError;
use p256::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
use rsa::pkcs1::DecodeRsaPublicKey;
use sha2::Digest;

/// The hash a signature is made over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    /// Upstream's names: `sha224`, `sha256`, `sha384`, `sha512`.
    pub fn parse(name: &str) -> Result<HashAlgorithm, SignError> {
        match name.to_ascii_lowercase().as_str() {
            "sha224" => Ok(HashAlgorithm::Sha224),
            "sha256" => Ok(HashAlgorithm::Sha256),
            "sha384" => Ok(HashAlgorithm::Sha384),
            "sha512" => Ok(HashAlgorithm::Sha512),
            _ => Err(SignError::PublicKey(format!(
                "unknown hash algorithm {name:?} (sha224, sha256, sha384 or sha512)"
            ))),
        }
    }

    pub fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            HashAlgorithm::Sha224 => sha2::Sha224::digest(message).to_vec(),
            HashAlgorithm::Sha256 => sha2::Sha256::digest(message).to_vec(),
            HashAlgorithm::Sha384 => sha2::Sha384::digest(message).to_vec(),
            HashAlgorithm::Sha512 => sha2::Sha512::digest(message).to_vec(),
        }
    }

    fn pkcs1v15(self) -> rsa::Pkcs1v15Sign {
        match self {
            HashAlgorithm::Sha224 => rsa::Pkcs1v15Sign::new::<sha2::Sha224>(),
            HashAlgorithm::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            HashAlgorithm::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
            HashAlgorithm::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
        }
    }

    fn output_len(self) -> usize {
        match self {
            HashAlgorithm::Sha224 => 28,
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 => 64,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
enum Key {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Rsa(Box<rsa::RsaPublicKey>),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A public key that signatures are checked against.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    key: Key,
    hash: HashAlgorithm,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyingKey({}, {:?})", self.algorithm(), self.hash)
    }
}

impl VerifyingKey {
    pub(super) fn from_p256(key: p256::ecdsa::VerifyingKey) -> VerifyingKey {
        VerifyingKey {
            key: Key::P256(key),
            hash: HashAlgorithm::Sha256,
        }
    }

    /// Reads a PKIX `PUBLIC KEY` PEM (or PKCS#1 `RSA PUBLIC KEY`); signatures over SHA-256.
    pub fn from_pem(pem: &str) -> Result<VerifyingKey, SignError> {
        VerifyingKey::from_pem_with_hash(pem, HashAlgorithm::Sha256)
    }

    /// Reads a public key whose signatures are made over `hash`.
    pub fn from_pem_with_hash(pem: &str, hash: HashAlgorithm) -> Result<VerifyingKey, SignError> {
        let key = if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            Key::P256(key)
        } else if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            Key::P384(key)
        } else if let Ok(key) = rsa::RsaPublicKey::from_public_key_pem(pem)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
        {
            Key::Rsa(Box::new(key))
        } else if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            Key::Ed25519(key)
        } else {
            return Err(SignError::PublicKey(
                "not an ECDSA P-256/P-384, RSA or Ed25519 public key PEM".into(),
            ));
        };
        Ok(VerifyingKey { key, hash })
    }

    /// Reads a DER `SubjectPublicKeyInfo` (a certificate's or a transparency log's key);
    /// `hash` `None` takes the curve's own hash (SHA-256 for P-256 and RSA, SHA-384 for
    /// P-384).
    pub fn from_spki_der(
        der: &[u8],
        hash: Option<HashAlgorithm>,
    ) -> Result<VerifyingKey, SignError> {
        let key = if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            Key::P256(key)
        } else if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_der(der) {
            Key::P384(key)
        } else if let Ok(key) = rsa::RsaPublicKey::from_public_key_der(der) {
            Key::Rsa(Box::new(key))
        } else if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
            Key::Ed25519(key)
        } else {
            return Err(SignError::PublicKey(
                "not an ECDSA P-256/P-384, RSA or Ed25519 SubjectPublicKeyInfo".into(),
            ));
        };
        let natural = match key {
            Key::P384(_) => HashAlgorithm::Sha384,
            _ => HashAlgorithm::Sha256,
        };
        Ok(VerifyingKey {
            key,
            hash: hash.unwrap_or(natural),
        })
    }

    /// The same key, its signatures made over `hash`.
    pub fn with_hash(&self, hash: HashAlgorithm) -> VerifyingKey {
        VerifyingKey {
            key: self.key.clone(),
            hash,
        }
    }

    /// `ECDSA P-256`, `RSA`, ...
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Key::P256(_) => "ECDSA P-256",
            Key::P384(_) => "ECDSA P-384",
            Key::Rsa(_) => "RSA",
            Key::Ed25519(_) => "Ed25519",
        }
    }

    pub fn to_pem(&self) -> String {
        let pem = match &self.key {
            Key::P256(key) => key.to_public_key_pem(LineEnding::LF),
            Key::P384(key) => key.to_public_key_pem(LineEnding::LF),
            Key::Rsa(key) => key.to_public_key_pem(LineEnding::LF),
            Key::Ed25519(key) => key.to_public_key_pem(LineEnding::LF),
        };
        pem.unwrap_or_default()
    }

    /// Checks a signature of `message` (ECDSA: DER or fixed-size raw).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            Key::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify_strict(message, &signature).is_ok()),
            _ => self.verify_prehashed(&self.hash.digest(message), signature),
        }
    }

    /// Checks a signature made over a digest computed elsewhere (a Sigstore bundle's
    /// message digest). Ed25519 cannot sign a prehashed message, so it never matches.
    pub fn verify_prehashed(&self, digest: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        match &self.key {
            Key::P256(key) => p256_signature(signature)
                .is_some_and(|signature| key.verify_prehash(digest, &signature).is_ok()),
            Key::P384(key) => p384_signature(signature)
                .is_some_and(|signature| key.verify_prehash(digest, &signature).is_ok()),
            Key::Rsa(key) => {
                digest.len() == self.hash.output_len()
                    && key.verify(self.hash.pkcs1v15(), digest, signature).is_ok()
            }
            Key::Ed25519(_) => false,
        }
    }
}

fn p256_signature(bytes: &[u8]) -> Option<p256::ecdsa::Signature> {
    p256::ecdsa::Signature::from_der(bytes)
        .ok()
        .or_else(|| p256::ecdsa::Signature::from_slice(bytes).ok())
}

fn p384_signature(bytes: &[u8]) -> Option<p384::ecdsa::Signature> {
    p384::ecdsa::Signature::from_der(bytes)
        .ok()
        .or_else(|| p384::ecdsa::Signature::from_slice(bytes).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::EncodePublicKey;

    const MESSAGE: &[u8] = b"{\"critical\":{}}";

    fn pem(key: &impl EncodePublicKey) -> String {
        key.to_public_key_pem(LineEnding::LF).unwrap()
    }

    #[test]
    fn p384_signatures_over_the_configured_hash() {
        let secret = p384::ecdsa::SigningKey::from_slice(&[7u8; 48]).unwrap();
        let public = pem(secret.verifying_key());
        let signature: p384::ecdsa::Signature = secret.sign(MESSAGE);
        let der = signature.to_der().as_bytes().to_vec();
        // p384's Signer hashes with SHA-384.
        let key = VerifyingKey::from_pem_with_hash(&public, HashAlgorithm::Sha384).unwrap();
        assert_eq!(key.algorithm(), "ECDSA P-384");
        assert!(key.verify(MESSAGE, &der));
        assert!(!key.verify(b"other", &der));
        let wrong_hash = VerifyingKey::from_pem_with_hash(&public, HashAlgorithm::Sha256).unwrap();
        assert!(!wrong_hash.verify(MESSAGE, &der));
        assert!(key.verify_prehashed(&HashAlgorithm::Sha384.digest(MESSAGE), &der));
    }

    #[test]
    fn rsa_pkcs1v15_signatures() {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        let secret =
            rsa::RsaPrivateKey::from_pkcs1_pem(include_str!("../../fixtures/keys/rsa-test.key"))
                .unwrap();
        let public = pem(&secret.to_public_key());
        for hash in [HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
            let signature = secret.sign(hash.pkcs1v15(), &hash.digest(MESSAGE)).unwrap();
            let key = VerifyingKey::from_pem_with_hash(&public, hash).unwrap();
            assert_eq!(key.algorithm(), "RSA");
            assert!(key.verify(MESSAGE, &signature));
            assert!(!key.verify(b"other", &signature));
        }
        let signature = secret
            .sign(
                HashAlgorithm::Sha256.pkcs1v15(),
                &HashAlgorithm::Sha256.digest(MESSAGE),
            )
            .unwrap();
        let sha512 = VerifyingKey::from_pem_with_hash(&public, HashAlgorithm::Sha512).unwrap();
        assert!(!sha512.verify(MESSAGE, &signature));
    }

    #[test]
    fn ed25519_signs_the_message_itself() {
        let secret = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
        let public = pem(&secret.verifying_key());
        let signature = ed25519_dalek::Signer::sign(&secret, MESSAGE).to_bytes();
        let key = VerifyingKey::from_pem_with_hash(&public, HashAlgorithm::Sha512).unwrap();
        assert_eq!(key.algorithm(), "Ed25519");
        assert!(key.verify(MESSAGE, &signature));
        assert!(!key.verify(b"other", &signature));
        assert!(!key.verify_prehashed(&HashAlgorithm::Sha256.digest(MESSAGE), &signature));
    }

    #[test]
    fn other_pem_is_refused() {
        let error =
            VerifyingKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .unwrap_err();
        assert!(error.to_string().contains("not an ECDSA"), "{error}");
        assert!(HashAlgorithm::parse("md5").is_err());
        assert_eq!(
            HashAlgorithm::parse("SHA384").unwrap(),
            HashAlgorithm::Sha384
        );
    }
}
