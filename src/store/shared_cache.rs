//! The asset cache's shared second tier, an OCI repository in upstream's layout: an entry is
//! an image tagged with the cache key whose one `application/data` layer is the asset, its
//! manifest digest cosign-signed with the cache signing key. A lookup checks the signature
//! before anything is read, so an entry without a valid one is a miss (and is rebuilt and
//! overwritten). A publish pushes the blob, the manifest by digest and the signature, and
//! only then the tag: a replica killed part way leaves nothing a lookup finds.

use super::repository::{Repository, single_layer_image};
use crate::sign::{SigningKey, VerifyingKey};
use crate::source::SourceError;
use crate::source::oci::{Digest, ManifestKind};
use bytes::Bytes;
use futures_util::Stream;
use std::path::Path;

/// Media type of an asset layer.
pub const ASSET_MEDIA_TYPE: &str = "application/data";

/// A verified entry of the shared tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedEntry {
    pub manifest: Digest,
    pub blob: Digest,
    pub size: u64,
}

#[derive(Debug)]
pub struct SharedCache {
    repository: Repository,
    signing: SigningKey,
    verifying: VerifyingKey,
}

impl SharedCache {
    pub fn new(repository: Repository, signing: SigningKey) -> SharedCache {
        let verifying = signing.verifying_key();
        SharedCache {
            repository,
            signing,
            verifying,
        }
    }

    pub fn name(&self) -> String {
        self.repository.name()
    }

    /// The entry under `key` if the repository has one whose signature verifies.
    pub async fn lookup(&self, key: &str) -> Result<Option<SharedEntry>, SourceError> {
        let registry = self.repository.registry();
        let Some(digest) = registry
            .manifest_digest(&self.repository.tagged(key))
            .await?
        else {
            return Ok(None);
        };
        if !self
            .repository
            .verify_signature(&self.verifying, &digest)
            .await?
        {
            tracing::warn!(
                key,
                manifest = %digest,
                repository = %self.repository.name(),
                "shared cache entry has no valid signature: treated as a miss"
            );
            return Ok(None);
        }
        let (bytes, _) = registry.manifest(&self.repository.at(&digest)).await?;
        let layers = match ManifestKind::parse(&bytes) {
            Ok(ManifestKind::Image(manifest)) => manifest.layers,
            _ => Vec::new(),
        };
        match layers.as_slice() {
            [layer] if layer.media_type == ASSET_MEDIA_TYPE => Ok(Some(SharedEntry {
                manifest: digest,
                blob: layer.digest.clone(),
                size: layer.size,
            })),
            _ => {
                tracing::warn!(key, "shared cache entry is not one asset layer: a miss");
                Ok(None)
            }
        }
    }

    /// The bytes of `entry` as they arrive (the caller checks them against its digest).
    pub async fn stream(
        &self,
        entry: &SharedEntry,
    ) -> Result<impl Stream<Item = std::io::Result<Bytes>> + use<>, SourceError> {
        self.repository
            .registry()
            .blob_stream(&self.repository.at(&entry.blob), &entry.blob, entry.size)
            .await
    }

    /// Publishes the local file `data` under `key` (see the module documentation for the
    /// order of the pushes).
    pub async fn publish(&self, key: &str, data: &Path) -> Result<SharedEntry, SourceError> {
        let file = tokio::fs::File::open(data)
            .await
            .map_err(|error| SourceError::io(data, error))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 4 << 20);
        let (blob, size) = self
            .repository
            .registry()
            .push_blob_stream(&self.repository.tagged(key), stream)
            .await?;
        let image = single_layer_image(ASSET_MEDIA_TYPE, &blob, size);
        self.repository.put_blob(image.config).await?;
        let manifest = self.repository.put_manifest(&image.manifest, None).await?;
        self.repository.sign(&self.signing, &manifest).await?;
        self.repository
            .put_manifest(&image.manifest, Some(key))
            .await?;
        Ok(SharedEntry {
            manifest,
            blob,
            size,
        })
    }
}
