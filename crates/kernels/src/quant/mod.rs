//! Matrix × vector products over GGUF's weight formats, read straight from the file's bytes:
//! the activations are converted once per row to the weight type's partner format (as
//! llama.cpp does: Q8_0, Q8_1 or Q8_K for quantized weights, f16/bf16/f32 for float ones), then
//! each output is a dot product of the two — integer sums per block, scaled in f32.
//!
//! `dequant.rs` defines every format (the plain reference, ggml's layout), `scalar.rs` the
//! reference dot products built on it, and the SIMD tiers (`crate::tier`): on x86-64 the 8-row
//! tiles of `interleave.rs` multiplied by `avx2_x8.rs` (AVX2 + FMA + F16C) or `avx512_x8.rs`
//! (the same arithmetic with VNNI's `vpdpbusd`, bit-identical), with `avx2.rs`'s row products
//! for the float types (x86 has no quantized row products: `vec_dot` gives a quantized row the
//! scalar reference there); on aarch64 with the dot-product extension the same tiles multiplied by
//! `dotprod_x8.rs` (`sdot`, bit-identical to the x86 tiers; with i8mm, pairs of activation
//! rows by `smmla`), and on plain NEON GGUF's row layout; the aarch64 tiers take `neon.rs`'s
//! row products where they do not tile.
//! `WARD_KERNEL_TIER` forces a tier so tests (and suspicious users) can compare tiers on the
//! same machine; a matrix resolves its kernel for its tier when it is loaded.

mod activations;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx2_x8;
#[cfg(target_arch = "x86_64")]
mod avx512_x8;
mod dequant;
#[cfg(all(target_arch = "aarch64", target_endian = "little"))]
mod dotprod_x8;
mod interleave;
mod interleave_k;
mod matmul;
// The NEON tier reads the file's little-endian bytes as wider lanes, so big-endian aarch64
// keeps the scalar reference.
#[cfg(all(target_arch = "aarch64", target_endian = "little"))]
mod neon;
mod quantize;
mod quantize_k;
mod scalar;

use crate::tier::{tier, Tier};

pub use activations::quantize_activations;
pub use dequant::{dequantize_activations, dequantize_row};
pub use interleave::GROUP;
pub use matmul::{matmul, matmul_gated, matmul_normed, Layout, MatrixError, QuantMatrix};
pub use quantize::{quantize_row, QUANTIZABLE};

/// Values per super-block of the K-quants (and per block of Q8_K).
pub const QK_K: usize = 256;

/// The weight formats Ward computes with: every type the supported models use.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightType {
    F32,
    F16,
    BF16,
    /// f16 d, 16 bytes of 4-bit q: x = d·(q − 8).
    Q4_0,
    /// f16 d, f16 m, 16 bytes of 4-bit q: x = d·q + m.
    Q4_1,
    /// f16 d, 32 high bits, 16 bytes of low nibbles: x = d·(q − 16).
    Q5_0,
    /// f16 d, f16 m, 32 high bits, 16 bytes of low nibbles: x = d·q + m.
    Q5_1,
    /// f16 d, 32 signed bytes: x = d·q.
    Q8_0,
    /// 256 values: 16 sub-blocks with 4-bit scale and min, 2-bit q, f16 d and dmin.
    Q2_K,
    /// 256 values: 16 sub-blocks with 6-bit scales, 3-bit q (2 low bits + a high-bit mask).
    Q3_K,
    /// 256 values: 8 sub-blocks with 6-bit scale and min, 4-bit q.
    Q4_K,
    /// 256 values: 8 sub-blocks with 6-bit scale and min, 5-bit q.
    Q5_K,
    /// 256 values: 16 sub-blocks with 8-bit scales, 6-bit q.
    Q6_K,
}

impl WeightType {
    /// The type for a GGML type id, where Ward supports it.
    pub fn from_ggml_id(id: u32) -> Option<WeightType> {
        use WeightType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            30 => BF16,
            _ => return None,
        })
    }

    /// The GGML type id.
    pub fn ggml_id(self) -> u32 {
        (0..64)
            .find(|&id| WeightType::from_ggml_id(id) == Some(self))
            .expect("every weight type has a GGML id")
    }

    /// Values per block.
    pub fn block_len(self) -> usize {
        use WeightType::*;
        match self {
            F32 | F16 | BF16 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 => 32,
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K => QK_K,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        use WeightType::*;
        match self {
            F32 => 4,
            F16 | BF16 => 2,
            Q4_0 => 18,
            Q4_1 => 20,
            Q5_0 => 22,
            Q5_1 => 24,
            Q8_0 => 34,
            Q2_K => 84,
            Q3_K => 110,
            Q4_K => 144,
            Q5_K => 176,
            Q6_K => 210,
        }
    }

    /// The format the activations are converted to before a dot product with this type.
    pub fn activation_type(self) -> ActivationType {
        use WeightType::*;
        match self {
            F32 => ActivationType::F32,
            F16 => ActivationType::F16,
            BF16 => ActivationType::BF16,
            Q4_0 | Q5_0 | Q8_0 => ActivationType::Q8_0,
            Q4_1 | Q5_1 => ActivationType::Q8_1,
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K => ActivationType::Q8_K,
        }
    }

    /// Bytes of one row of `cols` values, or None if `cols` is not a whole number of blocks.
    pub fn row_bytes(self, cols: usize) -> Option<usize> {
        cols.is_multiple_of(self.block_len())
            .then(|| cols / self.block_len() * self.block_bytes())
    }

    pub const ALL: [WeightType; 13] = {
        use WeightType::*;
        [
            F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
        ]
    };
}

