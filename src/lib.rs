//! image-factory: a native, self-hostable Talos Linux Image Factory.
//!
//! The library holds everything; the `image-factory` binary only parses its command line and
//! calls [`cli::main`].

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
