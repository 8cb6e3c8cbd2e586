//! `POST /v1/responses`: OpenAI's Responses API, stateless. A request is read as the chat
//! completion it stands for (`instructions` a system turn, `input` the turns, `tools` flat
//! functions, `text.format` the response format, `max_output_tokens` the limit) and runs as
//! one; the answer comes back as output items (the thinking of a reasoning model, the message,
//! the function calls), whole or as the API's typed stream events. `store: true` and
//! `previous_response_id` need stored responses, which this server does not keep: 400.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Map, Value};
use ward_engine::{FinishReason, Usage};

use super::reasoning::ReasoningSplitter;
use super::response::{unix_now, Endpoint};
use super::tools::ToolCall;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::generation::{collect, read_body, start, ChoiceOutput, Output, Started, KEEP_ALIVE};
use crate::ledger::Ledger;
use crate::openai::request::parse_json;
use crate::request_id::RequestId;
use crate::App;

pub async fn responses(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    Extension(ledger): Extension<Ledger>,
    body: Body,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let bytes = read_body(body, &app).await?;
    let request: Map<String, Value> = parse_json(&bytes)?;
    let chat = as_chat(&request)?;
    let chat = serde_json::to_vec(&chat).expect("a JSON value serializes");
    let started = start(&app, &id, &caller, ledger, &chat, Endpoint::Chat, arrived).await?;
    let answer = Answer::new(&id.0, &started, &request);
    if started.stream {
        Ok(event_stream(started, answer).into_response())
    } else {
        let Started {
            streams,
            tool_mode,
            track,
            ..
        } = started;
        let (choices, usage) = tokio::select! {
            done = collect(streams, 1, false, tool_mode, &track) => done?,
            () = app.cut() => return Err(ApiError::cut_at_shutdown()),
        };
        let c = &choices[0];
        let mut items = Vec::new();
        if !c.reasoning.is_empty() {
            items.push(answer.reasoning_item(0, &c.reasoning));
        }
        if !c.text.is_empty() || c.tool_calls.is_empty() {
            items.push(answer.message_item(items.len(), &c.text, "completed"));
        }
        for call in &c.tool_calls {
            items.push(answer.call_item(items.len(), call));
        }
        Ok(Json(answer.response(items, Some(&usage))).into_response())
    }
}

/// The chat completion request a Responses request stands for.
fn as_chat(r: &Map<String, Value>) -> Result<Value, ApiError> {
    let bad = |param: &str, message: &str| ApiError::invalid_param(param, message);
    if r.get("store").and_then(Value::as_bool) == Some(true) {
        return Err(bad(
            "store",
            "this server keeps no responses: send 'store': false (or leave it out)",
        ));
    }
    if r.get("previous_response_id").is_some_and(|v| !v.is_null()) {
        return Err(bad(
            "previous_response_id",
            "this server keeps no responses: send the whole conversation in 'input'",
        ));
    }
    let mut messages = Vec::new();
    match r.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(_) => return Err(bad("instructions", "'instructions' must be a string")),
    }
    match r.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(item, i, &mut messages)?;
            }
        }
        _ => return Err(bad("input", "'input' must be a string or a list of items")),
    }
    let mut chat = json!({"messages": messages});
    // Named alike in both APIs.
    for key in [
        "model",
        "stream",
        "temperature",
        "top_p",
        "parallel_tool_calls",
        "tool_choice",
    ] {
        if let Some(v) = r.get(key) {
            chat[key] = v.clone();
        }
    }
    if let Some(v) = r.get("max_output_tokens") {
        chat["max_completion_tokens"] = v.clone();
    }
    if let Some(Value::Object(choice)) = r.get("tool_choice") {
        // `{"type": "function", "name": …}` names the function at the top.
        chat["tool_choice"] = json!({"type": "function", "function": {"name": choice.get("name")}});
    }
    match r.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tools)) => {
            let tools = tools.iter().enumerate().map(|(i, t)| {
                if t.get("type").and_then(Value::as_str) != Some("function") {
                    return Err(bad(
                        &format!("tools[{i}].type"),
                        "only function tools are supported",
                    ));
                }
                let mut function = t.clone();
                if let Some(f) = function.as_object_mut() {
                    f.remove("type");
                    f.remove("strict");
                }
                Ok(json!({"type": "function", "function": function}))
            });
            chat["tools"] = Value::Array(tools.collect::<Result<_, _>>()?);
        }
        Some(_) => return Err(bad("tools", "'tools' must be a list")),
    }
    if let Some(format) = r.get("text").and_then(|t| t.get("format")) {
        chat["response_format"] = match format.get("type").and_then(Value::as_str) {
            Some("text") => Value::Null,
            Some("json_object") => json!({"type": "json_object"}),
            Some("json_schema") => json!({"type": "json_schema", "json_schema": {
                "name": format.get("name"), "schema": format.get("schema"),
            }}),
            _ => {
                return Err(bad(
                    "text.format.type",
                    "'text.format.type' must be 'text', 'json_object' or 'json_schema'",
                ))
            }
        };
    }
    Ok(chat)
}

