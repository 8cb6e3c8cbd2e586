//! ward-kernels: Ward's CPU compute kernels over plain slices.
//!
//! Owns the arithmetic of a transformer layer: quantized matmuls (`quant`, with a scalar
//! reference and runtime-chosen SIMD tiers) run on a persistent worker pool (`pool`), RMSNorm,
//! RoPE, activations and attention over an F16 KV cache. Must not depend on candle or any other crate of the workspace.

pub mod activation;
pub mod attention;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod exp;
mod huge_pages;
pub mod norm;
pub mod pool;
pub mod probe;
pub mod quant;
pub mod rope;
pub mod tier;
