//! What each request did, and the middleware that sees every request through: it names the
//! request (`x-request-id`), refuses it while the server stops or the audit log cannot be
//! written, checks its API key and request rate (refusals counted per client address), writes
//! its audit entry before the answer's last bytes go out, and when the response has been sent in
//! full (or the client has gone) writes the access-log line and the metrics from the request's
//! [`Record`].
//!
//! Handlers fill the record in as they learn things (model, parameters, prompt, token counts,
//! output). The prompt and output are kept only to be hashed for the audit log (or written
//! there with `--audit-include-text`): the writer hashes them when it seals the entry, keyed
//! under that epoch's audit key in a keyed log. The access log and metrics see counts and codes
//! only.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::audit::Content;
use crate::auth::{Caller, Held, Service};
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Finished;
use crate::refusals::{ClientAddr, Note};
use crate::request_id::{known_route, request_id, RequestId, HEADER};
use crate::App;

/// A request's record, shared between the middleware and its handler, and what the audit
/// entry needs to know about the request.
#[derive(Clone)]
pub struct Ledger(Arc<Shared>);

struct Shared {
    record: Mutex<Record>,
    app: Arc<App>,
    id: String,
    method: Method,
    route: &'static str,
    start: Instant,
}

#[derive(Default)]
pub struct Record {
    pub caller: Option<Arc<Service>>,
    /// The served model, once the request has named it.
    pub model: Option<String>,
    /// Generation parameters, as the audit log shows them (numbers and counts only).
    pub params: Option<Value>,
    /// The request's `messages` or `prompt`.
    pub prompt: Option<Value>,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Each choice's generated text, in choice order.
    pub outputs: Vec<String>,
    /// The response is a stream whose end sets `outcome`.
    pub streaming: bool,
    /// `ok`, or the error code the request ended with; unset if the client left first.
    pub outcome: Option<&'static str>,
    /// Its places in the engine (generation requests of a calling service), given back when
    /// the record is dropped at the request's end.
    pub held: Option<Held>,
    /// Tokens reserved against the service's `tokens_per_minute`, settled at the end.
    pub reserved_tokens: usize,
    /// The response's status; unset if the client left before it was ready.
    pub status: Option<u16>,
    /// The audit entry is queued already, or is not to be written (a refusal counted in the
    /// aggregate, or one made because the log cannot be written).
    pub audited: bool,
}

impl Ledger {
    pub(crate) fn new(app: Arc<App>, id: String, method: Method, route: &'static str) -> Ledger {
        Ledger(Arc::new(Shared {
            record: Mutex::new(Record::default()),
            app,
            id,
            method,
            route,
            start: Instant::now(),
        }))
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut Record) -> R) -> R {
        f(&mut self.0.record.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Record `text` as part of choice `choice`'s output.
    pub fn output(&self, choice: usize, text: &str) {
        self.with(|r| {
            if r.outputs.len() <= choice {
                r.outputs.resize(choice + 1, String::new());
            }
            r.outputs[choice].push_str(text);
        });
    }

    /// Write the request's audit entry and wait until it is synced: the last bytes of an
    /// answer are sent only after this. Entries of requests finishing together share one sync.
    /// An error means the entry could not be written: the answer must not go out as a success.
    pub async fn commit(&self) -> Result<(), ApiError> {
        let s = &self.0;
        let Some(audit) = s.app.audit.as_ref().filter(|_| !is_probe(s.route)) else {
            return Ok(());
        };
        let entry = self.with(|r| {
            let entry = (!r.audited).then(|| self.audit_entry(r));
            r.audited = true;
            entry
        });
        let Some((entry, content)) = entry else {
            return Ok(());
        };
        if audit.commit_with(entry, Some(content)).await {
            Ok(())
        } else {
            self.with(|r| r.outcome = Some("audit_unavailable"));
            Err(ApiError::audit_unavailable())
        }
    }
}

/// Routes that answer without an API key, and while the server stops, unaudited: the probes,
/// and the chat page's files (no data; the page then calls the API with a key).
fn is_probe(route: &str) -> bool {
    route == "/health" || route == "/ready" || crate::ui::ROUTES.contains(&route)
}

pub async fn track(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    let id = request_id(request.headers());
    let route = known_route(request.uri().path());
    let peer = request.extensions().get::<ClientAddr>().map(|a| a.0);
    let ledger = Ledger::new(app.clone(), id.clone(), request.method().clone(), route);
    request.extensions_mut().insert(RequestId(id.clone()));
    request.extensions_mut().insert(ledger.clone());
    let end = End(ledger.clone());
    app.in_flight.fetch_add(1, Ordering::SeqCst);
    app.flush_refusals(false);
    let mut response = match admit(&app, &mut request, route, &ledger, peer) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    };
    let status = response.status().as_u16();
    let error = response.extensions().get::<ErrorCode>().map(|c| c.0);
    let whole = ledger.with(|r| {
        r.status = Some(status);
        let whole = error.is_some() || !r.streaming;
        if whole {
            r.outcome = Some(error.unwrap_or("ok"));
        }
        whole
    });
    // A whole answer goes out only once its audit entry is synced (a stream's last event
    // waits for it the same way), and not at all if the entry cannot be written.
    if whole {
        if let Err(e) = ledger.commit().await {
            response = e.into_response();
            ledger.with(|r| r.status = Some(response.status().as_u16()));
        }
    }
    let (mut parts, body) = response.into_parts();
    if let Ok(value) = HeaderValue::from_str(&id) {
        parts.headers.insert(HEADER, value);
    }
    Response::from_parts(
        parts,
        Body::new(Tracked {
            inner: body,
            _end: end,
        }),
    )
}

