//! Rotary position embeddings, in the two layouts ggml knows.

use std::cell::RefCell;
use std::sync::Arc;

use crate::pool::{self, Disjoint};

/// Which elements of a head form a rotated pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Adjacent pairs `(x[2i], x[2i+1])` (ggml's "normal" mode, Llama GGUFs).
    Interleaved,
    /// Pairs half a head apart `(x[i], x[i + d/2])` (ggml's NEOX mode, Gemma).
    Halves,
}

/// One layer's rotary embedding. The angle is computed as ggml does,
/// `theta_i = freq_scale * (pos * base^(-2i/rope_dim) / factor_i)` with the power built by
/// repeated f32 multiplication, so that Ward's rotations equal llama.cpp's bit for bit where
/// the libm agrees. Only the first `rope_dim` dimensions of each head rotate.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    pub head_dim: usize,
    pub rope_dim: usize,
    pub base: f32,
    pub freq_scale: f32,
    /// Llama 3.1+: a divisor of each pair's frequency (`rope_dim / 2` of them).
    pub freq_factors: Option<Arc<[f32]>>,
    pub layout: RopeLayout,
}

thread_local! {
    /// A token's cosines and sines, per thread, kept so that a decode step allocates nothing.
    static COS_SIN: RefCell<Vec<(f32, f32)>> = const { RefCell::new(Vec::new()) };
}

impl Rope {
    /// Rotate each head of `x` (laid out `[token][head][head_dim]`) in place; token `t` sits at
    /// position `start_pos + t`.
    pub fn rotate(&self, x: &mut [f32], n_head: usize, start_pos: usize) {
        self.rotate_both(x, n_head, &mut [], 0, start_pos);
    }

