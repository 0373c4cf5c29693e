//! The build engine: one module per artifact, all synchronous and free of I/O beyond the
//! bytes they are given.

pub mod cpio;
pub mod depmod;
pub mod disk;
pub mod extension;
pub mod fat;
pub mod gpt;
pub mod grub;
pub mod initramfs;
pub mod installer;
pub mod iso;
pub mod meta;
pub mod modules;
pub mod output;
pub mod uki;
pub mod xfs;

use crate::error::{Classify, ErrorKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("extension {extension}: {reason}")]
    InvalidExtension { extension: String, reason: String },
    #[error("extension {extension} is not compatible with Talos {version} (requires {range})")]
    Incompatible {
        extension: String,
        version: String,
        range: String,
    },
    #[error("squashfs of extension {extension}: {reason}")]
    Squashfs { extension: String, reason: String },
    #[error("{0}")]
    Compression(String),
    #[error("{what}: {reason}")]
    Io { what: &'static str, reason: String },
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Pe(String),
    /// A layout that does not fit its own image is a bug, not bad input.
    #[error(transparent)]
    Format(#[from] crate::format::FormatError),
}

impl EngineError {
    pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> EngineError {
        move |error| EngineError::Io {
            what,
            reason: error.to_string(),
        }
    }
}

impl Classify for EngineError {
    fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Incompatible { .. } | EngineError::InvalidInput(_) => {
                ErrorKind::InvalidInput
            }
            _ => ErrorKind::Internal,
        }
    }
}
