//! Schematics in an OCI registry, in upstream's format, so replicas (and upstream's own
//! factory) share them: the canonical YAML is a blob whose digest is `sha256:<ID>`, held by an
//! image of that one layer tagged `<ID>` (the tag keeps the blob from garbage collection).
//! Lookup reads the blob by digest, which checks it against the ID.

use super::repository::{Repository, single_layer_image};
use super::{SchematicStore, StoreError, Stored};
use crate::schematic::SchematicId;
use crate::source::SourceError;
use crate::source::limits::Expected;
use crate::source::oci::Digest;

/// The largest schematic blob read back: a schematic is a few KiB of YAML.
const MAX_SCHEMATIC: u64 = 1 << 20;

/// Media type of the schematic layer.
pub const SCHEMATIC_MEDIA_TYPE: &str = "application/vnd.sidero.dev-image.schematic";

#[derive(Debug)]
pub struct RegistrySchematicStore {
    repository: Repository,
    runtime: tokio::runtime::Handle,
}

impl RegistrySchematicStore {
    /// A store on `repository`; its blocking calls run their requests on `runtime`.
    pub fn new(repository: Repository, runtime: tokio::runtime::Handle) -> RegistrySchematicStore {
        RegistrySchematicStore {
            repository,
            runtime,
        }
    }

    fn registry_error(&self, source: SourceError) -> StoreError {
        StoreError::Registry {
            repository: self.repository.name(),
            source,
        }
    }

    async fn put_async(&self, id: &SchematicId, canonical: &[u8]) -> Result<Stored, SourceError> {
        let digest = Digest::parse(&format!("sha256:{id}")).map_err(SourceError::Invalid)?;
        let registry = self.repository.registry();
        let tagged = self.repository.tagged(&id.to_string());
        if registry.manifest_digest(&tagged).await?.is_some() {
            return Ok(Stored::AlreadyPresent);
        }
        self.repository.put_blob(canonical.to_vec()).await?;
        let image = single_layer_image(SCHEMATIC_MEDIA_TYPE, &digest, canonical.len() as u64);
        self.repository.put_blob(image.config).await?;
        self.repository
            .put_manifest(&image.manifest, Some(&id.to_string()))
            .await?;
        Ok(Stored::Created)
    }

    async fn get_async(&self, id: &SchematicId) -> Result<Option<Vec<u8>>, SourceError> {
        let digest = Digest::parse(&format!("sha256:{id}")).map_err(SourceError::Invalid)?;
        match self
            .repository
            .registry()
            .blob(
                &self.repository.at(&digest),
                &digest,
                Expected::AtMost(MAX_SCHEMATIC),
            )
            .await
        {
            Ok(bytes) => Ok(Some(bytes)),
            Err(SourceError::NotFound(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }
}

impl SchematicStore for RegistrySchematicStore {
    fn put(&self, id: &SchematicId, canonical: &[u8]) -> Result<Stored, StoreError> {
        self.runtime
            .block_on(self.put_async(id, canonical))
            .map_err(|source| self.registry_error(source))
    }

    fn get(&self, id: &SchematicId) -> Result<Option<Vec<u8>>, StoreError> {
        self.runtime
            .block_on(self.get_async(id))
            .map_err(|source| self.registry_error(source))
    }
}
