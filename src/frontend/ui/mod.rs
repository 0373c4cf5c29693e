//! The web UI (`/`, `/ui/*`): one page that walks through the choices of a schematic
//! (hardware, version, platform or board, architecture and Secure Boot, extensions, kernel
//! arguments, bootloader, board options) with the schematic YAML and ID beside it, then a
//! result page with every link that applies. Templates are compiled in (askama); the page
//! works as plain forms, one step per submit, and `app.js` only makes it quicker.

mod choices;
mod links;
mod page;

use super::error::plain_text;
use crate::service::Factory;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use choices::Choices;

const STYLE: &str = include_str!("static/style.css");
const SCRIPT: &str = include_str!("static/app.js");

pub fn routes() -> Router<Factory> {
    Router::new()
        .route("/", get(wizard))
        .route("/ui/schematic", post(create))
        .route("/ui/result", get(result))
        .route(
            "/ui/static/style.css",
            get(|| static_file(STYLE, "text/css")),
        )
        .route(
            "/ui/static/app.js",
            get(|| static_file(SCRIPT, "text/javascript")),
        )
}

async fn static_file(body: &'static str, media_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(media_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

/// An HTML page, or the readable error page.
fn html(rendered: Result<String, askama::Error>) -> Response {
    match rendered {
        Ok(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering a page failed");
            plain_text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
        }
    }
}

/// The error page with `status`.
fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let mut response = html(page::error(title, message));
    *response.status_mut() = status;
    response
}

/// `GET /`: the wizard for the choices in the query (`?schematic-id=` starts from a stored
/// schematic). With `X-Wizard-Fragment: 1` only the form's content, for `app.js`.
async fn wizard(
    State(factory): State<Factory>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut choices = Choices::parse(query.as_deref().unwrap_or(""));
    if !choices.schematic_id.is_empty() {
        match factory.schematic(&choices.schematic_id).await {
            Ok(canonical) => match crate::schematic::Schematic::parse(canonical.as_bytes()) {
                Ok(stored) => {
                    let mut from_stored = Choices::from_schematic(&stored, &choices.schematic_id);
                    from_stored.version = choices.version.clone();
                    from_stored.arch = choices.arch.clone();
                    choices = from_stored;
                }
                Err(_) => {
                    return error_page(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Unreadable schematic",
                        "The stored schematic could not be read.",
                    );
                }
            },
            Err(_) => {
                return error_page(
                    StatusCode::NOT_FOUND,
                    "Schematic not found",
                    &format!(
                        "There is no schematic with ID {:?} on this factory.",
                        choices.schematic_id
                    ),
                );
            }
        }
    }
    let fragment = headers
        .get("x-wizard-fragment")
        .is_some_and(|value| value == "1");
    match page::wizard(&factory, &mut choices, fragment).await {
        Ok(rendered) => html(rendered),
        Err(page::PageError::UnknownVersion(version)) => error_page(
            StatusCode::NOT_FOUND,
            "Version not found",
            &format!("Talos {version} is not offered by this factory."),
        ),
        Err(page::PageError::Unavailable(message)) => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The release is unavailable",
            &message,
        ),
    }
}

/// `POST /ui/schematic`: stores the schematic of the submitted choices, then shows the
/// result page.
async fn create(State(factory): State<Factory>, body: Bytes) -> Response {
    let choices = Choices::parse(&String::from_utf8_lossy(&body));
    let overlay_image = page::overlay_image(&factory, &choices).await;
    let schematic = match choices.schematic(overlay_image.as_deref()) {
        Ok(schematic) => schematic,
        Err(error) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "These choices do not make a schematic",
                &error.to_string(),
            );
        }
    };
    match factory
        .create_schematic(schematic.canonical().into_bytes())
        .await
    {
        Ok(created) => {
            let mut target = choices.clone();
            target.schematic_id = created.id.to_string();
            Redirect::to(&format!(
                "/ui/result?{}&schematic-id={}",
                target.to_query(),
                created.id
            ))
            .into_response()
        }
        Err(error) => error_page(
            StatusCode::BAD_REQUEST,
            "The schematic was not stored",
            &error.to_string(),
        ),
    }
}

/// `GET /ui/result?schematic-id=…&version=…`: the ID, the YAML and the links.
async fn result(State(factory): State<Factory>, RawQuery(query): RawQuery) -> Response {
    let choices = Choices::parse(query.as_deref().unwrap_or(""));
    match page::result(&factory, &choices).await {
        Ok(rendered) => html(rendered),
        Err(page::ResultError::UnknownSchematic) => error_page(
            StatusCode::NOT_FOUND,
            "Schematic not found",
            &format!(
                "There is no schematic with ID {:?} on this factory.",
                choices.schematic_id
            ),
        ),
        Err(page::ResultError::UnknownVersion) => error_page(
            StatusCode::NOT_FOUND,
            "Version not found",
            &format!(
                "Talos {:?} is not offered by this factory.",
                choices.version
            ),
        ),
    }
}
