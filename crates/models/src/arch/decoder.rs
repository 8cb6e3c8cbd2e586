//! The decoder-only transformer that every architecture Ward runs is, read from the model
//! description ([`HParams`]): pre-norm blocks of attention and a gated FFN, with each family's
//! variations switched on by the description rather than by a file of its own.
//!
//! - llama (SmolLM2, Llama 3.x, Mistral- and Llama-based medical models): SwiGLU,
//!   interleaved-pair RoPE (GGUF converters permute Q/K for it), Llama 3.1's frequency factors.
//! - qwen2 (Qwen2/2.5, DeepSeek-R1-Distill-Qwen, HuatuoGPT-o1 7B): Q/K/V biases, NEOX RoPE.
//! - qwen3: per-head RMSNorm of Q and K before RoPE, NEOX RoPE.
//! - gemma3: embeddings scaled by √d, per-head Q/K RMSNorm, norms after attention and FFN as
//!   well as before, GeGLU, five sliding-window layers (RoPE base 10 000) for each global one.
//!   GGUF converters already add Gemma's `1 +` to every norm weight.

use ward_kernels::norm::rms_norm_inplace;

use super::bert::pool;
use super::{BatchItem, CausalLm, Head, Logits};
use crate::cache::KvPool;
use crate::layers::{add_inplace, Attention, FeedForward};
use crate::weights::WeightLoader;
use crate::workspace::{sized, Workspace};
use crate::{HParams, ModelError};

struct Block {
    attn: Attention,
    ffn: FeedForward,
    /// Gemma 3's norms of the attention and FFN outputs.
    post_norms: Option<(Vec<f32>, Vec<f32>)>,
}

pub struct Decoder {
    hp: HParams,
    head: Head,
    blocks: Vec<Block>,
}

impl Decoder {
    pub fn load(w: &WeightLoader, hp: HParams) -> Result<Decoder, ModelError> {
        let head = Head::load(w, &hp)?;
        let norm = |il: usize, name: &str| w.f32_vec(&format!("blk.{il}.{name}.weight"), hp.n_embd);
        let blocks = (0..hp.n_layer)
            .map(|il| {
                let post_norms = if hp.post_norms {
                    Some((norm(il, "post_attention_norm")?, norm(il, "post_ffw_norm")?))
                } else {
                    None
                };
                Ok(Block {
                    attn: Attention::load(w, &hp, il)?,
                    ffn: FeedForward::load(w, &hp, il)?,
                    post_norms,
                })
            })
            .collect::<Result<_, ModelError>>()?;
        Ok(Decoder { hp, head, blocks })
    }
}

impl CausalLm for Decoder {
    fn hparams(&self) -> &HParams {
        &self.hp
    }

    fn n_vocab(&self) -> usize {
        self.head.embed.n_vocab()
    }

    fn forward_batch<'w>(
        &self,
        batch: &mut [BatchItem<'_>],
        pool: &mut KvPool,
        ws: &'w mut Workspace,
    ) -> Result<Logits<'w>, ModelError> {
        self.layers(batch, pool, ws)?;
        Ok(self.head.finish(batch, ws))
    }

    fn embed(&self, tokens: &[u32], ws: &mut Workspace) -> Result<Vec<f32>, ModelError> {
        let pooling = self
            .hp
            .pooling
            .ok_or_else(|| ModelError::NotAnEmbeddingModel {
                arch: self.hp.arch.name().into(),
            })?;
        let mut cache = self.new_cache(tokens.len());
        cache.reserve(tokens.len());
        let mut batch = [BatchItem {
            tokens,
            seq: &mut cache.seq,
            n_logits: 0,
        }];
        self.layers(&mut batch, &mut cache.pool, ws)?;
        // The final norm's output is the hidden state llama.cpp pools.
        rms_norm_inplace(&mut ws.x, &self.head.norm, self.hp.rms_eps);
        Ok(pool(&ws.x, &[tokens.len()], self.hp.n_embd, pooling))
    }
}

impl Decoder {
    /// The batch's embeddings through every block, into `ws.x` (the caches then hold the
    /// batch's keys and values; their lengths are advanced by `Head::finish`).
    fn layers(
        &self,
        batch: &mut [BatchItem<'_>],
        pool: &mut KvPool,
        ws: &mut Workspace,
    ) -> Result<(), ModelError> {
        self.head.start(batch, pool, &mut ws.x)?;
        if let Some(scale) = self.hp.embed_scale {
            ws.x.iter_mut().for_each(|v| *v *= scale);
        }
        let eps = self.hp.rms_eps;
        let out = sized(&mut ws.out, ws.x.len());
        for (il, b) in self.blocks.iter().enumerate() {
            b.attn.forward(&ws.x, batch, pool, il, &mut ws.layer, out);
            if let Some((attn_post, _)) = &b.post_norms {
                rms_norm_inplace(out, attn_post, eps);
            }
            add_inplace(&mut ws.x, out);
            b.ffn.forward(&ws.x, &mut ws.layer, out);
            if let Some((_, ffn_post)) = &b.post_norms {
                rms_norm_inplace(out, ffn_post, eps);
            }
            add_inplace(&mut ws.x, out);
        }
        Ok(())
    }
}
