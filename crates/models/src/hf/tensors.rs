//! A checkpoint's tensors under GGUF names, in the type each becomes, as llama.cpp's converter
//! maps them: names per `gguf-py`'s tensor map, Llama's Q/K rows permuted to GGML's RoPE layout,
//! 1-D tensors and norms in F32, the rest in the chosen type (F16 where a row is not a whole
//! number of the type's blocks). Every tensor of the checkpoint must be one the model uses.

use std::borrow::Cow;

use safetensors::Dtype;
use ward_kernels::quant::{quantize_row, WeightType};

use super::checkpoint::{decode_f32, Checkpoint, TensorEntry};
use super::config::Config;
use super::lora::{add_delta_row, Adapter};
use super::{recipe, HfError, Quantize};
use crate::hparams::Arch;

/// One tensor of the model to be: where its values come from and what it becomes.
#[derive(Debug, Clone)]
pub struct Planned {
    pub name: String,
    /// GGML order: `dims[0]` is the row length.
    pub dims: Vec<u64>,
    pub ty: WeightType,
    pub source: Source,
}

#[derive(Debug, Clone)]
pub enum Source {
    /// A checkpoint tensor, its rows permuted for RoPE (Llama's Q and K) with `heads` heads,
    /// with the LoRA deltas of these adapters (by index) merged in first, and `shift` added to
    /// every value (Gemma's norms: its RMSNorm multiplies by 1 + w).
    Checkpoint {
        name: String,
        permute_heads: Option<usize>,
        lora: Vec<usize>,
        shift: f32,
    },
    /// Values computed at conversion (Llama 3.1's `rope_freqs.weight`).
    Generated(Vec<f32>),
}

impl Planned {
    pub fn n_bytes(&self) -> usize {
        let rows: u64 = self.dims[1..].iter().product();
        self.ty
            .row_bytes(self.dims[0] as usize)
            .expect("planned types take whole rows")
            * rows as usize
    }

    /// The tensor's bytes in its GGML type: the checkpoint's own bytes where nothing changes,
    /// otherwise converted row by row.
    pub fn bytes<'a>(&'a self, checkpoint: &'a Checkpoint, adapters: &[Adapter]) -> Cow<'a, [u8]> {
        let (name, permute, lora, shift) = match &self.source {
            Source::Generated(values) => {
                let mut out = Vec::with_capacity(self.n_bytes());
                quantize_row(self.ty, values, &mut out).expect("planned");
                return Cow::Owned(out);
            }
            Source::Checkpoint {
                name,
                permute_heads,
                lora,
                shift,
            } => (name, *permute_heads, lora, *shift),
        };
        let entry = checkpoint.entry(name).expect("planned from the checkpoint");
        let raw = checkpoint.bytes(entry);
        let unchanged = permute.is_none() && lora.is_empty() && shift == 0.0;
        if unchanged && stored_as(entry.dtype) == Some(self.ty) {
            return Cow::Borrowed(raw);
        }
        // Each adapter's A (rank × cols) and B (rows × rank) as f32, and its scale.
        let deltas: Vec<(Vec<f32>, Vec<f32>, usize, f32)> = lora
            .iter()
            .map(|&i| {
                let ad = &adapters[i];
                let (a, b) = &ad.pairs[name];
                let (ea, eb) = (ad.weights.entry(a).unwrap(), ad.weights.entry(b).unwrap());
                let a = ad.weights.f32(a, &ea.shape).expect("checked when planned");
                let b = ad.weights.f32(b, &eb.shape).expect("checked when planned");
                (a, b, ad.rank, ad.scale)
            })
            .collect();
        let cols = self.dims[0] as usize;
        let row_in = cols * entry.dtype.bitsize() / 8;
        let rows = raw.len() / row_in;
        let row_out = self
            .ty
            .row_bytes(cols)
            .expect("planned types take whole rows");
        let mut out = vec![0u8; rows * row_out];
        // Rows are converted side by side on the kernel threads, 64 KiB of output at a time.
        let rows_per_chunk = (65536 / row_out).max(1);
        ward_kernels::pool::global().for_each_chunk(
            &mut out,
            rows_per_chunk * row_out,
            |at, chunk| {
                let mut values = vec![0.0f32; cols];
                let mut row = Vec::with_capacity(row_out);
                for (i, dst) in chunk.chunks_exact_mut(row_out).enumerate() {
                    let r = at / row_out + i;
                    let src = permute.map_or(r, |heads| rope_row(r, rows, heads));
                    decode_f32(entry.dtype, &raw[src * row_in..][..row_in], &mut values)
                        .expect("planned from a float tensor");
                    for (a, b, rank, scale) in &deltas {
                        add_delta_row(&mut values, a, &b[src * rank..][..*rank], *scale);
                    }
                    if shift != 0.0 {
                        values.iter_mut().for_each(|v| *v += shift);
                    }
                    row.clear();
                    quantize_row(self.ty, &values, &mut row).expect("planned");
                    dst.copy_from_slice(&row);
                }
            },
        );
        Cow::Owned(out)
    }
}

