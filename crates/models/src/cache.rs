//! The KV cache, paged: every layer's F16 keys and values live in a pool of fixed-size blocks
//! (`KV_BLOCK` positions each), and each sequence has a table of the blocks that hold its
//! positions, in order. Sequences can share blocks (a prefix cache hands the blocks of a
//! common prompt prefix to every sequence that starts with it); who owns which block is the
//! engine's business, not this module's.

use half::f16;
use half::vec::HalfBitsVecExt;
use ward_kernels::attention::{kv_block_len, write_keys, write_values, PagedKv};
/// The block size and its arithmetic, for the engine's block manager.
pub use ward_kernels::attention::{kv_blocks_for, KV_BLOCK};

/// One layer's pools, `[block][kv_head][KV_BLOCK × head_dim]` each (the keys of a block's head
/// as columns, its values as rows: `attention::write_keys`, `write_values`).
#[derive(Default, Clone)]
pub struct LayerPool {
    pub k: Vec<f16>,
    pub v: Vec<f16>,
}

/// Block storage for any number of sequences: block `b` of every layer belongs together.
#[derive(Clone)]
pub struct KvPool {
    pub layers: Vec<LayerPool>,
    n_kv_head: usize,
    head_dim: usize,
    n_blocks: usize,
}

impl KvPool {
    /// A pool of `n_blocks` blocks, zeroed (attention never reads a position before it is
    /// written, but a pool is never left uninitialised).
    pub fn new(n_layer: usize, n_kv_head: usize, head_dim: usize, n_blocks: usize) -> KvPool {
        let mut pool = KvPool {
            layers: vec![LayerPool::default(); n_layer],
            n_kv_head,
            head_dim,
            n_blocks: 0,
        };
        pool.grow(n_blocks);
        pool
    }

    pub fn n_blocks(&self) -> usize {
        self.n_blocks
    }

    /// Bytes of one block, keys and values of every layer.
    pub fn block_bytes(n_layer: usize, n_kv_head: usize, head_dim: usize) -> usize {
        2 * n_layer * kv_block_len(n_kv_head, head_dim) * size_of::<f16>()
    }

    /// Grow to `n_blocks` blocks (by an eighth at least, so a growing cache is copied a bounded
    /// number of times); existing blocks keep their contents and numbers.
    fn grow(&mut self, n_blocks: usize) {
        if n_blocks <= self.n_blocks {
            return;
        }
        let block = kv_block_len(self.n_kv_head, self.head_dim);
        if self.n_blocks == 0 {
            // Zeroed by the allocator (calloc): the operating system maps the pages as they are
            // first written, so a large pool costs memory only as it fills.
            for layer in &mut self.layers {
                layer.k = vec![0u16; n_blocks * block].reinterpret_into();
                layer.v = vec![0u16; n_blocks * block].reinterpret_into();
            }
            self.n_blocks = n_blocks;
            return;
        }
        let room = n_blocks.max(self.n_blocks + self.n_blocks / 8) * block;
        for layer in &mut self.layers {
            for x in [&mut layer.k, &mut layer.v] {
                x.reserve_exact(room - x.len());
                x.resize(n_blocks * block, f16::ZERO);
            }
        }
        self.n_blocks = n_blocks;
    }

    /// Give `seq` new blocks at the end of the pool (growing it) until it can hold `positions`
    /// positions: the allocator of a cache that is not shared (tests, benchmarks, the CLI).
    pub fn append_blocks(&mut self, seq: &mut SeqKv, positions: usize) {
        let need = kv_blocks_for(positions).saturating_sub(seq.blocks.len());
        let first = self.n_blocks as u32;
        self.grow(self.n_blocks + need);
        seq.blocks.extend(first..first + need as u32);
    }

    /// Layer `il`'s pools as `seq` sees them.
    pub(crate) fn paged<'a>(&'a self, il: usize, seq: &'a SeqKv) -> PagedKv<'a> {
        let layer = &self.layers[il];
        PagedKv {
            k: &layer.k,
            v: &layer.v,
            table: &seq.blocks,
        }
    }

    /// The keys and values `k`, `v` (`[n_tok][n_kv_head][head_dim]`) of positions `start_pos..`
    /// of `seq`, rounded to f16 into their places in layer `il`.
    pub(crate) fn write(&mut self, il: usize, seq: &SeqKv, start_pos: usize, k: &[f32], v: &[f32]) {
        let (layer, nkv, hd) = (&mut self.layers[il], self.n_kv_head, self.head_dim);
        write_keys(&mut layer.k, &seq.blocks, k, start_pos, nkv, hd);
        write_values(&mut layer.v, &seq.blocks, v, start_pos, nkv, hd);
    }
}

/// One sequence's place in a pool: the blocks holding its positions, in order, and how many
/// positions have been written.
#[derive(Clone, Debug, Default)]
pub struct SeqKv {
    /// Block `i` holds positions `i * KV_BLOCK..(i + 1) * KV_BLOCK`. Blocks before the one
    /// holding position `len` may be shared with other sequences; a forward pass writes only
    /// at `len` and after, so those from there on must be this sequence's alone.
    pub blocks: Vec<u32>,
    len: usize,
    max_len: usize,
}

impl SeqKv {
    /// An empty sequence that may grow to `max_len` positions.
    pub fn new(max_len: usize) -> SeqKv {
        SeqKv {
            blocks: Vec::new(),
            len: 0,
            max_len,
        }
    }

    /// Positions written (the position of the next token).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Positions the blocks can hold.
    pub fn capacity(&self) -> usize {
        self.blocks.len() * KV_BLOCK
    }

    /// Forget every position from `len` on, keeping the first `len` (a reusable prefix) and
    /// the blocks (attention reads only positions written since).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Mark the first `len` positions as written: they are in blocks taken from a prefix cache.
    pub fn assume_written(&mut self, len: usize) {
        assert!(len <= self.capacity(), "positions beyond the blocks");
        self.len = len;
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}

/// A cache for one sequence with a pool of its own, which grows as the sequence does.
#[derive(Clone)]
pub struct KvCache {
    pub pool: KvPool,
    pub seq: SeqKv,
}

impl KvCache {
    pub fn new(n_layer: usize, n_kv_head: usize, head_dim: usize, max_len: usize) -> KvCache {
        KvCache {
            pool: KvPool::new(n_layer, n_kv_head, head_dim, 0),
            seq: SeqKv::new(max_len),
        }
    }

    pub fn len(&self) -> usize {
        self.seq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seq.is_empty()
    }

    pub fn max_len(&self) -> usize {
        self.seq.max_len()
    }

    /// See [`SeqKv::truncate`].
    pub fn truncate(&mut self, len: usize) {
        self.seq.truncate(len);
    }

    /// Make room for `n` more positions (as far as the limit allows: going past it is the
    /// forward pass's error to report).
    pub(crate) fn reserve(&mut self, n: usize) {
        let positions = (self.seq.len() + n).min(self.seq.max_len());
        self.pool.append_blocks(&mut self.seq, positions);
    }
}
