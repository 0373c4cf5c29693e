//! Checking cosign signatures of source images, offline, against configured public keys.
//! The signature of an image with digest `sha256:<hex>` is the manifest tagged
//! `sha256-<hex>.sig` in the same repository; one of its simple-signing layers must name the
//! digest and carry a signature that one of the keys accepts.

use super::oci::{Digest, ManifestKind};
use super::reference::ImageRef;
use super::{Source, SourceError};
use crate::sign::{
    SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, SimpleSigning, VerifyingKey, decode_signature,
};

/// How source images are checked.
#[derive(Debug, Clone)]
pub enum Verifier {
    /// Every image must be signed by one of these keys.
    Keys(Vec<VerifyingKey>),
    /// Explicitly switched off in the configuration.
    Disabled,
}

impl Verifier {
    /// Reads every `PUBLIC KEY` block of a PEM file.
    pub fn from_pem_file(path: &std::path::Path) -> Result<Verifier, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read public key file {}: {error}", path.display()))?;
        let mut keys = Vec::new();
        let mut block = String::new();
        for line in text.lines() {
            block.push_str(line);
            block.push('\n');
            if line.starts_with("-----END ") {
                keys.push(
                    VerifyingKey::from_pem(&block)
                        .map_err(|error| format!("{}: {error}", path.display()))?,
                );
                block.clear();
            }
        }
        if keys.is_empty() {
            return Err(format!("{} holds no PEM public key", path.display()));
        }
        Ok(Verifier::Keys(keys))
    }

    /// Checks that `digest` (the manifest `image` resolved to) is signed.
    pub async fn verify(
        &self,
        source: &Source,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<(), SourceError> {
        let Verifier::Keys(keys) = self else {
            return Ok(());
        };
        let failure = |reason: String| SourceError::Signature {
            image: format!("{}@{digest}", image.name()),
            reason,
        };
        let signature_ref = ImageRef {
            tag: Some(format!("sha256-{}.sig", digest.hex())),
            digest: None,
            ..image.clone()
        };
        let (bytes, _) = match source.manifest(&signature_ref).await {
            Ok(found) => found,
            Err(SourceError::NotFound(_)) => {
                return Err(failure(format!(
                    "no signature ({} is missing)",
                    signature_ref
                )));
            }
            Err(other) => return Err(other),
        };
        let ManifestKind::Image(manifest) = ManifestKind::parse(&bytes)
            .map_err(|error| failure(format!("signature manifest: {error}")))?
        else {
            return Err(failure("signature manifest is an index".into()));
        };
        let mut reasons = Vec::new();
        for layer in &manifest.layers {
            if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
                continue;
            }
            let Some(signature) = layer
                .annotations
                .get(SIGNATURE_ANNOTATION)
                .and_then(|text| decode_signature(text))
            else {
                reasons.push("a signature layer has no readable signature annotation".to_string());
                continue;
            };
            let payload = source.blob(image, &layer.digest).await?;
            let parsed = match SimpleSigning::parse(&payload) {
                Ok(parsed) => parsed,
                Err(error) => {
                    reasons.push(error.to_string());
                    continue;
                }
            };
            if parsed.critical.image.docker_manifest_digest != digest.as_str() {
                reasons.push(format!(
                    "payload is for {}, not {digest}",
                    parsed.critical.image.docker_manifest_digest
                ));
                continue;
            }
            if keys.iter().any(|key| key.verify(&payload, &signature)) {
                return Ok(());
            }
            reasons.push("the signature does not match any configured public key".into());
        }
        if reasons.is_empty() {
            reasons.push("the signature manifest has no simple-signing layer".into());
        }
        Err(failure(reasons.join("; ")))
    }
}
