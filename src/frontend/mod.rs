//! Frontends: one axum router for the HTTP API, the PXE scripts and the `/v2` registry; each
//! route resolves its request with `service::Factory::resolve` and serves the delivery.

pub(crate) mod assets;
mod error;
pub mod http;
mod json;
pub(crate) mod registry;
mod relay;
mod server;
mod tls;
mod ui;

pub use http::{metrics_router, router, serve, serve_with};
pub use server::{ServerError, ServerOptions};
pub use tls::TlsError;
