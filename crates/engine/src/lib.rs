//! ward-engine: turning a loaded model into generated text.
//!
//! Owns sampling, stop handling and the generation loop (later: the engine thread, scheduler,
//! paged KV cache and prefix cache). Its public types carry token ids and text, never candle
//! tensors. Depends on ward-models; must not depend on the server or CLI.

pub mod generate;
pub mod rng;
pub mod sampler;
pub mod stop;

pub use generate::{generate, FinishReason, GenerateParams, GenerationStats};
pub use sampler::{Sampler, SamplingParams};
pub use stop::StopMatcher;
