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
use futures_util::future::try_join_all;
use futures_util::stream::{select_all, unfold};
use futures_util::StreamExt;
use serde_json::Value;
use ward_engine::{Engine, Event, EventStream, GenerateRequest, SubmitError, TokenLogprob, Usage};

use crate::error::ApiError;
use crate::openai::reasoning::{ReasoningSplitter, Split};
use crate::openai::request::{parse_body, Validated};
use crate::openai::response::{finish_reason, Choice, Endpoint, Meta};
use crate::openai::tools::{ToolCall, ToolMode, ToolStream};
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
        n,
        tool_mode,
    } = match endpoint {
        Endpoint::Chat => body.into_chat()?,
        Endpoint::Completion => body.into_completion()?,
    };
    request.id = id.0.clone();
    request.timeout = app.config.request_timeout;
    let logprobs = request.logprobs.is_some();
    let meta = Meta::new(endpoint, &id.0, &info.id, &info.fingerprint);
    // Templating and tokenizing a long prompt is CPU work: keep it off the I/O threads.
    let submitter = engine.clone();
    let streams = tokio::task::spawn_blocking(move || submit_n(&*submitter, request, n))
        .await
        .map_err(|_| ApiError::engine("the request could not be prepared"))?
        .map_err(|e| ApiError::from_submit(e, endpoint.prompt_param()))?;
    if stream {
        Ok(event_stream(streams, meta, include_usage, logprobs, tool_mode).into_response())
    } else {
        let think = endpoint == Endpoint::Chat;
        let (choices, usage) = collect(streams, logprobs, think, tool_mode).await?;
        Ok(Json(meta.response(&choices, &usage)).into_response())
    }
}

/// `n` sequences for one request (OpenAI's `n`), each with its own events. Choice `i` samples
/// with seed `seed + i`, so seeded choices differ from one another and repeat from call to
/// call. Sequences after the first usually find the prompt in the prefix cache.
fn submit_n(
    engine: &dyn Engine,
    request: GenerateRequest,
    n: usize,
) -> Result<Vec<EventStream>, SubmitError> {
    (0..n)
        .map(|i| {
            let mut r = request.clone();
            r.sampling.seed = r.sampling.seed.map(|s| s.wrapping_add(i as u64));
            if n > 1 {
                r.id = format!("{}.{i}", request.id);
            }
            engine.submit(r)
        })
        .collect()
}

/// Read the whole body within the body timeout, refusing more than `max_body_bytes`.
pub(crate) async fn read_body(body: Body, app: &App) -> Result<Bytes, ApiError> {
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

/// Every sequence's output; the first failure ends them all (dropping the others cancels them).
async fn collect(
    streams: Vec<EventStream>,
    logprobs: bool,
    think: bool,
    tool_mode: ToolMode,
) -> Result<(Vec<Choice>, Usage), ApiError> {
    let one = |s| collect_one(s, logprobs, think, tool_mode.clone());
    let results = try_join_all(streams.into_iter().map(one)).await?;
    let usage = total_usage(results.iter().map(|r| &r.1));
    Ok((results.into_iter().map(|r| r.0).collect(), usage))
}

/// One sequence's whole output, through the same [`ChoiceOutput`] as a stream, so a
/// streamed answer and a whole one say the same.
async fn collect_one(
    mut events: EventStream,
    logprobs: bool,
    think: bool,
    tool_mode: ToolMode,
) -> Result<(Choice, Usage), ApiError> {
    let mut out = ChoiceOutput::new(think, tool_mode);
    let mut choice = Choice {
        text: String::new(),
        reasoning: String::new(),
        logprobs: logprobs.then(Vec::new),
        finish: None,
        tool_calls: Vec::new(),
    };
    let add = |choice: &mut Choice, part: Split| {
        choice.text += &part.content;
        choice.reasoning += &part.reasoning;
    };
    loop {
        match events.next().await {
            Some(Event::Logprob(lp)) => choice.logprobs.get_or_insert_with(Vec::new).push(lp),
            Some(Event::Text(t)) => add(&mut choice, out.text(t)),
            Some(Event::Finished(usage)) => {
                let (rest, calls) = out.finish();
                add(&mut choice, rest);
                choice.finish = Some(usage.finish);
                choice.tool_calls = calls;
                return Ok((choice, usage));
            }
            Some(Event::Failed(message)) => return Err(ApiError::engine(message)),
            Some(Event::TimedOut) => return Err(ApiError::timed_out()),
            None => return Err(ApiError::engine("the engine stopped")),
        }
    }
}

/// One choice's text on its way to the client: a reasoning model's thinking split from its
/// answer (chat), tool calls held back until they are complete.
struct ChoiceOutput {
    thinking: Option<ReasoningSplitter>,
    tools: ToolStream,
}

impl ChoiceOutput {
    fn new(think: bool, tool_mode: ToolMode) -> ChoiceOutput {
        ChoiceOutput {
            thinking: think.then(ReasoningSplitter::new),
            tools: ToolStream::new(tool_mode),
        }
    }

    /// What of `text` can be sent now.
    fn text(&mut self, text: String) -> Split {
        let mut split = match &mut self.thinking {
            Some(s) => s.push(&text),
            None => Split {
                reasoning: String::new(),
                content: text,
            },
        };
        split.content = self.tools.push(&split.content);
        split
    }

    /// At the end: everything held back, and the tool calls.
    fn finish(&mut self) -> (Split, Vec<ToolCall>) {
        let mut rest = self
            .thinking
            .as_mut()
            .map(|s| s.finish())
            .unwrap_or_default();
        let mut content = self.tools.push(&rest.content);
        let (tail, calls) = self.tools.finish();
        content += &tail;
        rest.content = content;
        (rest, calls)
    }
}

/// The usage of `n` sequences of one prompt: the prompt counted once, the completions summed.
fn total_usage<'a>(usages: impl Iterator<Item = &'a Usage>) -> Usage {
    let mut usages = usages.peekable();
    let first = **usages.peek().expect("at least one sequence");
    Usage {
        completion_tokens: usages.map(|u| u.completion_tokens).sum(),
        ..first
    }
}

