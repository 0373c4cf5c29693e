//! The HTTP API router: schematics, health, and the conventions every route shares
//! (`Server` and `X-Request-ID` headers, CORS, plain-text errors ending in a newline).

use super::error::{ApiError, plain_text};
use super::server::ServerOptions;
use super::{assets, json, registry};

use crate::service::Factory;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::future::Future;
use std::time::Instant;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

/// The `Server` header value; upstream puts its release tag there.
pub const SERVER: &str = concat!("Image Factory v", env!("CARGO_PKG_VERSION"));
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Serves `factory` on `listener` with the connection settings of `http.*` until `shutdown`
/// completes, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    factory: Factory,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let options = ServerOptions::from_config(&factory.config.http)
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
    serve_with(listener, factory, options, shutdown).await
}

/// [`serve`] with settings read (and their files loaded) beforehand.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    factory: Factory,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    super::server::run(listener, router(factory), options, shutdown).await
}

pub fn router(factory: Factory) -> Router {
    let cors = cors(&factory.config.http.allowed_origins);
    Router::new()
        .route("/healthz", get(empty_ok))
        .route("/readyz", get(empty_ok))
        .route("/schematics", post(create_schematic))
        .route("/schematics/{id}", get(get_schematic))
        .route("/versions", get(versions))
        .route("/version/{version}/extensions/official", get(extensions))
        .route("/version/{version}/overlays/official", get(overlays))
        .route("/talosctl/{version}", get(talosctl_urls))
        .route("/talosctl/{version}/{name}", get(talosctl_binary))
        .route("/image/{schematic}/{version}/{path}", get(assets::image))
        .route("/pxe/{schematic}/{version}/{path}", get(assets::pxe))
        .route("/oci/cosign/signing-key.pub", get(registry::signing_key))
        .route(
            "/secureboot/signing-cert.pem",
            get(registry::secureboot_certificate),
        )
        .route("/v2", get(registry::ping))
        .route("/v2/", get(registry::ping))
        .route("/v2/{*path}", get(registry::route))
        .merge(super::ui::routes())
        .fallback(|| async { plain_text(StatusCode::NOT_FOUND, "404 page not found") })
        .method_not_allowed_fallback(|| async {
            plain_text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
        .with_state(factory.clone())
        .layer(cors)
        .layer(middleware::from_fn_with_state(factory, common_headers))
}

/// `GET /metrics` on the metrics listener (`metrics.addr`).
pub fn metrics_router(factory: Factory) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(factory): State<Factory>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    factory.metrics.encode(),
                )
            }),
        )
        .with_state(factory)
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_headers([header::CACHE_CONTROL])
        .expose_headers([
            header::CONTENT_DISPOSITION,
            header::CONTENT_LENGTH,
            header::CONTENT_TYPE,
        ])
}

/// Echoes or assigns a request ID, names the server, logs one line per request, and counts
/// it in the HTTP metrics by route.
async fn common_headers(State(factory): State<Factory>, request: Request, next: Next) -> Response {
    let handler = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let method = request.method().to_string();
    let inflight = factory
        .metrics
        .requests_inflight
        .get_or_create(&crate::service::metrics::HandlerLabels {
            handler: handler.clone(),
        })
        .clone();
    inflight.inc();
    let request_id = request
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|value| !value.is_empty() && value.len() <= 256)
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or(HeaderValue::from_static("unknown"))
        });
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = request_id.to_str().unwrap_or("-"),
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "served"
        )
    });
    inflight.dec();
    factory
        .metrics
        .request_duration
        .get_or_create(&crate::service::metrics::RequestLabels {
            handler,
            method,
            code: response.status().as_u16().to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    let headers = response.headers_mut();
    headers.insert(header::SERVER, HeaderValue::from_static(SERVER));
    headers.insert(X_REQUEST_ID.clone(), request_id);
    response
}

async fn empty_ok() -> StatusCode {
    StatusCode::OK
}

/// Reads a request body up to `limit` bytes; past it, the answer is 413.
async fn read_body(body: Body, limit: u64) -> Result<Bytes, Response> {
    let too_large = || {
        plain_text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body too large: the limit is {limit} bytes"),
        )
    };
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, limit_usize).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(error) => Err(plain_text(
            StatusCode::BAD_REQUEST,
            &format!("cannot read request body: {error}"),
        )),
    }
}

async fn create_schematic(State(factory): State<Factory>, request: Request) -> Response {
    let limit = factory.config.http.max_request_body_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return plain_text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body too large: the limit is {limit} bytes"),
        );
    }
    let body = match read_body(request.into_body(), limit).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    match factory.create_schematic(body.to_vec()).await {
        Ok(created) => {
            tracing::info!(id = %created.id, stored = ?created.stored, "schematic created");
            let id = created.id.to_string();
            let body = json::object_line(&[("id", &id), ("schematic", &created.canonical)]);
            (
                StatusCode::CREATED,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

async fn get_schematic(
    State(factory): State<Factory>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let canonical = factory.schematic(&id).await?;
    Ok(([(header::CONTENT_TYPE, "application/yaml")], canonical).into_response())
}

/// JSON lists, sent as upstream sends them: Go's encoder, no explicit type (so
/// `text/plain; charset=utf-8`).
fn json_list<T: serde::Serialize>(value: &T) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        json::encode_line(value),
    )
        .into_response()
}

#[derive(Debug, serde::Deserialize)]
struct VersionsQuery {
    broken: Option<String>,
}

async fn versions(
    State(factory): State<Factory>,
    Query(query): Query<VersionsQuery>,
) -> Result<Response, ApiError> {
    let broken = query.broken.as_deref() == Some("true");
    Ok(json_list(&factory.versions(broken).await?))
}

async fn extensions(
    State(factory): State<Factory>,
    Path(version): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json_list(&*factory.extensions(&version).await?))
}

async fn overlays(
    State(factory): State<Factory>,
    Path(version): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json_list(&*factory.overlays(&version).await?))
}

async fn talosctl_urls(
    State(factory): State<Factory>,
    Path(version): Path<String>,
) -> Result<Response, ApiError> {
    let urls = factory.talosctl_urls(&version).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        json::encode_line(&urls),
    )
        .into_response())
}

/// A talosctl binary (`HEAD` answers the same headers without the body).
async fn talosctl_binary(
    State(factory): State<Factory>,
    Path((version, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let binary = factory.talosctl_binary(&version, &name).await?;
    let body = crate::service::delivery::read_range(&binary.path, 0, binary.size).await?;
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, binary.size)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .body(Body::from_stream(body))?)
}
