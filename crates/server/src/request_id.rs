//! Request ids and route names for logs. Every response carries `x-request-id` (the caller's
//! own, if it sent a plain one, so hospital services can follow a request across their
//! systems), and every log line about a request names it. Logs name routes by their template,
//! never by the path sent, which could hold patient data.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;

pub const HEADER: &str = "x-request-id";

#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The caller's id if it is plain, otherwise a new one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_plain_id(v))
        .map_or_else(new_id, str::to_string)
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

pub fn known_route(path: &str) -> &'static str {
    const ROUTES: [&str; 29] = [
        "/",
        "/ui/chat.js",
        "/ui/chat.css",
        "/favicon.ico",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/responses",
        "/v1/embeddings",
        "/embeddings",
        "/v1/rerank",
        "/v2/rerank",
        "/rerank",
        "/api/chat",
        "/api/generate",
        "/api/tags",
        "/api/ps",
        "/api/show",
        "/api/version",
        "/api/embed",
        "/api/embeddings",
        "/v1/models",
        "/tokenize",
        "/detokenize",
        "/v1/tokenize",
        "/v1/detokenize",
        "/health",
        "/ready",
        "/metrics",
        "/v1/models/{id}",
    ];
    match ROUTES.iter().find(|&&r| r == path) {
        Some(r) => r,
        None if path.starts_with("/v1/models/") => "/v1/models/{id}",
        None => "(other)",
    }
}
