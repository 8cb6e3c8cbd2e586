//! Ollama's API (`/api/chat`, `/api/generate`, `/api/tags`, `/api/show`, `/api/ps`,
//! `/api/version`, `/api/embed`), so that tools built for Ollama, Open WebUI among them, work
//! unmodified. A chat or generate request is read as the OpenAI request it stands for and runs
//! as one (the same keys, audit entries and limits); the answer comes back in Ollama's shape,
//! streamed as one JSON object per line (Ollama's default) or whole. Errors are Ollama's
//! `{"error": "…"}`. Ollama's runtime options that do not change the answer (`num_ctx`,
//! `num_thread`, `keep_alive`, …) are accepted and have no effect: this server's context and
//! threads are set at start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::Stream;
use serde_json::{json, Map, Value};
use ward_engine::{FinishReason, ModelInfo};

use crate::audit::{timestamp, timestamp_now};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::generation::{read_body, start, ChoiceOutput, Output, Started};
use crate::ledger::Ledger;
use crate::openai::embeddings::{
    check_embedder, dimensions, record_input, run as run_embed, vectors, Input,
};
use crate::openai::reasoning::ReasoningSplitter;
use crate::openai::request::parse_json;
use crate::openai::response::Endpoint;
use crate::openai::tools::ToolCall;
use crate::request_id::RequestId;
use crate::routes::{check_model, served_models};
use crate::App;

/// An error in Ollama's shape, with the status (and the audit's error code) of the API's own.
fn ollama_error(e: ApiError) -> Response {
    let message = e.message.clone();
    let mut response = e.into_response();
    *response.body_mut() = Body::from(json!({"error": message}).to_string());
    response
}

type Answer = Result<Response, Response>;

pub async fn chat(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    Extension(ledger): Extension<Ledger>,
    body: Body,
) -> Answer {
    generate_as(app, id, caller, ledger, body, Kind::Chat)
        .await
        .map_err(ollama_error)
}

pub async fn generate(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    Extension(ledger): Extension<Ledger>,
    body: Body,
) -> Answer {
    generate_as(app, id, caller, ledger, body, Kind::Generate)
        .await
        .map_err(ollama_error)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Generate,
}

impl Kind {
    /// Where an answer object carries the text: chat's `message.content`, generate's
    /// `response`.
    fn text_key(self) -> &'static str {
        match self {
            Kind::Chat => "content",
            Kind::Generate => "response",
        }
    }

    /// The part of an answer object that holds the text.
    fn part(self, line: &mut Value) -> &mut Value {
        match self {
            Kind::Chat => &mut line["message"],
            Kind::Generate => line,
        }
    }
}

async fn generate_as(
    app: Arc<App>,
    id: RequestId,
    caller: Caller,
    ledger: Ledger,
    body: Body,
    kind: Kind,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let bytes = read_body(body, &app).await?;
    let request: Map<String, Value> = parse_json(&bytes)?;
    let has_template = app.engine()?.info().has_chat_template;
    let (openai, endpoint) = match kind {
        Kind::Chat => (chat_request(&request)?, Endpoint::Chat),
        Kind::Generate => generate_request(&request, has_template)?,
    };
    let openai = serde_json::to_vec(&openai).expect("a JSON value serializes");
    let started = start(&app, &id, &caller, ledger, &openai, endpoint, arrived).await?;
    let stream = started.stream;
    let lines = answer_lines(started, kind, arrived);
    if stream {
        // A failure partway is Ollama's `{"error"}` line.
        let lines = futures_util::StreamExt::map(lines, |line| {
            let line = line.unwrap_or_else(|e| json!({"error": e.message}));
            Ok::<_, std::convert::Infallible>(format!("{line}\n"))
        });
        return Ok((
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            Body::from_stream(lines),
        )
            .into_response());
    }
    // Whole: the pieces joined into the last object.
    let mut lines = std::pin::pin!(lines);
    let (mut content, mut thinking) = (String::new(), String::new());
    while let Some(line) = futures_util::StreamExt::next(&mut lines).await {
        let mut line = line?;
        let done = line["done"] == true;
        let part = kind.part(&mut line);
        content += part[kind.text_key()].as_str().unwrap_or("");
        thinking += part["thinking"].as_str().unwrap_or("");
        if done {
            part[kind.text_key()] = json!(content);
            if !thinking.is_empty() {
                part["thinking"] = json!(thinking);
            }
            return Ok(Json(line).into_response());
        }
    }
    Err(ApiError::engine("the engine stopped"))
}

