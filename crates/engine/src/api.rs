//! The seam between the HTTP server and whatever runs the model: requests in, a stream of
//! events out. The server sees only the [`Engine`] trait and these types, so its own tests can
//! run against a mock.

use tokio::sync::mpsc;

use crate::generate::FinishReason;
use crate::sampler::SamplingParams;
use ward_models::{ChatMessage, ThinkingFormat};

/// What the client asked to continue.
#[derive(Clone)]
pub enum Prompt {
    /// Plain text; BOS is added as the model's metadata says (completions).
    Text(String),
    /// Token ids, used as given (completions with a token-array prompt).
    Tokens(Vec<u32>),
    /// A conversation, rendered through the model's chat template with the generation prompt.
    Chat(Vec<ChatMessage>),
}

impl std::fmt::Debug for Prompt {
    // Prompts are patient data: never printed, only measured.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Prompt::Text(t) => write!(f, "Text(<{} bytes>)", t.len()),
            Prompt::Tokens(t) => write!(f, "Tokens(<{} tokens>)", t.len()),
            Prompt::Chat(m) => write!(f, "Chat(<{} messages>)", m.len()),
        }
    }
}

#[derive(Clone)]
pub struct GenerateRequest {
    /// Names the request in the engine's log lines (the server's request id).
    pub id: String,
    pub prompt: Prompt,
    /// `None`: as many as the context leaves room for.
    pub max_tokens: Option<usize>,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    /// Tokens that end the sequence (besides the model's end-of-generation tokens).
    pub stop_token_ids: Vec<u32>,
    /// Generate past end-of-generation tokens, up to `max_tokens`.
    pub ignore_eos: bool,
    /// Send each token's log-probability with this many alternatives ([`Event::Logprob`]).
    pub logprobs: Option<usize>,
    /// The answer must be JSON (`None`: free text).
    pub response_format: Option<ResponseFormat>,
    /// OpenAI-style tools offered to the model in a chat prompt.
    pub tools: Option<serde_json::Value>,
    /// More variables for the chat template (llama.cpp's and vLLM's `chat_template_kwargs`,
    /// e.g. Qwen3's `enable_thinking`).
    pub chat_template_kwargs: serde_json::Map<String, serde_json::Value>,
    /// Prefix-cache entries are shared only between requests with the same salt (a tenant's
    /// key or name), so one service cannot detect another's prompts by their speed.
    pub cache_salt: String,
    /// Who asks: waiting sequences start in weighted turns between tenants.
    pub tenant: Tenant,
    /// Give up (with [`Event::TimedOut`]) if not finished this long after submission.
    pub timeout: Option<std::time::Duration>,
}

impl std::fmt::Debug for GenerateRequest {
    // Stop strings are request text too: counted, not shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerateRequest")
            .field("id", &self.id)
            .field("prompt", &self.prompt)
            .field("max_tokens", &self.max_tokens)
            .field("sampling", &self.sampling)
            .field("stop", &format_args!("<{} strings>", self.stop.len()))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A calling service and its weight: when sequences wait for a place, each tenant gets
/// places in proportion to its weight (one with twice the weight runs twice as many).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub name: String,
    pub weight: u32,
}

impl Default for Tenant {
    fn default() -> Self {
        Tenant {
            name: String::new(),
            weight: 1,
        }
    }
}

/// OpenAI's `response_format`, beyond plain text.
#[derive(Debug, Clone)]
pub enum ResponseFormat {
    /// Any JSON object.
    JsonObject,
    /// A JSON document valid against this schema (whose root is an object).
    JsonSchema(serde_json::Value),
}

/// What the server needs to know about the model being served.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The name clients put in `"model"`.
    pub id: String,
    pub context_length: usize,
    pub has_chat_template: bool,
    /// Identifies the engine build and model file, for OpenAI's `system_fingerprint`.
    pub fingerprint: String,
    /// Unix time the model was loaded.
    pub created: u64,
    /// Which kernels compute it: the CPU kernel tier ("avx2", "avx512", …) or "cuda".
    pub kernels: String,
    /// The file's `general.architecture` ("llama", "qwen2", …) and size in bytes.
    pub architecture: String,
    pub file_bytes: u64,
}

