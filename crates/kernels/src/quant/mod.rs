//! Quantized matrix × vector products over GGUF's block formats, read straight from the file's
//! bytes: the activations are quantized once per row to the weight type's 8-bit partner (as
//! llama.cpp does), then each output is an integer dot product per block scaled in f32.
//!
//! Every weight type has a scalar reference (`scalar.rs`) and, where the CPU has AVX2, FMA and
//! F16C, a SIMD tier (`avx2.rs`) chosen at run time; `WARD_KERNEL_TIER=scalar` forces the
//! reference so tests (and suspicious users) can compare tiers on the same machine.

mod activations;
#[cfg(target_arch = "x86_64")]
mod avx2;
mod matmul;
mod scalar;

use std::sync::OnceLock;

pub use activations::{quantize_q8_0, quantize_q8_1};
pub use matmul::{matmul, QuantMatrix};

/// Values per block of every type here.
pub const BLOCK: usize = 32;

/// The weight block types Ward computes with itself (others stay on candle for now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightType {
    /// f16 scale d, f16 minimum m, 16 bytes of 4-bit values: x = d·q + m.
    Q4_1,
    /// f16 scale d, 32 signed bytes: x = d·q.
    Q8_0,
}

impl WeightType {
    /// Bytes per block of 32 weights.
    pub fn block_bytes(self) -> usize {
        match self {
            WeightType::Q4_1 => 20,
            WeightType::Q8_0 => 34,
        }
    }

    /// Bytes per block of the 8-bit activation type this weight type multiplies with.
    pub fn activation_block_bytes(self) -> usize {
        match self {
            // Q8_1: f16 d, f16 s = d·Σq, 32 signed bytes.
            WeightType::Q4_1 => 36,
            // Q8_0: f16 d, 32 signed bytes.
            WeightType::Q8_0 => 34,
        }
    }
}

/// Which implementation the kernels use on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Scalar,
    Avx2,
}

/// The best tier this CPU supports, unless `WARD_KERNEL_TIER=scalar` asks for the reference.
/// Decided once per process.
pub fn tier() -> Tier {
    static TIER: OnceLock<Tier> = OnceLock::new();
    *TIER.get_or_init(|| {
        let forced_scalar = std::env::var("WARD_KERNEL_TIER").is_ok_and(|v| v == "scalar");
        if !forced_scalar && avx2_available() {
            Tier::Avx2
        } else {
            Tier::Scalar
        }
    })
}

/// Whether this CPU has what the AVX2 tier needs (checked once).
pub fn avx2_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Dot product of one weight row with one quantized activation row, on `tier` (the scalar
/// reference where the CPU lacks the tier asked for).
pub fn vec_dot(ty: WeightType, tier: Tier, w: &[u8], a: &[u8]) -> f32 {
    match tier {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX2, FMA and F16C.
        Tier::Avx2 if avx2_available() => unsafe { avx2::vec_dot(ty, w, a) },
        _ => scalar::vec_dot(ty, w, a),
    }
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}
