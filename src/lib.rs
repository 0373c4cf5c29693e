//! image-factory: a native, self-hostable Talos Linux Image Factory.
//!
//! The library holds everything; the `image-factory` binary only parses its command line and
//! calls [`cli::main`].
//!
//! The library runs as an Internet-facing service on schematics, registry blobs and release
//! images from anyone: it reports malformed input as a typed error and never panics on it.
//! Unit tests may unwrap and index (see `clippy.toml`); modules that only write buffers they
//! sized themselves opt out of `indexing_slicing` each with the reason.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::indexing_slicing
)]

pub mod calendar;
pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod format;
pub mod frontend;
#[doc(hidden)]
pub mod fuzzing;
pub mod hex;
pub mod overlay;
pub mod profile;
pub mod schematic;
pub mod service;
pub mod sign;
pub mod size;
pub mod source;
pub mod store;
pub mod version;
pub mod yaml;
