//! ward-engine: turning a loaded model into generated text.
//!
//! Owns sampling, stop handling, the generation loop and the engine thread behind the
//! [`Engine`] trait the server talks to (later: the batching scheduler, paged KV cache and
//! prefix cache). Its public types carry token ids and text, never candle
//! tensors. Depends on ward-models; must not depend on the server or CLI.

pub mod api;
pub mod generate;
pub mod rng;
pub mod sampler;
pub mod stop;
pub mod worker;

pub use api::{
    Engine, Event, EventSender, EventStream, GenerateRequest, ModelInfo, Prompt, SubmitError, Usage,
};
pub use generate::{generate, generate_in, FinishReason, GenerateParams, GenerationStats, Session};
pub use sampler::{Sampler, SamplingParams};
pub use stop::StopMatcher;
/// Re-exported so the server can build chat prompts without depending on ward-models.
pub use ward_models::ChatMessage;
pub use worker::EngineHandle;