/// Why a request was not accepted. Each maps to one HTTP status in the server.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the request queue is full ({capacity} waiting); retry later")]
    QueueFull { capacity: usize },
    #[error(
        "this model's maximum context length is {context_length} tokens; the request has \
         {prompt_tokens} prompt tokens and asks for {max_tokens} more"
    )]
    ContextLengthExceeded {
        prompt_tokens: usize,
        max_tokens: usize,
        context_length: usize,
    },
    /// Tokenizing stopped at the context length (see [`Engine::submit`]).
    #[error(
        "this model's maximum context length is {context_length} tokens; the prompt alone is \
         longer"
    )]
    PromptTooLong { context_length: usize },
    #[error("this model has no chat template; use /v1/completions")]
    NoChatTemplate,
    /// The prompt cannot be run (empty, token ids out of range, template refused it).
    #[error("{message}")]
    InvalidPrompt {
        message: String,
        param: &'static str,
    },
    #[error("the engine is shutting down")]
    ShuttingDown,
}

/// One step of a request's progress.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A sampled token's log-probability (requests that ask for them), sent before the text
    /// that token makes final, which may come in a later event (a character or stop string
    /// still incomplete) or never (an end-of-generation token, text cut by a stop string).
    Logprob(TokenLogprob),
    /// Newly final output text (never empty).
    Text(String),
    /// The last event of a successful request.
    Finished(Usage),
    /// The last event of a request that failed inside the engine.
    Failed(String),
    /// The last event of a request whose deadline passed before it finished.
    TimedOut,
}

/// The log-probability of a sampled token under the model's distribution (the raw logits,
/// before bias, penalties, temperature or truncation), with the likeliest tokens at its
/// position, likeliest first.
#[derive(Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: TokenChoice,
    pub top: Vec<TokenChoice>,
}

#[derive(Clone, PartialEq)]
pub struct TokenChoice {
    pub id: u32,
    /// The bytes the token stands for (part of a character, possibly).
    pub bytes: Vec<u8>,
    pub logprob: f32,
}

impl std::fmt::Debug for TokenLogprob {
    // Output text is patient data: ids and numbers only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<(u32, f32)> = self.top.iter().map(|c| (c.id, c.logprob)).collect();
        write!(
            f,
            "TokenLogprob({}, {}, top {ids:?})",
            self.token.id, self.token.logprob
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub finish: FinishReason,
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values were reused from an earlier request.
    pub cached_tokens: usize,
    pub completion_tokens: usize,
}

/// The receiving end of a request's events. Dropping it cancels the request: the engine
/// notices before its next step and moves on.
pub struct EventStream {
    pub prompt_tokens: usize,
    /// The chat prompt left a reasoning model's thinking open (DeepSeek-R1 distills end it
    /// with `<think>\n`): the text starts inside the thinking, without its opening marker.
    pub thinking: Option<ThinkingFormat>,
    /// How the model marks its thinking, for a chat prompt to a model that declares a
    /// reasoning format (see [`ThinkingFormat`]); `None`: the answer is all content.
    pub reasoning: Option<ThinkingFormat>,
    rx: mpsc::UnboundedReceiver<Event>,
}

/// The engine's end of a request's events.
pub struct EventSender(mpsc::UnboundedSender<Event>);

impl EventStream {
    pub fn channel(prompt_tokens: usize) -> (EventSender, EventStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            EventSender(tx),
            EventStream {
                prompt_tokens,
                thinking: None,
                reasoning: None,
                rx,
            },
        )
    }

    /// The next event; `None` once the engine has dropped its end (after the last event).
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// [`EventStream::next`] for callers outside an async runtime (the CLI, tests).
    pub fn next_blocking(&mut self) -> Option<Event> {
        self.rx.blocking_recv()
    }
}

impl EventSender {
    /// Send an event; false when the client is gone.
    pub fn send(&self, event: Event) -> bool {
        self.0.send(event).is_ok()
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.is_closed()
    }
}

