//! BERT-style text encoders for embeddings (`general.architecture = "bert"`: bge-small/base/
//! large, e5, all-MiniLM): learned absolute positions, post-norm blocks (LayerNorm after each
//! residual add), bidirectional attention, a GELU feed-forward block, every projection with a
//! bias; then one vector per input, pooled as the file's `bert.pooling_type` says. A reranker
//! (rank pooling) runs its first token's vector through its classification head (a dense layer
//! and tanh, then a projection to the scores) instead. Follows llama.cpp's `src/models/bert.cpp`
//! and its pooling; token types are all 0 ("sentence A"), as there.
//!
//! Loading is fail-closed as for the decoders: an unknown `bert.*` key, a causal or unpooled
//! model, a tensor of the wrong shape or one this encoder does not use is refused by name.

use std::sync::Arc;

use ward_kernels::activation::gelu_parallel;
use ward_kernels::attention::full::{bidirectional, FullShape};
use ward_kernels::norm::layer_norm_inplace;

use crate::gguf::{GgufError, GgufFile};
pub use crate::hparams::Pooling;
use crate::hparams::{bounded, invalid, positive, refuse_unknown_keys};
use crate::weights::{Embedding, Linear, WeightLoader};
use crate::workspace::sized;
use crate::ModelError;

#[derive(Debug, Clone, PartialEq)]
pub struct EncoderParams {
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Positions the model has embeddings for: the longest input.
    pub context_length: usize,
    pub norm_eps: f32,
    pub pooling: Pooling,
}

/// `bert.*` keys Ward reads (or knows change nothing).
const KEYS: &[&str] = &[
    "context_length",
    "embedding_length",
    "block_count",
    "feed_forward_length",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.layer_norm_epsilon",
    "attention.causal",
    "pooling_type",
    "vocab_size",
    // A classifier's label names (informational).
    "classifier.output_labels",
];

impl EncoderParams {
    pub fn from_gguf(gguf: &GgufFile) -> Result<EncoderParams, GgufError> {
        let arch = gguf.require_str("general.architecture")?;
        if arch != "bert" {
            return Err(invalid("general.architecture", arch, "not a BERT encoder"));
        }
        refuse_unknown_keys(gguf, "bert", &[KEYS])?;
        let count = |k: &str, max: u64| -> Result<usize, GgufError> {
            let key = format!("bert.{k}");
            bounded(&key, gguf.require_u64(&key)?, 1, max)
        };
        let n_embd = count("embedding_length", 1 << 16)?;
        let n_head = count("attention.head_count", 1024)?;
        let n_head_kv = match gguf.get_u64("bert.attention.head_count_kv")? {
            None => n_head,
            Some(v) if v >= 1 && (n_head as u64).is_multiple_of(v) => v as usize,
            Some(v) => {
                return Err(invalid(
                    "bert.attention.head_count_kv",
                    v,
                    "must divide head_count",
                ))
            }
        };
        if !n_embd.is_multiple_of(n_head) {
            return Err(invalid(
                "bert.embedding_length",
                n_embd,
                "not divisible by head_count",
            ));
        }
        if gguf.get_bool("bert.attention.causal")? == Some(true) {
            return Err(invalid(
                "bert.attention.causal",
                true,
                "a causal BERT is not an encoder Ward runs",
            ));
        }
        let pooling = match Pooling::from_gguf(gguf, "bert.pooling_type")? {
            Some(pooling) => pooling,
            // llama.cpp's converter writes no pooling type for a sequence classifier
            // (bge-reranker-v2-m3); llama-server ranks with its head.
            None if gguf.tensor_info("cls.output.weight").is_some() => Pooling::Rank,
            None => {
                return Err(invalid(
                    "bert.pooling_type",
                    "(none)",
                    "an embedding model needs mean (1), CLS (2) or last-token (3) pooling, a \
                     reranker rank (4) pooling or a classifier head",
                ))
            }
        };
        let eps = positive(gguf, "bert.attention.layer_norm_epsilon", None)?;
        Ok(EncoderParams {
            n_layer: count("block_count", 1024)?,
            n_embd,
            n_ff: count("feed_forward_length", 1 << 18)?,
            n_head,
            n_head_kv,
            head_dim: n_embd / n_head,
            context_length: count("context_length", 1 << 20)?,
            norm_eps: eps,
            pooling,
        })
    }
}

