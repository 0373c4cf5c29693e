//! Sources of the factory's inputs: the Talos release images (imager, extensions, overlays,
//! installer-base) read from an OCI registry or from a local OCI layout, with every blob
//! checked against its digest and every image checked against its signature.

pub mod layout;
pub mod oci;
pub mod reference;

use crate::error::{Classify, ErrorKind};
use oci::Digest;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{what} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("signature verification failed for {image}: {reason}")]
    Signature { image: String, reason: String },
    #[error("unsafe path in image {image}: {path:?} ({reason})")]
    UnsafePath {
        image: String,
        path: String,
        reason: String,
    },
    #[error("{0}")]
    Io(String),
}

impl SourceError {
    pub fn io(path: &Path, error: std::io::Error) -> SourceError {
        SourceError::Io(format!("{}: {error}", path.display()))
    }
}

impl Classify for SourceError {
    fn kind(&self) -> ErrorKind {
        match self {
            SourceError::NotFound(_) => ErrorKind::NotFound,
            SourceError::Unavailable(_) => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }
}