/// One `input` item as chat turns: a message (`{"role", "content"}`, typed `message` or not),
/// a function call the model made (added to the assistant turn before it, or a new one), or a
/// function's output. Reasoning items are left out: templates drop past thinking.
fn input_item(item: &Value, i: usize, messages: &mut Vec<Value>) -> Result<(), ApiError> {
    let bad =
        |field: &str, message: &str| ApiError::invalid_param(format!("input[{i}]{field}"), message);
    let text = |v: Option<&Value>| -> Option<String> { v?.as_str().map(str::to_string) };
    match item.get("type").and_then(Value::as_str) {
        None | Some("message") => {
            let role =
                text(item.get("role")).ok_or_else(|| bad(".role", "a message needs a role"))?;
            let content = match item.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => {
                    let mut all = String::new();
                    for (j, part) in parts.iter().enumerate() {
                        match part.get("type").and_then(Value::as_str) {
                            Some("input_text" | "output_text" | "text") => {
                                all += part.get("text").and_then(Value::as_str).unwrap_or("");
                            }
                            _ => {
                                return Err(bad(
                                    &format!(".content[{j}].type"),
                                    "only text content parts are supported by this model",
                                ))
                            }
                        }
                    }
                    all
                }
                _ => return Err(bad(".content", "a message's content is text or parts")),
            };
            messages.push(json!({"role": role, "content": content}));
        }
        Some("function_call") => {
            let call = json!({
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments")},
            });
            let last_is_calling = messages
                .last()
                .is_some_and(|m| m["role"] == "assistant" && m.get("tool_calls").is_some());
            if last_is_calling {
                let last = messages.last_mut().expect("checked");
                last["tool_calls"]
                    .as_array_mut()
                    .expect("a list")
                    .push(call);
            } else {
                messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
            }
        }
        Some("function_call_output") => messages.push(json!({
            "role": "tool",
            "tool_call_id": item.get("call_id"),
            "content": item.get("output"),
        })),
        Some("reasoning") => {}
        Some(_) => {
            return Err(bad(
                ".type",
                "items are messages, function_call, function_call_output or reasoning",
            ))
        }
    }
    Ok(())
}

/// What the response object repeats, and the ids of its items.
struct Answer {
    id: String,
    created_at: u64,
    model: String,
    /// The request's settings echoed back, as the API does.
    echoed: Map<String, Value>,
}

impl Answer {
    fn new(request_id: &str, started: &Started, request: &Map<String, Value>) -> Answer {
        let mut echoed = Map::new();
        for key in [
            "instructions",
            "max_output_tokens",
            "temperature",
            "top_p",
            "tool_choice",
            "tools",
            "text",
            "parallel_tool_calls",
            "metadata",
        ] {
            echoed.insert(key.into(), request.get(key).cloned().unwrap_or(Value::Null));
        }
        Answer {
            id: format!("resp_{request_id}"),
            created_at: unix_now(),
            model: started.meta.model.clone(),
            echoed,
        }
    }

    fn item_id(&self, kind: &str, index: usize) -> String {
        format!("{kind}_{}_{index}", &self.id["resp_".len()..])
    }

    fn reasoning_item(&self, index: usize, text: &str) -> Value {
        json!({
            "type": "reasoning",
            "id": self.item_id("rs", index),
            "summary": [],
            "content": [{"type": "reasoning_text", "text": text}],
        })
    }