/// Ollama's sampling options as the OpenAI request's parameters.
fn options(request: &Map<String, Value>, into: &mut Value) -> Result<(), ApiError> {
    let Some(options) = request.get("options").filter(|o| !o.is_null()) else {
        return Ok(());
    };
    let options = options
        .as_object()
        .ok_or_else(|| ApiError::invalid_param("options", "'options' must be an object"))?;
    for (ollama, openai) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("top_k", "top_k"),
        ("min_p", "min_p"),
        ("seed", "seed"),
        ("stop", "stop"),
        ("repeat_penalty", "repetition_penalty"),
        ("presence_penalty", "presence_penalty"),
        ("frequency_penalty", "frequency_penalty"),
    ] {
        if let Some(v) = options.get(ollama) {
            into[openai] = v.clone();
        }
    }
    // -1: until the model stops; -2: fill the context. Either is the OpenAI default here.
    match options.get("num_predict").and_then(Value::as_i64) {
        Some(n) if n > 0 => into["max_tokens"] = json!(n),
        _ => {}
    }
    Ok(())
}

/// `format`: `"json"` or a JSON Schema.
fn format(request: &Map<String, Value>, into: &mut Value) -> Result<(), ApiError> {
    match request.get("format") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) if s == "json" => {
            into["response_format"] = json!({"type": "json_object"})
        }
        Some(schema @ Value::Object(_)) => {
            into["response_format"] =
                json!({"type": "json_schema", "json_schema": {"name": "format", "schema": schema}})
        }
        Some(_) => {
            return Err(ApiError::invalid_param(
                "format",
                "'format' must be \"json\" or a JSON Schema",
            ))
        }
    }
    Ok(())
}

/// What both requests share: the model, streaming (on unless `false`), options, format, and
/// `think: false` closing a reasoning model's thinking.
fn common(request: &Map<String, Value>) -> Result<Value, ApiError> {
    let mut openai = json!({
        "model": request.get("model"),
        "stream": request.get("stream").and_then(Value::as_bool).unwrap_or(true),
    });
    options(request, &mut openai)?;
    format(request, &mut openai)?;
    match request.get("think") {
        Some(Value::Bool(false)) => {
            openai["chat_template_kwargs"] = json!({"enable_thinking": false})
        }
        None | Some(Value::Null | Value::Bool(true)) => {}
        // Levels ("low", "high") are for models that take them; Ward's do not.
        Some(_) => {}
    }
    if request.get("images").is_some_and(|i| !i.is_null()) {
        return Err(ApiError::invalid_param(
            "images",
            "this model takes text only",
        ));
    }
    Ok(openai)
}

fn chat_request(request: &Map<String, Value>) -> Result<Value, ApiError> {
    let mut openai = common(request)?;
    let Some(Value::Array(messages)) = request.get("messages") else {
        return Err(ApiError::invalid_param(
            "messages",
            "'messages' must be a list",
        ));
    };
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        if m.get("images").is_some_and(|i| !i.is_null()) {
            return Err(ApiError::invalid_param(
                format!("messages[{i}].images"),
                "this model takes text only",
            ));
        }
        let mut message = json!({"role": m.get("role"), "content": m.get("content")});
        if let Some(Value::Array(calls)) = m.get("tool_calls") {
            // Ollama's arguments are an object; OpenAI's are its JSON text.
            let calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    let f = &c["function"];
                    json!({"id": format!("call_{i}_{j}"), "type": "function",
                           "function": {"name": f["name"], "arguments": f["arguments"].to_string()}})
                })
                .collect();
            message["tool_calls"] = json!(calls);
        }
        if let Some(name) = m.get("tool_name") {
            message["tool_call_id"] = name.clone();
        }
        out.push(message);
    }
    openai["messages"] = json!(out);
    if let Some(tools) = request.get("tools") {
        openai["tools"] = tools.clone();
    }
    Ok(openai)
}