/// A LayerNorm's weight and bias.
struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// A projection and its bias.
struct Dense {
    w: Linear,
    bias: Vec<f32>,
}

impl Dense {
    fn forward(&self, x: &[f32], y: &mut [f32]) {
        self.w.forward(x, y);
        for row in y.chunks_exact_mut(self.bias.len()) {
            row.iter_mut().zip(&self.bias).for_each(|(v, b)| *v += b);
        }
    }
}

/// A reranker's classification head: `out(tanh(dense(x)))`.
struct RankHead {
    dense: Option<Dense>,
    out: Dense,
}

struct Block {
    q: Dense,
    k: Dense,
    v: Dense,
    out: Dense,
    attn_norm: Norm,
    up: Dense,
    down: Dense,
    out_norm: Norm,
}

/// The intermediates of a pass, kept between passes so a warm encoder allocates little.
#[derive(Default)]
pub struct EncoderWorkspace {
    x: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    tmp: Vec<f32>,
    ff: Vec<f32>,
}

pub struct Bert {
    p: EncoderParams,
    tokens: Embedding,
    positions: Embedding,
    /// Token type 0's embedding, added to every token.
    type0: Vec<f32>,
    embd_norm: Norm,
    blocks: Vec<Block>,
    /// Present with rank pooling.
    rank_head: Option<RankHead>,
}

impl Bert {
    pub fn load(gguf: &GgufFile) -> Result<Bert, ModelError> {
        let p = EncoderParams::from_gguf(gguf)?;
        let w = WeightLoader { gguf };
        let d = p.n_embd;
        let kv = p.n_head_kv * p.head_dim;
        check_tensors(gguf, p.n_layer, p.pooling == Pooling::Rank)?;
        let n_vocab = gguf
            .tensor_info("token_embd.weight")
            .and_then(|t| t.dims.get(1).copied())
            .ok_or_else(|| GgufError::MissingTensor("token_embd.weight".into()))?
            as usize;
        let vec = |name: &str, len: usize| w.f32_vec(name, len);
        let norm = |name: &str| -> Result<Norm, ModelError> {
            Ok(Norm {
                weight: vec(&format!("{name}.weight"), d)?,
                bias: vec(&format!("{name}.bias"), d)?,
            })
        };
        let dense = |name: &str, inp: usize, out: usize| -> Result<Dense, ModelError> {
            Ok(Dense {
                w: w.linear(&format!("{name}.weight"), inp, out)?,
                bias: vec(&format!("{name}.bias"), out)?,
            })
        };
        // Token types: the table is optional; only type 0 is ever used.
        let type0 = match gguf.tensor_info("token_types.weight") {
            Some(info) => {
                let n_types = info.dims.get(1).copied().unwrap_or(0) as usize;
                let table = w.matrix("token_types.weight", d, n_types)?;
                let mut row = vec![0.0; d];
                table.dequantize_row(0, &mut row);
                row
            }
            None => vec![0.0; d],
        };
        let blocks = (0..p.n_layer)
            .map(|il| {
                let n = |s: &str| format!("blk.{il}.{s}");
                Ok(Block {
                    q: dense(&n("attn_q"), d, d)?,
                    k: dense(&n("attn_k"), d, kv)?,
                    v: dense(&n("attn_v"), d, kv)?,
                    out: dense(&n("attn_output"), d, d)?,
                    attn_norm: norm(&n("attn_output_norm"))?,
                    up: dense(&n("ffn_up"), d, p.n_ff)?,
                    down: dense(&n("ffn_down"), p.n_ff, d)?,
                    out_norm: norm(&n("layer_output_norm"))?,
                })
            })
            .collect::<Result<_, ModelError>>()?;
        let rank_head = match p.pooling {
            Pooling::Rank => {
                let n_out = gguf
                    .tensor_info("cls.output.weight")
                    .and_then(|t| t.dims.get(1).copied())
                    .ok_or_else(|| GgufError::MissingTensor("cls.output.weight".into()))?
                    as usize;
                let hidden = match gguf.tensor_info("cls.weight") {
                    Some(_) => Some(dense("cls", d, d)?),
                    None => None,
                };
                Some(RankHead {
                    dense: hidden,
                    out: dense("cls.output", d, n_out)?,
                })
            }
            _ => None,
        };
        Ok(Bert {
            rank_head,
            tokens: Embedding::new(Arc::new(w.matrix("token_embd.weight", d, n_vocab)?)),
            positions: Embedding::new(Arc::new(w.matrix(
                "position_embd.weight",
                d,
                p.context_length,
            )?)),
            type0,
            embd_norm: norm("token_embd_norm")?,
            blocks,
            p,
        })
    }

