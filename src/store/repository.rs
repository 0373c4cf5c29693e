//! One OCI repository the factory writes to (schematics, the shared asset cache, installer
//! images): single-layer images, documents pushed byte for byte, and cosign signatures in
//! the classic `sha256-<hex>.sig` tag scheme, made and checked with the cache signing key.

use crate::config::RepositoryConfig;
use crate::sign::{SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, SigningKey, SimpleSigning};
use crate::source::SourceError;
use crate::source::oci::{self, Descriptor, Digest, Manifest, ManifestKind};
use crate::source::reference::ImageRef;
use crate::source::registry::Registry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A repository and the client that reaches it.
#[derive(Debug, Clone)]
pub struct Repository {
    registry: Arc<Registry>,
    pub host: String,
    pub path: String,
}

/// The documents of an image whose content is one blob.
#[derive(Debug, Clone)]
pub struct SingleLayerImage {
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

/// The three documents of a cosign signature image.
#[derive(Debug, Clone)]
pub struct SignatureImage {
    pub config: Vec<u8>,
    pub payload: Vec<u8>,
    pub manifest: Vec<u8>,
}

/// A config naming the layers, as registries and skopeo expect of an image.
fn image_config(layers: &[&Digest]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": layers},
    }))
    .unwrap_or_default()
}

fn manifest_bytes(config: &[u8], layers: Vec<Descriptor>) -> Vec<u8> {
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::MANIFEST.into()),
        config: Descriptor {
            media_type: oci::CONFIG.into(),
            digest: Digest::of(config),
            size: config.len() as u64,
            platform: None,
            artifact_type: None,
            annotations: BTreeMap::new(),
        },
        layers,
        annotations: BTreeMap::new(),
    };
    serde_json::to_vec(&manifest).unwrap_or_default()
}

fn layer(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: digest.clone(),
        size,
        platform: None,
        artifact_type: None,
        annotations: BTreeMap::new(),
    }
}

/// An image of one layer `digest` (`size` bytes, `media_type`).
pub fn single_layer_image(media_type: &str, digest: &Digest, size: u64) -> SingleLayerImage {
    let config = image_config(&[digest]);
    let manifest = manifest_bytes(&config, vec![layer(media_type, digest, size)]);
    SingleLayerImage { config, manifest }
}

/// The cosign signature of `digest` for the image name `docker_reference`.
pub fn signature_image(key: &SigningKey, docker_reference: &str, digest: &str) -> SignatureImage {
    let payload = SimpleSigning::new(docker_reference, digest).to_bytes();
    let signature = crate::sign::encode_signature(&key.sign(&payload));
    let payload_digest = Digest::of(&payload);
    let config = image_config(&[&payload_digest]);
    let mut payload_layer = layer(
        SIMPLE_SIGNING_MEDIA_TYPE,
        &payload_digest,
        payload.len() as u64,
    );
    payload_layer
        .annotations
        .insert(SIGNATURE_ANNOTATION.into(), signature);
    let manifest = manifest_bytes(&config, vec![payload_layer]);
    SignatureImage {
        config,
        payload,
        manifest,
    }
}