/// A generate request: the prompt (after `system`) through the chat template, as Ollama does,
/// or as it is with `raw` or on a model without a template.
fn generate_request(
    request: &Map<String, Value>,
    has_template: bool,
) -> Result<(Value, Endpoint), ApiError> {
    for unsupported in ["template", "suffix", "context"] {
        if request
            .get(unsupported)
            .is_some_and(|v| !v.is_null() && v != "" && v != &json!([]))
        {
            return Err(ApiError::invalid_param(
                unsupported,
                format!("'{unsupported}' is not supported by this server"),
            ));
        }
    }
    let mut openai = common(request)?;
    let prompt = match request.get("prompt") {
        Some(Value::String(p)) => p.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => {
            return Err(ApiError::invalid_param(
                "prompt",
                "'prompt' must be a string",
            ))
        }
    };
    let raw = request.get("raw").and_then(Value::as_bool).unwrap_or(false);
    if raw || !has_template {
        openai["prompt"] = json!(prompt);
        return Ok((openai, Endpoint::Completion));
    }
    let mut messages = Vec::new();
    if let Some(Value::String(system)) = request.get("system") {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.push(json!({"role": "user", "content": prompt}));
    openai["messages"] = json!(messages);
    Ok((openai, Endpoint::Chat))
}

/// The answer as Ollama's objects: one per piece of text (`done: false`), then the last with
/// the counts and durations (in nanoseconds); or an error where generation failed.
fn answer_lines(
    started: Started,
    kind: Kind,
    arrived: Instant,
) -> impl Stream<Item = Result<Value, ApiError>> {
    let Started {
        mut streams,
        meta,
        tool_mode,
        track,
        stream: started_stream,
        ..
    } = started;
    let mut events = streams.remove(0);
    let splitter = ReasoningSplitter::for_answer(&events);
    let mut out = ChoiceOutput::new(splitter, tool_mode, track.clone(), 0);
    let model = meta.model;
    let streaming = started_stream;
    async_stream::stream! {
        let line = |content: &str, thinking: &str, calls: &[ToolCall]| {
            let mut part = json!({});
            part[kind.text_key()] = json!(content);
            if !thinking.is_empty() {
                part["thinking"] = json!(thinking);
            }
            if !calls.is_empty() {
                part["tool_calls"] = calls.iter().map(|c| json!({"function": {
                    "name": c.name,
                    "arguments": serde_json::from_str::<Value>(&c.arguments).unwrap_or(json!({})),
                }})).collect();
            }
            let mut line = json!({"model": model, "created_at": timestamp_now(), "done": false});
            if kind == Kind::Chat {
                part["role"] = json!("assistant");
                line["message"] = part;
            } else if let Value::Object(part) = part {
                line.as_object_mut().expect("an object").extend(part);
            }
            line
        };
        let mut first: Option<Instant> = None;
        loop {
            let next = tokio::select! {
                next = events.next() => next,
                () = track.app.cut() => {
                    track.outcome("shutdown");
                    yield Err(ApiError::cut_at_shutdown());
                    break;
                }
            };
            match out.read(next) {
                Output::Text(split) => {
                    first.get_or_insert_with(Instant::now);
                    if !split.content.is_empty() || !split.reasoning.is_empty() {
                        yield Ok(line(&split.content, &split.reasoning, &[]));
                    }
                }
                Output::Logprob(_) => {}
                Output::Finished(rest, calls, usage) => {
                    let mut last = line(&rest.content, &rest.reasoning, &calls);
                    let first = first.unwrap_or_else(Instant::now);
                    let nanos = |d: Duration| d.as_nanos() as u64;
                    last["done"] = json!(true);
                    last["done_reason"] = json!(match usage.finish {
                        FinishReason::Length => "length",
                        _ => "stop",
                    });
                    last["total_duration"] = json!(nanos(arrived.elapsed()));
                    last["load_duration"] = json!(0);
                    last["prompt_eval_count"] = json!(usage.prompt_tokens);
                    last["prompt_eval_duration"] = json!(nanos(first - arrived));
                    last["eval_count"] = json!(usage.completion_tokens);
                    last["eval_duration"] = json!(nanos(first.elapsed()));
                    track.outcome("ok");
                    // As for OpenAI's streams: the last line goes once the audit entry is
                    // synced (a whole answer's entry is written as it is sent).
                    if streaming {
                        if let Err(e) = track.ledger.commit().await {
                            yield Err(e);
                            break;
                        }
                    }
                    yield Ok(last);
                    break;
                }
                Output::Failed(outcome, e) => {
                    track.outcome(outcome);
                    yield Err(e);
                    break;
                }
            }
        }
    }
}

/// The generative model's description in Ollama's terms.
fn details(app: &App) -> Result<(Value, Value), ApiError> {
    let info = app.engine()?.info();
    Ok(describe(info, app.model_sha256().unwrap_or("")))
}

/// A model's description in Ollama's terms: the model object and its `details`.
fn describe(info: &ModelInfo, digest: &str) -> (Value, Value) {
    let details = json!({
        "format": "gguf",
        "family": info.architecture,
        "families": [info.architecture],
        "parameter_size": "",
        "quantization_level": "",
    });
    let model = json!({
        "name": info.id,
        "model": info.id,
        "modified_at": timestamp(info.created, 0),
        "size": info.file_bytes,
        "digest": digest,
        "details": details,
    });
    (model, details)
}

/// `{"models": [model]}`, or no models if the caller may not use the one served.
/// Every model served that this caller may use, described by `describe`.
fn models_for(app: &App, caller: &Caller, describe: impl Fn(&ModelInfo) -> Value) -> Response {
    match served_models(app) {
        Err(e) => ollama_error(e),
        Ok(models) => {
            let models: Vec<Value> = models
                .into_iter()
                .filter(|m| caller.0.as_ref().is_none_or(|s| s.may_use(&m.id)))
                .map(describe)
                .collect();
            Json(json!({"models": models})).into_response()
        }
    }
}

/// The sha256 of a served model's file, where the server knows it.
fn digest<'a>(app: &'a App, info: &ModelInfo) -> &'a str {
    match app.serves_generative(&info.id) {
        true => app.model_sha256().unwrap_or(""),
        false => "",
    }
}

