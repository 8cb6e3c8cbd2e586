//! The reference dot product: both rows turned back into floats block by block (`dequant.rs`)
//! and multiplied in plain loops. It is the definition the SIMD tiers are tested against, and
//! the fallback on CPUs without them.

use super::{dequantize_activations, dequantize_row, WeightType, QK_K};

pub fn vec_dot(ty: WeightType, w: &[u8], a: &[u8]) -> f32 {
    let act = ty.activation_type();
    // One weight block is a whole number of activation blocks (at most 256 values).
    let values = ty.block_len();
    let act_bytes = values / act.block_len() * act.block_bytes();
    let (mut wf, mut af) = ([0.0f32; QK_K], [0.0f32; QK_K]);
    let mut sum = 0.0f32;
    for (wb, ab) in w
        .chunks_exact(ty.block_bytes())
        .zip(a.chunks_exact(act_bytes))
    {
        dequantize_row(ty, wb, &mut wf[..values]);
        dequantize_activations(act, ab, &mut af[..values]);
        sum += wf[..values]
            .iter()
            .zip(&af[..values])
            .map(|(x, y)| x * y)
            .sum::<f32>();
    }
    sum
}
