//! Every error the API returns, in OpenAI's shape
//! `{"error": {"message", "type", "param", "code"}}`, with its HTTP status decided here and
//! nowhere else. Messages name the parameter and the rule, never echo the client's text back
//! (request bodies may hold patient data).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use ward_engine::SubmitError;

/// Seconds a client is asked to wait when the queue is full or the server is busy.
const RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    /// Seconds for `Retry-After` (429 and 503 answers).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    /// 400 for a request parameter that is missing, of the wrong type or out of range.
    pub fn invalid_param(param: impl Into<String>, message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message);
        e.param = Some(param.into());
        e.with_code("invalid_value")
    }

    /// 400 for a body that is not valid JSON (or not an object).
    pub fn malformed(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
            .with_code("invalid_json")
    }

    /// 404 for a model that is not served. The name sent is not echoed (request text never
    /// is), nor the served one (the caller may not be allowed to use it).
    pub fn model_not_found() -> ApiError {
        let mut e = ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "the model named in the request is not served here; GET /v1/models lists the \
             models this key may use",
        );
        e.param = Some("model".into());
        e.with_code("model_not_found")
    }

    /// 401: no API key, or one no service has.
    pub fn unauthorized(message: &'static str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
            .with_code("invalid_api_key")
    }

    /// 403: the caller's key does not allow the model it asked for.
    pub fn model_not_allowed() -> ApiError {
        let mut e = ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "this API key may not use the requested model",
        );
        e.param = Some("model".into());
        e.with_code("model_not_allowed")
    }

    /// 429: the caller is over one of its rates; it may retry after `wait`.
    pub fn rate_limited(message: &'static str, wait: std::time::Duration) -> ApiError {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
            .with_code("rate_limit_exceeded");
        e.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        e
    }

    /// 503 while the server stops: requests in flight finish, new ones go elsewhere.
    pub fn shutting_down() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the server is shutting down",
        )
        .with_code("shutting_down")
    }

    /// 503 while the audit log cannot be written and synced: nothing is served unaudited.
    pub fn audit_unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the audit log cannot be written; requests are refused until it can",
        )
        .with_code("audit_unavailable")
    }

    /// 503 for a request still running when the shutdown timeout cut it.
    pub fn cut_at_shutdown() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the server stopped before this request finished (shutdown timeout)",
        )
        .with_code("shutdown")
    }

    /// 429: too many refused requests from this address; it may retry after `wait`.
    pub fn too_many_refusals(wait: std::time::Duration) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "too many refused requests from this address; retry later with a valid API key",
        )
        .with_code("too_many_refusals");
        e.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        e
    }

    pub fn route_not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "no such route; see /v1/models, /v1/chat/completions, /v1/completions",
        )
        .with_code("not_found")
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "this route does not accept that method",
        )
        .with_code("method_not_allowed")
    }

    pub fn body_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("the request body is larger than this server's limit of {limit} bytes"),
        )
        .with_code("request_too_large")
    }

    pub fn unreadable_body() -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "the request body could not be read completely",
        )
        .with_code("invalid_body")
    }

    pub fn body_timeout() -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "the request body did not arrive within the body timeout",
        )
        .with_code("body_timeout")
    }

    pub fn not_ready() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the model is still loading; retry when /ready answers 200",
        )
        .with_code("model_loading")
    }

    /// A failure inside the engine: the client did nothing wrong. The engine has logged it; its
    /// messages describe shapes and limits, never text.
    pub fn engine(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
            .with_code("engine_error")
    }

    /// The request ran past the server's request timeout (`--request-timeout`).
    pub fn timed_out() -> ApiError {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            "the request did not finish within this server's request timeout",
        )
        .with_code("request_timeout")
    }

    /// The `error` object alone, for an error sent inside an event stream.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl ApiError {
    /// A request the engine refused; `prompt_param` names where the prompt was (`messages` for
    /// chat, `prompt` for completions).
    pub fn from_submit(e: SubmitError, prompt_param: &'static str) -> ApiError {
        let message = e.to_string();
        match e {
            SubmitError::QueueFull { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
                    .with_code("queue_full")
            }
            SubmitError::ContextLengthExceeded { .. } | SubmitError::PromptTooLong { .. } => {
                ApiError::invalid_param(prompt_param, message).with_code("context_length_exceeded")
            }
            SubmitError::NoChatTemplate => {
                ApiError::invalid_param(prompt_param, message).with_code("chat_template_missing")
            }
            SubmitError::InvalidPrompt { param, .. } => ApiError::invalid_param(param, message),
            SubmitError::ShuttingDown => ApiError::shutting_down(),
        }
    }
}

/// The `code` of an error response, for the access and audit logs.
#[derive(Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        response
            .extensions_mut()
            .insert(ErrorCode(self.code.unwrap_or(self.kind)));
        let busy = matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        );
        if let Some(secs) = self.retry_after.or(busy.then_some(RETRY_AFTER_SECS)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
