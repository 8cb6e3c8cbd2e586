//! `POST /v1/chat/completions` and `POST /v1/completions`: read and validate the body, submit
//! it to the engine, and answer with one JSON body or a server-sent event stream. Dropping the
//! stream (the client went away) drops the engine's event receiver, which cancels generation.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::StreamExt;
use serde_json::Value;
use ward_engine::{Event, EventStream, Usage};

use crate::error::ApiError;
use crate::openai::request::{parse_body, Validated};
use crate::openai::response::{Endpoint, Meta};
use crate::request_id::RequestId;
use crate::App;

/// Comments sent on a quiet stream (a long prefill) so proxies keep it open and a departed
/// client is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// A body larger than the limit is still read (and thrown away) up to this size, so the client
/// gets the 413 instead of a reset connection; past it the connection is closed.
const DRAIN_LIMIT: usize = 64 << 20;

pub async fn chat_completions(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    body: Body,
) -> Result<Response, ApiError> {
    generate(app, id, body, Endpoint::Chat).await
}

pub async fn completions(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    body: Body,
) -> Result<Response, ApiError> {
    generate(app, id, body, Endpoint::Completion).await
}

async fn generate(
    app: Arc<App>,
    id: RequestId,
    body: Body,
    endpoint: Endpoint,
) -> Result<Response, ApiError> {
    let bytes = read_body(body, &app).await?;
    let engine = app.engine()?.clone();
    let body = parse_body(&bytes)?;
    let info = engine.info();
    match body.model.as_deref() {
        None => return Err(ApiError::invalid_param("model", "'model' is required")),
        Some(m) if m != info.id => return Err(ApiError::model_not_found(m, &info.id)),
        Some(_) => {}
    }
    let Validated {
        mut request,
        stream,
        include_usage,
    } = match endpoint {
        Endpoint::Chat => body.into_chat()?,
        Endpoint::Completion => body.into_completion()?,
    };
    request.id = id.0.clone();
    request.timeout = app.config.request_timeout;
    let meta = Meta::new(endpoint, &id.0, &info.id, &info.fingerprint);
    // Templating and tokenizing a long prompt is CPU work: keep it off the I/O threads.
    let submitter = engine.clone();
    let events = tokio::task::spawn_blocking(move || submitter.submit(request))
        .await
        .map_err(|_| ApiError::engine("the request could not be prepared"))?
        .map_err(|e| ApiError::from_submit(e, endpoint.prompt_param()))?;
    if stream {
        Ok(event_stream(events, meta, include_usage).into_response())
    } else {
        let (text, usage) = collect(events).await?;
        Ok(Json(meta.response(&text, &usage)).into_response())
    }
}

/// Read the whole body within the body timeout, refusing more than `max_body_bytes`.
async fn read_body(body: Body, app: &App) -> Result<Bytes, ApiError> {
    let limit = app.config.max_body_bytes;
    let read = async {
        let mut chunks = body.into_data_stream();
        let mut data = Vec::new();
        let mut total = 0usize;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|_| ApiError::unreadable_body())?;
            total += chunk.len();
            if total > DRAIN_LIMIT {
                break;
            }
            if total <= limit {
                data.extend_from_slice(&chunk);
            }
        }
        if total > limit {
            return Err(ApiError::body_too_large(limit));
        }
        Ok(Bytes::from(data))
    };
    tokio::time::timeout(app.config.body_timeout, read)
        .await
        .unwrap_or_else(|_| Err(ApiError::body_timeout()))
}

async fn collect(mut events: EventStream) -> Result<(String, Usage), ApiError> {
    let mut text = String::new();
    loop {
        match events.next().await {
            Some(Event::Text(t)) => text.push_str(&t),
            Some(Event::Finished(usage)) => return Ok((text, usage)),
            Some(Event::Failed(message)) => return Err(ApiError::engine(message)),
            Some(Event::TimedOut) => return Err(ApiError::timed_out()),
            None => return Err(ApiError::engine("the engine stopped")),
        }
    }
}

fn event_stream(
    mut events: EventStream,
    meta: Meta,
    include_usage: bool,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let data = |v: Value| Ok::<_, Infallible>(SseEvent::default().data(v.to_string()));
    let stream = async_stream::stream! {
        if meta.endpoint == Endpoint::Chat {
            yield data(meta.role_chunk(include_usage));
        }
        loop {
            match events.next().await {
                Some(Event::Text(t)) => yield data(meta.chunk(&t, None, include_usage)),
                Some(Event::Finished(usage)) => {
                    yield data(meta.chunk("", Some(usage.finish), include_usage));
                    if include_usage {
                        yield data(meta.usage_chunk(&usage));
                    }
                    break;
                }
                Some(Event::Failed(message)) => {
                    yield data(ApiError::engine(message).body());
                    break;
                }
                Some(Event::TimedOut) => {
                    yield data(ApiError::timed_out().body());
                    break;
                }
                None => {
                    yield data(ApiError::engine("the engine stopped").body());
                    break;
                }
            }
        }
        yield Ok(SseEvent::default().data("[DONE]"));
    };
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
