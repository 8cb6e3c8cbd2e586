//! `POST /v1/rerank` (also `/rerank` and `/v2/rerank`), the shape of Jina's and Cohere's
//! rerank APIs that vLLM and llama-server serve too: a `query` and its `documents` (strings, or
//! objects with a `text`) scored by a reranker (a cross-encoder), answered as `results` sorted
//! by `relevance_score` (the model's own score, as llama.cpp gives it), the best first, cut to
//! `top_n`, each with its document's `index` and, unless `return_documents` is false, its text.
//! Every pair goes to the encoder in one request.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use ward_engine::EmbedInput;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::generation::read_body;
use crate::ledger::Ledger;
use crate::openai::embeddings::{check_embedder, run, MAX_INPUTS};
use crate::openai::request::parse_json;
use crate::App;

#[derive(Deserialize)]
#[serde(untagged)]
enum Document {
    Text(String),
    Object { text: String },
}

#[derive(Deserialize)]
struct RerankBody {
    model: Option<String>,
    query: String,
    documents: Vec<Document>,
    top_n: Option<usize>,
    return_documents: Option<bool>,
}

pub async fn rerank(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(ledger): Extension<Ledger>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = read_body(body, &app).await?;
    let body: RerankBody = parse_json(&bytes)?;
    // The audit log keeps the query and documents (as a hash, unless told to keep text).
    ledger.with(|r| r.prompt = Some(json!({"query": body.query, "documents": documents(&body)})));
    let reranker = check_embedder(&app, &caller, &ledger, body.model.as_deref(), true)?;
    let bad = |param: &str, m: &str| Err(ApiError::invalid_param(param, m));
    if body.query.is_empty() {
        return bad("query", "'query' must not be empty");
    }
    if body.documents.is_empty() || body.documents.len() > MAX_INPUTS {
        return bad(
            "documents",
            &format!("'documents' must have between 1 and {MAX_INPUTS} items"),
        );
    }
    let texts = documents(&body);
    if texts.iter().any(|t| t.is_empty()) {
        return bad("documents", "'documents' must not contain an empty text");
    }
    if body.top_n == Some(0) {
        return bad("top_n", "'top_n' must be at least 1");
    }
    let n = texts.len();
    ledger.with(|r| r.params = Some(json!({"documents": n, "top_n": body.top_n})));
    let pairs = texts
        .iter()
        .map(|d| EmbedInput::Pair(body.query.clone(), d.to_string()))
        .collect();
    let out = run(&app, &caller, &ledger, &reranker, pairs).await?;
    let mut ranked: Vec<(usize, f32)> = out.vectors.iter().copied().enumerate().collect();
    // The best first; equal scores in the documents' order.
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(body.top_n.unwrap_or(n));
    let with_text = body.return_documents.unwrap_or(true);
    let results: Vec<Value> = ranked
        .into_iter()
        .map(|(index, score)| {
            let mut r = json!({"index": index, "relevance_score": score});
            if with_text {
                r["document"] = json!({"text": texts[index]});
            }
            r
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "model": reranker.info().id,
        "results": results,
        "usage": {"prompt_tokens": out.prompt_tokens, "total_tokens": out.prompt_tokens},
    })))
}

fn documents(body: &RerankBody) -> Vec<&str> {
    body.documents
        .iter()
        .map(|d| match d {
            Document::Text(t) | Document::Object { text: t } => t.as_str(),
        })
        .collect()
}
