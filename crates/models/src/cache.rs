//! Per-sequence KV cache: F16 keys and values per layer, written in place as tokens arrive.

use half::f16;

/// One layer's cache, laid out `[position][kv_head][head_dim]` (what the attention kernel reads).
#[derive(Default, Clone)]
pub struct LayerCache {
    pub k: Vec<f16>,
    pub v: Vec<f16>,
}

/// The cache grows by this many positions at a time: memory follows the context actually
/// used, and a decode step reallocates at most once every this many tokens (not at every
/// doubling of a vector, which for a long context means copying hundreds of megabytes at once).
pub const GROW_POSITIONS: usize = 256;

impl LayerCache {
    /// Room for `n_tok` more positions of `row` values (`[kv_head][head_dim]`) of keys and of
    /// values, to be written in place: the new parts of `k` and `v`.
    pub fn extend(&mut self, n_tok: usize, row: usize) -> (&mut [f16], &mut [f16]) {
        let at = self.k.len();
        let len = at + n_tok * row;
        if len > self.k.capacity() {
            let room = len.div_ceil(row).next_multiple_of(GROW_POSITIONS) * row;
            self.k.reserve_exact(room - at);
            self.v.reserve_exact(room - at);
        }
        self.k.resize(len, f16::ZERO);
        self.v.resize(len, f16::ZERO);
        (&mut self.k[at..], &mut self.v[at..])
    }
}

#[derive(Clone)]
pub struct KvCache {
    pub layers: Vec<LayerCache>,
    len: usize,
    max_len: usize,
}

impl KvCache {
    pub fn new(n_layer: usize, max_len: usize) -> KvCache {
        KvCache {
            layers: vec![LayerCache::default(); n_layer],
            len: 0,
            max_len,
        }
    }

    /// Tokens already in the cache (the position of the next token).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Forget every position from `len` on, keeping the first `len` (a reusable prefix).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        for layer in &mut self.layers {
            // Both vectors hold `self.len` rows of the same width.
            let row = layer.k.len() / self.len;
            layer.k.truncate(len * row);
            layer.v.truncate(len * row);
        }
        self.len = len;
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}
