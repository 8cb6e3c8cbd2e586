//! ward-engine: turning a loaded model into generated text.
//!
//! Owns sampling, stop handling, the generation loop, and the engine thread behind the
//! [`Engine`] trait the server talks to: a continuous-batching scheduler over a paged KV cache
//! with a prefix cache. Its public types carry token ids and text. Depends on ward-models; must
//! not depend on the server or CLI.

pub mod api;
pub mod blocks;
pub mod embed;
pub mod generate;
pub mod json;
pub mod rng;
pub mod sampler;
pub mod scheduler;
pub mod stop;
pub mod worker;

pub use api::{
    EmbedInput, EmbedRequest, Embedder, Embeddings, Engine, Event, EventSender, EventStream,
    GenerateRequest, ModelInfo, Prompt, ResponseFormat, SubmitError, Tenant, TokenChoice,
    TokenLogprob, Usage,
};
pub use embed::{EmbedderConfig, EmbedderError, EmbedderHandle};
pub use generate::{generate, FinishReason, GenerateParams, GenerationStats, MAX_TOP_LOGPROBS};
pub use sampler::{Sampler, SamplingParams};
pub use scheduler::SchedulerLoad;
pub use stop::StopMatcher;
/// How the engine scales embeddings to unit length, for a server that shortens them.
pub use ward_models::arch::bert::normalize;
/// Re-exported so the server can build chat prompts and read answers (tool calls, thinking)
/// without depending on ward-models.
pub use ward_models::template::hermes;
pub use ward_models::{partial_marker, ChatMessage, ThinkingFormat, THINKING_FORMATS};
pub use worker::{EngineConfig, EngineHandle};