/// The activation formats the dot products take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum ActivationType {
    F32,
    F16,
    BF16,
    /// f16 d, 32 i8.
    Q8_0,
    /// f16 d, f16 s = d·Σq, 32 i8: the sum lets Q4_1/Q5_1 add their minimum in one step.
    Q8_1,
    /// f32 d, 256 i8, 16 i16 sums of 16 values: the sums serve the K-quants' minimums.
    Q8_K,
}

impl ActivationType {
    pub fn block_len(self) -> usize {
        match self {
            ActivationType::F32 | ActivationType::F16 | ActivationType::BF16 => 1,
            ActivationType::Q8_0 | ActivationType::Q8_1 => 32,
            ActivationType::Q8_K => QK_K,
        }
    }

    pub fn block_bytes(self) -> usize {
        match self {
            ActivationType::F32 => 4,
            ActivationType::F16 | ActivationType::BF16 => 2,
            ActivationType::Q8_0 => 34,
            ActivationType::Q8_1 => 36,
            ActivationType::Q8_K => 4 + QK_K + 2 * QK_K / 16,
        }
    }
}

/// Dot product of one weight row with one activation row (converted by `quantize_activations`
/// for this weight type), on `tier`: its row product where it has one (NEON's for every type,
/// x86's for the float types), else the scalar reference.
///
/// Panics if the activation row is shorter than the weight row.
pub fn vec_dot(ty: WeightType, tier: Tier, w: &[u8], a: &[u8]) -> f32 {
    let blocks = w.len() / ty.block_bytes();
    let act = ty.activation_type();
    let act_blocks = blocks * ty.block_len() / act.block_len();
    assert!(
        a.len() >= act_blocks * act.block_bytes(),
        "activation row shorter than the weight row"
    );
    assert!(
        tier.is_supported(),
        "vec_dot on the {tier} tier, which this CPU lacks"
    );
    match tier {
        Tier::Avx2 | Tier::Avx512 => {
            // x86 has row products for the float types only: it multiplies the quantized types
            // in tiles (`tile_kernel`), so one of their rows (tests ask) takes the scalar
            // reference below.
            #[cfg(target_arch = "x86_64")]
            // SAFETY: both tiers mean AVX2, FMA and F16C (checked above); the assert above covers
            // the bytes read.
            if let Some(dot) = unsafe { avx2::vec_dot(ty, w, a, blocks) } {
                return dot;
            }
        }
        Tier::Neon | Tier::Dotprod | Tier::I8mm => {
            #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
            // SAFETY: NEON is part of the target (the tiled tiers' row products are NEON's);
            // the assert above covers the bytes read.
            return unsafe { neon::vec_dot(ty, w, a, blocks) };
        }
        Tier::Scalar => {}
    }
    scalar::vec_dot(ty, w, a)
}

/// The product of one group of 8 interleaved rows with up to 4 activation rows, into `[row][8]`
/// outputs: `(type, tiles, activations, bytes per activation row, blocks, out)`. See
/// `avx2_x8::gemm_x8` for the contract.
pub(crate) type TileGemm = unsafe fn(WeightType, &[u8], &[u8], usize, usize, &mut [f32]);

/// The tile kernel `tier` runs for `ty`, or None where it multiplies GGUF's rows with
/// `vec_dot` (the float types, and the tiers without tiles).
pub(crate) fn tile_kernel(tier: Tier, ty: WeightType) -> Option<TileGemm> {
    if !interleave::supported(ty) {
        return None;
    }
    match tier {
        Tier::Scalar | Tier::Neon => None,
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => Some(avx2_x8::gemm_x8),
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => Some(avx512_x8::gemm_x8),
        #[cfg(not(target_arch = "x86_64"))]
        Tier::Avx2 | Tier::Avx512 => None,
        #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
        Tier::Dotprod => Some(dotprod_x8::gemm_x8),
        #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
        Tier::I8mm => Some(dotprod_x8::gemm_x8_i8mm),
        #[cfg(not(all(target_arch = "aarch64", target_endian = "little")))]
        Tier::Dotprod | Tier::I8mm => None,
    }
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}