/// The tag cosign keeps the signature of `digest` under.
pub fn signature_tag(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

impl Repository {
    /// The repository `config` names, reached over plain HTTP when it is insecure or on
    /// this machine; `None` when no registry is configured.
    pub fn from_config(config: &RepositoryConfig) -> Option<Repository> {
        if !config.is_configured() {
            return None;
        }
        let mut insecure = BTreeSet::new();
        if config.insecure || crate::service::is_loopback(&config.registry) {
            insecure.insert(config.registry.clone());
        }
        Some(Repository {
            registry: Arc::new(Registry::new(insecure)),
            host: config.registry.clone(),
            path: config.path(),
        })
    }

    /// The same registry, another repository path below this one (`<path>/<sub>`).
    pub fn child(&self, sub: &str) -> Repository {
        let path = if self.path.is_empty() {
            sub.to_string()
        } else {
            format!("{}/{sub}", self.path)
        };
        Repository {
            registry: self.registry.clone(),
            host: self.host.clone(),
            path,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// `host/path`, the name signatures are made for.
    pub fn name(&self) -> String {
        format!("{}/{}", self.host, self.path)
    }

    pub fn tagged(&self, tag: &str) -> ImageRef {
        ImageRef::with_tag(&self.host, &self.path, tag)
    }

    pub fn at(&self, digest: &Digest) -> ImageRef {
        ImageRef {
            registry: self.host.clone(),
            repository: self.path.clone(),
            tag: None,
            digest: Some(digest.clone()),
        }
    }

    /// Pushes `bytes` as a blob unless the repository has it.
    pub async fn put_blob(&self, bytes: Vec<u8>) -> Result<Digest, SourceError> {
        let digest = Digest::of(&bytes);
        let image = self.at(&digest);
        if !self.registry.has_blob(&image, &digest).await? {
            self.registry.push_blob(&image, &digest, bytes).await?;
        }
        Ok(digest)
    }

    /// Pushes the file `path` as blob `digest` unless the repository has it, streamed in
    /// chunks (layers can be large).
    pub async fn put_file_blob(
        &self,
        path: &std::path::Path,
        digest: &Digest,
    ) -> Result<(), SourceError> {
        let image = self.at(digest);
        if self.registry.has_blob(&image, digest).await? {
            return Ok(());
        }
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|error| SourceError::io(path, error))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 4 << 20);
        let (pushed, _) = self.registry.push_blob_stream(&image, stream).await?;
        if pushed != *digest {
            return Err(SourceError::DigestMismatch {
                what: format!("blob pushed from {}", path.display()),
                expected: digest.clone(),
                actual: pushed,
            });
        }
        Ok(())
    }

    /// Pushes a manifest or index by digest (and, with `tag`, under that tag too).
    pub async fn put_manifest(
        &self,
        bytes: &[u8],
        tag: Option<&str>,
    ) -> Result<Digest, SourceError> {
        let digest = Digest::of(bytes);
        let media_type = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|value| value.get("mediaType")?.as_str().map(String::from))
            .unwrap_or_else(|| oci::MANIFEST.into());
        let target = match tag {
            Some(tag) => self.tagged(tag),
            None => self.at(&digest),
        };
        self.registry
            .push_manifest(&target, &media_type, bytes.to_vec())
            .await?;
        Ok(digest)
    }

    /// Signs `digest` and pushes the signature image under its cosign tag.
    pub async fn sign(&self, key: &SigningKey, digest: &Digest) -> Result<(), SourceError> {
        let signature = signature_image(key, &self.name(), digest.as_str());
        self.put_blob(signature.config).await?;
        self.put_blob(signature.payload).await?;
        self.put_manifest(&signature.manifest, Some(&signature_tag(digest)))
            .await?;
        Ok(())
    }

    /// Whether the repository holds a cosign signature of `digest` that `key` made for this
    /// repository. Missing, malformed and foreign signatures are all `false`.
    pub async fn verify_signature(
        &self,
        key: &crate::sign::VerifyingKey,
        digest: &Digest,
    ) -> Result<bool, SourceError> {
        let (bytes, _) = match self
            .registry
            .manifest(&self.tagged(&signature_tag(digest)))
            .await
        {
            Ok(found) => found,
            Err(SourceError::NotFound(_)) => return Ok(false),
            Err(other) => return Err(other),
        };
        let Ok(ManifestKind::Image(manifest)) = ManifestKind::parse(&bytes) else {
            return Ok(false);
        };
        for layer in &manifest.layers {
            let Some(signature) = layer
                .annotations
                .get(SIGNATURE_ANNOTATION)
                .and_then(|text| crate::sign::decode_signature(text))
            else {
                continue;
            };
            if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE || layer.size > 64 * 1024 {
                continue;
            }
            let payload = match self
                .registry
                .blob(
                    &self.at(&layer.digest),
                    &layer.digest,
                    crate::source::limits::Expected::Exactly(layer.size),
                )
                .await
            {
                Ok(payload) => payload,
                Err(SourceError::NotFound(_)) => continue,
                Err(other) => return Err(other),
            };
            let Ok(parsed) = SimpleSigning::parse(&payload) else {
                continue;
            };
            if parsed.critical.image.docker_manifest_digest == digest.as_str()
                && parsed.critical.identity.docker_reference == self.name()
                && key.verify(&payload, &signature)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_images_carry_a_verifiable_payload() {
        let key = SigningKey::generate();
        let digest = Digest::of(b"manifest");
        let image = signature_image(&key, "registry.example/cache", digest.as_str());
        let Ok(ManifestKind::Image(manifest)) = ManifestKind::parse(&image.manifest) else {
            panic!("an image manifest");
        };
        assert_eq!(manifest.config.digest, Digest::of(&image.config));
        let layer = &manifest.layers[0];
        assert_eq!(layer.digest, Digest::of(&image.payload));
        let signature =
            crate::sign::decode_signature(&layer.annotations[SIGNATURE_ANNOTATION]).unwrap();
        assert!(key.verifying_key().verify(&image.payload, &signature));
        let payload = SimpleSigning::parse(&image.payload).unwrap();
        assert_eq!(
            payload.critical.image.docker_manifest_digest,
            digest.as_str()
        );
        assert_eq!(
            signature_tag(&digest),
            format!("sha256-{}.sig", digest.hex())
        );
    }
}
