//! ward-server: the OpenAI-compatible HTTP API.
//!
//! Owns the wire types, validation, routes, streaming, request ids, the one error type mapped
//! to HTTP statuses, and the connection loop with its timeouts. Talks to the model only through
//! ward-engine's [`Engine`] trait (so tests can use a mock); must not depend on candle,
//! ward-models or the CLI, and never logs prompt or output text.

mod error;
mod generation;
mod http;
mod openai;
mod request_id;
mod routes;
mod tokens;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use error::ApiError;
pub use http::serve;
pub use routes::router;
use ward_engine::Engine;

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: 4 << 20,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            request_timeout: None,
        }
    }
}

/// What every route shares: the configuration and, once loaded, the engine.
pub struct App {
    pub config: ServerConfig,
    engine: OnceLock<Arc<dyn Engine>>,
}

impl App {
    pub fn new(config: ServerConfig) -> Arc<App> {
        Arc::new(App {
            config,
            engine: OnceLock::new(),
        })
    }

    /// Make the model available: from now on `/ready` answers 200 and generation routes work.
    pub fn set_engine(&self, engine: Arc<dyn Engine>) {
        // A second engine would be a programming error; the first one stays.
        let _ = self.engine.set(engine);
    }

    fn engine(&self) -> Result<&Arc<dyn Engine>, ApiError> {
        self.engine.get().ok_or_else(ApiError::not_ready)
    }
}