/// Whether a request may go on: not while stopping or while the audit log cannot be written
/// (probes and metrics aside), and with a valid key within its request rate when keys are
/// configured. Refusals are counted per client address: past its allowance an address's
/// refusals are answered 429 and audited only in the periodic aggregate.
fn admit(
    app: &App,
    request: &mut Request,
    route: &str,
    ledger: &Ledger,
    peer: Option<IpAddr>,
) -> Result<(), ApiError> {
    if is_probe(route) {
        return Ok(());
    }
    if app.is_stopping() && route != "/metrics" {
        return Err(ApiError::shutting_down());
    }
    if app.audit.as_ref().is_some_and(|a| !a.available()) {
        // Nothing to audit: the log is what fails. Metrics (no patient data) stay readable,
        // unaudited, so the failure can be seen.
        ledger.with(|r| r.audited = true);
        if route != "/metrics" {
            return Err(ApiError::audit_unavailable());
        }
    }
    let Some(keys) = &app.keys else {
        request.extensions_mut().insert(Caller(None));
        return Ok(());
    };
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let admitted = keys.authenticate(header).and_then(|service| {
        ledger.with(|r| r.caller = Some(service.clone()));
        service.admit_request().map(|()| service)
    });
    let refused = match admitted {
        Ok(service) => {
            request.extensions_mut().insert(Caller(Some(service)));
            return Ok(());
        }
        Err(e) => e,
    };
    let code = refused.code.unwrap_or(refused.kind);
    match app.refusals.note(peer, code, refused.status.as_u16()) {
        Note::Audit => Err(refused),
        Note::Limited(wait) => {
            ledger.with(|r| r.audited = true);
            Err(ApiError::too_many_refusals(wait))
        }
    }
}

/// A response body that reports the request's end when it is dropped: sent in full, or
/// abandoned by the client.
struct Tracked {
    inner: Body,
    _end: End,
}

impl http_body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Writes a request's access-log line and metrics when dropped, and its audit entry if the
/// answer did not wait for one (the client left first).
struct End(Ledger);

impl Drop for End {
    fn drop(&mut self) {
        let s = &self.0 .0;
        let app = &s.app;
        let elapsed = s.start.elapsed();
        let record = std::mem::take(&mut *s.record.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(audit) = app
            .audit
            .as_ref()
            .filter(|_| !record.audited && !is_probe(s.route))
        {
            let (entry, content) = self.0.audit_entry(&record);
            audit.append_with(entry, Some(content));
        }
        // 499, as nginx logs it: the client closed the connection before the answer.
        let status = record.status.unwrap_or(499);
        let outcome = record.outcome.unwrap_or("client_closed");
        let service = record
            .caller
            .as_ref()
            .map_or("anonymous", |s| s.name.as_str());
        tracing::info!(
            request_id = %s.id,
            method = %s.method,
            route = s.route,
            status,
            outcome,
            service,
            prompt_tokens = record.prompt_tokens,
            completion_tokens = record.completion_tokens,
            ms = elapsed.as_millis() as u64,
            "request"
        );
        if let Some(caller) = &record.caller {
            caller.settle_tokens(record.reserved_tokens, record.completion_tokens);
        }
        app.metrics.request_finished(&Finished {
            service,
            model: record.model.as_deref().unwrap_or(""),
            route: s.route,
            status,
            prompt_tokens: record.prompt_tokens,
            generated_tokens: record.completion_tokens,
            duration: elapsed,
        });
        app.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ledger {
    /// The request's audit entry, and the content (prompt and outputs) whose hashes the
    /// writer adds when it seals the entry: keyed under that epoch's key in a keyed log.
    fn audit_entry(&self, record: &Record) -> (Map<String, Value>, Content) {
        let s = &self.0;
        let status = record.status.unwrap_or(499);
        let outcome = record.outcome.unwrap_or("client_closed");
        let elapsed = s.start.elapsed();
        let mut entry = Map::new();
        let mut put = |k: &str, v: Value| {
            entry.insert(k.to_string(), v);
        };
        put("time", json!(crate::audit::timestamp_now()));
        put("event", json!("request"));
        put("request_id", json!(s.id));
        put("service", json!(record.caller.as_ref().map(|s| &s.name)));
        put("method", json!(s.method.as_str()));
        put("endpoint", json!(s.route));
        put("status", json!(status));
        put("outcome", json!(outcome));
        put("latency_ms", json!(elapsed.as_millis() as u64));
        put("model", json!(record.model));
        put(
            "model_sha256",
            json!(record.model.as_ref().and(s.app.model_sha256())),
        );
        put("params", record.params.clone().unwrap_or(Value::Null));
        put("prompt_tokens", json!(record.prompt_tokens));
        put("completion_tokens", json!(record.completion_tokens));
        if s.app.audit.as_ref().is_some_and(|a| a.include_text) {
            put("prompt", record.prompt.clone().unwrap_or(Value::Null));
            put("output", json!(record.outputs));
        }
        let content = Content::new(record.prompt.as_ref(), record.outputs.clone());
        (entry, content)
    }
}
