//! `POST /tokenize` and `POST /detokenize` (vLLM's shapes; also under `/v1/`): the token ids
//! the model would run for a prompt or a conversation, and the text of token ids. Callers use
//! them to count tokens against the context and to build token-array prompts. The text goes
//! back to the caller only, never to a log.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::generation::{read_body, record_prompt};
use crate::ledger::Ledger;
use crate::openai::request::{parse_json, RequestBody};
use crate::routes::check_model;
use crate::App;

#[derive(Deserialize)]
struct DetokenizeBody {
    model: Option<String>,
    tokens: Vec<u32>,
}

/// A request may name the model (if it does, it must be the one served); the caller must be
/// allowed to use it either way.
pub async fn tokenize(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(ledger): Extension<Ledger>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = read_body(body, &app).await?;
    // As for generation: one of the few turns to parse and tokenize.
    let _preparing = app.preparing.acquire().await;
    // Read as a generation request is, so a conversation renders with the same tools and
    // template variables; a prompt is run as `/v1/completions` runs it (with BOS where the
    // model's metadata asks for it).
    let body: RequestBody = parse_json(&bytes)?;
    record_prompt(&ledger, &bytes)?;
    check_model(&app, &caller, &ledger, body.model.as_deref())?;
    let engine = app.engine()?.clone();
    let t = body.into_tokenize()?;
    let param = t.param;
    let ids =
        tokio::task::spawn_blocking(move || engine.tokenize(t.prompt, t.tools.as_ref(), &t.kwargs))
            .await
            .map_err(|_| ApiError::engine("the prompt could not be tokenized"))?
            .map_err(|e| ApiError::from_submit(e, param))?;
    ledger.with(|r| r.prompt_tokens = ids.len());
    Ok(answer(&app, ids))
}

fn answer(app: &App, ids: Vec<u32>) -> Json<Value> {
    let context = app.engine().map_or(0, |e| e.info().context_length);
    Json(json!({"count": ids.len(), "max_model_len": context, "tokens": ids}))
}

pub async fn detokenize(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(ledger): Extension<Ledger>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body: DetokenizeBody = parse_json(&read_body(body, &app).await?)?;
    check_model(&app, &caller, &ledger, body.model.as_deref())?;
    ledger.with(|r| {
        r.prompt = Some(json!(body.tokens));
        r.prompt_tokens = body.tokens.len();
    });
    let text = app
        .engine()?
        .detokenize(&body.tokens)
        .map_err(|e| ApiError::from_submit(e, "tokens"))?;
    ledger.output(0, &text);
    Ok(Json(json!({"prompt": text})))
}
