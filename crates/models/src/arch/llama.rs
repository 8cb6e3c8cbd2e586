//! Llama (SmolLM2, Mistral- and Llama-based medical models): pre-norm blocks with SwiGLU FFN
//! and interleaved-pair RoPE (GGUF converters permute Q/K for it).

use ward_kernels::rope::RopeLayout;

use super::{BatchItem, CausalLm, Head, Logits};
use crate::cache::KvPool;
use crate::layers::{add_inplace, Activation, Attention, FeedForward};
use crate::weights::WeightLoader;
use crate::workspace::{sized, Workspace};
use crate::{HParams, ModelError};

struct Block {
    attn: Attention,
    ffn: FeedForward,
}

pub struct Llama {
    hp: HParams,
    head: Head,
    blocks: Vec<Block>,
}

impl Llama {
    pub fn load(w: &WeightLoader, hp: HParams) -> Result<Llama, ModelError> {
        let head = Head::load(w, &hp)?;
        let blocks = (0..hp.n_layer)
            .map(|il| {
                Ok(Block {
                    attn: Attention::load(w, &hp, il, RopeLayout::Interleaved, false)?,
                    ffn: FeedForward::load(w, &hp, il, Activation::Silu)?,
                })
            })
            .collect::<Result<_, ModelError>>()?;
        Ok(Llama { hp, head, blocks })
    }
}

impl CausalLm for Llama {
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
        let out = sized(&mut ws.out, ws.x.len());
        for (il, b) in self.blocks.iter().enumerate() {
            b.attn.forward(&ws.x, batch, pool, il, &mut ws.layer, out);
            add_inplace(&mut ws.x, out);
            b.ffn.forward(&ws.x, &mut ws.layer, out);
            add_inplace(&mut ws.x, out);
        }
        Ok(self.head.finish(batch, ws))
    }
}
