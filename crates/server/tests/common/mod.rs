//! A mock engine (the same `Engine` trait the real one implements) and helpers to send
//! requests through the router without a network or a model.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use ward_engine::{
    Engine, Event, EventSender, EventStream, FinishReason, GenerateRequest, ModelInfo, Prompt,
    SubmitError, ThinkingFormat, Usage,
};
use ward_server::{router, App, ServerConfig};

pub const MOCK_SHA256: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Answers every request with `pieces`, or refuses it with what `refuse` makes.
pub struct MockEngine {
    pub info: ModelInfo,
    pub pieces: Vec<&'static str>,
    pub refuse: Option<fn() -> SubmitError>,
    /// The reasoning format it declares (None: a model that does not reason).
    pub reasoning: Option<ThinkingFormat>,
    /// The thinking its chat prompts leave open (as a DeepSeek-R1 distill's template does).
    pub thinking: Option<ThinkingFormat>,
    pub seen: Mutex<Vec<GenerateRequest>>,
    pub senders: Mutex<Vec<EventSender>>,
    /// Sequences it holds at most (what [`Engine::capacity`] says).
    pub capacity: usize,
    /// Sequences do not finish until [`MockEngine::finish_held`].
    pub hold: std::sync::atomic::AtomicBool,
}

impl MockEngine {
    pub fn new(pieces: Vec<&'static str>) -> MockEngine {
        MockEngine {
            info: ModelInfo {
                id: "mock-model".into(),
                context_length: 64,
                has_chat_template: true,
                fingerprint: "fp_mock".into(),
                created: 1_700_000_000,
                kernels: "scalar".into(),
                architecture: "llama".into(),
                file_bytes: 1 << 20,
            },
            pieces,
            refuse: None,
            reasoning: None,
            thinking: None,
            seen: Mutex::new(Vec::new()),
            senders: Mutex::new(Vec::new()),
            capacity: usize::MAX,
            hold: Default::default(),
        }
    }
}

impl MockEngine {
    /// A reasoning model of the `<think>` format.
    pub fn reasoner(pieces: Vec<&'static str>) -> MockEngine {
        MockEngine {
            reasoning: Some(ward_engine::THINKING_FORMATS[0]),
            ..MockEngine::new(pieces)
        }
    }

    fn finished(&self, prompt_tokens: usize) -> Event {
        Event::Finished(Usage {
            finish: FinishReason::Length,
            prompt_tokens,
            cached_tokens: 0,
            completion_tokens: self.pieces.len(),
        })
    }

    /// Finish the sequences held back by `hold`.
    pub fn finish_held(&self) {
        for tx in self.senders.lock().unwrap().iter() {
            tx.send(self.finished(5));
        }
    }
}

impl Engine for MockEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// One token per byte of text.
    fn tokenize(
        &self,
        prompt: Prompt,
        _tools: Option<&Value>,
        _kwargs: &serde_json::Map<String, Value>,
    ) -> Result<Vec<u32>, SubmitError> {
        match prompt {
            Prompt::Text(t) => Ok(t.bytes().map(u32::from).collect()),
            _ => Err(SubmitError::NoChatTemplate),
        }
    }

    fn detokenize(&self, tokens: &[u32]) -> Result<String, SubmitError> {
        Ok(tokens.iter().map(|&t| char::from(t as u8)).collect())
    }

    fn submit(&self, request: GenerateRequest) -> Result<EventStream, SubmitError> {
        if let Some(refuse) = self.refuse {
            return Err(refuse());
        }
        let prompt_tokens = match &request.prompt {
            Prompt::Tokens(t) => t.len(),
            _ => 5,
        };
        let chat = matches!(request.prompt, Prompt::Chat(_));
        self.seen.lock().unwrap().push(request);
        let (tx, mut rx) = EventStream::channel(prompt_tokens);
        rx.thinking = self.thinking.filter(|_| chat);
        rx.reasoning = self.reasoning.filter(|_| chat);
        for p in &self.pieces {
            tx.send(Event::Text(p.to_string()));
        }
        if !self.hold.load(std::sync::atomic::Ordering::SeqCst) {
            tx.send(self.finished(prompt_tokens));
        }
        // Kept so a test can see whether the receiver was dropped.
        self.senders.lock().unwrap().push(tx);
        Ok(rx)
    }

    fn queue_depth(&self) -> usize {
        0
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}

pub fn app_with(engine: Option<Arc<MockEngine>>, config: ServerConfig) -> axum::Router {
    let app = App::new(config);
    if let Some(e) = engine {
        app.set_engine(e, MOCK_SHA256.into());
    }
    router(app)
}

pub async fn send(
    app: axum::Router,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, Value, Vec<(String, String)>) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send_request(app, request).await
}

/// Send `request` through the router: the status, the body as JSON (or as a string when it is
/// not JSON) and the headers.
pub async fn send_request(
    app: axum::Router,
    request: Request<Body>,
) -> (StatusCode, Value, Vec<(String, String)>) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value, headers)
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub fn chat_body(extra: Value) -> String {
    let mut body = json!({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body.to_string()
}

pub async fn chat(
    engine: Arc<MockEngine>,
    extra: Value,
) -> (StatusCode, Value, Vec<(String, String)>) {
    let app = app_with(Some(engine), ServerConfig::default());
    send(app, "POST", "/v1/chat/completions", &chat_body(extra)).await
}

/// Asserts an OpenAI-style error and returns its `error` object.
pub fn error_of(status: StatusCode, body: &Value, want: StatusCode) -> Value {
    assert_eq!(status, want, "{body}");
    let e = body["error"].clone();
    assert!(e["message"].is_string() && e["type"].is_string(), "{body}");
    assert!(
        e.get("param").is_some() && e.get("code").is_some(),
        "{body}"
    );
    e
}
