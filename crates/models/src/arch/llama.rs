//! Llama (SmolLM2, Mistral- and Llama-based medical models): pre-norm blocks with SwiGLU FFN
//! and interleaved-pair RoPE (GGUF converters permute Q/K for it).

use ward_kernels::rope::RopeLayout;

use super::{CausalLm, Head, Logits};
use crate::cache::KvCache;
use crate::layers::{add_inplace, Activation, Attention, FeedForward};
use crate::weights::WeightLoader;
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

    fn forward(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        n_logits: usize,
    ) -> Result<Logits, ModelError> {
        let mut x = self.head.start(tokens, cache)?;
        let pos = cache.len();
        for (b, layer_cache) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            let attn = b.attn.forward(&x, pos, layer_cache);
            add_inplace(&mut x, &attn);
            let ffn = b.ffn.forward(&x);
            add_inplace(&mut x, &ffn);
        }
        self.head.finish(&x, tokens.len(), n_logits, cache)
    }
}