/// Row `r` of a Q or K projection in GGML's RoPE layout comes from this row of the Hugging Face
/// one: HF keeps each head's rotated pairs half a head apart, GGML (llama) side by side
/// (`LlamaModel.permute` in the converter).
fn rope_row(r: usize, rows: usize, heads: usize) -> usize {
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let (h, i) = (r / head_dim, r % head_dim);
    h * head_dim + (i % 2) * half + i / 2
}

fn stored_as(d: Dtype) -> Option<WeightType> {
    match d {
        Dtype::F32 => Some(WeightType::F32),
        Dtype::F16 => Some(WeightType::F16),
        Dtype::BF16 => Some(WeightType::BF16),
        _ => None,
    }
}

/// The GGUF name of a Hugging Face tensor, where the architecture uses it.
fn gguf_name(hf: &str, config: &Config) -> Option<String> {
    let global = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" if !config.tied => Some("output.weight"),
        _ => None,
    };
    if let Some(g) = global {
        return Some(g.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (il, part) = rest.split_once('.')?;
    let layer: usize = il.parse().ok().filter(|&n| n < config.n_layer)?;
    if layer.to_string() != il {
        return None;
    }
    let qkv_bias = config.arch == Arch::Qwen2;
    let qk_norm = matches!(config.arch, Arch::Qwen3 | Arch::Gemma3);
    let gemma = config.arch == Arch::Gemma3;
    let gguf = match part {
        // Gemma normalises each block's output too, and calls its FFN norm pre_feedforward.
        "post_attention_layernorm.weight" if gemma => "post_attention_norm.weight",
        "pre_feedforward_layernorm.weight" if gemma => "ffn_norm.weight",
        "post_feedforward_layernorm.weight" if gemma => "post_ffw_norm.weight",
        "input_layernorm.weight" => "attn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "self_attn.q_proj.bias" if qkv_bias => "attn_q.bias",
        "self_attn.k_proj.bias" if qkv_bias => "attn_k.bias",
        "self_attn.v_proj.bias" if qkv_bias => "attn_v.bias",
        "self_attn.q_norm.weight" if qk_norm => "attn_q_norm.weight",
        "self_attn.k_norm.weight" if qk_norm => "attn_k_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        _ => return None,
    };
    Some(format!("blk.{layer}.{gguf}"))
}

/// The shape (HF order, rows first) the config says `gguf` must have.
fn expected_shape(gguf: &str, c: &Config) -> Vec<usize> {
    let (q, kv) = (c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
    let part = gguf.splitn(3, '.').nth(2).unwrap_or(gguf);
    match (gguf, part) {
        ("token_embd.weight" | "output.weight", _) => vec![c.n_vocab, c.n_embd],
        ("output_norm.weight", _) => vec![c.n_embd],
        (_, "attn_norm.weight" | "ffn_norm.weight") => vec![c.n_embd],
        (_, "post_attention_norm.weight" | "post_ffw_norm.weight") => vec![c.n_embd],
        (_, "attn_q.weight") => vec![q, c.n_embd],
        (_, "attn_k.weight" | "attn_v.weight") => vec![kv, c.n_embd],
        (_, "attn_output.weight") => vec![c.n_embd, q],
        (_, "attn_q.bias") => vec![q],
        (_, "attn_k.bias" | "attn_v.bias") => vec![kv],
        (_, "attn_q_norm.weight" | "attn_k_norm.weight") => vec![c.head_dim],
        (_, "ffn_gate.weight" | "ffn_up.weight") => vec![c.n_ff, c.n_embd],
        (_, "ffn_down.weight") => vec![c.n_embd, c.n_ff],
        _ => unreachable!("{gguf} is not a mapped name"),
    }
}

/// The model's tensors in the converter's order: generated ones first, then the checkpoint's,
/// shard by shard in name order. Each is checked against the config (name, dtype, shape), and
/// a checkpoint tensor the model would not use is refused.
pub fn plan(
    checkpoint: &Checkpoint,
    config: &Config,
    quantize: Quantize,
    adapters: &[Adapter],
) -> Result<Vec<Planned>, HfError> {
    let mut out = Vec::new();
    if let Some(factors) = &config.rope_freqs {
        out.push(Planned {
            name: "rope_freqs.weight".into(),
            dims: vec![factors.len() as u64],
            ty: WeightType::F32,
            source: Source::Generated(factors.clone()),
        });
    }
    for hf in checkpoint.names_in_file_order() {
        // The converter drops these; transformers recomputes them.
        if hf.ends_with(".rotary_emb.inv_freq") {
            continue;
        }
        let entry = checkpoint.entry(hf).expect("named by the checkpoint");
        let lora: Vec<usize> = (0..adapters.len())
            .filter(|&i| adapters[i].pairs.contains_key(hf))
            .collect();
        if hf == "lm_head.weight" && config.tied {
            same_as_embeddings(checkpoint, entry)?;
            if let Some(&i) = lora.first() {
                return Err(HfError::Adapter {
                    dir: adapters[i].dir.clone(),
                    reason: "it adapts lm_head.weight, which this model ties to its embeddings"
                        .into(),
                });
            }
            continue;
        }
        let bad = |reason: String| HfError::Tensor {
            name: hf.to_string(),
            reason,
        };
        let gguf = gguf_name(hf, config).ok_or_else(|| {
            bad(format!(
                "not a tensor of this {} model; refusing to run it without what it computes",
                config.arch.name()
            ))
        })?;
        let stored = stored_as(entry.dtype).ok_or_else(|| {
            bad(format!(
                "dtype {:?}; Ward reads F32, F16 and BF16 checkpoints",
                entry.dtype
            ))
        })?;
        let want = expected_shape(&gguf, config);
        if entry.shape != want {
            return Err(bad(format!(
                "shape {:?}, but config.json makes it {want:?}",
                entry.shape
            )));
        }
        let cols = *want.last().expect("non-empty shape");
        let is_vector = want.len() == 1 || gguf.ends_with("_norm.weight");
        if is_vector && !lora.is_empty() {
            return Err(HfError::Adapter {
                dir: adapters[lora[0]].dir.clone(),
                reason: format!("it adapts {hf:?}, which is not a matrix"),
            });
        }
        let dims: Vec<u64> = want.iter().rev().map(|&d| d as u64).collect();
        let ty = match quantize {
            _ if is_vector => WeightType::F32,
            Quantize::None => stored,
            Quantize::To(t) if cols.is_multiple_of(t.block_len()) => t,
            // The converter's fallback for rows that are not whole blocks.
            Quantize::To(_) => WeightType::F16,
            // Settled below, in llama-quantize's order.
            Quantize::Mix(_) => stored,
        };
        let permute_heads = match (config.arch, gguf.rsplit('.').nth(1)) {
            (Arch::Llama, Some("attn_q")) => Some(config.n_head),
            (Arch::Llama, Some("attn_k")) => Some(config.n_head_kv),
            _ => None,
        };
        out.push(Planned {
            name: gguf,
            dims,
            ty,
            source: Source::Checkpoint {
                name: hf.to_string(),
                permute_heads,
                lora,
                // The converter's `norm_shift` for Gemma 3: every *norm.weight.
                shift: if config.arch == Arch::Gemma3 && hf.ends_with("norm.weight") {
                    1.0
                } else {
                    0.0
                },
            },
        });
    }
    if let Quantize::Mix(mix) = quantize {
        requantize(&mut out, mix, config);
    }
    let has = |name: &str| out.iter().any(|p| p.name == name);
    for (needed, why) in [
        ("token_embd.weight", "model.embed_tokens.weight is missing"),
        (
            "output.weight",
            "lm_head.weight is missing, and config.json does not tie the output to the \
             embeddings",
        ),
    ] {
        let tied_output = needed == "output.weight" && config.tied;
        if !has(needed) && !tied_output {
            return Err(HfError::Tensor {
                name: needed.into(),
                reason: why.into(),
            });
        }
    }
    Ok(out)
}

/// The converter's tensors as llama-quantize writes them under `mix`: in its order (tensors
/// outside the layers by name, then layer by layer, by name within each) and with the type its
/// recipe gives each, counting as it goes.
fn requantize(tensors: &mut [Planned], mix: recipe::Mix, config: &Config) {
    let layer = |name: &str| -> i64 {
        name.strip_prefix("blk.")
            .and_then(|r| r.split('.').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(-1)
    };
    tensors.sort_by(|a, b| (layer(&a.name), &a.name).cmp(&(layer(&b.name), &b.name)));
    let shape = recipe::Shape {
        n_layer: config.n_layer,
        n_gqa: config.n_head / config.n_head_kv,
        tied: config.tied,
    };
    let mut walk = recipe::Walk::default();
    for t in tensors {
        if let Some(ty) = walk.type_of(mix, &shape, &t.name, &t.dims) {
            t.ty = ty;
        }
    }
}

/// A tied model's checkpoint may still hold `lm_head.weight`; transformers ignores it, and so
/// does Ward, if it is the embedding table.
fn same_as_embeddings(checkpoint: &Checkpoint, lm_head: &TensorEntry) -> Result<(), HfError> {
    let same = checkpoint
        .entry("model.embed_tokens.weight")
        .is_some_and(|e| checkpoint.bytes(e) == checkpoint.bytes(lm_head));
    if same {
        return Ok(());
    }
    Err(HfError::Tensor {
        name: "lm_head.weight".into(),
        reason: "config.json ties the output to the embeddings (tie_word_embeddings), but this \
                 tensor differs from them"
            .into(),
    })
}
