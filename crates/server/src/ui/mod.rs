//! The chat page for staff at `GET /` (`ward serve --no-ui` turns it off): a conversation with
//! the served model through the API, under the API's key rules. Three static files compiled
//! into the binary, no external assets (hospital networks are closed), served under a strict
//! Content-Security-Policy: the page's own script and style only, requests to this server only.
//! The files hold no data, so they are served without a key, like the probes.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The routes of the page's files.
pub const ROUTES: [&str; 4] = ["/", "/ui/chat.js", "/ui/chat.css", "/favicon.ico"];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", include_str!("chat.html")) }),
        )
        .route(
            "/ui/chat.js",
            get(|| async { file("text/javascript; charset=utf-8", include_str!("chat.js")) }),
        )
        .route(
            "/ui/chat.css",
            get(|| async { file("text/css; charset=utf-8", include_str!("chat.css")) }),
        )
        // Browsers ask for it whatever the page says: nothing, rather than a 404 to log.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
}
