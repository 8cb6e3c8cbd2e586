//! Request ids and the access log. Every response carries `x-request-id` (the caller's own, if
//! it sent a plain one, so hospital services can follow a request across their systems), and
//! every log line about a request names it. The access log records method, route, status and
//! time — never bodies, query strings or unknown paths, which could hold patient data.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

const HEADER: &str = "x-request-id";

#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub async fn tag_and_log(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_plain_id(v))
        .map_or_else(new_id, str::to_string);
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    let route = known_route(request.uri().path());
    let start = Instant::now();
    let mut guard = Unanswered {
        id: &id,
        route,
        answered: false,
    };
    let mut response = next.run(request).await;
    guard.answered = true;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    tracing::info!(
        request_id = %id,
        %method,
        route,
        status = response.status().as_u16(),
        ms = start.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// Logs a request whose client closed the connection before the response was ready (the
/// handler's future is then dropped, and with it this guard).
struct Unanswered<'a> {
    id: &'a str,
    route: &'static str,
    answered: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if !self.answered {
            tracing::info!(request_id = %self.id, route = self.route, "client left before the response");
        }
    }
}

fn is_plain_id(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// 16 hex digits: a per-process random key mixed with a counter, unique and unguessable enough
/// for correlating logs (not a secret).
fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", h.finish())
}

fn known_route(path: &str) -> &'static str {
    match path {
        "/v1/chat/completions" => "/v1/chat/completions",
        "/v1/completions" => "/v1/completions",
        "/v1/models" => "/v1/models",
        "/health" => "/health",
        "/ready" => "/ready",
        p if p.starts_with("/v1/models/") => "/v1/models/{id}",
        _ => "(other)",
    }
}
