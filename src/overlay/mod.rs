//! Board overlays (imager.md §10): what an overlay image's profile keeps, the overlay
//! protocol (`get-options`, `install`) spoken with the overlay's own installer program, the
//! confinement that program runs under (`confine`), and the scratch tree it runs against,
//! read back into disk image extents and ESP files (`scratch`). The installer is the only
//! program the factory ever starts.

pub mod confine;
pub mod profile;
pub mod protocol;
pub mod scratch;

use crate::error::{Classify, ErrorKind};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("overlay installer {program} {command} failed ({status}): {stderr}")]
    Failed {
        program: String,
        command: &'static str,
        status: String,
        stderr: String,
    },
    #[error(
        "overlay installer {program} {command} did not finish within {limit:?} and was killed{}",
        if stderr.is_empty() { String::new() } else { format!(": {stderr}") }
    )]
    TimedOut {
        program: String,
        command: &'static str,
        limit: Duration,
        stderr: String,
    },
    #[error("overlay installer {program} wrote {written} bytes, more than the {limit} allowed")]
    WroteTooMuch {
        program: String,
        written: u64,
        limit: u64,
    },
    #[error("overlay installer {program} {command} answered with invalid YAML: {reason}")]
    Protocol {
        program: String,
        command: &'static str,
        reason: String,
    },
    #[error("overlay image {image}: {reason}")]
    Image { image: String, reason: String },
    #[error("cannot confine the overlay installer: {0}")]
    Confinement(String),
    #[error(
        "this kernel has no Landlock, so overlay installers cannot be confined; \
         set build.allowUnconfinedOverlays to run them anyway"
    )]
    Unconfined,
    #[error("overlay scratch tree: {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl Classify for OverlayError {
    fn kind(&self) -> ErrorKind {
        // The overlay and its options are the schematic's choice: what their program does
        // with them is the request's outcome, told in the program's words. Only failing to
        // set the program up is the factory's own.
        match self {
            OverlayError::Confinement(_) | OverlayError::Io { .. } => ErrorKind::Internal,
            _ => ErrorKind::InvalidInput,
        }
    }
}
