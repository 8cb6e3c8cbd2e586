//! Gemma 3: embeddings scaled by √d, per-head Q/K RMSNorm, norms after attention and FFN as
//! well as before, GeGLU, and five sliding-window layers (RoPE base 10 000) for each global one.
//! GGUF converters already add Gemma's `1 +` to every norm weight.

use ward_kernels::norm::rms_norm_inplace;
use ward_kernels::rope::RopeLayout;

use super::{BatchItem, CausalLm, Head, Logits};
use crate::cache::KvPool;
use crate::layers::{add_inplace, Activation, Attention, FeedForward};
use crate::weights::WeightLoader;
use crate::workspace::{sized, Workspace};
use crate::{HParams, ModelError};

struct Block {
    attn: Attention,
    attn_post_norm: Vec<f32>,
    ffn: FeedForward,
    ffn_post_norm: Vec<f32>,
}

pub struct Gemma3 {
    hp: HParams,
    head: Head,
    blocks: Vec<Block>,
}

impl Gemma3 {
    pub fn load(w: &WeightLoader, hp: HParams) -> Result<Gemma3, ModelError> {
        let head = Head::load(w, &hp)?;
        let d = hp.n_embd;
        let norm = |il: usize, name: &str| w.f32_vec(&format!("blk.{il}.{name}.weight"), d);
        let blocks = (0..hp.n_layer)
            .map(|il| {
                Ok(Block {
                    attn: Attention::load(w, &hp, il, RopeLayout::Halves, true)?,
                    attn_post_norm: norm(il, "post_attention_norm")?,
                    ffn: FeedForward::load(w, &hp, il, Activation::Gelu)?,
                    ffn_post_norm: norm(il, "post_ffw_norm")?,
                })
            })
            .collect::<Result<_, ModelError>>()?;
        Ok(Gemma3 { hp, head, blocks })
    }
}

impl CausalLm for Gemma3 {
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
        self.head.start(batch, pool, &mut ws.x)?;
        let scale = (self.hp.n_embd as f32).sqrt();
        ws.x.iter_mut().for_each(|v| *v *= scale);
        let eps = self.hp.rms_eps;
        let out = sized(&mut ws.out, ws.x.len());
        for (il, b) in self.blocks.iter().enumerate() {
            b.attn.forward(&ws.x, batch, pool, il, &mut ws.layer, out);
            rms_norm_inplace(out, &b.attn_post_norm, eps);
            add_inplace(&mut ws.x, out);
            b.ffn.forward(&ws.x, &mut ws.layer, out);
            rms_norm_inplace(out, &b.ffn_post_norm, eps);
            add_inplace(&mut ws.x, out);
        }
        Ok(self.head.finish(batch, ws))
    }
}
