//! Per-sequence KV cache: F16 keys and values per layer, written in place as tokens arrive.

use half::f16;
use ward_kernels::attention::{kv_cache_len, write_kv};

/// One layer's cache, in the attention kernel's layout: blocks of `KV_BLOCK` positions, each
/// `[kv_head][position][head_dim]`.
#[derive(Default, Clone)]
pub struct LayerCache {
    pub k: Vec<f16>,
    pub v: Vec<f16>,
}

impl LayerCache {
    /// The keys and values of tokens at positions `start_pos..` (`[n_tok][n_kv_head]
    /// [head_dim]`), rounded to f16 into their places. The cache grows by whole blocks, and by
    /// an eighth of its size at least, so a long context is copied a bounded number of times.
    pub fn write(
        &mut self,
        start_pos: usize,
        k: &[f32],
        v: &[f32],
        n_kv_head: usize,
        head_dim: usize,
    ) {
        let n_tok = k.len() / (n_kv_head * head_dim);
        let len = kv_cache_len(start_pos + n_tok, n_kv_head, head_dim);
        if len > self.k.len() {
            let block = kv_cache_len(1, n_kv_head, head_dim);
            let room = len.max((self.k.len() + self.k.len() / 8).next_multiple_of(block));
            for x in [&mut self.k, &mut self.v] {
                x.reserve_exact(room - x.len());
                x.resize(len, f16::ZERO);
            }
        }
        write_kv(&mut self.k, k, start_pos, n_kv_head, head_dim);
        write_kv(&mut self.v, v, start_pos, n_kv_head, head_dim);
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

    /// Forget every position from `len` on, keeping the first `len` (a reusable prefix). The
    /// memory stays, for the positions that will be written there next (attention reads only
    /// positions that have been written since).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}
