//! Causal attention over an F16 KV cache, with grouped-query heads and optional sliding window.
//!
//! The cache is a sequence of blocks of `KV_BLOCK` positions, each holding one part per KV
//! head: its keys as columns, `[head_dim][KV_BLOCK]`, its values as rows, `[KV_BLOCK][head_dim]`
//! (see `rows.rs`). Each query head `h` reads KV head `h / (n_head / n_kv_head)`; all the query
//! heads of a group are computed together, so each cached key and value is read once for them. No T×T mask is built: the causal limit and the
//! window are loop bounds.
//!
//! The visible positions of each (token, KV head) pair are cut into chunks of `KV_CHUNK`
//! counted from the first visible one. A chunk is computed in two passes (see `softmax.rs`):
//! its scores, their maximum and `exp(s - m)` with their sum; then, once the row's maximum and
//! sum are known from all its chunks, its normalised weights and their weighted sum of V. The
//! rows' chunk sums are added in order. Work is spread over the kernel pool by (token, KV head)
//! pairs when there are enough of them (prefill), else by (pair, chunk) (decode), each pass in
//! one dispatch. The arithmetic is the same either way, so a token's result does not depend on
//! how the work was split or what else was in the batch: decode of a token equals its prefill
//! row bit for bit.
//!
//! Matching llama.cpp's CPU path, the query is rounded to f16 before `q·k` and the normalised
//! softmax weights are rounded to f16 before they multiply V; sums are in f32.

use std::cell::RefCell;

use half::f16;

use crate::exp::exp;
use crate::pool;

pub mod full;
mod rows;
mod softmax;

/// Positions per block of the KV cache: the unit in which caches are allocated, shared between
/// sequences (a prefix cache reuses whole blocks) and laid out for reading. A block holds
/// `[kv_head][KV_BLOCK × head_dim]`: a head's keys (or values) in one piece, so a decode step
/// reads them as one stream (rows interleaved with the other heads' were read at a fifth of the
/// memory's speed, `attention/decode-from-memory` in the benches). Small enough that sharing
/// is fine-grained and a sequence wastes little of its last block; the rows further ahead, in
/// whichever block they are, are prefetched by position (see `rows.rs`).
pub const KV_BLOCK: usize = 64;

/// Values (of keys, or of values) in one block of a cache.
pub fn kv_block_len(n_kv_head: usize, head_dim: usize) -> usize {
    KV_BLOCK * n_kv_head * head_dim
}

/// Blocks needed to hold `positions` positions.
pub fn kv_blocks_for(positions: usize) -> usize {
    positions.div_ceil(KV_BLOCK)
}

/// One layer's keys and values for one sequence, in a paged cache: `k` and `v` are pools of
/// blocks (`kv_block_len` values each) shared by any number of sequences, and `table` lists
/// the sequence's blocks in order, so position `p` is in block `table[p / KV_BLOCK]`.
#[derive(Clone, Copy)]
pub struct PagedKv<'a> {
    pub k: &'a [f16],
    pub v: &'a [f16],
    pub table: &'a [u32],
}

/// `k` (`[n_tok][n_kv_head][head_dim]`, the keys of positions `start_pos..`) rounded to f16
/// into their places in a pool of keys, in the blocks `table` gives for them (it must cover
/// those positions).
pub fn write_keys(
    pool: &mut [f16],
    table: &[u32],
    k: &[f32],
    start_pos: usize,
    n_kv_head: usize,
    head_dim: usize,
) {
    write(pool, table, k, start_pos, n_kv_head, head_dim, rows::key_at);
}

/// `write_keys` for values, into a pool of values.
pub fn write_values(
    pool: &mut [f16],
    table: &[u32],
    v: &[f32],
    start_pos: usize,
    n_kv_head: usize,
    head_dim: usize,
) {
    write(
        pool,
        table,
        v,
        start_pos,
        n_kv_head,
        head_dim,
        rows::value_at,
    );
}

/// `x` into `pool`, each head's value `d` at position `o` of a block at `at(o, d, head_dim)`
/// within the head's part of the block.
fn write(
    pool: &mut [f16],
    table: &[u32],
    x: &[f32],
    start_pos: usize,
    n_kv_head: usize,
    head_dim: usize,
    at: fn(usize, usize, usize) -> usize,
) {
    let head_part = KV_BLOCK * head_dim;
    for (i, row) in x.chunks_exact(head_dim).enumerate() {
        let pos = start_pos + i / n_kv_head;
        let block = table[pos / KV_BLOCK] as usize;
        let part = &mut pool[(block * n_kv_head + i % n_kv_head) * head_part..][..head_part];
        for (d, &v) in row.iter().enumerate() {
            part[at(pos % KV_BLOCK, d, head_dim)] = f16::from_f32(v);
        }
    }
}

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

