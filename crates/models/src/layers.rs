//! Building blocks shared by the architectures: attention with RoPE and KV cache, gated FFN.

use half::f16;
use ward_kernels::attention::{attention, AttnShape};
use ward_kernels::norm::{rms_norm_inplace, RmsNorm};
use ward_kernels::rope::{Rope, RopeLayout};

use crate::cache::LayerCache;
use crate::weights::{GateUp, Linear, Projections, WeightLoader};
use crate::{HParams, ModelError};

/// Self-attention of one layer: projections, optional per-head Q/K norms (Gemma), RoPE,
/// cache append, attention and output projection.
pub struct Attention {
    /// The input norm, applied as the input is converted for the Q/K/V matmul.
    norm: Vec<f32>,
    qkv: Projections,
    wo: Linear,
    qk_norm: Option<(Vec<f32>, Vec<f32>)>,
    shape: AttnShape,
    rope: Rope,
    eps: f32,
}

impl Attention {
    pub fn load(
        w: &WeightLoader,
        hp: &HParams,
        il: usize,
        rope_layout: RopeLayout,
        with_qk_norm: bool,
    ) -> Result<Attention, ModelError> {
        let p = format!("blk.{il}");
        let (d, hd) = (hp.n_embd, hp.head_dim);
        let qk_norm = if with_qk_norm {
            Some((
                w.f32_vec(&format!("{p}.attn_q_norm.weight"), hd)?,
                w.f32_vec(&format!("{p}.attn_k_norm.weight"), hd)?,
            ))
        } else {
            None
        };
        let window = hp.layer_window(il);
        Ok(Attention {
            norm: w.f32_vec(&format!("{p}.attn_norm.weight"), d)?,
            qkv: w.projections(
                &["q", "k", "v"].map(|t| format!("{p}.attn_{t}.weight")),
                d,
                &[hp.n_head * hd, hp.n_head_kv * hd, hp.n_head_kv * hd],
            )?,
            wo: w.linear(&format!("{p}.attn_output.weight"), hp.n_head * hd, d)?,
            qk_norm,
            shape: AttnShape {
                n_head: hp.n_head,
                n_kv_head: hp.n_head_kv,
                head_dim: hd,
                scale: hp.attn_scale,
                window,
            },
            rope: Rope {
                head_dim: hd,
                rope_dim: hp.rope_dim,
                base: hp.layer_rope_base(il),
                freq_scale: if window.is_some() {
                    1.0
                } else {
                    hp.rope_freq_scale
                },
                layout: rope_layout,
            },
            eps: hp.rms_eps,
        })
    }

    /// `x` is the block's input `[n_tok][n_embd]` (before the attention norm) of tokens at
    /// `start_pos..`; their keys and values are appended to `cache`.
    pub fn forward(&self, x: &[f32], start_pos: usize, cache: &mut LayerCache) -> Vec<f32> {
        let s = &self.shape;
        let norm = RmsNorm {
            weight: &self.norm,
            eps: self.eps,
        };
        let [mut q, mut k, v]: [Vec<f32>; 3] = self
            .qkv
            .forward(x, norm)
            .try_into()
            .expect("three projections");
        if let Some((qn, kn)) = &self.qk_norm {
            rms_norm_inplace(&mut q, qn, self.eps);
            rms_norm_inplace(&mut k, kn, self.eps);
        }
        // The keys go into the cache rotated and rounded in one pass; the values rounded.
        let (k_cache, v_cache) = cache.extend(k.len());
        self.rope
            .rotate_into(&mut q, s.n_head, &k, s.n_kv_head, k_cache, start_pos);
        for (c, &x) in v_cache.iter_mut().zip(&v) {
            *c = f16::from_f32(x);
        }
        let mut out = vec![0.0f32; q.len()];
        attention(&q, &cache.k, &cache.v, start_pos, s, &mut out);
        self.wo.forward(&out)
    }
}

pub use ward_kernels::activation::Activation;

/// Gated feed-forward: `down(act(gate(x)) * up(x))`.
pub struct FeedForward {
    /// The input norm, applied as the input is converted for the gate/up matmul.
    norm: Vec<f32>,
    eps: f32,
    gate_up: GateUp,
    down: Linear,
    act: Activation,
}

impl FeedForward {
    pub fn load(
        w: &WeightLoader,
        hp: &HParams,
        il: usize,
        act: Activation,
    ) -> Result<FeedForward, ModelError> {
        let p = format!("blk.{il}");
        Ok(FeedForward {
            norm: w.f32_vec(&format!("{p}.ffn_norm.weight"), hp.n_embd)?,
            eps: hp.rms_eps,
            gate_up: w.gate_up(
                &format!("{p}.ffn_gate.weight"),
                &format!("{p}.ffn_up.weight"),
                hp.n_embd,
                hp.n_ff,
            )?,
            down: w.linear(&format!("{p}.ffn_down.weight"), hp.n_ff, hp.n_embd)?,
            act,
        })
    }

    /// `x` is the block's input before the FFN norm.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let norm = RmsNorm {
            weight: &self.norm,
            eps: self.eps,
        };
        self.down.forward(&self.gate_up.forward(x, norm, self.act))
    }
}

/// An RMSNorm weight applied to a copy of `x`.
pub fn normed(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let mut y = x.to_vec();
    rms_norm_inplace(&mut y, weight, eps);
    y
}

pub fn add_inplace(acc: &mut [f32], x: &[f32]) {
    for (a, &b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}
