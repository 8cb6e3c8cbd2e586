//! The route table and the small routes: models, health, readiness, metrics, and JSON answers
//! for unknown routes and methods.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Extension, Json, Router};
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::cors::cors;
use crate::error::ApiError;
use crate::generation::{chat_completions, completions};
use crate::ledger::{track, Ledger};
use crate::ollama;
use crate::openai::embeddings::embeddings;
use crate::openai::rerank::rerank;
use crate::openai::responses::responses;
use crate::tokens::{detokenize, tokenize};
use crate::App;
use ward_engine::ModelInfo;

pub fn router(app: Arc<App>) -> Router {
    let ui = if app.config.ui {
        crate::ui::routes()
    } else {
        Router::new()
    };
    ui.route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/responses", post(responses))
        .route("/v1/embeddings", post(embeddings))
        .route("/embeddings", post(embeddings))
        .route("/v1/rerank", post(rerank))
        .route("/v2/rerank", post(rerank))
        .route("/rerank", post(rerank))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(get_model))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/v1/tokenize", post(tokenize))
        .route("/v1/detokenize", post(detokenize))
        .route("/api/chat", post(ollama::chat))
        .route("/api/generate", post(ollama::generate))
        .route("/api/tags", get(ollama::tags))
        .route("/api/ps", get(ollama::ps))
        .route("/api/show", post(ollama::show))
        .route("/api/version", get(ollama::version))
        .route("/api/embed", post(ollama::embed))
        .route("/api/embeddings", post(ollama::embed))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(middleware::from_fn_with_state(app.clone(), track))
        // Outermost: a preflight is answered before it is tracked and its (absent) key checked.
        .layer(middleware::from_fn_with_state(app.clone(), cors))
        .with_state(app)
}

/// Whether the caller may use the generative model it names (`requested`, the body's `model`;
/// `None`: the served one): 403 if its key does not allow it, 400 if it is an embedding model,
/// 404 if it is not served. Records the model in the request's ledger.
pub(crate) fn check_model(
    app: &App,
    caller: &Caller,
    ledger: &Ledger,
    requested: Option<&str>,
) -> Result<(), ApiError> {
    let is_embedder = |name: &str| app.embedders().iter().any(|e| e.info().id == name);
    if let Some(name) = requested.filter(|n| is_embedder(n)) {
        if caller.0.as_ref().is_some_and(|s| !s.may_use(name)) {
            return Err(ApiError::model_not_allowed());
        }
        return Err(ApiError::invalid_param(
            "model",
            "this is an embedding model or reranker; use /v1/embeddings or /v1/rerank",
        ));
    }
    let served = &app.engine()?.info().id;
    let name = requested.unwrap_or(served);
    if caller.0.as_ref().is_some_and(|s| !s.may_use(name)) {
        return Err(ApiError::model_not_allowed());
    }
    if name != served {
        return Err(ApiError::model_not_found());
    }
    ledger.with(|r| r.model = Some(served.clone()));
    Ok(())
}

/// OpenAI's model object, with what the model serves (`capabilities`, in Ollama's words: a
/// client, the chat page among them, picks a chat model by it).
fn model_object(app: &App, info: &ModelInfo) -> Value {
    json!({
        "id": info.id,
        "object": "model",
        "created": info.created,
        "owned_by": "ward",
        "context_length": info.context_length,
        "capabilities": capabilities(app, info),
    })
}

fn capabilities(app: &App, info: &ModelInfo) -> &'static [&'static str] {
    if app.serves_generative(&info.id) {
        return match info.has_chat_template {
            true => &["chat", "completion"],
            false => &["completion"],
        };
    }
    let reranker = app
        .embedders()
        .iter()
        .any(|e| e.info().id == info.id && e.is_reranker());
    match reranker {
        true => &["rerank"],
        false => &["embedding"],
    }
}

/// Every model served, generative first, as the caller may or may not use them.
pub(crate) fn served_models(app: &App) -> Result<Vec<&ModelInfo>, ApiError> {
    if !app.loaded() {
        return Err(ApiError::not_ready());
    }
    let generative = app.engine.get().map(|e| e.0.info());
    Ok(generative
        .into_iter()
        .chain(app.embedders().iter().map(|e| e.info()))
        .collect())
}

/// The models this caller may use.
async fn list_models(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let data: Vec<Value> = served_models(&app)?
        .into_iter()
        .filter(|m| caller.0.as_ref().is_none_or(|s| s.may_use(&m.id)))
        .map(|m| model_object(&app, m))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

async fn get_model(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(ledger): Extension<Ledger>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    // An id that is not UTF-8 once percent-decoded (`%ff`) names no model either.
    let Ok(Path(id)) = id else {
        return Err(ApiError::model_not_found());
    };
    if caller.0.as_ref().is_some_and(|s| !s.may_use(&id)) {
        return Err(ApiError::model_not_allowed());
    }
    let models = served_models(&app)?;
    let info = models
        .into_iter()
        .find(|m| m.id == id)
        .ok_or_else(ApiError::model_not_found)?;
    ledger.with(|r| r.model = Some(id.clone()));
    Ok(Json(model_object(&app, info)))
}

/// Prometheus' text format.
async fn metrics(State(app): State<Arc<App>>, Extension(caller): Extension<Caller>) -> Response {
    let engine = app.engine().ok();
    let load = engine.map(|e| {
        let mut load = e.load();
        // Also requests handed over but not yet picked up by the scheduler.
        load.waiting = e.queue_depth();
        load
    });
    let described = engine
        .zip(load)
        .map(|(e, load)| (e.info(), app.model_sha256().unwrap_or(""), load));
    // Another service's traffic is its own business, unless this key is an admin's.
    let only_service = caller
        .0
        .as_ref()
        .filter(|s| !s.admin)
        .map(|s| s.name.as_str());
    let ready = app.loaded() && !app.is_stopping() && app.audit_available();
    let mut text = app.metrics.render(described, ready, only_service);
    if let Some(audit) = &app.audit {
        audit.render_metrics(&mut text);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The process is up and answering.
async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The model is loaded and requests can be served (and audited).
async fn ready(State(app): State<Arc<App>>) -> Response {
    let not = |status: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": status})),
        )
            .into_response()
    };
    if app.is_stopping() {
        return not("stopping");
    }
    if !app.audit_available() {
        return not("audit_unavailable");
    }
    if !app.loaded() {
        return not("loading");
    }
    let mut answer = json!({"status": "ready"});
    if let Ok(engine) = app.engine() {
        let load = engine.load();
        answer = json!({
            "status": "ready",
            "model": engine.info().id,
            "queue_depth": engine.queue_depth(),
            "running": load.running,
            "kv_blocks_used": load.kv_blocks_used,
            "kv_blocks_total": load.kv_blocks_total,
        });
    }
    let embedding: Vec<Value> = app
        .embedders()
        .iter()
        .map(|e| json!({"model": e.info().id, "queue_depth": e.queue_depth()}))
        .collect();
    if !embedding.is_empty() {
        answer["embedding_models"] = json!(embedding);
    }
    Json(answer).into_response()
}
