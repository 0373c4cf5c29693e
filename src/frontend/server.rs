//! The HTTP/1.1 server under the router: a bound on open connections, a deadline for request
//! headers that also closes idle keep-alive connections, optional TLS, and a graceful stop.

use crate::config::HttpConfig;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
    #[error("http.maxConnections must be at least 1")]
    NoConnections,
}

/// The connection-level settings of `http.*`.
#[derive(Clone)]
pub struct ServerOptions {
    max_connections: usize,
    header_timeout: Duration,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ServerOptions")
            .field("max_connections", &self.max_connections)
            .field("header_timeout", &self.header_timeout)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl ServerOptions {
    /// Reads the settings; the TLS pair is loaded now, so a bad one stops the start.
    pub fn from_config(http: &HttpConfig) -> Result<ServerOptions, ServerError> {
        if http.max_connections == 0 {
            return Err(ServerError::NoConnections);
        }
        Ok(ServerOptions {
            max_connections: http.max_connections,
            header_timeout: http.header_timeout()?,
            tls: super::tls::acceptor(&http.cert_file, &http.key_file)?,
        })
    }

    /// `https` with a certificate, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// What a connection past `http.maxConnections` is told before it is closed.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; \
charset=utf-8\r\nContent-Length: 21\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many connections\n";

/// Accepts connections on `listener` and serves `router` on each until `shutdown`
/// completes; then stops accepting and waits for in-flight requests.
pub async fn run(
    listener: TcpListener,
    router: Router,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .keep_alive(true);
    let service = TowerToHyperService::new(router);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or memory: wait instead of spinning on accept.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(&stream, options.tls.is_some());
            tracing::debug!(%peer, "connection refused: http.maxConnections reached");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let service = service.clone();
        let tls = options.tls.clone();
        let header_timeout = options.header_timeout;
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let result = match tls {
                None => {
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
                Some(acceptor) => {
                    // The handshake gets the same deadline as the headers it precedes.
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let connection =
                                builder.serve_connection(TokioIo::new(stream), service);
                            watcher.watch(connection).await
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, "TLS handshake failed: {error}");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, "connection ended: {error}");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Tells a plain-HTTP client why it is turned away, if the socket takes the answer at once;
/// the stream is closed when dropped either way.
fn refuse(stream: &TcpStream, tls: bool) {
    if !tls {
        let _ = stream.try_write(OVER_CAPACITY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_is_a_complete_response() {
        let text = std::str::from_utf8(OVER_CAPACITY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }

    #[test]
    fn options_need_a_connection() {
        let http = HttpConfig {
            max_connections: 0,
            ..HttpConfig::default()
        };
        assert!(matches!(
            ServerOptions::from_config(&http),
            Err(ServerError::NoConnections)
        ));
    }
}
