//! The fuzz targets' way in (`fuzz/`): not an API, hidden and free to change. Each function runs
//! exactly the code a route runs on what a caller sends, with no engine behind it.

use std::sync::{Arc, OnceLock};

use axum::http::Method;
use serde_json::Value;
use ward_engine::GenerateRequest;

use crate::generation::read_request;
use crate::ledger::Ledger;
use crate::openai::response::Endpoint;
use crate::{App, ServerConfig};

/// A `POST /v1/chat/completions` (`chat`) or `POST /v1/completions` body, read as the route
/// reads it before submitting to the engine (any model name is served): the request and how
/// many choices it asks for, or the error body the caller would get.
pub fn read_generation_request(
    bytes: &[u8],
    chat: bool,
) -> Result<(GenerateRequest, usize), Value> {
    static APP: OnceLock<Arc<App>> = OnceLock::new();
    let app = APP.get_or_init(|| App::new(ServerConfig::default()));
    let (endpoint, route) = match chat {
        true => (Endpoint::Chat, "/v1/chat/completions"),
        false => (Endpoint::Completion, "/v1/completions"),
    };
    // The request's record, as the middleware makes it (it writes nothing until the response
    // ends, which here never begins).
    let ledger = Ledger::new(app.clone(), String::new(), Method::POST, route);
    read_request(bytes, endpoint, &ledger, |_| Ok(()))
        .map(|v| (v.request, v.n))
        .map_err(|e| e.body())
}
