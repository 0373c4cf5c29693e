//! The OCI distribution frontend (`/v2/…`, api.md §7): installer images a Talos node pulls
//! by tag, served from the asset cache; manifests, blobs and (empty) referrers.

use super::http::{ApiError, plain_text};
use crate::service::registry::OCI_INDEX;
use crate::service::{Factory, ServiceError};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

static API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
static CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");

fn with_api_version(mut response: Response) -> Response {
    response.headers_mut().insert(
        API_VERSION.clone(),
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

/// `GET /oci/cosign/signing-key.pub`: the public key installer signatures verify with.
pub async fn signing_key(State(factory): State<Factory>) -> Response {
    let pem = factory.builds.cache.signing_key().verifying_key().to_pem();
    ([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response()
}

/// `GET /v2/`: the API version check clients start with.
pub async fn ping() -> Response {
    with_api_version(StatusCode::OK.into_response())
}

/// `GET|HEAD /v2/<image>/<schematic>/<manifests|blobs|referrers>/<reference>`.
pub async fn route(
    State(factory): State<Factory>,
    Path(path): Path<String>,
    method: Method,
) -> Response {
    let response = match dispatch(&factory, &path, &method).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    with_api_version(response)
}

async fn dispatch(factory: &Factory, path: &str, method: &Method) -> Result<Response, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segments == [""] {
        return Ok(StatusCode::OK.into_response());
    }
    let not_found = || Ok(plain_text(StatusCode::NOT_FOUND, "404 page not found"));
    let [repository @ .., resource, reference] = segments.as_slice() else {
        return not_found();
    };
    if repository.is_empty() || reference.is_empty() {
        return not_found();
    }
    if repository[0] == "siderolabs" {
        return Ok(plain_text(
            StatusCode::NOT_FOUND,
            "proxying source images is not supported by this factory",
        ));
    }
    let [image, schematic] = repository else {
        return not_found();
    };
    match *resource {
        "manifests" => {
            let manifest = factory
                .installer_manifest(image, schematic, reference)
                .await?;
            let length = manifest.bytes.len();
            let body = if method == Method::HEAD {
                Body::empty()
            } else {
                Body::from(manifest.bytes)
            };
            respond(
                Response::builder()
                    .header(header::CONTENT_TYPE, manifest.media_type)
                    .header(CONTENT_DIGEST.clone(), manifest.digest)
                    .header(header::CONTENT_LENGTH, length),
                body,
            )
        }
        "blobs" => {
            let blob = factory.installer_blob(image, schematic, reference).await?;
            let body = if method == Method::HEAD {
                Body::empty()
            } else {
                let file = tokio::fs::File::open(&blob.path).await.map_err(|error| {
                    ApiError::from(ServiceError::Task(format!("opening blob: {error}")))
                })?;
                Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
                    file,
                    256 * 1024,
                ))
            };
            respond(
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_DIGEST.clone(), *reference)
                    .header(header::CONTENT_LENGTH, blob.size),
                body,
            )
        }
        "referrers" => {
            let valid = reference
                .strip_prefix("sha256:")
                .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
            if !valid {
                return not_found();
            }
            // Nothing refers to our images yet (no signatures or attestations).
            let index =
                format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
            let digest = format!(
                "sha256:{}",
                crate::source::oci::hex(&<sha2::Sha256 as sha2::Digest>::digest(index.as_bytes()))
            );
            respond(
                Response::builder()
                    .header(header::CONTENT_TYPE, OCI_INDEX)
                    .header(CONTENT_DIGEST.clone(), digest)
                    .header(header::CONTENT_LENGTH, index.len()),
                Body::from(index),
            )
        }
        _ => not_found(),
    }
}

fn respond(builder: axum::http::response::Builder, body: Body) -> Result<Response, ApiError> {
    builder
        .status(StatusCode::OK)
        .body(body)
        .map_err(|error| ApiError::from(ServiceError::Task(error.to_string())))
}
