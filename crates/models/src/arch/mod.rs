//! The architectures, the `CausalLm` trait they implement, and the one match on
//! `general.architecture` that picks them.

mod gemma3;
mod llama;

use std::sync::Arc;

use ward_kernels::norm::RmsNorm;

use crate::cache::KvCache;
use crate::gguf::GgufFile;
use crate::weights::{Embedding, Linear, WeightLoader};
use crate::workspace::{sized, Workspace};
use crate::{Arch, HParams, ModelError};

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

    /// An empty cache for one sequence of at most `max_len` tokens.
    fn new_cache(&self, max_len: usize) -> KvCache {
        let hp = self.hparams();
        KvCache::new(hp.n_layer, max_len.min(hp.context_length))
    }

    /// Run `tokens` at the positions after those already in `cache`, append them to it, and
    /// return logits for the last `n_logits` of them (1 for generation, more for scoring).
    /// Every intermediate lives in `ws`, so a decode step with a warm workspace allocates
    /// nothing.
    fn forward<'w>(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        n_logits: usize,
        ws: &'w mut Workspace,
    ) -> Result<Logits<'w>, ModelError>;
}

/// Load the architecture named by `general.architecture`.
pub fn load(gguf: &GgufFile) -> Result<Box<dyn CausalLm>, ModelError> {
    let hp = HParams::from_gguf(gguf)?;
    let w = WeightLoader { gguf };
    Ok(match hp.arch {
        Arch::Llama => Box::new(llama::Llama::load(&w, hp)?),
        Arch::Gemma3 => Box::new(gemma3::Gemma3::load(&w, hp)?),
    })
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
        let output = if w.has("output.weight") {
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

    /// Check that the tokens fit the cache, and embed them into `x`.
    pub fn start(
        &self,
        tokens: &[u32],
        cache: &KvCache,
        x: &mut Vec<f32>,
    ) -> Result<(), ModelError> {
        if tokens.is_empty() {
            return Err(ModelError::EmptyInput);
        }
        if cache.len() + tokens.len() > cache.max_len() {
            return Err(ModelError::ContextFull {
                have: cache.len(),
                adding: tokens.len(),
                max: cache.max_len(),
            });
        }
        self.embed.lookup(tokens, x)
    }

    /// Final norm and output projection of the last `n_logits` rows of the residual stream.
    pub fn finish<'w>(
        &self,
        n_tok: usize,
        n_logits: usize,
        cache: &mut KvCache,
        ws: &'w mut Workspace,
    ) -> Logits<'w> {
        cache.advance(n_tok);
        let n_logits = n_logits.clamp(1, n_tok);
        let (d, n_vocab) = (self.embed.dim, self.output.out_dim);
        let norm = RmsNorm {
            weight: &self.norm,
            eps: self.eps,
        };
        let data = sized(&mut ws.logits, n_logits * n_vocab);
        self.output
            .forward_normed(&ws.x[(n_tok - n_logits) * d..], norm, data);
        Logits { n_vocab, data }
    }
}