/// `GET /api/tags`: the models this caller may use.
pub async fn tags(State(app): State<Arc<App>>, Extension(caller): Extension<Caller>) -> Response {
    models_for(&app, &caller, |info| describe(info, digest(&app, info)).0)
}

/// `GET /api/ps`: the models loaded (all of them, on this server), as `/api/tags` with the
/// context length.
pub async fn ps(State(app): State<Arc<App>>, Extension(caller): Extension<Caller>) -> Response {
    models_for(&app, &caller, |info| {
        let (mut model, _) = describe(info, digest(&app, info));
        model["context_length"] = json!(info.context_length);
        model["size_vram"] = json!(if info.kernels == "cuda" {
            info.file_bytes
        } else {
            0
        });
        model
    })
}

/// `POST /api/show`: one model's description.
pub async fn show(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(ledger): Extension<Ledger>,
    body: Body,
) -> Answer {
    let show = async {
        let request: Map<String, Value> = parse_json(&read_body(body, &app).await?)?;
        let name = request
            .get("model")
            .or_else(|| request.get("name"))
            .and_then(Value::as_str);
        check_model(&app, &caller, &ledger, Some(name.unwrap_or("")))?;
        let (_, details) = details(&app)?;
        let info = app.engine()?.info();
        let mut capabilities = vec!["completion"];
        if info.has_chat_template {
            capabilities.push("tools");
        }
        Ok(json!({
            "modelfile": "",
            "parameters": "",
            "template": "",
            "details": details,
            "model_info": {
                "general.architecture": info.architecture,
                format!("{}.context_length", info.architecture): info.context_length,
            },
            "capabilities": capabilities,
            "modified_at": timestamp(info.created, 0),
        }))
    };
    show.await
        .map(|v| Json(v).into_response())
        .map_err(ollama_error)
}

/// `GET /api/version`: this server's version.
pub async fn version() -> Json<Value> {
    Json(json!({"version": env!("CARGO_PKG_VERSION")}))
}

/// `POST /api/embed` (`input`: a string or strings; answers `embeddings`) and the older
/// `/api/embeddings` (`prompt`: one string; answers `embedding`). Inputs longer than the
/// model's context are refused (Ollama's `truncate: false`), never cut.
pub async fn embed(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(ledger): Extension<Ledger>,
    uri: axum::http::Uri,
    body: Body,
) -> Answer {
    #[derive(serde::Deserialize)]
    struct EmbedBody {
        model: Option<String>,
        input: Option<Input>,
        prompt: Option<String>,
        dimensions: Option<usize>,
    }
    let started = Instant::now();
    let legacy = uri.path() == "/api/embeddings";
    let answer = async {
        let bytes = read_body(body, &app).await?;
        let body: EmbedBody = parse_json(&bytes)?;
        record_input(&ledger, &bytes)?;
        let embedder = check_embedder(&app, &caller, &ledger, body.model.as_deref(), false)?;
        let input = match (legacy, body.input, body.prompt) {
            (true, _, Some(prompt)) => Input::One(prompt),
            (false, Some(input), _) => input,
            (true, _, None) => {
                return Err(ApiError::invalid_param("prompt", "'prompt' is required"))
            }
            (false, None, _) => {
                return Err(ApiError::invalid_param("input", "'input' is required"))
            }
        };
        let dimensions = dimensions(&*embedder, body.dimensions)?;
        let out = run_embed(&app, &caller, &ledger, &embedder, input.into_inputs()?).await?;
        let vectors: Vec<Vec<f32>> = vectors(&out, dimensions).collect();
        Ok(if legacy {
            json!({"embedding": vectors[0]})
        } else {
            json!({
                "model": embedder.info().id,
                "embeddings": vectors,
                "total_duration": started.elapsed().as_nanos() as u64,
                "load_duration": 0,
                "prompt_eval_count": out.prompt_tokens,
            })
        })
    };
    answer
        .await
        .map(|a| Json(a).into_response())
        .map_err(ollama_error)
}
