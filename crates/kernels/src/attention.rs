//! Causal attention over an F16 KV cache, with grouped-query heads and optional sliding window.
//!
//! The cache is laid out `[position][kv_head][head_dim]` so that appending a token is a plain
//! append. Each query head `h` reads KV head `h / (n_head / n_kv_head)`. No T×T mask is built:
//! the causal limit and the window are loop bounds.

use half::f16;
use half::slice::HalfFloatSliceExt;

#[derive(Debug, Clone, Copy)]
pub struct AttnShape {
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    /// Multiplier applied to `q·k` before the softmax.
    pub scale: f32,
    /// A query at position `p` sees keys at `p - window < j <= p`; `None` sees all of `j <= p`.
    pub window: Option<usize>,
}

/// Attention for `n_tok` query tokens at positions `start_pos..start_pos + n_tok`, whose keys and
/// values (with all earlier ones) are already in `k_cache`/`v_cache`.
///
/// `q` is `[n_tok][n_head][head_dim]`, `out` the same shape. Matching llama.cpp's CPU path, the
/// query is rounded to f16 before `q·k` and the softmax weights are rounded to f16 before they
/// multiply V; sums are in f32.
pub fn attention(
    q: &[f32],
    k_cache: &[f16],
    v_cache: &[f16],
    start_pos: usize,
    shape: &AttnShape,
    out: &mut [f32],
) {
    let AttnShape {
        n_head,
        n_kv_head,
        head_dim: hd,
        scale,
        window,
    } = *shape;
    assert!(
        n_head % n_kv_head == 0,
        "attention: n_head must be a multiple of n_kv_head"
    );
    let row = n_head * hd;
    let n_tok = q.len() / row;
    let kv_row = n_kv_head * hd;
    assert!(
        q.len() == n_tok * row && out.len() == q.len(),
        "attention: q/out shape mismatch"
    );
    assert!(
        k_cache.len() >= (start_pos + n_tok) * kv_row,
        "attention: cache shorter than the queries"
    );
    assert_eq!(
        k_cache.len(),
        v_cache.len(),
        "attention: K and V caches differ"
    );
    let group = n_head / n_kv_head;
    // Per KV head: the group's queries (f16-rounded), their scores, and one K or V row in f32.
    // Each cached row is converted once for all the query heads that share it.
    let mut q16 = vec![0.0f32; group * hd];
    let mut scores: Vec<f32> = Vec::new();
    let mut row_f32 = vec![0.0f32; hd];
    let mut acc = vec![0.0f32; group * hd];
    for t in 0..n_tok {
        let pos = start_pos + t;
        let first = match window {
            Some(w) => (pos + 1).saturating_sub(w),
            None => 0,
        };
        let n_vis = pos + 1 - first;
        for kvh in 0..n_kv_head {
            let heads = t * row + kvh * group * hd..t * row + (kvh + 1) * group * hd;
            for (d, &s) in q16.iter_mut().zip(&q[heads.clone()]) {
                *d = f16::from_f32(s).to_f32();
            }
            let cached = |cache: &[f16], j: usize, dst: &mut [f32]| {
                cache[j * kv_row + kvh * hd..j * kv_row + (kvh + 1) * hd].convert_to_f32_slice(dst);
            };
            scores.clear();
            scores.resize(group * n_vis, 0.0);
            for (jj, j) in (first..=pos).enumerate() {
                cached(k_cache, j, &mut row_f32);
                for (g, qg) in q16.chunks_exact(hd).enumerate() {
                    let dot: f32 = qg.iter().zip(&row_f32).map(|(&a, &b)| a * b).sum();
                    scores[g * n_vis + jj] = dot * scale;
                }
            }
            for sg in scores.chunks_exact_mut(n_vis) {
                let max = sg.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0f32;
                for s in sg.iter_mut() {
                    *s = (*s - max).exp();
                    sum += *s;
                }
                let inv = 1.0 / sum;
                for s in sg.iter_mut() {
                    *s = f16::from_f32(*s * inv).to_f32();
                }
            }
            acc.fill(0.0);
            for (jj, j) in (first..=pos).enumerate() {
                cached(v_cache, j, &mut row_f32);
                for (g, ag) in acc.chunks_exact_mut(hd).enumerate() {
                    let p = scores[g * n_vis + jj];
                    for (a, &v) in ag.iter_mut().zip(&row_f32) {
                        *a += p * v;
                    }
                }
            }
            out[heads].copy_from_slice(&acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive f64 attention with an explicit mask, for comparison.
    fn naive(q: &[f32], k: &[f32], v: &[f32], start: usize, s: &AttnShape) -> Vec<f32> {
        let (nh, nkv, hd) = (s.n_head, s.n_kv_head, s.head_dim);
        let n_tok = q.len() / (nh * hd);
        let mut out = vec![0.0f32; q.len()];
        for t in 0..n_tok {
            let pos = start + t;
            for h in 0..nh {
                let kvh = h / (nh / nkv);
                let visible: Vec<usize> = (0..=pos)
                    .filter(|&j| s.window.is_none_or(|w| pos - j < w))
                    .collect();
                let logits: Vec<f64> = visible
                    .iter()
                    .map(|&j| {
                        (0..hd)
                            .map(|d| {
                                q[(t * nh + h) * hd + d] as f64 * k[(j * nkv + kvh) * hd + d] as f64
                            })
                            .sum::<f64>()
                            * s.scale as f64
                    })
                    .collect();
                let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = logits.iter().map(|l| (l - m).exp()).sum();
                for d in 0..hd {
                    out[(t * nh + h) * hd + d] = visible
                        .iter()
                        .zip(&logits)
                        .map(|(&j, l)| (l - m).exp() / z * v[(j * nkv + kvh) * hd + d] as f64)
                        .sum::<f64>() as f32;
                }
            }
        }
        out
    }

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    #[test]
    fn matches_naive_for_gqa_windows_and_odd_shapes() {
        let mut seed = 7u64;
        for &(nh, nkv, hd, start, n_tok, window) in &[
            (4usize, 1usize, 16usize, 0usize, 5usize, None),
            (9, 3, 8, 3, 7, None),
            (6, 2, 6, 10, 9, Some(4usize)),
            (2, 2, 4, 0, 13, Some(1)),
            (8, 4, 10, 20, 1, Some(7)),
        ] {
            let total = start + n_tok;
            // Round inputs to f16 so the comparison isolates the algorithm from input rounding.
            let r = |x: f32| f16::from_f32(x).to_f32();
            let k: Vec<f32> = (0..total * nkv * hd).map(|_| r(lcg(&mut seed))).collect();
            let v: Vec<f32> = (0..total * nkv * hd).map(|_| r(lcg(&mut seed))).collect();
            let q: Vec<f32> = (0..n_tok * nh * hd)
                .map(|_| r(lcg(&mut seed) * 2.0))
                .collect();
            let shape = AttnShape {
                n_head: nh,
                n_kv_head: nkv,
                head_dim: hd,
                scale: 0.5,
                window,
            };
            let k16: Vec<f16> = k.iter().map(|&x| f16::from_f32(x)).collect();
            let v16: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
            let mut out = vec![0.0; q.len()];
            attention(&q, &k16, &v16, start, &shape, &mut out);
            let want = naive(&q, &k, &v, start, &shape);
            for (a, b) in out.iter().zip(&want) {
                assert!(
                    (a - b).abs() < 2e-3,
                    "{a} vs {b} for {nh}/{nkv}/{hd} window {window:?}"
                );
            }
        }
    }
}
