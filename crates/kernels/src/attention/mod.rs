//! Causal attention over an F16 KV cache, with grouped-query heads and optional sliding window.
//!
//! The cache is laid out `[position][kv_head][head_dim]` so that appending a token is a plain
//! append. Each query head `h` reads KV head `h / (n_head / n_kv_head)`; all the query heads
//! of a group are computed together, so each cached K/V row is read once for them. No T×T mask
//! is built: the causal limit and the window are loop bounds.
//!
//! Work is spread over the kernel pool: over (token, KV head) pairs when there are enough of
//! them (prefill), else over chunks of the cached positions (decode). Either way the arithmetic
//! is the same — scores per position, one softmax over the row, V summed per fixed chunk of
//! `KV_CHUNK` positions and the chunk sums added in order — so a token's result does not
//! depend on how the work was split or what else was in the batch.
//!
//! Matching llama.cpp's CPU path, the query is rounded to f16 before `q·k` and the softmax
//! weights are rounded to f16 before they multiply V; sums are in f32.

use half::f16;

use crate::pool;

mod rows;

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

/// Cached positions summed together before their sum joins the total (the unit of the decode
/// split, fixed so results do not depend on the thread count).
const KV_CHUNK: usize = 256;

/// Attention for `n_tok` query tokens at positions `start_pos..start_pos + n_tok`, whose keys and
/// values (with all earlier ones) are already in `k_cache`/`v_cache`.
///
/// `q` is `[n_tok][n_head][head_dim]`, `out` the same shape.
pub fn attention(
    q: &[f32],
    k_cache: &[f16],
    v_cache: &[f16],
    start_pos: usize,
    shape: &AttnShape,
    out: &mut [f32],
) {
    let s = *shape;
    assert!(
        s.n_kv_head > 0 && s.n_head.is_multiple_of(s.n_kv_head),
        "attention: n_head must be a multiple of n_kv_head"
    );
    let row = s.n_head * s.head_dim;
    let n_tok = q.len() / row;
    assert!(
        q.len() == n_tok * row && out.len() == q.len(),
        "attention: q/out shape mismatch"
    );
    assert!(
        k_cache.len() >= (start_pos + n_tok) * s.n_kv_head * s.head_dim,
        "attention: cache shorter than the queries"
    );
    assert_eq!(
        k_cache.len(),
        v_cache.len(),
        "attention: K and V caches differ"
    );
    let group_len = s.n_head / s.n_kv_head * s.head_dim;
    let pool = pool::global();
    let job = |task: usize| Task {
        q: &q[task * group_len..][..group_len],
        pos: start_pos + task / s.n_kv_head,
        kv_head: task % s.n_kv_head,
        k_cache,
        v_cache,
        shape: s,
    };
    // Split over (token, KV head) pairs when there are enough of them or each is short (one
    // chunk of positions); else over the positions of each pair in turn.
    let longest = s.window.unwrap_or(usize::MAX).min(start_pos + n_tok);
    if n_tok * s.n_kv_head >= 2 * pool.threads() || longest <= KV_CHUNK {
        // Each (token, KV head) pair owns its group's slice of `out`.
        pool.for_each_chunk(out, group_len, |offset, o| {
            job(offset / group_len).run(o, false)
        });
    } else {
        for (task, o) in out.chunks_exact_mut(group_len).enumerate() {
            job(task).run(o, true);
        }
    }
}

/// One query token's heads of one KV group.
struct Task<'a> {
    q: &'a [f32],
    pos: usize,
    kv_head: usize,
    k_cache: &'a [f16],
    v_cache: &'a [f16],
    shape: AttnShape,
}