/// Positions whose scores are computed together (the unit of the decode split, fixed so results
/// do not depend on the thread count). Small enough that a decode step at a few hundred
/// positions has a chunk per thread, and that a chunk's rows stay in L1 between passes.
const KV_CHUNK: usize = 128;

thread_local! {
    /// Per-thread working memory (the rounded query; a pair's chunks in prefill), kept between
    /// calls so the decode loop does not allocate.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The calling thread's chunks of a decode split.
    static CHUNKS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Attention for `n_tok` query tokens at positions `start_pos..start_pos + n_tok`, whose keys and
/// values (with all earlier ones) are already in `kv`.
///
/// `q` is `[n_tok][n_head][head_dim]`, `out` the same shape.
pub fn attention(q: &[f32], kv: PagedKv, start_pos: usize, shape: &AttnShape, out: &mut [f32]) {
    let n_tok = q.len() / (shape.n_head * shape.head_dim).max(1);
    let queries = Queries {
        kv,
        start_pos,
        n_tok,
    };
    attention_batch(q, 1, |_| queries, shape, out);
}

/// One sequence's part of a batched attention: `n_tok` query tokens at positions
/// `start_pos..start_pos + n_tok`, whose keys and values (with all earlier ones) are already in
/// `kv`.
#[derive(Clone, Copy)]
pub struct Queries<'a> {
    pub kv: PagedKv<'a>,
    pub start_pos: usize,
    pub n_tok: usize,
}