    fn message_item(&self, index: usize, text: &str, status: &str) -> Value {
        let content = if status == "completed" {
            json!([{"type": "output_text", "text": text, "annotations": []}])
        } else {
            json!([])
        };
        json!({
            "type": "message",
            "id": self.item_id("msg", index),
            "status": status,
            "role": "assistant",
            "content": content,
        })
    }

    fn call_item(&self, index: usize, call: &ToolCall) -> Value {
        json!({
            "type": "function_call",
            "id": self.item_id("fc", index),
            "call_id": format!("call_{}", self.item_id("fc", index)),
            "name": call.name,
            "arguments": call.arguments,
            "status": "completed",
        })
    }

    /// The response object: in progress while `usage` is `None`, else finished (incomplete if
    /// it ran out of tokens).
    fn response(&self, output: Vec<Value>, usage: Option<&Usage>) -> Value {
        let (status, incomplete) = match usage.map(|u| u.finish) {
            None => ("in_progress", Value::Null),
            Some(FinishReason::Length) => ("incomplete", json!({"reason": "max_output_tokens"})),
            Some(_) => ("completed", Value::Null),
        };
        let mut r = json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": null,
            "incomplete_details": incomplete,
            "model": self.model,
            "output": output,
            "store": false,
            "usage": usage.map(|u| json!({
                "input_tokens": u.prompt_tokens,
                "input_tokens_details": {"cached_tokens": u.cached_tokens},
                "output_tokens": u.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": u.prompt_tokens + u.completion_tokens,
            })),
        });
        for (k, v) in &self.echoed {
            r[k] = v.clone();
        }
        if r["parallel_tool_calls"].is_null() {
            r["parallel_tool_calls"] = json!(true);
        }
        if r["tool_choice"].is_null() {
            r["tool_choice"] = json!("auto");
        }
        if r["tools"].is_null() {
            r["tools"] = json!([]);
        }
        r
    }
}

/// The open output item of a stream: its index, its id and the text so far.
struct Open {
    index: usize,
    id: String,
    text: String,
}

/// The typed events of a streamed response, numbered as the API numbers them.
struct Events {
    sequence: u64,
}

impl Events {
    fn event(&mut self, kind: &str, mut data: Value) -> Result<SseEvent, Infallible> {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        Ok(SseEvent::default().event(kind).data(data.to_string()))
    }
}

