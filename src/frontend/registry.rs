//! The OCI distribution frontend (`/v2/…`, api.md §7): installer images a Talos node pulls
//! by tag, served from the asset cache; manifests, blobs and (empty) referrers; and the
//! release's source images under `/v2/siderolabs/…`.

use super::error::{ApiError, plain_text};
use crate::service::Factory;
use crate::service::delivery::read_range;
use crate::service::registry::{OCI_INDEX, RegistryManifest, SourceBlob};
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

/// `GET /secureboot/signing-cert.pem`: the certificate that verifies the factory's Secure Boot
/// signatures; as upstream, 500 when Secure Boot is not enabled.
pub async fn secureboot_certificate(State(factory): State<Factory>) -> Response {
    match &factory.secure_boot {
        Some(keys) => (
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            keys.certificate_pem.clone(),
        )
            .into_response(),
        None => {
            tracing::error!("signing certificate requested, but secure boot is not enabled");
            plain_text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
        }
    }
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
    uri: axum::http::Uri,
) -> Response {
    let response = match dispatch(&factory, &path, &method, uri.query()).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    with_api_version(response)
}

/// Where a `/v2/<path>` request goes, decided from the path alone (before any lookup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V2Route<'a> {
    /// `/v2/`: the API version check.
    Ping,
    /// `siderolabs/<name…>/<resource>/<reference>`: a source image of the release.
    Source {
        name: String,
        resource: &'a str,
        reference: &'a str,
    },
    /// `<image>/<schematic>/<resource>/<reference>`: an installer image.
    Installer {
        image: &'a str,
        schematic: &'a str,
        resource: &'a str,
        reference: &'a str,
    },
    /// Anything else: the registry's plain 404.
    NotFound,
}

impl<'a> V2Route<'a> {
    pub fn of(path: &'a str) -> V2Route<'a> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        if segments == [""] {
            return V2Route::Ping;
        }
        let [repository @ .., resource, reference] = segments.as_slice() else {
            return V2Route::NotFound;
        };
        if repository.is_empty() || reference.is_empty() {
            return V2Route::NotFound;
        }
        if let ["siderolabs", rest @ ..] = repository {
            let name = rest.join("/");
            if name.is_empty() {
                return V2Route::NotFound;
            }
            return V2Route::Source {
                name,
                resource,
                reference,
            };
        }
        let [image, schematic] = repository else {
            return V2Route::NotFound;
        };
        V2Route::Installer {
            image,
            schematic,
            resource,
            reference,
        }
    }
}

async fn dispatch(
    factory: &Factory,
    path: &str,
    method: &Method,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let (image, schematic, resource, reference) = match V2Route::of(path) {
        V2Route::Ping => return Ok(StatusCode::OK.into_response()),
        V2Route::NotFound => return Ok(plain_text(StatusCode::NOT_FOUND, "404 page not found")),
        V2Route::Source {
            name,
            resource,
            reference,
        } => return source_image(factory, &name, resource, reference, method).await,
        V2Route::Installer {
            image,
            schematic,
            resource,
            reference,
        } => (image, schematic, resource, reference),
    };
    if let Some(target) = factory
        .installer_target(image, schematic, resource, reference)
        .await?
    {
        return super::relay::redirect_or_relay(target, method, query).await;
    }
    match resource {
        "manifests" => {
            let manifest = factory
                .installer_manifest(image, schematic, reference)
                .await?;
            manifest_response(manifest, method == Method::HEAD)
        }
        "blobs" => {
            let blob = factory.installer_blob(image, schematic, reference).await?;
            let body = if method == Method::HEAD {
                Body::empty()
            } else {
                Body::from_stream(read_range(&blob.path, 0, blob.size).await?)
            };
            respond(
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_DIGEST.clone(), reference)
                    .header(header::CONTENT_LENGTH, blob.size),
                body,
            )
        }
        "referrers" => empty_referrers(reference),
        _ => Ok(plain_text(StatusCode::NOT_FOUND, "404 page not found")),
    }
}

/// `/v2/siderolabs/<name>/…`: the release's source images, read through the configured
/// source (so an air-gapped factory serves its OCI layout).
async fn source_image(
    factory: &Factory,
    name: &str,
    resource: &str,
    reference: &str,
    method: &Method,
) -> Result<Response, ApiError> {
    let head = method == Method::HEAD;
    match (resource, reference) {
        ("manifests", _) => {
            let manifest = factory.source_manifest(name, reference).await?;
            manifest_response(manifest, head)
        }
        ("blobs", _) => {
            let (length, body) = match factory.source_blob(name, reference).await? {
                SourceBlob::File(path, size) => {
                    let body = if head {
                        Body::empty()
                    } else {
                        Body::from_stream(read_range(&path, 0, size).await?)
                    };
                    (size, body)
                }
                SourceBlob::Bytes(bytes) => (
                    bytes.len() as u64,
                    if head {
                        Body::empty()
                    } else {
                        Body::from(bytes)
                    },
                ),
            };
            respond(
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_DIGEST.clone(), reference)
                    .header(header::CONTENT_LENGTH, length),
                body,
            )
        }
        ("referrers", _) => empty_referrers(reference),
        ("tags", "list") => {
            let list = factory.source_tags(name).await?;
            respond(
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::CONTENT_LENGTH, list.len()),
                Body::from(list),
            )
        }
        _ => Ok(plain_text(StatusCode::NOT_FOUND, "404 page not found")),
    }
}

fn manifest_response(manifest: RegistryManifest, head: bool) -> Result<Response, ApiError> {
    let length = manifest.bytes.len();
    let body = if head {
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

/// Nothing refers to images through this API: signatures use the tag scheme.
fn empty_referrers(reference: &str) -> Result<Response, ApiError> {
    let valid = reference
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if !valid {
        return Ok(plain_text(StatusCode::NOT_FOUND, "404 page not found"));
    }
    let index = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
    let digest = format!(
        "sha256:{}",
        crate::hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(index.as_bytes()))
    );
    respond(
        Response::builder()
            .header(header::CONTENT_TYPE, OCI_INDEX)
            .header(CONTENT_DIGEST.clone(), digest)
            .header(header::CONTENT_LENGTH, index.len()),
        Body::from(index),
    )
}

fn respond(builder: axum::http::response::Builder, body: Body) -> Result<Response, ApiError> {
    builder
        .status(StatusCode::OK)
        .body(body)
        .map_err(ApiError::from)
}
