//! `POST /v1/chat/completions` and `POST /v1/completions`: read and validate the body, submit
//! it to the engine, and answer with one JSON body or a server-sent event stream. Dropping the
//! stream (the client went away) drops the engine's event receiver, which cancels generation.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::future::try_join_all;
use futures_util::stream::{select_all, unfold};
use futures_util::StreamExt;
use serde_json::{json, Value};
use ward_engine::{
    Engine, Event, EventStream, GenerateRequest, Prompt, ResponseFormat, SubmitError, Tenant,
    TokenLogprob, Usage,
};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::ledger::Ledger;
use crate::openai::reasoning::{ReasoningSplitter, Split};
use crate::openai::request::{parse_body, Validated};
use crate::openai::response::{Choice, Endpoint, Meta};
use crate::openai::tools::{ToolCall, ToolMode, ToolStream};
use crate::request_id::RequestId;
use crate::routes::check_model;
use crate::App;

/// Comments sent on a quiet stream (a long prefill) so proxies keep it open and a departed
/// client is noticed.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// A body larger than the limit is still read (and thrown away) up to this size, so the client
/// gets the 413 instead of a reset connection; past it the connection is closed.
const DRAIN_LIMIT: usize = 64 << 20;

pub async fn chat_completions(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    Extension(ledger): Extension<Ledger>,
    body: Body,
) -> Result<Response, ApiError> {
    generate(app, id, caller, ledger, body, Endpoint::Chat).await
}

