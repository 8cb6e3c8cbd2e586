//! The `CausalLm` trait and the CPU decoder that implements it for every architecture the
//! model description ([`HParams`]) accepts.

pub mod bert;
mod decoder;

use std::sync::Arc;

use ward_kernels::norm::RmsNorm;

use crate::cache::{KvCache, KvPool, SeqKv};
use crate::gguf::GgufFile;
use crate::weights::{Embedding, Linear, WeightLoader};
use crate::workspace::{sized, Workspace};
use crate::{HParams, ModelError};

/// Logits for some positions of a forward pass, row-major `[rows][n_vocab]`, in the
/// workspace of the pass (a sampler may change them in place).
pub struct Logits<'w> {
    pub n_vocab: usize,
    pub data: &'w mut [f32],
}

impl Logits<'_> {
    pub fn rows(&self) -> usize {
        self.data.len() / self.n_vocab
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.n_vocab..(i + 1) * self.n_vocab]
    }

    pub fn last(&self) -> &[f32] {
        self.row(self.rows() - 1)
    }
}

/// A decoder-only language model.
pub trait CausalLm: Send + Sync {
    fn hparams(&self) -> &HParams;

    fn n_vocab(&self) -> usize;

    /// An empty cache, with a pool of its own, for one sequence of at most `max_len` tokens.
    fn new_cache(&self, max_len: usize) -> KvCache {
        let hp = self.hparams();
        KvCache::new(
            hp.n_layer,
            hp.n_head_kv,
            hp.head_dim,
            max_len.min(hp.context_length),
        )
    }

    /// An empty pool of `n_blocks` blocks for many sequences' caches.
    fn new_pool(&self, n_blocks: usize) -> KvPool {
        let hp = self.hparams();
        KvPool::new(hp.n_layer, hp.n_head_kv, hp.head_dim, n_blocks)
    }

    /// Bytes of one block of a pool (all layers' keys and values).
    fn kv_block_bytes(&self) -> usize {
        let hp = self.hparams();
        KvPool::block_bytes(hp.n_layer, hp.n_head_kv, hp.head_dim)
    }

    /// Run several sequences' new tokens in one pass: the matmuls read the weights once for
    /// all of them, and every token is computed exactly as it would be alone, so each
    /// sequence's logits equal a `forward` of it alone, bit for bit. Each item's keys and
    /// values go into `pool`, in the blocks its table gives (which must already cover its new
    /// positions). The logits are each item's rows, in the batch's order. Nothing changes if an
    /// item is refused (empty, past its limit or its blocks, a token outside the vocabulary).
    /// Every intermediate lives in `ws`, so a decode step with a warm workspace allocates
    /// nothing.
    fn forward_batch<'w>(
        &self,
        batch: &mut [BatchItem<'_>],
        pool: &mut KvPool,
        ws: &'w mut Workspace,
    ) -> Result<Logits<'w>, ModelError>;

    /// An embedding model's unnormalised vector for `tokens` (run alone, from position 0):
    /// the final norm's output, pooled as the model's description says.
    fn embed(&self, _tokens: &[u32], _ws: &mut Workspace) -> Result<Vec<f32>, ModelError> {
        Err(crate::GpuError::Embeddings.into())
    }

    /// Run `tokens` at the positions after those already in `cache`, append them to it, and
    /// return logits for the last `n_logits` of them (1 for generation, more for scoring).
    fn forward<'w>(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        n_logits: usize,
        ws: &'w mut Workspace,
    ) -> Result<Logits<'w>, ModelError> {
        cache.reserve(tokens.len());
        let item = BatchItem {
            tokens,
            seq: &mut cache.seq,
            n_logits,
        };
        self.forward_batch(&mut [item], &mut cache.pool, ws)
    }
}

/// One sequence's part of a batched forward pass: its new tokens, which go at the positions
/// after those already in its cache, and how many logits it wants (for its last tokens; at
/// most one per token; 0 for a chunk of a prompt that is not its end, which then adds no rows
/// to the logits).
pub struct BatchItem<'a> {
    pub tokens: &'a [u32],
    pub seq: &'a mut SeqKv,
    pub n_logits: usize,
}

impl BatchItem<'_> {
    fn n_logits(&self) -> usize {
        self.n_logits.min(self.tokens.len())
    }
}

