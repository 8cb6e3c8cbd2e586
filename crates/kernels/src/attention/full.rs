//! Bidirectional attention over whole sequences whose queries, keys and values are rows in
//! memory, as an encoder (BERT) computes it: every token attends to every token of its own
//! sequence, and nothing is cached (an encoder sees each input once). Grouped-query heads are
//! allowed. Work is spread over the kernel pool by query rows; each row's arithmetic is the same
//! however the rows are split, so a sequence's result does not depend on what else is in the
//! batch.

use crate::exp::exp;
use crate::pool;

#[derive(Debug, Clone, Copy)]
pub struct FullShape {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Multiplies `q·k` (usually `1/√head_dim`).
    pub scale: f32,
}

/// Query rows per pool task.
const ROWS_PER_TASK: usize = 4;

/// `out[t] = softmax(q[t]·Kᵀ · scale) · V` for every token `t` of every sequence; `seq_lens`
/// cut the rows into sequences, one after another. `q` and `out` are `[n_tok][n_head × head_dim]`,
/// `k` and `v` `[n_tok][n_head_kv × head_dim]`.
pub fn bidirectional(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    seq_lens: &[usize],
    shape: &FullShape,
    out: &mut [f32],
) {
    let FullShape {
        n_head,
        n_head_kv,
        head_dim: hd,
        ..
    } = *shape;
    let (q_row, kv_row) = (n_head * hd, n_head_kv * hd);
    let n_tok: usize = seq_lens.iter().sum();
    assert!(
        n_head_kv > 0
            && n_head.is_multiple_of(n_head_kv)
            && q.len() == n_tok * q_row
            && out.len() == q.len()
            && k.len() == n_tok * kv_row
            && v.len() == k.len(),
        "bidirectional attention: shape mismatch"
    );
    // Where each token's sequence starts, so a task knows which keys its rows see.
    let mut starts = Vec::with_capacity(n_tok);
    let mut at = 0;
    for &len in seq_lens {
        starts.extend(std::iter::repeat_n((at, len), len));
        at += len;
    }
    pool::global().for_each_chunk(out, ROWS_PER_TASK * q_row, |offset, rows| {
        let mut weights = Vec::new();
        for (r, row_out) in rows.chunks_exact_mut(q_row).enumerate() {
            let t = offset / q_row + r;
            let (start, len) = starts[t];
            let keys = &k[start * kv_row..(start + len) * kv_row];
            let values = &v[start * kv_row..(start + len) * kv_row];
            for h in 0..n_head {
                let kvh = h / (n_head / n_head_kv);
                let qh = &q[t * q_row + h * hd..][..hd];
                weights.clear();
                weights.extend(
                    keys.chunks_exact(kv_row)
                        .map(|key| dot(qh, &key[kvh * hd..][..hd]) * shape.scale),
                );
                let max = weights.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for w in weights.iter_mut() {
                    *w = exp(*w - max);
                    sum += *w;
                }
                let oh = &mut row_out[h * hd..][..hd];
                oh.fill(0.0);
                for (&w, value) in weights.iter().zip(values.chunks_exact(kv_row)) {
                    let w = w / sum;
                    for (o, &x) in oh.iter_mut().zip(&value[kvh * hd..][..hd]) {
                        *o += w * x;
                    }
                }
            }
        }
    });
}

/// `a·b` in eight lanes (which the compiler vectorises), added up in a fixed order.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, in f64.
    fn reference(q: &[f32], k: &[f32], v: &[f32], seq_lens: &[usize], s: &FullShape) -> Vec<f32> {
        let (q_row, kv_row) = (s.n_head * s.head_dim, s.n_head_kv * s.head_dim);
        let mut out = vec![0.0; q.len()];
        let mut start = 0;
        for &len in seq_lens {
            for t in start..start + len {
                for h in 0..s.n_head {
                    let kvh = h / (s.n_head / s.n_head_kv);
                    let scores: Vec<f64> = (start..start + len)
                        .map(|j| {
                            (0..s.head_dim)
                                .map(|d| {
                                    q[t * q_row + h * s.head_dim + d] as f64
                                        * k[j * kv_row + kvh * s.head_dim + d] as f64
                                })
                                .sum::<f64>()
                                * s.scale as f64
                        })
                        .collect();
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let sum: f64 = exps.iter().sum();
                    for d in 0..s.head_dim {
                        let o: f64 = (start..start + len)
                            .zip(&exps)
                            .map(|(j, e)| e / sum * v[j * kv_row + kvh * s.head_dim + d] as f64)
                            .sum();
                        out[t * q_row + h * s.head_dim + d] = o as f32;
                    }
                }
            }
            start += len;
        }
        out
    }

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
            })
            .collect()
    }

    #[test]
    fn matches_the_definition_for_odd_sizes_and_groups() {
        for (n_head, n_head_kv, head_dim) in [(12, 12, 32), (8, 2, 20), (4, 1, 64), (3, 3, 7)] {
            for seq_lens in [vec![1], vec![7], vec![65, 3], vec![130, 1, 17]] {
                let n_tok: usize = seq_lens.iter().sum();
                let shape = FullShape {
                    n_head,
                    n_head_kv,
                    head_dim,
                    scale: 1.0 / (head_dim as f32).sqrt(),
                };
                let q = random(n_tok * n_head * head_dim, 1);
                let k = random(n_tok * n_head_kv * head_dim, 2);
                let v = random(n_tok * n_head_kv * head_dim, 3);
                let mut out = vec![0.0; q.len()];
                bidirectional(&q, &k, &v, &seq_lens, &shape, &mut out);
                let want = reference(&q, &k, &v, &seq_lens, &shape);
                for (i, (g, w)) in out.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() < 2e-5 * (1.0 + w.abs()),
                        "{n_head}/{n_head_kv}x{head_dim} {seq_lens:?} [{i}]: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_sequence_is_the_same_alone_and_in_a_batch() {
        let shape = FullShape {
            n_head: 4,
            n_head_kv: 2,
            head_dim: 16,
            scale: 0.25,
        };
        let row = 4 * 16;
        let (q, k, v) = (random(40 * row, 4), random(40 * 32, 5), random(40 * 32, 6));
        let mut batch = vec![0.0; q.len()];
        bidirectional(&q, &k, &v, &[9, 31], &shape, &mut batch);
        let mut alone = vec![0.0; 31 * row];
        bidirectional(
            &q[9 * row..],
            &k[9 * 32..],
            &v[9 * 32..],
            &[31],
            &shape,
            &mut alone,
        );
        assert_eq!(&batch[9 * row..], &alone[..]);
    }
}