    pub fn params(&self) -> &EncoderParams {
        &self.p
    }

    pub fn n_vocab(&self) -> usize {
        self.tokens.n_vocab()
    }

    /// Values per input: the embedding's length, or a reranker's scores (one).
    pub fn output_dim(&self) -> usize {
        match &self.rank_head {
            Some(head) => head.out.bias.len(),
            None => self.p.n_embd,
        }
    }

    /// One pooled vector per input (`[inputs][n_embd]`, not normalised), all inputs in one pass:
    /// the matmuls read the weights once for all of them, and each input attends only to its
    /// own tokens, so its vector is the same as alone. Refused before any work: an empty input,
    /// one longer than the model's positions, a token outside the vocabulary.
    pub fn embed(
        &self,
        inputs: &[&[u32]],
        ws: &mut EncoderWorkspace,
    ) -> Result<Vec<f32>, ModelError> {
        let (d, p) = (self.p.n_embd, &self.p);
        for input in inputs {
            if input.is_empty() {
                return Err(ModelError::EmptyInput);
            }
            if input.len() > p.context_length {
                return Err(ModelError::PromptTooLong {
                    limit: p.context_length,
                });
            }
            if let Some(&token) = input.iter().find(|&&t| t as usize >= self.n_vocab()) {
                return Err(ModelError::TokenOutOfRange {
                    token,
                    n_vocab: self.n_vocab(),
                });
            }
        }
        let lens: Vec<usize> = inputs.iter().map(|i| i.len()).collect();
        let n_tok: usize = lens.iter().sum();
        let kv = p.n_head_kv * p.head_dim;
        // Token + position + type-0 embeddings, normalised.
        let x = sized(&mut ws.x, n_tok * d);
        let pos = sized(&mut ws.tmp, n_tok * d);
        let mut at = 0;
        for input in inputs {
            let positions: Vec<u32> = (0..input.len() as u32).collect();
            self.tokens
                .lookup(input, &mut x[at * d..][..input.len() * d])?;
            self.positions
                .lookup(&positions, &mut pos[at * d..][..input.len() * d])?;
            at += input.len();
        }
        for (row, prow) in x.chunks_exact_mut(d).zip(pos.chunks_exact(d)) {
            for ((v, &pv), &tv) in row.iter_mut().zip(prow).zip(&self.type0) {
                *v += pv + tv;
            }
        }
        layer_norm_inplace(x, &self.embd_norm.weight, &self.embd_norm.bias, p.norm_eps);
        let shape = FullShape {
            n_head: p.n_head,
            n_head_kv: p.n_head_kv,
            head_dim: p.head_dim,
            scale: 1.0 / (p.head_dim as f32).sqrt(),
        };
        for b in &self.blocks {
            let q = sized(&mut ws.q, n_tok * d);
            b.q.forward(&ws.x, q);
            let k = sized(&mut ws.k, n_tok * kv);
            b.k.forward(&ws.x, k);
            let v = sized(&mut ws.v, n_tok * kv);
            b.v.forward(&ws.x, v);
            let attn = sized(&mut ws.attn, n_tok * d);
            bidirectional(&ws.q, &ws.k, &ws.v, &lens, &shape, attn);
            let out = sized(&mut ws.tmp, n_tok * d);
            b.out.forward(&ws.attn, out);
            // Post-norm: the residual stream is the normalised sum.
            add_then_norm(&mut ws.x, &ws.tmp, &b.attn_norm, p.norm_eps);
            let ff = sized(&mut ws.ff, n_tok * p.n_ff);
            b.up.forward(&ws.x, ff);
            gelu_parallel(ff);
            let out = sized(&mut ws.tmp, n_tok * d);
            b.down.forward(&ws.ff, out);
            add_then_norm(&mut ws.x, &ws.tmp, &b.out_norm, p.norm_eps);
        }
        let pooled = pool(&ws.x, &lens, d, p.pooling);
        let Some(head) = &self.rank_head else {
            return Ok(pooled);
        };
        let mut x = pooled;
        if let Some(dense) = &head.dense {
            let mut y = vec![0.0; x.len()];
            dense.forward(&x, &mut y);
            x = y.into_iter().map(f32::tanh).collect();
        }
        let mut scores = vec![0.0; inputs.len() * head.out.bias.len()];
        head.out.forward(&x, &mut scores);
        Ok(scores)
    }
}