fn event_stream(
    started: Started,
    answer: Answer,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let Started {
        mut streams,
        tool_mode,
        track,
        ..
    } = started;
    let mut events_in = streams.remove(0);
    let splitter = ReasoningSplitter::for_answer(&events_in);
    let mut out = ChoiceOutput::new(splitter, tool_mode, track.clone(), 0);
    let stream = async_stream::stream! {
        let mut ev = Events { sequence: 0 };
        yield ev.event("response.created", json!({"response": answer.response(vec![], None)}));
        yield ev.event("response.in_progress", json!({"response": answer.response(vec![], None)}));
        let mut done: Vec<Value> = Vec::new();
        let mut reasoning: Option<Open> = None;
        let mut message: Option<Open> = None;
        let mut usage = None;
        let mut failed = None;
        loop {
            let next = tokio::select! {
                next = events_in.next() => next,
                () = track.app.cut() => {
                    failed = Some(("shutdown", ApiError::cut_at_shutdown()));
                    None
                }
            };
            let (split, calls) = match out.read(next) {
                Output::Text(split) => (split, Vec::new()),
                Output::Finished(rest, calls, u) => {
                    usage = Some(u);
                    (rest, calls)
                }
                Output::Logprob(_) => continue,
                Output::Failed(outcome, e) => {
                    // A cut at shutdown has said so already.
                    failed = failed.or(Some((outcome, e)));
                    break;
                }
            };
            if !split.reasoning.is_empty() {
                if reasoning.is_none() {
                    let index = done.len();
                    let item = answer.reasoning_item(index, "");
                    let id = item["id"].as_str().unwrap_or_default().to_string();
                    yield ev.event("response.output_item.added", json!({"output_index": index, "item": item}));
                    reasoning = Some(Open { index, id, text: String::new() });
                }
                let r = reasoning.as_mut().expect("opened");
                r.text += &split.reasoning;
                yield ev.event("response.reasoning_text.delta", json!({
                    "item_id": r.id, "output_index": r.index, "content_index": 0, "delta": split.reasoning,
                }));
            }
            let answering = !split.content.is_empty() || (usage.is_some() && calls.is_empty());
            if answering {
                if let Some(r) = reasoning.take() {
                    for e in close_reasoning(&mut ev, &answer, r, &mut done) { yield e; }
                }
                if message.is_none() {
                    let index = done.len();
                    let item = answer.message_item(index, "", "in_progress");
                    let id = item["id"].as_str().unwrap_or_default().to_string();
                    yield ev.event("response.output_item.added", json!({"output_index": index, "item": item}));
                    yield ev.event("response.content_part.added", json!({
                        "item_id": id, "output_index": index, "content_index": 0,
                        "part": {"type": "output_text", "text": "", "annotations": []},
                    }));
                    message = Some(Open { index, id, text: String::new() });
                }
                let m = message.as_mut().expect("opened");
                if !split.content.is_empty() {
                    m.text += &split.content;
                    yield ev.event("response.output_text.delta", json!({
                        "item_id": m.id, "output_index": m.index, "content_index": 0,
                        "delta": split.content, "logprobs": [],
                    }));
                }
            }
            if usage.is_none() {
                continue;
            }
            if let Some(r) = reasoning.take() {
                for e in close_reasoning(&mut ev, &answer, r, &mut done) { yield e; }
            }
            if let Some(m) = message.take() {
                let part = json!({"type": "output_text", "text": m.text, "annotations": []});
                yield ev.event("response.output_text.done", json!({
                    "item_id": m.id, "output_index": m.index, "content_index": 0, "text": m.text, "logprobs": [],
                }));
                yield ev.event("response.content_part.done", json!({
                    "item_id": m.id, "output_index": m.index, "content_index": 0, "part": part,
                }));
                let item = answer.message_item(m.index, &m.text, "completed");
                yield ev.event("response.output_item.done", json!({"output_index": m.index, "item": item}));
                done.push(item);
            }
            for call in &calls {
                let index = done.len();
                let item = answer.call_item(index, call);
                let mut added = item.clone();
                added["arguments"] = json!("");
                added["status"] = json!("in_progress");
                yield ev.event("response.output_item.added", json!({"output_index": index, "item": added}));
                yield ev.event("response.function_call_arguments.delta", json!({
                    "item_id": item["id"], "output_index": index, "delta": call.arguments,
                }));
                yield ev.event("response.function_call_arguments.done", json!({
                    "item_id": item["id"], "output_index": index, "arguments": call.arguments,
                }));
                yield ev.event("response.output_item.done", json!({"output_index": index, "item": item}));
                done.push(item);
            }
            break;
        }
        match failed {
            None => {
                track.outcome("ok");
                yield ev.event("response.completed", json!({"response": answer.response(done, usage.as_ref())}));
            }
            Some((outcome, e)) => {
                track.outcome(outcome);
                let body = e.body();
                let mut failed = answer.response(done, None);
                failed["status"] = json!("failed");
                failed["error"] = json!({"code": body["error"]["code"], "message": body["error"]["message"]});
                yield ev.event("response.failed", json!({"response": failed}));
            }
        }
        // As for chat: the stream ends once its audit entry is synced, or with an error.
        if let Err(e) = track.ledger.commit().await {
            yield ev.event("error", e.body()["error"].clone());
        }
    };
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// The events that finish a reasoning item, which joins `done`.
fn close_reasoning(
    ev: &mut Events,
    answer: &Answer,
    r: Open,
    done: &mut Vec<Value>,
) -> Vec<Result<SseEvent, Infallible>> {
    let item = answer.reasoning_item(r.index, &r.text);
    let events = vec![
        ev.event(
            "response.reasoning_text.done",
            json!({"item_id": r.id, "output_index": r.index, "content_index": 0, "text": r.text}),
        ),
        ev.event(
            "response.output_item.done",
            json!({"output_index": r.index, "item": item}),
        ),
    ];
    done.push(item);
    events
}
