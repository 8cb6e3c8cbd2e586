//! Cross-origin requests from browsers (`--cors-origin`), off by default. A page served from a
//! listed origin may call the API: its preflight (`OPTIONS` with
//! `Access-Control-Request-Method`) is answered here, before keys are checked (a preflight
//! carries none), and its real requests get `Access-Control-Allow-Origin` naming that origin.
//! Any other origin gets no CORS headers, so the browser keeps the answer from its page.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::App;

/// How long a browser may reuse a preflight's answer.
const PREFLIGHT_MAX_AGE_SECS: &str = "600";

/// Check an origin as given on the command line: `scheme://host[:port]`, as browsers send it.
pub fn check_origin(origin: &str) -> Result<(), String> {
    let valid = origin.split_once("://").is_some_and(|(scheme, rest)| {
        matches!(scheme, "http" | "https")
            && !rest.is_empty()
            && !rest.contains(['/', '?', '#', '*', ' '])
    });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "CORS origin {origin:?}: give each origin as scheme://host[:port], such as \
             https://ehr.hospital.example (no path, no wildcard)"
        ))
    }
}

pub async fn cors(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let origins = &app.config.cors_origins;
    let allowed = request
        .headers()
        .get(header::ORIGIN)
        .filter(|o| {
            origins
                .iter()
                .any(|allowed| allowed.as_bytes() == o.as_bytes())
        })
        .cloned();
    let Some(origin) = allowed else {
        return next.run(request).await;
    };
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        return preflight_answer(origin, request.headers());
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-request-id, retry-after"),
    );
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    response
}

/// 204 allowing the API's methods and the headers the page asked for.
fn preflight_answer(origin: HeaderValue, asked: &HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    let allow_headers = asked
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("authorization, content-type"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE_SECS),
    );
    headers.insert(header::VARY, HeaderValue::from_static("origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::check_origin;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for good in ["https://ehr.hospital.example", "http://10.0.0.5:3000"] {
            assert!(check_origin(good).is_ok(), "{good}");
        }
        for bad in [
            "*",
            "ehr.example",
            "https://",
            "https://a.example/",
            "ftp://a",
            "https://*.a",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
    }
}