fn add_then_norm(x: &mut [f32], y: &[f32], norm: &Norm, eps: f32) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
    layer_norm_inplace(x, &norm.weight, &norm.bias, eps);
}

/// Each input's rows of `x` (`lens` of them, one input after another) pooled into one vector.
pub(crate) fn pool(x: &[f32], lens: &[usize], d: usize, pooling: Pooling) -> Vec<f32> {
    let mut out = Vec::with_capacity(lens.len() * d);
    let mut start = 0;
    for &len in lens {
        let rows = &x[start * d..(start + len) * d];
        match pooling {
            Pooling::Cls | Pooling::Rank => out.extend_from_slice(&rows[..d]),
            Pooling::Last => out.extend_from_slice(&rows[(len - 1) * d..]),
            Pooling::Mean => {
                let mut sum = vec![0.0f32; d];
                for row in rows.chunks_exact(d) {
                    sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
                }
                out.extend(sum.iter().map(|s| s / len as f32));
            }
        }
        start += len;
    }
    out
}

/// Every tensor of the file must be one this encoder consumes.
fn check_tensors(gguf: &GgufFile, n_layer: usize, rank: bool) -> Result<(), GgufError> {
    const GLOBAL: &[&str] = &[
        "token_embd.weight",
        "token_types.weight",
        "position_embd.weight",
        "token_embd_norm.weight",
        "token_embd_norm.bias",
    ];
    const PER_LAYER: &[&str] = &[
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "attn_output_norm",
        "ffn_up",
        "ffn_down",
        "layer_output_norm",
    ];
    let in_layer = |name: &str| {
        let Some((il, rest)) = name.strip_prefix("blk.").and_then(|n| n.split_once('.')) else {
            return false;
        };
        let Some((part, kind)) = rest.rsplit_once('.') else {
            return false;
        };
        il.parse::<usize>()
            .is_ok_and(|n| n < n_layer && n.to_string() == il)
            && PER_LAYER.contains(&part)
            && matches!(kind, "weight" | "bias")
    };
    for t in &gguf.header.tensors {
        let head = rank
            && matches!(
                t.name.as_str(),
                "cls.weight" | "cls.bias" | "cls.output.weight" | "cls.output.bias"
            );
        if !(GLOBAL.contains(&t.name.as_str()) || in_layer(&t.name) || head) {
            return Err(invalid(
                &t.name,
                "tensor",
                "this bert model has a tensor Ward does not use (a classifier head?); refusing \
                 to run it without what it computes",
            ));
        }
    }
    Ok(())
}

/// Scale each `dim`-long vector to unit length (a zero vector stays zero), as OpenAI's and
/// llama-server's embeddings are.
pub fn normalize(vectors: &mut [f32], dim: usize) {
    for v in vectors.chunks_exact_mut(dim) {
        let norm = v
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            v.iter_mut()
                .for_each(|x| *x = (f64::from(*x) / norm) as f32);
        }
    }
}
