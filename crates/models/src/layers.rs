//! Building blocks shared by the architectures: attention with RoPE and KV cache, gated FFN.

use ward_kernels::attention::{attention_batch, AttnShape, Queries};
use ward_kernels::norm::{rms_norm_inplace, RmsNorm};
use ward_kernels::rope::Rope;

use crate::arch::BatchItem;
use crate::cache::KvPool;
use crate::weights::{GateUp, Linear, Projections, WeightLoader};
use crate::workspace::{sized, LayerScratch};
use crate::{HParams, ModelError};

/// Self-attention of one layer: projections (with biases for Qwen2), optional per-head Q/K
/// norms (Qwen3, Gemma), RoPE, cache append, attention and output projection.
pub struct Attention {
    /// The input norm, applied as the input is converted for the Q/K/V matmul.
    norm: Vec<f32>,
    qkv: Projections,
    qkv_bias: Option<[Vec<f32>; 3]>,
    wo: Linear,
    qk_norm: Option<(Vec<f32>, Vec<f32>)>,
    shape: AttnShape,
    rope: Rope,
    eps: f32,
}

impl Attention {
    pub fn load(w: &WeightLoader, hp: &HParams, il: usize) -> Result<Attention, ModelError> {
        let p = format!("blk.{il}");
        let (d, hd) = (hp.n_embd, hp.head_dim);
        let out_dims = [hp.n_head * hd, hp.n_head_kv * hd, hp.n_head_kv * hd];
        let qkv_bias = if hp.qkv_bias {
            let [q, k, v] = ["q", "k", "v"].map(|t| format!("{p}.attn_{t}.bias"));
            Some([
                w.f32_vec(&q, out_dims[0])?,
                w.f32_vec(&k, out_dims[1])?,
                w.f32_vec(&v, out_dims[2])?,
            ])
        } else {
            None
        };
        let qk_norm = if hp.qk_norm {
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
                &out_dims,
            )?,
            qkv_bias,
            wo: w.linear(&format!("{p}.attn_output.weight"), hp.n_head * hd, d)?,
            qk_norm,
            shape: AttnShape {
                n_head: hp.n_head,
                n_kv_head: hp.n_head_kv,
                head_dim: hd,
                scale: hp.attn_scale,
                window,
            },
            rope: hp.layer_rope(il),
            eps: hp.rms_eps,
        })
    }

    /// `x` is the block's input `[n_tok][n_embd]` (before the attention norm): the tokens of
    /// `batch`'s items one after another, each item's at the positions after those in its
    /// cache. Their keys and values go into layer `il` of `pool`, in each item's blocks; the
    /// output goes to `out`.
    pub fn forward(
        &self,
        x: &[f32],
        batch: &mut [BatchItem<'_>],
        pool: &mut KvPool,
        il: usize,
        s: &mut LayerScratch,
        out: &mut [f32],
    ) {
        let shape = &self.shape;
        let n_tok = x.len() / self.wo.out_dim;
        let (q_row, kv_row) = (
            shape.n_head * shape.head_dim,
            shape.n_kv_head * shape.head_dim,
        );
        let norm = RmsNorm {
            weight: &self.norm,
            eps: self.eps,
        };
        let (q, k, v) = (
            sized(&mut s.q, n_tok * q_row),
            sized(&mut s.k, n_tok * kv_row),
            sized(&mut s.v, n_tok * kv_row),
        );
        self.qkv
            .forward(x, norm, &mut s.qkv, &mut [&mut *q, &mut *k, &mut *v]);
        if let Some([qb, kb, vb]) = &self.qkv_bias {
            add_rows(q, qb);
            add_rows(k, kb);
            add_rows(v, vb);
        }
        if let Some((qn, kn)) = &self.qk_norm {
            rms_norm_inplace(q, qn, self.eps);
            rms_norm_inplace(k, kn, self.eps);
        }
        let mut t0 = 0;
        for item in batch.iter_mut() {
            let (n, start_pos) = (item.tokens.len(), item.seq.len());
            let q = &mut q[t0 * q_row..][..n * q_row];
            let k = &mut k[t0 * kv_row..][..n * kv_row];
            self.rope
                .rotate_both(q, shape.n_head, k, shape.n_kv_head, start_pos);
            let v = &v[t0 * kv_row..][..n * kv_row];
            pool.write(il, item.seq, start_pos, k, v);
            t0 += n;
        }
        let attn = sized(&mut s.attn, n_tok * q_row);
        let (batch, pool) = (&*batch, &*pool);
        let queries = |i: usize| Queries {
            kv: pool.paged(il, batch[i].seq),
            start_pos: batch[i].seq.len(),
            n_tok: batch[i].tokens.len(),
        };
        attention_batch(q, batch.len(), queries, shape, attn);
        self.wo.forward(attn, out);
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
    pub fn load(w: &WeightLoader, hp: &HParams, il: usize) -> Result<FeedForward, ModelError> {
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
            act: hp.activation,
        })
    }

    /// `x` is the block's input before the FFN norm; the output goes to `out`.
    pub fn forward(&self, x: &[f32], s: &mut LayerScratch, out: &mut [f32]) {
        let norm = RmsNorm {
            weight: &self.norm,
            eps: self.eps,
        };
        let n_tok = x.len() / self.down.out_dim;
        let hidden = sized(&mut s.hidden, n_tok * self.down.in_dim);
        self.gate_up.forward(x, norm, self.act, hidden, &mut s.up);
        self.down.forward(hidden, out);
    }
}

/// Add `bias` to every row of `rows`.
fn add_rows(rows: &mut [f32], bias: &[f32]) {
    for row in rows.chunks_exact_mut(bias.len()) {
        add_inplace(row, bias);
    }
}

pub fn add_inplace(acc: &mut [f32], x: &[f32]) {
    for (a, &b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}