/// Something that runs generation requests for one model.
pub trait Engine: Send + Sync + 'static {
    fn info(&self) -> &ModelInfo;

    /// Validate and queue a request. Errors come back at once (before any queueing), so the
    /// server can answer them with a 4xx instead of starting a stream.
    fn submit(&self, request: GenerateRequest) -> Result<EventStream, SubmitError>;

    /// Requests accepted but not yet started.
    fn queue_depth(&self) -> usize;

    /// The most sequences the engine holds, waiting and running, before it refuses more.
    fn capacity(&self) -> usize {
        usize::MAX
    }

    /// The token ids `submit` would run for `prompt` (a chat rendered through the template,
    /// with the generation prompt, the `tools` offered and the template variables `kwargs`).
    fn tokenize(
        &self,
        prompt: Prompt,
        tools: Option<&serde_json::Value>,
        kwargs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Vec<u32>, SubmitError>;

    /// The text of `tokens`, special tokens included.
    fn detokenize(&self, tokens: &[u32]) -> Result<String, SubmitError>;

    /// What the engine is holding now (sequences, KV blocks, prefix-cache hits).
    fn load(&self) -> crate::SchedulerLoad {
        crate::SchedulerLoad::default()
    }
}

impl ModelInfo {
    /// The identity every engine shares: `id`, the file's size, a fingerprint that changes
    /// whenever the engine version or the model file does (cheaply: no hashing of gigabytes at
    /// start-up; the pinned sha256 is the strong identity), the load time and the CPU kernel
    /// tier. The caller fills in what depends on the model.
    pub fn describe(path: &std::path::Path, id: &str) -> ModelInfo {
        let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let identity = format!("{}/{id}/{file_bytes}", env!("CARGO_PKG_VERSION"));
        let fnv = identity.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        ModelInfo {
            id: id.to_string(),
            context_length: 0,
            has_chat_template: false,
            fingerprint: format!("fp_{fnv:016x}"),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            kernels: ward_kernels::tier::tier().name().to_string(),
            architecture: String::new(),
            file_bytes,
        }
    }
}

/// One input to embed.
#[derive(Clone)]
pub enum EmbedInput {
    /// Text, framed as the model's tokenizer frames a text ([CLS] … [SEP] for BERT).
    Text(String),
    /// Token ids, used as given.
    Tokens(Vec<u32>),
    /// A reranker's (query, document) pair, framed as the model's tokenizer frames a pair.
    Pair(String, String),
}

impl std::fmt::Debug for EmbedInput {
    // Inputs are patient data: never printed, only measured.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmbedInput::Text(t) => write!(f, "Text(<{} bytes>)", t.len()),
            EmbedInput::Tokens(t) => write!(f, "Tokens(<{} tokens>)", t.len()),
            EmbedInput::Pair(q, d) => write!(f, "Pair(<{} bytes>, <{} bytes>)", q.len(), d.len()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EmbedRequest {
    pub inputs: Vec<EmbedInput>,
}

/// One unit-length vector per input, in order (a reranker's: its scores, as they are).
#[derive(Debug, Clone)]
pub struct Embeddings {
    pub dim: usize,
    /// `[inputs][dim]`.
    pub vectors: Vec<f32>,
    pub prompt_tokens: usize,
}

/// A model that turns texts into vectors (an embedding model), as the server sees it.
pub trait Embedder: Send + Sync + 'static {
    fn info(&self) -> &ModelInfo;

    /// Length of each vector (a reranker's: 1, its score).
    fn dimensions(&self) -> usize;

    /// A reranker: its inputs are (query, document) pairs, its outputs scores.
    fn is_reranker(&self) -> bool;

    /// Validate, tokenize and queue a request; errors come back at once.
    fn embed(
        &self,
        request: EmbedRequest,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Embeddings, SubmitError>>, SubmitError>;

    /// Requests accepted but not yet started.
    fn queue_depth(&self) -> usize;

    /// The most requests it holds before it refuses more.
    fn capacity(&self) -> usize;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_request_text() {
        let secret = "Jane Doe, MRN 4411";
        for prompt in [
            Prompt::Text(secret.into()),
            Prompt::Chat(vec![ChatMessage::new("user", secret)]),
        ] {
            let request = GenerateRequest {
                id: "r1".into(),
                prompt,
                max_tokens: Some(3),
                sampling: SamplingParams::default(),
                stop: vec![secret.into()],
                stop_token_ids: vec![],
                ignore_eos: false,
                logprobs: None,
                response_format: None,
                tools: None,
                chat_template_kwargs: Default::default(),
                cache_salt: secret.into(),
                tenant: Tenant::default(),
                timeout: None,
            };
            let shown = format!("{request:?}");
            assert!(
                !shown.contains("Jane") && !shown.contains("4411"),
                "{shown}"
            );
            assert!(shown.contains("r1"));
        }
    }
}
