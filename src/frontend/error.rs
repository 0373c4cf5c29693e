//! How the frontend answers when something fails: the one error type its handlers return,
//! and the plain-text body Go's `http.Error` writes, which every route shares.

use crate::error::{Classify, ErrorKind};
use crate::service::ServiceError;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// A plain-text response as Go's `http.Error` writes it.
pub fn plain_text(status: StatusCode, message: &str) -> Response {
    let mut body = message.to_string();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// Why a request failed: the service's error, or a response that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A header value the response cannot carry (a bug unless it came from the request).
    #[error("building the response: {0}")]
    Response(#[from] axum::http::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = match &self {
            ApiError::Service(error) => error.kind(),
            ApiError::Response(_) => ErrorKind::Internal,
        };
        let status =
            StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match kind {
            ErrorKind::Internal => {
                tracing::error!(error = %self, "request failed");
                plain_text(status, "internal server error")
            }
            ErrorKind::InsufficientStorage => {
                tracing::error!(error = %self, "request failed: the state directory is full");
                plain_text(
                    status,
                    &format!("insufficient storage on the factory: {self}"),
                )
            }
            _ => plain_text(status, &self.to_string()),
        }
    }
}