/// `attention` for the query tokens of `n_seqs` sequences at once, `seq(i)` saying where
/// sequence `i`'s are; `q` and `out` hold all their tokens, sequence after sequence. One
/// dispatch over the pool for all of them (a batch of decode steps would otherwise wake the
/// threads twice per sequence and layer), and each token's result is the bits `attention`
/// gives it alone.
pub fn attention_batch<'a>(
    q: &[f32],
    n_seqs: usize,
    seq: impl Fn(usize) -> Queries<'a> + Sync,
    shape: &AttnShape,
    out: &mut [f32],
) {
    let s = *shape;
    assert!(
        s.n_kv_head > 0 && s.n_head.is_multiple_of(s.n_kv_head),
        "attention: n_head must be a multiple of n_kv_head"
    );
    let row = s.n_head * s.head_dim;
    let n_tok: usize = (0..n_seqs).map(|i| seq(i).n_tok).sum();
    assert!(
        q.len() == n_tok * row && out.len() == q.len(),
        "attention: q/out shape mismatch"
    );
    for Queries {
        kv,
        start_pos,
        n_tok,
    } in (0..n_seqs).map(&seq)
    {
        assert!(
            kv.table.len() >= kv_blocks_for(start_pos + n_tok),
            "attention: block table shorter than the queries"
        );
        assert_eq!(kv.k.len(), kv.v.len(), "attention: K and V pools differ");
        let n_blocks = kv.k.len() / kv_block_len(s.n_kv_head, s.head_dim);
        assert!(
            kv.table.iter().all(|&b| (b as usize) < n_blocks),
            "attention: block table points outside the pool"
        );
    }
    let group_len = s.n_head / s.n_kv_head * s.head_dim;
    if n_tok == 0 {
        return;
    }
    // Token t of the batch: its sequence's queries and its position.
    let token = |mut t: usize| {
        for queries in (0..n_seqs).map(&seq) {
            if t < queries.n_tok {
                return (queries, queries.start_pos + t);
            }
            t -= queries.n_tok;
        }
        unreachable!("token past the batch")
    };
    let pair = |p: usize| {
        let (queries, pos) = token(p / s.n_kv_head);
        Pair {
            q: &q[p * group_len..][..group_len],
            pos,
            kv_head: p % s.n_kv_head,
            kv: queries.kv,
            shape: s,
        }
    };
    let longest = (0..n_seqs)
        .map(|i| seq(i).start_pos + seq(i).n_tok)
        .max()
        .unwrap_or(0)
        .min(s.window.unwrap_or(usize::MAX));
    let pool = pool::global();
    let n_pairs = n_tok * s.n_kv_head;
    let chunk_len = pair(0).chunk_len();
    if n_pairs >= 2 * pool.threads() || longest <= KV_CHUNK {
        // Each pair owns its group's slice of `out` and runs both passes of its chunks.
        pool.for_each_chunk(out, group_len, |offset, o| {
            let p = pair(offset / group_len);
            SCRATCH.with_borrow_mut(|scratch| {
                let (chunks, q16) = grow(scratch, p.n_chunks() * chunk_len + group_len)
                    .split_at_mut(p.n_chunks() * chunk_len);
                for (c, chunk) in chunks.chunks_exact_mut(chunk_len).enumerate() {
                    p.exps(c, chunk, q16);
                }
                p.normalize(chunks);
                for (c, chunk) in chunks.chunks_exact_mut(chunk_len).enumerate() {
                    p.weighted_sum(c, chunk);
                }
                p.sum(chunks, o);
            });
        });
        return;
    }
    // Few pairs over long contexts (decode): every (token, chunk) is a task, which runs the
    // chunk of each of the token's pairs in turn (a block holds the KV heads' parts side by
    // side, so a task reads one stream of memory; a task per pair read at 80 % of the speed at
    // 6k positions), and each pass is one dispatch. Pair p's chunks are after those of the pairs before it in
    // the working memory.
    let token_chunks = |i: usize| pair(i * s.n_kv_head).n_chunks();
    // Task t: its token, chunk, and where the token's pairs' chunks start.
    let locate = |mut t: usize| {
        let mut first = 0;
        for i in 0..n_tok {
            let n = token_chunks(i);
            if t < n {
                return (i, t, first);
            }
            t -= n;
            first += n * s.n_kv_head;
        }
        unreachable!("task past the chunks of the tokens")
    };
    let token_chunk_count: usize = (0..n_tok).map(token_chunks).sum();
    // Too few of those to share out evenly (a few hundred positions): a task per head instead.
    let task_heads = if token_chunk_count >= 4 * pool.threads() {
        s.n_kv_head
    } else {
        1
    };
    let parts = s.n_kv_head / task_heads;
    let n_tasks = token_chunk_count * parts;
    // Consecutive tasks to a thread, so that what one prefetches ahead is its own next task's;
    // but enough handfuls to keep every thread busy.
    let per_range = (n_tasks / (4 * pool.threads())).clamp(1, 4);
    let each_chunk = |chunks: &mut [f32], f: &(dyn Fn(&Pair, usize, &mut [f32]) + Sync)| {
        let slots = pool::Disjoint::new(chunks);
        pool.for_each_range(n_tasks, per_range, |tasks| {
            for task in tasks {
                let (i, c, first) = locate(task / parts);
                let n = token_chunks(i);
                let part = task % parts;
                for h in part * task_heads..(part + 1) * task_heads {
                    let at = (first + h * n + c) * chunk_len;
                    // SAFETY: each (token, head, chunk) has its own slot, handed out once.
                    f(&pair(i * s.n_kv_head + h), c, unsafe {
                        slots.slice(at..at + chunk_len)
                    });
                }
            }
        });
    };
    let n_chunks = token_chunk_count * s.n_kv_head;
    CHUNKS.with_borrow_mut(|chunks| {
        let chunks = grow(chunks, n_chunks * chunk_len);
        each_chunk(chunks, &|p, c, chunk| {
            SCRATCH.with_borrow_mut(|q16| p.exps(c, chunk, grow(q16, group_len)));
        });
        let mut rest = &mut chunks[..];
        for p in (0..n_pairs).map(pair) {
            let (mine, others) = rest.split_at_mut(p.n_chunks() * chunk_len);
            p.normalize(mine);
            rest = others;
        }
        each_chunk(chunks, &|p, c, chunk| p.weighted_sum(c, chunk));
        let mut rest = &chunks[..];
        for (p, o) in (0..n_pairs).map(pair).zip(out.chunks_exact_mut(group_len)) {
            let (mine, others) = rest.split_at(p.n_chunks() * chunk_len);
            p.sum(mine, o);
            rest = others;
        }
    });
}

/// `buf` at least `len` long, returned as a slice of exactly `len`.
fn grow(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// One query token's heads of one KV group.
struct Pair<'a> {
    q: &'a [f32],
    pos: usize,
    kv_head: usize,
    kv: PagedKv<'a>,
    shape: AttnShape,
}

/// The parts of one chunk's working memory, `[m; group][l; group][scores; KV_CHUNK * group]
/// [acc; group * head_dim]`: the chunk's maximum score and sum of exponentials (after
/// `normalize`, the factor of its weights), its scores (then weights: `[group][positions]`),
/// its sum of V.
struct Chunk<'c> {
    m: &'c mut [f32],
    l: &'c mut [f32],
    scores: &'c mut [f32],
    acc: &'c mut [f32],
}

