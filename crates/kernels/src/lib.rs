//! ward-kernels: Ward's CPU compute kernels over plain slices.
//!
//! Owns the arithmetic of a transformer layer outside the quantized matmuls: RMSNorm, RoPE,
//! activations and attention over an F16 KV cache. Each function here is the plain reference
//! that faster SIMD tiers are tested against. Must not depend on candle or any other crate of
//! the workspace.

pub mod activation;
pub mod attention;
pub mod norm;
pub mod rope;
