//! Answering a registry request from another registry: a 307 to the same request there, or
//! (proxy mode) the request relayed with the same method and query, without the client's
//! `Authorization` (the target must allow anonymous pulls, as upstream requires), and the
//! answer's status, headers and body streamed back.

use super::error::{ApiError, plain_text};
use crate::service::installer_registry::InstallerTarget;
use axum::body::Body;
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;

/// Headers that describe one connection, not the message.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

fn client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            // Redirects of the target (to blob storage) go back to the client as they are.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    })
}

pub async fn redirect_or_relay(
    target: InstallerTarget,
    method: &Method,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let url = match query {
        Some(query) => format!("{}?{query}", target.url),
        None => target.url,
    };
    if !target.proxy {
        let location = HeaderValue::from_str(&url).map_err(|_| {
            ApiError::from(crate::service::ServiceError::IncompletePlan(
                "a redirect URL",
            ))
        })?;
        let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
        response.headers_mut().insert(header::LOCATION, location);
        return Ok(response);
    }
    let method = if method == Method::HEAD {
        reqwest::Method::HEAD
    } else {
        reqwest::Method::GET
    };
    let answer = match client()
        .request(method, &url)
        .header(
            reqwest::header::ACCEPT,
            crate::source::oci::ACCEPTED_MANIFESTS.join(", "),
        )
        .send()
        .await
    {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(url, %error, "installer registry unreachable");
            return Ok(plain_text(
                StatusCode::BAD_GATEWAY,
                "the installer registry is unreachable",
            ));
        }
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    let body = Body::from_stream(answer.bytes_stream().map_err(std::io::Error::other));
    response.body(body).map_err(ApiError::from)
}