pub async fn completions(
    State(app): State<Arc<App>>,
    Extension(id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    Extension(ledger): Extension<Ledger>,
    body: Body,
) -> Result<Response, ApiError> {
    generate(app, id, caller, ledger, body, Endpoint::Completion).await
}

/// `caller` is who asks (its key's service), `ledger` where the request's record is kept.
async fn generate(
    app: Arc<App>,
    id: RequestId,
    caller: Caller,
    ledger: Ledger,
    body: Body,
    endpoint: Endpoint,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let bytes = read_body(body, &app).await?;
    let started = start(&app, &id, &caller, ledger, &bytes, endpoint, arrived).await?;
    let Started {
        streams,
        n,
        meta,
        stream,
        include_usage,
        logprobs,
        tool_mode,
        track,
    } = started;
    if stream {
        let stream = event_stream(streams, n, meta, include_usage, logprobs, tool_mode, track);
        Ok(stream.into_response())
    } else {
        // A request still running at the shutdown timeout ends with 503, and is audited so.
        let (choices, usage) = tokio::select! {
            done = collect(streams, n, logprobs, tool_mode, &track) => done?,
            () = app.cut() => return Err(ApiError::cut_at_shutdown()),
        };
        Ok(Json(meta.response(&choices, &usage)).into_response())
    }
}

/// A generation request on its way: its sequences' events, and how to answer.
pub(crate) struct Started {
    pub streams: Vec<EventStream>,
    /// Choices per prompt.
    pub n: usize,
    pub meta: Meta,
    pub stream: bool,
    pub include_usage: bool,
    pub logprobs: bool,
    pub tool_mode: ToolMode,
    pub track: Track,
}

/// Read `bytes` as `endpoint` does, check the caller's share and tokens, and submit the
/// sequences to the engine.
pub(crate) async fn start(
    app: &Arc<App>,
    id: &RequestId,
    caller: &Caller,
    ledger: Ledger,
    bytes: &[u8],
    endpoint: Endpoint,
    arrived: Instant,
) -> Result<Started, ApiError> {
    let engine = app.engine()?.clone();
    // Held until the prompt is tokenized: parsing, templating and tokenizing a large body
    // take many times its size in memory.
    let preparing = app.preparing.acquire().await;
    let Validated {
        mut request,
        stream,
        include_usage,
        n,
        more_prompts,
        tool_mode,
        legacy_functions,
    } = read_request(bytes, endpoint, &ledger, |model| {
        check_model(app, caller, &ledger, model)
    })?;
    let info = engine.info();
    request.id = id.0.clone();
    request.timeout = app.config.request_timeout;
    let sequences = n * (1 + more_prompts.len());
    ledger.with(|r| r.params = Some(audit_params(&request, n, sequences, stream)));
    if let Some(service) = &caller.0 {
        service.check_tokens()?;
        // One service's prompts never share cache blocks with another's (nor reveal them by
        // their speed).
        request.cache_salt = format!("{}\0{}", service.name, request.cache_salt);
        request.tenant = Tenant {
            name: service.name.clone(),
            weight: service.weight,
        };
        // Its places in the engine, one per sequence, held until the response ends.
        let keys = app
            .keys
            .as_ref()
            .expect("a calling service means a key file");
        let held = keys.hold(service, sequences, engine.capacity())?;
        ledger.with(|r| r.held = Some(held));
    }
    let max_tokens = request.max_tokens;
    let logprobs = request.logprobs.is_some();
    let mut meta = Meta::new(endpoint, &id.0, &info.id, &info.fingerprint);
    meta.legacy_functions = legacy_functions;
    // Templating and tokenizing a long prompt is CPU work: keep it off the I/O threads.
    let submitter = engine.clone();
    let streams =
        tokio::task::spawn_blocking(move || submit(&*submitter, request, more_prompts, n))
            .await
            .map_err(|_| ApiError::engine("the request could not be prepared"))?
            .map_err(|e| ApiError::from_submit(e, endpoint.prompt_param()))?;
    drop(preparing);
    // Each prompt counted once, however many choices it has.
    let prompt_tokens: usize = streams.iter().step_by(n).map(|s| s.prompt_tokens).sum();
    ledger.with(|r| {
        r.prompt_tokens = prompt_tokens;
        r.streaming = stream;
    });
    if let Some(service) = &caller.0 {
        // The most it may generate is reserved now and settled when it ends (a refusal here
        // drops the streams, which cancels them).
        let reserved = streams
            .iter()
            .map(|s| max_tokens.unwrap_or(info.context_length.saturating_sub(s.prompt_tokens)))
            .sum();
        service.reserve_tokens(reserved)?;
        ledger.with(|r| r.reserved_tokens = reserved);
        service.settle_tokens(0, prompt_tokens);
    }
    let track = Track {
        app: app.clone(),
        ledger,
        model: info.id.clone(),
        arrived,
    };
    Ok(Started {
        streams,
        n,
        meta,
        stream,
        include_usage,
        logprobs,
        tool_mode,
        track,
    })
}

/// A body as `endpoint` reads it, before the engine sees it: parsed, its prompt recorded in
/// `ledger`, the model it names checked by `check_model`, then validated. (Also the fuzz
/// target's way in, see [`crate::fuzzing`].)
pub(crate) fn read_request(
    bytes: &[u8],
    endpoint: Endpoint,
    ledger: &Ledger,
    check_model: impl FnOnce(Option<&str>) -> Result<(), ApiError>,
) -> Result<Validated, ApiError> {
    let body = parse_body(bytes)?;
    record_prompt(ledger, bytes)?;
    if body.model.is_none() {
        return Err(ApiError::invalid_param("model", "'model' is required"));
    }
    check_model(body.model.as_deref())?;
    match endpoint {
        Endpoint::Chat => body.into_chat(),
        Endpoint::Completion => body.into_completion(),
    }
}

/// The request's `messages` or `prompt`, kept in its record for the audit log (as a hash,
/// unless the log is told to include text). Read with the same rules as the request itself:
/// unknown top-level fields are skipped unparsed (a number out of range or deep nesting there
/// cannot stop the prompt from being recorded). A prompt that cannot be recorded is not served.
pub(crate) fn record_prompt(ledger: &Ledger, bytes: &[u8]) -> Result<(), ApiError> {
    #[derive(serde::Deserialize)]
    struct Audited {
        messages: Option<Value>,
        prompt: Option<Value>,
    }
    let body: Audited = serde_json::from_slice(bytes)
        .map_err(|_| ApiError::malformed("the prompt cannot be recorded for the audit log"))?;
    ledger.with(|r| r.prompt = body.messages.or(body.prompt));
    Ok(())
}

/// The parameters the audit log shows: numbers, switches and counts, never text.
fn audit_params(r: &GenerateRequest, n: usize, sequences: usize, stream: bool) -> Value {
    let s = &r.sampling;
    json!({
        "max_tokens": r.max_tokens,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "top_k": s.top_k,
        "min_p": s.min_p,
        "seed": s.seed,
        "n": n,
        "prompts": sequences / n,
        "stream": stream,
        "logprobs": r.logprobs,
        "stop": r.stop.len(),
        "stop_token_ids": r.stop_token_ids.len(),
        "logit_bias": s.logit_bias.len(),
        "ignore_eos": r.ignore_eos,
        "response_format": match r.response_format {
            None => None,
            Some(ResponseFormat::JsonObject) => Some("json_object"),
            Some(ResponseFormat::JsonSchema(_)) => Some("json_schema"),
        },
        "tools": r.tools.as_ref().and_then(Value::as_array).map(Vec::len),
        // Template variables change the prompt the hash does not cover: their count, and the
        // one switch llama.cpp defines (other values may be text).
        "chat_template_kwargs": r.chat_template_kwargs.len(),
        "enable_thinking": r.chat_template_kwargs.get("enable_thinking").and_then(Value::as_bool),
    })
}

/// Where a request's output is recorded as it comes: its ledger (text, token counts, outcome)
/// and the latency metrics.
#[derive(Clone)]
pub(crate) struct Track {
    pub app: Arc<App>,
    pub ledger: Ledger,
    model: String,
    arrived: Instant,
}

impl Track {
    pub(crate) fn outcome(&self, outcome: &'static str) {
        self.ledger.with(|r| r.outcome = Some(outcome));
    }
}

/// `n` sequences for each of a request's prompts (OpenAI's `n`), each with its own events,
/// prompt by prompt. A prompt's choice `i` samples with seed `seed + i`, so seeded choices
/// differ from one another, repeat from call to call, and a prompt gets the same answers in a
/// batch as alone. Sequences after a prompt's first usually find it in the prefix cache.
fn submit(
    engine: &dyn Engine,
    request: GenerateRequest,
    more_prompts: Vec<Prompt>,
    n: usize,
) -> Result<Vec<EventStream>, SubmitError> {
    let several = n > 1 || !more_prompts.is_empty();
    let prompts = std::iter::once(request.prompt.clone()).chain(more_prompts);
    let mut streams = Vec::new();
    for (p, prompt) in prompts.enumerate() {
        for i in 0..n {
            let mut r = request.clone();
            r.prompt = prompt.clone();
            r.sampling.seed = r.sampling.seed.map(|s| s.wrapping_add(i as u64));
            if several {
                r.id = format!("{}.{}", request.id, p * n + i);
            }
            streams.push(engine.submit(r)?);
        }
    }
    Ok(streams)
}

/// Read the whole body within the body timeout, refusing more than `max_body_bytes`.
pub(crate) async fn read_body(body: Body, app: &App) -> Result<Bytes, ApiError> {
    let limit = app.config.max_body_bytes;
    // A declared Content-Length over the limit is refused before a byte is read.
    let declared = http_body::Body::size_hint(&body).lower();
    if declared > limit as u64 {
        return Err(ApiError::body_too_large(limit));
    }
    let read = async {
        let mut chunks = body.into_data_stream();
        let mut data = Vec::with_capacity(declared as usize);
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
pub(crate) async fn collect(
    streams: Vec<EventStream>,
    n: usize,
    logprobs: bool,
    tool_mode: ToolMode,
    track: &Track,
) -> Result<(Vec<Choice>, Usage), ApiError> {
    let one = |(i, s): (usize, EventStream)| {
        let splitter = ReasoningSplitter::for_answer(&s);
        let out = ChoiceOutput::new(splitter, tool_mode.clone(), track.clone(), i);
        collect_one(s, logprobs, out)
    };
    let results = try_join_all(streams.into_iter().enumerate().map(one)).await?;
    let (choices, usages): (Vec<Choice>, Vec<Usage>) = results.into_iter().unzip();
    Ok((choices, total_usage(&usages, n)))
}

/// One sequence's whole output, through the same [`ChoiceOutput`] as a stream, so a
/// streamed answer and a whole one say the same.
async fn collect_one(
    mut events: EventStream,
    logprobs: bool,
    mut out: ChoiceOutput,
) -> Result<(Choice, Usage), ApiError> {
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
        match out.read(events.next().await) {
            Output::Logprob(lp) => choice.logprobs.get_or_insert_with(Vec::new).push(lp),
            Output::Text(part) => add(&mut choice, part),
            Output::Finished(rest, calls, usage) => {
                add(&mut choice, rest);
                choice.finish = Some(usage.finish);
                choice.tool_calls = calls;
                return Ok((choice, usage));
            }
            Output::Failed(_, e) => return Err(e),
        }
    }
}

/// An engine event as a route sees it, through [`ChoiceOutput::read`].
pub(crate) enum Output {
    /// What of the text can be sent now (both parts may be empty: held back).
    Text(Split),
    Logprob(TokenLogprob),
    /// Everything held back, the tool calls, the usage.
    Finished(Split, Vec<ToolCall>, Usage),
    /// The audit outcome and the error the client gets.
    Failed(&'static str, ApiError),
}

/// One choice's text on its way to the client: a reasoning model's thinking split from its
/// answer (chat), tool calls held back until they are complete; recorded in the request's
/// ledger and timed for the latency metrics on the way.
pub(crate) struct ChoiceOutput {
    thinking: Option<ReasoningSplitter>,
    tools: ToolStream,
    track: Track,
    choice: usize,
    /// Text pieces so far (a piece is one token or a few), and when the last came.
    pieces: usize,
    last: Option<Instant>,
}

impl ChoiceOutput {
    /// `thinking`: the splitter of a chat answer (none for completions).
    pub(crate) fn new(
        thinking: Option<ReasoningSplitter>,
        tool_mode: ToolMode,
        track: Track,
        choice: usize,
    ) -> ChoiceOutput {
        ChoiceOutput {
            thinking,
            tools: ToolStream::new(tool_mode),
            track,
            choice,
            pieces: 0,
            last: None,
        }
    }

    /// What of `text` can be sent now.
    fn text(&mut self, text: String) -> Split {
        let now = Instant::now();
        let metrics = &self.track.app.metrics;
        match self.last {
            None => metrics.first_token(&self.track.model, now - self.track.arrived),
            Some(last) => metrics.next_token(&self.track.model, now - last),
        }
        self.last = Some(now);
        self.pieces += 1;
        self.track.ledger.output(self.choice, &text);
        self.track.ledger.with(|r| r.completion_tokens += 1);
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

    /// One engine event (None: the engine dropped the stream) through this output, in the
    /// terms every route's loop needs.
    pub(crate) fn read(&mut self, event: Option<Event>) -> Output {
        match event {
            Some(Event::Text(t)) => Output::Text(self.text(t)),
            Some(Event::Logprob(lp)) => Output::Logprob(lp),
            Some(Event::Finished(usage)) => {
                let (rest, calls) = self.finish(&usage);
                Output::Finished(rest, calls, usage)
            }
            Some(Event::Failed(m)) => Output::Failed("engine_error", ApiError::engine(m)),
            Some(Event::TimedOut) => Output::Failed("request_timeout", ApiError::timed_out()),
            None => Output::Failed("engine_error", ApiError::engine("the engine stopped")),
        }
    }

    /// At the end: everything held back, and the tool calls.
    fn finish(&mut self, usage: &Usage) -> (Split, Vec<ToolCall>) {
        // Pieces were counted as tokens as they came; the engine knows the exact count.
        let uncounted = usage.completion_tokens.saturating_sub(self.pieces);
        self.track.ledger.with(|r| r.completion_tokens += uncounted);
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

/// The usage of a request's sequences, in choice order, `n` per prompt: each prompt counted
/// once, the completions summed.
fn total_usage(usages: &[Usage], n: usize) -> Usage {
    let prompts = || usages.iter().step_by(n);
    Usage {
        finish: usages[0].finish,
        prompt_tokens: prompts().map(|u| u.prompt_tokens).sum(),
        cached_tokens: prompts().map(|u| u.cached_tokens).sum(),
        completion_tokens: usages.iter().map(|u| u.completion_tokens).sum(),
    }
}

fn event_stream(
    streams: Vec<EventStream>,
    per_prompt: usize,
    meta: Meta,
    include_usage: bool,
    logprobs: bool,
    tool_mode: ToolMode,
    track: Track,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let data = |v: Value| Ok::<_, Infallible>(SseEvent::default().data(v.to_string()));
    let n = streams.len();
    // Per choice: how its answer's thinking is marked, and where it starts.
    let splitters: Vec<_> = streams.iter().map(ReasoningSplitter::for_answer).collect();
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
        let mut outputs: Vec<ChoiceOutput> = splitters
            .into_iter()
            .enumerate()
            .map(|(i, splitter)| ChoiceOutput::new(splitter, tool_mode.clone(), track.clone(), i))
            .collect();
        let mut pending: Vec<Vec<TokenLogprob>> = vec![Vec::new(); n];
        let mut offsets = vec![0usize; n];
        // Per choice: its usage once it has finished.
        let mut usages: Vec<Option<Usage>> = vec![None; n];
        let mut finished = 0;
        let mut failed = false;
        let mut cut = false;
        loop {
            let next = tokio::select! {
                next = merged.next() => next,
                () = track.app.cut() => {
                    cut = true;
                    None
                }
            };
            let Some((i, event)) = next else {
                break;
            };
            match outputs[i].read(Some(event)) {
                Output::Logprob(lp) => pending[i].push(lp),
                Output::Text(split) => {
                    if split.content.is_empty() && split.reasoning.is_empty() {
                        continue; // held back: a marker or a tool call may be starting
                    }
                    let lps = std::mem::take(&mut pending[i]);
                    let lps = logprobs.then_some((&lps[..], &mut offsets[i]));
                    yield data(meta.chunk(i, &split.content, &split.reasoning, lps, None, include_usage));
                }
                Output::Finished(rest, calls, usage) => {
                    let mut finish = usage.finish.as_str();
                    if !calls.is_empty() {
                        yield data(meta.tool_calls_chunk(i, &calls, include_usage));
                        finish = meta.calls_finish();
                    }
                    let lps = std::mem::take(&mut pending[i]);
                    let lps = (logprobs && !lps.is_empty()).then_some((&lps[..], &mut offsets[i]));
                    yield data(meta.chunk(i, &rest.content, &rest.reasoning, lps, Some(finish), include_usage));
                    usages[i] = Some(usage);
                    finished += 1;
                    if finished == n {
                        break;
                    }
                }
                Output::Failed(outcome, e) => {
                    track.outcome(outcome);
                    yield data(e.body());
                    failed = true;
                    break;
                }
            }
        }
        if cut {
            // Cut at the shutdown timeout: the client is told, and the entry says so.
            track.outcome("shutdown");
            yield data(ApiError::cut_at_shutdown().body());
        } else if !failed && finished < n {
            track.outcome("engine_error");
            yield data(ApiError::engine("the engine stopped").body());
        } else if !failed {
            track.outcome("ok");
            if include_usage {
                let usages: Vec<Usage> = usages.into_iter().flatten().collect();
                yield data(meta.usage_chunk(&total_usage(&usages, per_prompt)));
            }
        }
        // The last event waits for the audit entry to be synced; if it cannot be written,
        // the stream ends with an error instead of [DONE].
        match track.ledger.commit().await {
            Ok(()) => yield Ok(SseEvent::default().data("[DONE]")),
            Err(e) => yield data(e.body()),
        }
    };
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
