//! Persistent storage: the schematic store behind a trait, and the signed asset cache. The
//! embedded default keeps both in a state directory on the local filesystem; a deployment of
//! several replicas keeps schematics and a shared cache tier in OCI registries.

pub mod cache;
mod fs;
mod memo;
mod registry_schematics;
pub mod repository;
pub mod shared_cache;

pub use cache::{AssetCache, CachedAsset};
pub use fs::FsSchematicStore;
pub use memo::MemoSchematicStore;
pub use registry_schematics::{RegistrySchematicStore, SCHEMATIC_MEDIA_TYPE};

use crate::error::{Classify, ErrorKind};
use crate::schematic::SchematicId;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Canonical schematic documents, addressed by their ID. There is deliberately no listing.
pub trait SchematicStore: Send + Sync + std::fmt::Debug {
    /// Stores `canonical` under `id` (its SHA-256). Storing a schematic that is already
    /// present changes nothing.
    fn put(&self, id: &SchematicId, canonical: &[u8]) -> Result<Stored, StoreError>;

    /// The canonical bytes stored under `id`, verified against it; `None` if absent.
    fn get(&self, id: &SchematicId) -> Result<Option<Vec<u8>>, StoreError>;
}

/// What a [`SchematicStore::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Created,
    AlreadyPresent,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stored schematic {id} at {path} does not match its ID (corrupted on disk)")]
    Corrupt { id: SchematicId, path: PathBuf },
    #[error("asset cache record {path} is malformed: {source}")]
    MalformedRecord {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("asset cache record {path}: signature does not verify")]
    BadSignature { path: PathBuf },
    #[error("asset cache data {path} does not match its signed digest")]
    DigestMismatch { path: PathBuf },
    #[error("schematic repository {repository}: {source}")]
    Registry {
        repository: String,
        source: crate::source::SourceError,
    },
    #[error("asset cache signing key {path}: {source}")]
    SigningKey {
        path: PathBuf,
        source: crate::sign::SignError,
    },
}

/// Maps an I/O error of `action` on `path` to a [`StoreError`].
fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

impl Classify for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Registry { source, .. } => match source.kind() {
                ErrorKind::Unavailable => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            StoreError::Io { source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                ) =>
            {
                ErrorKind::InsufficientStorage
            }
            _ => ErrorKind::Internal,
        }
    }
}

/// The schematic store the configuration names (the registry repository of
/// `artifacts.schematic`, else the state directory), behind the in-memory cache. Registry
/// requests of the blocking store calls run on `runtime`.
pub fn open_schematic_store(
    config: &crate::config::Config,
    runtime: tokio::runtime::Handle,
) -> Result<Arc<dyn SchematicStore>, String> {
    let inner: Arc<dyn SchematicStore> =
        match repository::Repository::from_config(&config.artifacts.schematic) {
            Some(repository) => Arc::new(RegistrySchematicStore::new(repository, runtime)),
            None => {
                Arc::new(FsSchematicStore::open(&config.storage.dir).map_err(|e| e.to_string())?)
            }
        };
    let memo = &config.cache.schematic;
    let ttl = memo.negative_ttl().map_err(|error| error.to_string())?;
    let capacity = usize::try_from(memo.capacity).unwrap_or(usize::MAX);
    Ok(Arc::new(MemoSchematicStore::new(inner, capacity, ttl)))
}