/// Check that every item has tokens that fit its context and its blocks (all inside a pool of
/// `pool_blocks`), before anything is computed.
pub fn check_batch(batch: &[BatchItem<'_>], pool_blocks: usize) -> Result<(), ModelError> {
    for item in batch {
        let seq = &item.seq;
        if item.tokens.is_empty() {
            return Err(ModelError::EmptyInput);
        }
        let end = seq.len() + item.tokens.len();
        if end > seq.max_len() {
            return Err(ModelError::ContextFull {
                have: seq.len(),
                adding: item.tokens.len(),
                max: seq.max_len(),
            });
        }
        if end > seq.capacity() || seq.blocks.iter().any(|&b| b as usize >= pool_blocks) {
            return Err(ModelError::KvBlocks {
                positions: end,
                blocks: seq.blocks.len(),
                pool: pool_blocks,
            });
        }
    }
    Ok(())
}

/// Whether a GGUF holds an embedding model (a BERT encoder, or a decoder with a pooling type,
/// as Qwen3-Embedding) rather than a generative one.
pub fn is_embedding_model(gguf: &GgufFile) -> Result<bool, ModelError> {
    let arch = gguf.require_str("general.architecture")?;
    let key = format!("{arch}.pooling_type");
    Ok(arch == "bert" || crate::hparams::Pooling::from_gguf(gguf, &key)?.is_some())
}

/// Load the model a GGUF file describes, for the CPU.
pub fn load(gguf: &GgufFile) -> Result<Box<dyn CausalLm>, ModelError> {
    let hp = HParams::from_gguf(gguf)?;
    Ok(Box::new(decoder::Decoder::load(
        &WeightLoader { gguf },
        hp,
    )?))
}

/// Token embeddings, final norm and output projection (tied to the embeddings when the file has
/// no `output.weight`).
pub(crate) struct Head {
    pub embed: Embedding,
    norm: Vec<f32>,
    output: Linear,
    eps: f32,
}

impl Head {
    pub fn load(w: &WeightLoader, hp: &HParams) -> Result<Head, ModelError> {
        let d = hp.n_embd;
        let embd_info = w
            .gguf
            .tensor_info("token_embd.weight")
            .ok_or_else(|| crate::gguf::GgufError::MissingTensor("token_embd.weight".into()))?;
        let n_vocab = embd_info.dims.get(1).copied().unwrap_or(0) as usize;
        let embed = Embedding::new(Arc::new(w.matrix("token_embd.weight", d, n_vocab)?));
        // Tied output projection (no `output.weight`): share the embedding table, not a copy.
        let output = if !hp.tied_output {
            w.linear("output.weight", d, n_vocab)?
        } else {
            Linear::new(embed.table())
        };
        Ok(Head {
            embed,
            norm: w.f32_vec("output_norm.weight", d)?,
            output,
            eps: hp.rms_eps,
        })
    }

    /// Check that every item's tokens fit its cache, and embed them all into `x`, one item
    /// after another.
    pub fn start(
        &self,
        batch: &[BatchItem<'_>],
        pool: &KvPool,
        x: &mut Vec<f32>,
    ) -> Result<(), ModelError> {
        check_batch(batch, pool.n_blocks())?;
        let d = self.embed.dim;
        let n_tok: usize = batch.iter().map(|i| i.tokens.len()).sum();
        let mut rest = sized(x, n_tok * d);
        for item in batch {
            let (mine, others) = rest.split_at_mut(item.tokens.len() * d);
            self.embed.lookup(item.tokens, mine)?;
            rest = others;
        }
        Ok(())
    }

    /// Final norm and output projection of each item's last rows of the residual stream; the
    /// caches now hold the batch's tokens.
    pub fn finish<'w>(&self, batch: &mut [BatchItem<'_>], ws: &'w mut Workspace) -> Logits<'w> {
        let (d, n_vocab) = (self.embed.dim, self.output.out_dim);
        // The rows that want logits, gathered so the vocabulary is read once for all of them.
        let n_rows: usize = batch.iter().map(|i| i.n_logits()).sum();
        let rows = sized(&mut ws.out, n_rows * d);
        let (mut at, mut row) = (0, 0);
        for item in batch.iter_mut() {
            let (n_tok, n_logits) = (item.tokens.len(), item.n_logits());
            let src = &ws.x[(at + n_tok - n_logits) * d..][..n_logits * d];
            rows[row * d..][..n_logits * d].copy_from_slice(src);
            item.seq.advance(n_tok);
            (at, row) = (at + n_tok, row + n_logits);
        }
        let norm = RmsNorm {
            weight: &self.norm,
            eps: self.eps,
        };
        let data = sized(&mut ws.logits, n_rows * n_vocab);
        if n_rows > 0 {
            self.output.forward_normed(rows, norm, data);
        }
        Logits { n_vocab, data }
    }
}
