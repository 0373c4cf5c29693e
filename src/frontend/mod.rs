//! Frontends: the HTTP API (more routers — PXE, registry, UI — join it as they are built).

mod assets;
pub mod http;
mod json;
mod registry;

pub use http::{router, serve};
