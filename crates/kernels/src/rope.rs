//! Rotary position embeddings, in the two layouts ggml knows.

use crate::pool;

/// Which elements of a head form a rotated pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Adjacent pairs `(x[2i], x[2i+1])` (ggml's "normal" mode, Llama GGUFs).
    Interleaved,
    /// Pairs half a head apart `(x[i], x[i + d/2])` (ggml's NEOX mode, Gemma).
    Halves,
}

/// Rotate each head of `x` (laid out `[token][head][head_dim]`) in place; token `t` sits at
/// position `start_pos + t`. Only the first `rope_dim` dimensions of each head rotate. The angle
/// is computed as ggml does, `theta_i = pos * scale * base^(-2i/rope_dim)` with the power built
/// by repeated f32 multiplication, so that Ward's rotations equal llama.cpp's bit for bit where
/// the libm agrees.
#[allow(clippy::too_many_arguments)]
pub fn rope_inplace(
    x: &mut [f32],
    n_head: usize,
    head_dim: usize,
    rope_dim: usize,
    start_pos: usize,
    base: f32,
    freq_scale: f32,
    layout: RopeLayout,
) {
    assert!(
        rope_dim <= head_dim && rope_dim.is_multiple_of(2),
        "rope: bad rope_dim"
    );
    assert_eq!(x.len() % (n_head * head_dim), 0, "rope: shape mismatch");
    let theta_scale = base.powf(-2.0 / rope_dim as f32);
    let half = rope_dim / 2;
    let token_len = n_head * head_dim;
    // Tokens spread over the pool: a prefill's sines and cosines are most of the work.
    let tokens = x.len() / token_len;
    let per_chunk = tokens.div_ceil(4 * pool::global().threads()).max(4);
    pool::global().for_each_chunk(x, per_chunk * token_len, |offset, chunk| {
        let mut cos_sin = vec![(0.0f32, 0.0f32); half];
        for (t, token) in chunk.chunks_exact_mut(token_len).enumerate() {
            let mut theta = (start_pos + offset / token_len + t) as f32 * freq_scale;
            for cs in cos_sin.iter_mut() {
                *cs = (theta.cos(), theta.sin());
                theta *= theta_scale;
            }
            for head in token.chunks_exact_mut(head_dim) {
                for (i, &(c, s)) in cos_sin.iter().enumerate() {
                    let (a, b) = match layout {
                        RopeLayout::Interleaved => (2 * i, 2 * i + 1),
                        RopeLayout::Halves => (i, i + half),
                    };
                    let (x0, x1) = (head[a], head[b]);
                    head[a] = x0 * c - x1 * s;
                    head[b] = x0 * s + x1 * c;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_zero_is_identity() {
        let orig: Vec<f32> = (0..16).map(|i| i as f32).collect();
        for layout in [RopeLayout::Interleaved, RopeLayout::Halves] {
            let mut x = orig.clone();
            rope_inplace(&mut x, 2, 8, 8, 0, 10_000.0, 1.0, layout);
            assert_eq!(x, orig);
        }
    }

    #[test]
    fn rotation_preserves_pair_norms_and_relative_angle() {
        // Dot products of rotated q and k depend only on the distance between positions.
        let q: Vec<f32> = (0..8).map(|i| (i as f32 * 0.7).sin()).collect();
        let k: Vec<f32> = (0..8).map(|i| (i as f32 * 1.3).cos()).collect();
        let dot_at = |pq: usize, pk: usize| {
            let (mut a, mut b) = (q.clone(), k.clone());
            rope_inplace(&mut a, 1, 8, 8, pq, 100.0, 1.0, RopeLayout::Halves);
            rope_inplace(&mut b, 1, 8, 8, pk, 100.0, 1.0, RopeLayout::Halves);
            a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>()
        };
        assert!((dot_at(5, 2) - dot_at(13, 10)).abs() < 1e-4);
    }
}