fn event_stream(
    streams: Vec<EventStream>,
    meta: Meta,
    include_usage: bool,
    logprobs: bool,
    tool_mode: ToolMode,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let data = |v: Value| Ok::<_, Infallible>(SseEvent::default().data(v.to_string()));
    let n = streams.len();
    // One stream of (choice, event) from all the sequences, in the order events arrive.
    let mut merged = select_all(streams.into_iter().enumerate().map(|(i, events)| {
        Box::pin(unfold(events, move |mut events| async move {
            events.next().await.map(|e| ((i, e), events))
        }))
    }));
    let stream = async_stream::stream! {
        if meta.endpoint == Endpoint::Chat {
            for i in 0..n {
                yield data(meta.role_chunk(i, include_usage));
            }
        }
        // Per choice: its output, log-probabilities not yet sent, text length so far.
        let think = meta.endpoint == Endpoint::Chat;
        let mut outputs: Vec<ChoiceOutput> = (0..n).map(|_| ChoiceOutput::new(think, tool_mode.clone())).collect();
        let mut pending: Vec<Vec<TokenLogprob>> = vec![Vec::new(); n];
        let mut offsets = vec![0usize; n];
        let mut usages = Vec::with_capacity(n);
        let mut failed = false;
        while let Some((i, event)) = merged.next().await {
            match event {
                Event::Logprob(lp) => pending[i].push(lp),
                Event::Text(t) => {
                    let split = outputs[i].text(t);
                    if split.content.is_empty() && split.reasoning.is_empty() {
                        continue; // held back: a marker or a tool call may be starting
                    }
                    let lps = std::mem::take(&mut pending[i]);
                    let lps = logprobs.then_some((&lps[..], &mut offsets[i]));
                    yield data(meta.chunk(i, &split.content, &split.reasoning, lps, None, include_usage));
                }
                Event::Finished(usage) => {
                    let (rest, calls) = outputs[i].finish();
                    let mut finish = finish_reason(usage.finish);
                    if !calls.is_empty() {
                        yield data(meta.tool_calls_chunk(i, &calls, include_usage));
                        finish = "tool_calls";
                    }
                    let lps = std::mem::take(&mut pending[i]);
                    let lps = (logprobs && !lps.is_empty()).then_some((&lps[..], &mut offsets[i]));
                    yield data(meta.chunk(i, &rest.content, &rest.reasoning, lps, Some(finish), include_usage));
                    usages.push(usage);
                }
                Event::Failed(message) => {
                    yield data(ApiError::engine(message).body());
                    failed = true;
                    break;
                }
                Event::TimedOut => {
                    yield data(ApiError::timed_out().body());
                    failed = true;
                    break;
                }
            }
        }
        if !failed && usages.len() < n {
            yield data(ApiError::engine("the engine stopped").body());
        } else if include_usage && !failed {
            yield data(meta.usage_chunk(&total_usage(usages.iter())));
        }
        yield Ok(SseEvent::default().data("[DONE]"));
    };
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
