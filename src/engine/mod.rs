//! The build engine, synchronous and free of I/O beyond the bytes it is given. It reads
//! top-down:
//!
//! - [`layout`]: whole images (disk, ISO, installer) and their output container, which put
//! - [`boot`] pieces (bootloader choice, GRUB, PE, UKI, META) on
//! - [`fs`] writers (cpio, FAT, GPT, ISO 9660 with El Torito, XFS).
//! - [`initramfs`] stands beside them: the initramfs with extensions, the kernel modules
//!   extension and its depmod.
//!
//! What several of them read is shared: [`elf`] (GRUB's kernels, kernel modules) and
//! [`bytes`] (little-endian header fields).

pub mod boot;
pub mod bytes;
pub mod elf;
pub mod fs;
pub mod initramfs;
pub mod layout;

/// Talos's SOURCE_DATE_EPOCH: the one timestamp in every generated archive and image.
pub const SOURCE_DATE_EPOCH: u32 = 1_559_424_892;

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
    /// A file the release must carry is not there.
    #[error("{what}: {file} is missing")]
    MissingFile { what: &'static str, file: String },
    /// A file of the release is not what it must be, or what it makes is too big.
    #[error("{what}: {reason}")]
    BrokenFile { what: &'static str, reason: String },
    #[error("{0}")]
    InvalidInput(String),
    /// A compressed input of the release that decompresses to more than its budget.
    #[error("{what} expands beyond {limit} bytes: refused as a decompression bomb")]
    Expands { what: &'static str, limit: u64 },
    #[error("{0}")]
    Pe(String),
    /// A layout handed a format writer something out of bounds: a bug, not bad input.
    #[error("{0}")]
    Format(#[from] crate::format::FormatError),
    #[error("{what}: {reason}")]
    Json { what: &'static str, reason: String },
    /// The Secure Boot key or certificate cannot make what is asked of it.
    #[error("{what}: {source}")]
    SecureBootKey {
        what: &'static str,
        source: crate::sign::secureboot::SecureBootKeyError,
    },
    /// A Secure Boot signature could not be made.
    #[error("{what}: {source}")]
    Signing {
        what: &'static str,
        source: crate::sign::pkcs7::Pkcs7Error,
    },
}

impl EngineError {
    pub fn json(what: &'static str) -> impl FnOnce(serde_json::Error) -> EngineError {
        move |error| EngineError::Json {
            what,
            reason: error.to_string(),
        }
    }

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
