//! The route table and the small routes: models, health, readiness, and JSON answers for
//! unknown routes and methods.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::generation::{chat_completions, completions};
use crate::request_id::tag_and_log;
use crate::tokens::{detokenize, tokenize};
use crate::App;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(get_model))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/v1/tokenize", post(tokenize))
        .route("/v1/detokenize", post(detokenize))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(middleware::from_fn(tag_and_log))
        .with_state(app)
}

fn model_object(app: &App) -> Result<Value, ApiError> {
    let info = app.engine()?.info();
    Ok(json!({
        "id": info.id,
        "object": "model",
        "created": info.created,
        "owned_by": "ward",
        "context_length": info.context_length,
    }))
}

async fn list_models(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"object": "list", "data": [model_object(&app)?]}),
    ))
}

async fn get_model(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let model = model_object(&app)?;
    if model["id"] != id.as_str() {
        return Err(ApiError::model_not_found(
            &id,
            model["id"].as_str().unwrap_or(""),
        ));
    }
    Ok(Json(model))
}

/// The process is up and answering.
async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The model is loaded and requests can be served.
async fn ready(State(app): State<Arc<App>>) -> Response {
    match app.engine() {
        Ok(engine) => {
            let load = engine.load();
            Json(json!({
                "status": "ready",
                "model": engine.info().id,
                "queue_depth": engine.queue_depth(),
                "running": load.running,
                "kv_blocks_used": load.kv_blocks_used,
                "kv_blocks_total": load.kv_blocks_total,
            }))
        }
        .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "loading"})),
        )
            .into_response(),
    }
}