    /// Rotate the queries `q` (`[token][n_head][head_dim]`) and the keys `k`
    /// (`[token][n_kv_head][head_dim]`) in place: one pass, each token's sines and cosines
    /// computed once for both.
    pub fn rotate_both(
        &self,
        q: &mut [f32],
        n_head: usize,
        k: &mut [f32],
        n_kv_head: usize,
        start_pos: usize,
    ) {
        let (hd, half) = (self.head_dim, self.rope_dim / 2);
        assert!(
            self.rope_dim <= hd && self.rope_dim.is_multiple_of(2),
            "rope: bad rope_dim"
        );
        let factors = self.freq_factors.as_deref();
        assert!(
            factors.is_none_or(|f| f.len() == half),
            "rope: one frequency factor per pair"
        );
        let (q_len, k_len) = (n_head * hd, n_kv_head * hd);
        let tokens = q.len() / q_len.max(1);
        assert!(
            q.len() == tokens * q_len && k.len() == tokens * k_len,
            "rope: shape mismatch"
        );
        let theta_scale = self.base.powf(-2.0 / self.rope_dim as f32);
        // Pair i of every head of `x`, rotated by (cos, sin).
        let turn = |x: &mut [f32], cos_sin: &[(f32, f32)]| {
            for head in x.chunks_exact_mut(hd) {
                for (i, &(c, s)) in cos_sin.iter().enumerate() {
                    let (a, b) = match self.layout {
                        RopeLayout::Interleaved => (2 * i, 2 * i + 1),
                        RopeLayout::Halves => (i, i + half),
                    };
                    let (x0, x1) = (head[a], head[b]);
                    (head[a], head[b]) = (x0 * c - x1 * s, x0 * s + x1 * c);
                }
            }
        };
        let (q_out, k_out) = (Disjoint::new(q), Disjoint::new(k));
        // Tokens spread over the pool: a prefill's sines and cosines are most of the work.
        let per_chunk = tokens.div_ceil(4 * pool::global().threads()).max(4);
        pool::global().for_each_range(tokens, per_chunk, |range| {
            COS_SIN.with_borrow_mut(|cos_sin| {
                cos_sin.resize(half, (0.0, 0.0));
                for t in range {
                    let mut theta = (start_pos + t) as f32;
                    for (i, cs) in cos_sin.iter_mut().enumerate() {
                        let angle = match factors {
                            Some(f) => self.freq_scale * (theta / f[i]),
                            None => self.freq_scale * theta,
                        };
                        *cs = (angle.cos(), angle.sin());
                        theta *= theta_scale;
                    }
                    // SAFETY: token t's rows belong to this range only.
                    unsafe {
                        turn(q_out.slice(t * q_len..(t + 1) * q_len), cos_sin);
                        turn(k_out.slice(t * k_len..(t + 1) * k_len), cos_sin);
                    }
                }
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rope(head_dim: usize, base: f32, layout: RopeLayout) -> Rope {
        Rope {
            head_dim,
            rope_dim: head_dim,
            base,
            freq_scale: 1.0,
            freq_factors: None,
            layout,
        }
    }

    #[test]
    fn rotating_queries_and_keys_together_equals_rotating_each() {
        for layout in [RopeLayout::Interleaved, RopeLayout::Halves] {
            let r = Rope {
                head_dim: 16,
                rope_dim: 12,
                base: 500.0,
                freq_scale: 0.5,
                freq_factors: None,
                layout,
            };
            let (tokens, n_head, n_kv) = (37, 4, 2);
            let q: Vec<f32> = (0..tokens * n_head * 16)
                .map(|i| (i as f32 * 0.37).sin())
                .collect();
            let k: Vec<f32> = (0..tokens * n_kv * 16)
                .map(|i| (i as f32 * 0.11).cos())
                .collect();
            let (mut q_both, mut k_both) = (q.clone(), k.clone());
            r.rotate_both(&mut q_both, n_head, &mut k_both, n_kv, 5);
            let (mut q_alone, mut k_alone) = (q.clone(), k.clone());
            r.rotate(&mut q_alone, n_head, 5);
            r.rotate(&mut k_alone, n_kv, 5);
            assert_eq!(q_both, q_alone);
            assert_eq!(k_both, k_alone);
        }
    }

    #[test]
    fn frequency_factors_divide_each_pairs_angle() {
        // A pair whose factor is k turns as a pair without factors at position pos / k.
        for layout in [RopeLayout::Interleaved, RopeLayout::Halves] {
            let factors: Arc<[f32]> = vec![1.0, 2.0, 4.0, 8.0].into();
            let with = Rope {
                freq_factors: Some(factors.clone()),
                ..rope(8, 10_000.0, layout)
            };
            let x: Vec<f32> = (0..8).map(|i| (i as f32 * 0.9).sin()).collect();
            let mut rotated = x.clone();
            with.rotate(&mut rotated, 1, 8);
            let pair = |i: usize| match layout {
                RopeLayout::Interleaved => (2 * i, 2 * i + 1),
                RopeLayout::Halves => (i, i + 4),
            };
            for (i, &k) in factors.iter().enumerate() {
                let mut plain = x.clone();
                rope(8, 10_000.0, layout).rotate(&mut plain, 1, 8 / k as usize);
                let (a, b) = pair(i);
                assert!((rotated[a] - plain[a]).abs() < 1e-6, "pair {i}");
                assert!((rotated[b] - plain[b]).abs() < 1e-6, "pair {i}");
            }
        }
    }

    #[test]
    fn position_zero_is_identity() {
        let orig: Vec<f32> = (0..16).map(|i| i as f32).collect();
        for layout in [RopeLayout::Interleaved, RopeLayout::Halves] {
            let mut x = orig.clone();
            rope(8, 10_000.0, layout).rotate(&mut x, 2, 0);
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
            rope(8, 100.0, RopeLayout::Halves).rotate(&mut a, 1, pq);
            rope(8, 100.0, RopeLayout::Halves).rotate(&mut b, 1, pk);
            a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>()
        };
        assert!((dot_at(5, 2) - dot_at(13, 10)).abs() < 1e-4);
    }
}