impl<'a> Pair<'a> {
    fn group(&self) -> usize {
        self.shape.n_head / self.shape.n_kv_head
    }

    fn first_visible(&self) -> usize {
        self.shape
            .window
            .map_or(0, |w| (self.pos + 1).saturating_sub(w))
    }

    fn n_chunks(&self) -> usize {
        (self.pos + 1 - self.first_visible()).div_ceil(KV_CHUNK)
    }

    /// First position and number of positions of chunk `c`.
    fn span(&self, c: usize) -> (usize, usize) {
        let first = self.first_visible() + c * KV_CHUNK;
        (first, KV_CHUNK.min(self.pos + 1 - first))
    }

    fn chunk_len(&self) -> usize {
        self.group() * (2 + KV_CHUNK + self.shape.head_dim)
    }

    fn split<'c>(&self, c: usize, chunk: &'c mut [f32]) -> Chunk<'c> {
        let group = self.group();
        let (m, rest) = chunk.split_at_mut(group);
        let (l, rest) = rest.split_at_mut(group);
        let (scores, acc) = rest.split_at_mut(KV_CHUNK * group);
        Chunk {
            m,
            l,
            scores: &mut scores[..self.span(c).1 * group],
            acc,
        }
    }

    fn head<'c>(&self, pool: &'c [f16]) -> rows::Head<'c>
    where
        'a: 'c,
    {
        rows::Head {
            pool,
            table: self.kv.table,
            kv_head: self.kv_head,
            n_kv_head: self.shape.n_kv_head,
            head_dim: self.shape.head_dim,
        }
    }

    /// First pass of chunk `c`: scores, their maximum, exponentials and their sum.
    fn exps(&self, c: usize, chunk: &mut [f32], q16: &mut [f32]) {
        rows::round_to_f16(self.q, q16);
        let first = self.span(c).0;
        let ch = self.split(c, chunk);
        rows::scores(
            q16,
            &self.head(self.kv.k),
            first,
            self.shape.scale,
            ch.scores,
        );
        softmax::exps(ch.scores, self.group(), ch.m, ch.l);
    }

    /// Between the passes: each chunk's `m` becomes the factor `exp(m - m_row) / l_row` of its
    /// exponentials, for every head of the group.
    fn normalize(&self, chunks: &mut [f32]) {
        let (group, len) = (self.group(), self.chunk_len());
        for g in 0..group {
            let row_max = chunks
                .chunks_exact(len)
                .fold(f32::NEG_INFINITY, |m, ch| m.max(ch[g]));
            for ch in chunks.chunks_exact_mut(len) {
                ch[g] = exp(ch[g] - row_max);
            }
            let row_sum: f32 = chunks
                .chunks_exact(len)
                .map(|ch| ch[g] * ch[group + g])
                .sum();
            let inv = 1.0 / row_sum;
            for ch in chunks.chunks_exact_mut(len) {
                ch[g] *= inv;
            }
        }
    }

    /// Second pass of chunk `c`: the weights rounded, and their sum of V rows.
    fn weighted_sum(&self, c: usize, chunk: &mut [f32]) {
        let first = self.span(c).0;
        let ch = self.split(c, chunk);
        softmax::round_weights(ch.scores, self.group(), ch.m);
        ch.acc.fill(0.0);
        rows::weighted_sum(ch.scores, &self.head(self.kv.v), first, ch.acc);
    }

    /// The chunks' sums of V, added in order, into the group's output.
    fn sum(&self, chunks: &[f32], out: &mut [f32]) {
        let acc_at = 2 * self.group() + KV_CHUNK * self.group();
        out.fill(0.0);
        for ch in chunks.chunks_exact(self.chunk_len()) {
            for (o, &a) in out.iter_mut().zip(&ch[acc_at..]) {
                *o += a;
            }
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

    /// Keys and values (`[position][kv_head][head_dim]`) written into pools of twice the blocks
    /// they need, in scattered blocks (the odd ones, last position first).
    fn paged(k: &[f32], v: &[f32], nkv: usize, hd: usize) -> (Vec<f16>, Vec<f16>, Vec<u32>) {
        let n = kv_blocks_for(k.len() / (nkv * hd));
        let table: Vec<u32> = (0..n as u32).map(|i| 2 * (n as u32 - 1 - i) + 1).collect();
        let mut keys = vec![f16::ZERO; 2 * n * kv_block_len(nkv, hd)];
        let mut values = keys.clone();
        write_keys(&mut keys, &table, k, 0, nkv, hd);
        write_values(&mut values, &table, v, 0, nkv, hd);
        (keys, values, table)
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
            // Head sizes for each width of the SIMD weighted sum (4, 2 and 1 vectors a pass).
            (2, 1, 64, 130, 3, None),
            (12, 2, 48, 5, 4, None),
            (8, 1, 32, 140, 2, Some(135)),
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
            let (k16, v16, table) = paged(&k, &v, nkv, hd);
            let kv = PagedKv {
                k: &k16,
                v: &v16,
                table: &table,
            };
            let mut out = vec![0.0; q.len()];
            attention(&q, kv, start, &shape, &mut out);
            attention(&[], kv, start, &shape, &mut []);
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
        let total = 600usize;
        for (nh, nkv, hd, window) in [
            (6usize, 2usize, 24usize, None),
            (6, 2, 24, Some(300)),
            (9, 3, 64, None),
            (4, 1, 32, Some(200)),
        ] {
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
            let (k16, v16, table) = paged(&k, &v, nkv, hd);
            let kv = PagedKv {
                k: &k16,
                v: &v16,
                table: &table,
            };
            // The whole sequence at once: split over (token, KV head) pairs.
            let mut prefill = vec![0.0; q.len()];
            attention(&q, kv, 0, &shape, &mut prefill);
            let want = naive(&q, &k, &v, 0, &shape);
            for (a, b) in prefill.iter().zip(&want) {
                assert!((a - b).abs() < 2e-3, "{a} vs {b} window {window:?}");
            }
            // A token or a few at a time: split over (token, chunk) tasks where they have few
            // KV heads; the same bits.
            let row = nh * hd;
            for (pos, n) in [
                (0, 1),
                (63, 1),
                (64, 1),
                (127, 1),
                (128, 1),
                (255, 1),
                (256, 2),
            ]
            .into_iter()
            .chain([(300, 3), (511, 1), (597, 3), (599, 1)])
            {
                let table = &table[..kv_blocks_for(pos + n)];
                let mut some = vec![0.0; n * row];
                let qs = &q[pos * row..][..n * row];
                attention(qs, PagedKv { table, ..kv }, pos, &shape, &mut some);
                assert_eq!(some, prefill[pos * row..][..n * row], "positions {pos}+{n}");
            }
        }
    }

    /// Sequences attended together (decode steps beside a prompt, of different lengths, in
    /// caches sharing one pool) get the bits each gets alone.
    #[test]
    fn a_batch_of_sequences_equals_each_alone() {
        let mut seed = 3u64;
        let (nh, nkv, hd) = (6usize, 2usize, 32usize);
        let shape = AttnShape {
            n_head: nh,
            n_kv_head: nkv,
            head_dim: hd,
            scale: 0.2,
            window: None,
        };
        let total = 400;
        let r = |x: f32| f16::from_f32(x).to_f32();
        let k: Vec<f32> = (0..total * nkv * hd).map(|_| r(lcg(&mut seed))).collect();
        let v: Vec<f32> = (0..total * nkv * hd).map(|_| r(lcg(&mut seed))).collect();
        let (k16, v16, table) = paged(&k, &v, nkv, hd);
        // Each sequence reads the same cache up to its own length.
        for batch in [
            vec![(399usize, 1usize), (150, 1), (10, 1)],
            vec![(0, 40), (300, 1)],
            vec![(200, 3), (390, 2), (64, 1), (65, 1)],
        ] {
            let n_tok: usize = batch.iter().map(|&(_, n)| n).sum();
            let q: Vec<f32> = (0..n_tok * nh * hd).map(|_| lcg(&mut seed)).collect();
            let queries = |i: usize| {
                let (start_pos, n_tok) = batch[i];
                let table = &table[..kv_blocks_for(start_pos + n_tok)];
                Queries {
                    kv: PagedKv {
                        k: &k16,
                        v: &v16,
                        table,
                    },
                    start_pos,
                    n_tok,
                }
            };
            let mut together = vec![0.0; q.len()];
            attention_batch(&q, batch.len(), queries, &shape, &mut together);
            let mut t0 = 0;
            for i in 0..batch.len() {
                let Queries {
                    kv,
                    start_pos,
                    n_tok,
                } = queries(i);
                let rows = t0 * nh * hd..(t0 + n_tok) * nh * hd;
                let mut alone = vec![0.0; rows.len()];
                attention(&q[rows.clone()], kv, start_pos, &shape, &mut alone);
                assert_eq!(alone, together[rows], "{batch:?}, sequence {i}");
                t0 += n_tok;
            }
        }
    }
}