impl<'a> Task<'a> {
    fn run(&self, out: &mut [f32], parallel: bool) {
        let s = &self.shape;
        let (hd, group) = (s.head_dim, s.n_head / s.n_kv_head);
        let first = s.window.map_or(0, |w| (self.pos + 1).saturating_sub(w));
        let n_vis = self.pos + 1 - first;
        let rows = |cache| rows::Rows {
            cache,
            stride: s.n_kv_head * hd,
            offset: self.kv_head * hd,
            head_dim: hd,
        };
        let (k, v) = (rows(self.k_cache), rows(self.v_cache));
        let q16: Vec<f32> = self.q.iter().map(|&x| f16::from_f32(x).to_f32()).collect();
        // Scores `[position][head]`, so a chunk of positions is one contiguous piece.
        let mut scores = vec![0.0f32; n_vis * group];
        let score_chunk = |offset: usize, sc: &mut [f32]| {
            rows::scores(&q16, &k, first + offset / group, s.scale, sc);
        };
        if parallel {
            pool::global().for_each_chunk(&mut scores, KV_CHUNK * group, score_chunk);
        } else {
            score_chunk(0, &mut scores);
        }
        softmax_columns(&mut scores, group);
        // V summed per chunk of positions, then the chunk sums added in order.
        let n_chunks = n_vis.div_ceil(KV_CHUNK);
        let mut partial = vec![0.0f32; n_chunks * group * hd];
        let sum_chunk = |offset: usize, acc: &mut [f32]| {
            let c = offset / (group * hd);
            let js = c * KV_CHUNK..((c + 1) * KV_CHUNK).min(n_vis);
            rows::weighted_sum(
                &scores[js.start * group..js.end * group],
                &v,
                first + js.start,
                acc,
            );
        };
        if parallel && n_chunks > 1 {
            pool::global().for_each_chunk(&mut partial, group * hd, sum_chunk);
        } else {
            for (c, acc) in partial.chunks_exact_mut(group * hd).enumerate() {
                sum_chunk(c * group * hd, acc);
            }
        }
        out.fill(0.0);
        for chunk in partial.chunks_exact(group * hd) {
            for (o, &p) in out.iter_mut().zip(chunk) {
                *o += p;
            }
        }
    }
}

/// Softmax down each of the `group` columns of `scores` (`[position][group]`), the weights
/// rounded to f16 as llama.cpp multiplies them with V in f16.
fn softmax_columns(scores: &mut [f32], group: usize) {
    for g in 0..group {
        let max = scores
            .iter()
            .skip(g)
            .step_by(group)
            .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0.0f32;
        for v in scores.iter_mut().skip(g).step_by(group) {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        for v in scores.iter_mut().skip(g).step_by(group) {
            *v = f16::from_f32(*v * inv).to_f32();
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

    #[test]
    fn long_contexts_match_naive_and_decode_equals_prefill_bit_for_bit() {
        let mut seed = 11u64;
        let (nh, nkv, hd, total) = (6usize, 2usize, 24usize, 600usize);
        for window in [None, Some(300)] {
            let shape = AttnShape {
                n_head: nh,
                n_kv_head: nkv,
                head_dim: hd,
                scale: 0.3,
                window,
            };
            let r = |x: f32| f16::from_f32(x).to_f32();
            let k: Vec<f32> = (0..total * nkv * hd).map(|_| r(lcg(&mut seed))).collect();
            let v: Vec<f32> = (0..total * nkv * hd).map(|_| r(lcg(&mut seed))).collect();
            let q: Vec<f32> = (0..total * nh * hd).map(|_| r(lcg(&mut seed))).collect();
            let k16: Vec<f16> = k.iter().map(|&x| f16::from_f32(x)).collect();
            let v16: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
            // The whole sequence at once: split over (token, KV head) pairs.
            let mut prefill = vec![0.0; q.len()];
            attention(&q, &k16, &v16, 0, &shape, &mut prefill);
            let want = naive(&q, &k, &v, 0, &shape);
            for (a, b) in prefill.iter().zip(&want) {
                assert!((a - b).abs() < 2e-3, "{a} vs {b} window {window:?}");
            }
            // Single tokens: split over chunks of positions; the same bits.
            let row = nh * hd;
            for pos in [0, 255, 256, 511, 599] {
                let cache = (pos + 1) * nkv * hd;
                let mut one = vec![0.0; row];
                let qs = &q[pos * row..][..row];
                attention(qs, &k16[..cache], &v16[..cache], pos, &shape, &mut one);
                assert_eq!(one, prefill[pos * row..][..row], "position {pos}");
            }
        }
    }
}
