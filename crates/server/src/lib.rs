//! ward-server: the OpenAI-compatible HTTP API.
//!
//! Owns the wire types, validation, routes, streaming, request ids, API keys, the audit log,
//! metrics, the one error type mapped to HTTP statuses, and the connection loop with its
//! timeouts and graceful stop. Talks to the model only through
//! ward-engine's [`Engine`] trait (so tests can use a mock); must not depend on candle,
//! ward-models or the CLI, and never logs prompt or output text.

pub mod audit;
mod auth;
mod connections;
mod cors;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod generation;
mod http;
mod ledger;
mod metrics;
mod ollama;
mod openai;
mod refusals;
mod request_id;
mod routes;
pub mod tls;
mod tokens;
mod ui;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use audit::{AuditError, AuditLog, AuditOptions};
pub use auth::{hex, sha256_hex, KeyFileError, Keys};
pub use cors::check_origin;
use error::ApiError;
pub use http::serve;
use metrics::Metrics;
pub use refusals::ClientAddr;
use refusals::Refusals;
pub use routes::router;
use ward_engine::{Embedder, Engine};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Time a client has to send a request's headers, and the longest a kept-alive connection
    /// may sit idle between requests.
    pub header_timeout: Duration,
    /// Time a client has to send a request's body once its headers are in.
    pub body_timeout: Duration,
    /// How long in-flight requests may run on after a stop signal.
    pub shutdown_timeout: Duration,
    /// How long a generation request may take, from submission to its last token.
    pub request_timeout: Option<Duration>,
    /// Requests whose bodies are parsed, templated and tokenized at once; the rest wait their
    /// turn. Each may take many times its body's size in memory while it is, so this bounds
    /// that memory, and the CPU time the event loop's neighbours see taken.
    pub max_preparing: usize,
    /// Connections held open at once, in all and from one client address; more are closed
    /// as they come.
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// Origins whose browser pages may call the API (`scheme://host[:port]`); none by default.
    pub cors_origins: Vec<String>,
    /// Serve the chat page at `/`.
    pub ui: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: 4 << 20,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            request_timeout: None,
            max_preparing: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_connections: connections::default_max_connections(),
            max_connections_per_address: 256,
            cors_origins: Vec::new(),
            ui: true,
        }
    }
}

/// What every route shares: the configuration, who may call, the audit log, the metrics and,
/// once loaded, the engine.
pub struct App {
    pub config: ServerConfig,
    engine: OnceLock<(Arc<dyn Engine>, String)>,
    /// The embedding models, beside it or alone.
    embedders: OnceLock<Vec<Arc<dyn Embedder>>>,
    /// `None`: no key file, anyone who can connect may call.
    keys: Option<Keys>,
    audit: Option<AuditLog>,
    metrics: Metrics,
    /// Refused requests per client address.
    refusals: Refusals,
    stopping: AtomicBool,
    /// Set at the shutdown timeout: requests still running end with an error, audited.
    cut: tokio::sync::watch::Sender<bool>,
    /// Requests whose response has not been sent in full yet.
    in_flight: AtomicUsize,
    /// Turns to parse, template and tokenize a request (`max_preparing` of them).
    preparing: tokio::sync::Semaphore,
}

impl App {
    pub fn new(config: ServerConfig) -> Arc<App> {
        App::with_access(config, None, None)
    }

    /// A server whose callers need one of `keys`, recording every request in `audit`.
    pub fn with_access(
        config: ServerConfig,
        keys: Option<Keys>,
        audit: Option<AuditLog>,
    ) -> Arc<App> {
        Arc::new(App {
            preparing: tokio::sync::Semaphore::new(config.max_preparing.max(1)),
            config,
            engine: OnceLock::new(),
            embedders: OnceLock::new(),
            keys,
            audit,
            metrics: Metrics::default(),
            refusals: Refusals::default(),
            stopping: AtomicBool::new(false),
            cut: tokio::sync::watch::Sender::new(false),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// Make the model available: from now on `/ready` answers 200 and generation routes work.
    /// `model_sha256` is the served file's hash, for the audit log and metrics.
    pub fn set_engine(&self, engine: Arc<dyn Engine>, model_sha256: String) {
        // A second engine would be a programming error; the first one stays.
        let _ = self.engine.set((engine, model_sha256));
    }

    /// Make embedding models available (with or without a generative one).
    pub fn set_embedders(&self, embedders: Vec<Arc<dyn Embedder>>) {
        let _ = self.embedders.set(embedders);
    }

    /// The generative model: 503 while loading, 404 where only embedding models are served.
    fn engine(&self) -> Result<&Arc<dyn Engine>, ApiError> {
        match (self.engine.get(), self.embedders.get()) {
            (Some(e), _) => Ok(&e.0),
            (None, Some(_)) => Err(ApiError::model_not_found()),
            (None, None) => Err(ApiError::not_ready()),
        }
    }

    fn embedders(&self) -> &[Arc<dyn Embedder>] {
        self.embedders.get().map_or(&[], Vec::as_slice)
    }

    /// Whether `name` is the generative model served.
    fn serves_generative(&self, name: &str) -> bool {
        self.engine.get().is_some_and(|e| e.0.info().id == name)
    }

    /// Whether models are loaded and requests can be served.
    fn loaded(&self) -> bool {
        self.engine.get().is_some() || self.embedders.get().is_some()
    }

    fn model_sha256(&self) -> Option<&str> {
        self.engine.get().map(|e| e.1.as_str())
    }

    /// Begin a graceful stop: `/ready` turns 503 and new requests are refused with 503 while
    /// those in flight finish.
    pub fn stop_accepting(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// At the shutdown timeout: requests still running stop, each with an error to its client
    /// and an audit entry with the outcome `shutdown`.
    pub fn cut_requests(&self) {
        self.cut.send_replace(true);
    }

    /// Completes when [`App::cut_requests`] is called.
    async fn cut(&self) {
        let mut rx = self.cut.subscribe();
        let _ = rx.wait_for(|cut| *cut).await;
    }

    /// Whether requests can be audited (always, without an audit log).
    fn audit_available(&self) -> bool {
        self.audit.as_ref().is_none_or(AuditLog::available)
    }

    /// Queue the refusal counts of a window that is over (all of them at stop).
    fn flush_refusals(&self, all: bool) {
        if let Some(entry) = self.refusals.take_due(all) {
            if let Some(audit) = &self.audit {
                audit.append(entry);
            }
        }
    }

    /// Requests whose responses are still being produced or sent.
    pub fn requests_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Write out what the audit log holds and close it (at exit).
    pub fn close_audit(&self) {
        self.flush_refusals(true);
        if let Some(audit) = &self.audit {
            audit.close();
        }
    }

    /// An entry in the audit log that is not a request (start, stop).
    pub fn audit_event(&self, event: &str, fields: serde_json::Value) {
        // The refusals counted so far go in before the last entry.
        self.flush_refusals(event == "stop");
        if let Some(audit) = &self.audit {
            let mut entry = serde_json::Map::new();
            entry.insert("time".into(), audit::timestamp_now().into());
            entry.insert("event".into(), event.into());
            if let serde_json::Value::Object(fields) = fields {
                entry.extend(fields);
            }
            audit.append(entry);
        }
    }
}
