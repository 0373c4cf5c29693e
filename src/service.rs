//! The service layer between frontends and the engine: turns requests into schematic,
//! store and (later) build operations, with errors that carry their HTTP kind.

use crate::config::Config;
use crate::error::{Classify, ErrorKind};
use crate::schematic::{Schematic, SchematicError, SchematicId};
use crate::store::{SchematicStore, StoreError, Stored};
use std::sync::Arc;

/// Everything a request handler needs, shared by all frontends.
#[derive(Debug, Clone)]
pub struct Factory {
    pub config: Arc<Config>,
    schematics: Arc<dyn SchematicStore>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    InvalidSchematic(#[from] SchematicError),
    #[error("schematic not found")]
    SchematicNotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("background task failed: {0}")]
    Task(String),
}

impl Classify for ServiceError {
    fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::InvalidSchematic(error) => error.kind(),
            ServiceError::SchematicNotFound => ErrorKind::NotFound,
            ServiceError::Store(error) => error.kind(),
            ServiceError::Task(_) => ErrorKind::Internal,
        }
    }
}

/// A schematic accepted by [`Factory::create_schematic`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSchematic {
    pub id: SchematicId,
    pub canonical: String,
    pub stored: Stored,
}

impl Factory {
    pub fn new(config: Config, schematics: Arc<dyn SchematicStore>) -> Factory {
        Factory {
            config: Arc::new(config),
            schematics,
        }
    }

    /// Parses, validates and stores a schematic document; idempotent.
    pub async fn create_schematic(&self, body: Vec<u8>) -> Result<CreatedSchematic, ServiceError> {
        let schematic = Schematic::parse(&body)?;
        schematic.validate()?;
        let canonical = schematic.canonical();
        let id = SchematicId::of_canonical(canonical.as_bytes());
        let store = self.schematics.clone();
        let bytes = canonical.clone().into_bytes();
        let stored = tokio::task::spawn_blocking(move || store.put(&id, &bytes))
            .await
            .map_err(|error| ServiceError::Task(error.to_string()))??;
        Ok(CreatedSchematic {
            id,
            canonical,
            stored,
        })
    }

    /// The canonical text of a stored schematic. Text that is not a well-formed ID is
    /// simply not found; it never reaches the store.
    pub async fn schematic(&self, id: &str) -> Result<String, ServiceError> {
        let id: SchematicId = id.parse().map_err(|_| ServiceError::SchematicNotFound)?;
        let store = self.schematics.clone();
        let bytes = tokio::task::spawn_blocking(move || store.get(&id))
            .await
            .map_err(|error| ServiceError::Task(error.to_string()))??
            .ok_or(ServiceError::SchematicNotFound)?;
        // The store verified the bytes against the ID, which is a hash of canonical text.
        String::from_utf8(bytes)
            .map_err(|_| ServiceError::Task(format!("stored schematic {id} is not UTF-8")))
    }
}
