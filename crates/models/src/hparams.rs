//! The model description: one validated account of what a GGUF file's model computes, parsed
//! once from its metadata and tensor directory. Every backend reads it (the CPU layers in
//! `arch/`, the GPU decoder), so an architecture is a set of rules here, not a flag each
//! backend interprets in its own way.
//!
//! Loading is fail-closed: a metadata key of the architecture that Ward does not understand, a
//! feature it does not implement (a RoPE scaling type, soft-caps, experts) or a tensor the
//! architecture does not consume is refused by name, never silently ignored. The rules follow
//! llama.cpp's `src/llama-model.cpp` and `src/models/*.cpp` for each architecture.

use std::sync::Arc;

use ward_kernels::activation::Activation;
use ward_kernels::rope::{Rope, RopeLayout};

use crate::gguf::{GgufError, GgufFile};

/// The architectures Ward implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
    Gemma3,
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::Llama, Arch::Qwen2, Arch::Qwen3, Arch::Gemma3];

    pub fn from_name(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The `general.architecture` value.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HParams {
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Dimensions of each head that RoPE rotates.
    pub rope_dim: usize,
    pub context_length: usize,
    pub rms_eps: f32,
    /// Which elements RoPE pairs: adjacent (llama) or half a head apart (NEOX: qwen, gemma).
    pub rope_layout: RopeLayout,
    /// RoPE base of global-attention layers.
    pub rope_base: f32,
    /// RoPE base of sliding-window layers (Gemma 3 uses 10 000 there).
    pub rope_base_local: f32,
    /// Position multiplier of global layers (`1 / rope.scaling.factor` for linear scaling).
    pub rope_freq_scale: f32,
    /// Llama 3.1+: divisors of each rotated pair's frequency (`rope_freqs.weight`, written by
    /// the converter from Llama 3's RoPE scaling), applied at every position.
    pub rope_freq_factors: Option<Arc<[f32]>>,
    /// Sliding-window size and which layers use it (Gemma 3: five local, then one global).
    pub sliding_window: Option<SlidingWindow>,
    pub attn_scale: f32,
    /// Qwen2: biases added to the Q, K and V projections.
    pub qkv_bias: bool,
    /// Qwen3, Gemma 3: per-head RMSNorm of the queries and keys before RoPE.
    pub qk_norm: bool,
    /// Gemma 3: RMSNorm of the attention and FFN outputs before they join the residual.
    pub post_norms: bool,
    /// The gated FFN's activation: SwiGLU or GeGLU.
    pub activation: Activation,
    /// Gemma: the embeddings are multiplied by √n_embd.
    pub embed_scale: Option<f32>,
    /// No `output.weight`: the output projection is the embedding table.
    pub tied_output: bool,
    /// An embedding model (Qwen3-Embedding): how its final hidden states become one vector per
    /// input. `None`: a generative model.
    pub pooling: Option<Pooling>,
}

/// How an embedding model's token vectors become one per input (llama.cpp's `pooling_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    /// The first token's ([CLS]).
    Cls,
    /// The last token's (Qwen3-Embedding).
    Last,
    /// A reranker's: the first token's vector through the classification head, one score per
    /// (query, document) pair.
    Rank,
}

impl Pooling {
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Last => "last",
            Pooling::Rank => "rank",
        }
    }

    /// The pooling `key` asks for: `None` for none (0, or no key: a generative model).
    pub fn from_gguf(gguf: &GgufFile, key: &str) -> Result<Option<Pooling>, GgufError> {
        Ok(match gguf.get_u64(key)? {
            None | Some(0) => None,
            Some(1) => Some(Pooling::Mean),
            Some(2) => Some(Pooling::Cls),
            Some(3) => Some(Pooling::Last),
            Some(4) => Some(Pooling::Rank),
            Some(v) => return Err(invalid(key, v, "not a pooling type llama.cpp defines")),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindow {
    pub size: usize,
    /// Every `pattern`-th layer (the last of each group) attends globally.
    pub pattern: usize,
}

/// Metadata keys under `<arch>.` that every architecture may carry and Ward reads (or, for
/// the last few, knows to be informational).
const COMMON_KEYS: &[&str] = &[
    "context_length",
    "embedding_length",
    "block_count",
    "feed_forward_length",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.layer_norm_rms_epsilon",
    "attention.key_length",
    "attention.value_length",
    "rope.dimension_count",
    "rope.freq_base",
    "rope.scaling.type",
    "rope.scaling.factor",
    // Only YaRN reads these; with the types Ward accepts they change nothing.
    "rope.scaling.original_context_length",
    "rope.scaling.finetuned",
    "vocab_size",
    // An embedding model's pooling (see `Pooling`).
    "pooling_type",
    // Accepted only as 0 (a dense model).
    "expert_count",
    "expert_used_count",
];

impl HParams {
    /// Whether layer `il` attends only to the last `window` positions.
    pub fn layer_window(&self, il: usize) -> Option<usize> {
        self.sliding_window
            .filter(|w| il % w.pattern < w.pattern - 1)
            .map(|w| w.size)
    }

    /// Layer `il`'s rotary embedding: sliding-window layers use the local base and no position
    /// scaling.
    pub fn layer_rope(&self, il: usize) -> Rope {
        let local = self.layer_window(il).is_some();
        Rope {
            head_dim: self.head_dim,
            rope_dim: self.rope_dim,
            base: if local {
                self.rope_base_local
            } else {
                self.rope_base
            },
            freq_scale: if local { 1.0 } else { self.rope_freq_scale },
            freq_factors: self.rope_freq_factors.clone(),
            layout: self.rope_layout,
        }
    }

    pub fn from_gguf(gguf: &GgufFile) -> Result<HParams, GgufError> {
        let arch_name = gguf.require_str("general.architecture")?;
        if arch_name == "bert" {
            return Err(invalid(
                "general.architecture",
                arch_name,
                "a text encoder (embeddings, reranking), not a generative model: `ward serve \
                 --model` serves it at /v1/embeddings or /v1/rerank",
            ));
        }
        let arch = Arch::from_name(arch_name).ok_or_else(|| {
            let known: Vec<_> = Arch::ALL.iter().map(|a| a.name()).collect();
            invalid(
                "general.architecture",
                arch_name,
                &format!(
                    "unsupported architecture (Ward implements {})",
                    known.join(", ")
                ),
            )
        })?;
        if let Some(n) = gguf.get_u64("split.count")? {
            if n > 1 {
                return Err(invalid(
                    "split.count",
                    n,
                    "this is one shard of a split GGUF; merge the shards first \
                     (llama-gguf-split --merge)",
                ));
            }
        }
        check_keys(gguf, arch)?;
        let p = arch_name;
        let key = |k: &str| format!("{p}.{k}");
        let count = |k: &str, max: u64| -> Result<usize, GgufError> {
            bounded(&key(k), gguf.require_u64(&key(k))?, 1, max)
        };
        for k in ["expert_count", "expert_used_count"] {
            if let Some(n @ 1..) = gguf.get_u64(&key(k))? {
                return Err(invalid(
                    &key(k),
                    n,
                    "mixture-of-experts models are not implemented",
                ));
            }
        }
        let n_layer = count("block_count", 1024)?;
        let n_embd = count("embedding_length", 1 << 16)?;
        let n_ff = count("feed_forward_length", 1 << 18)?;
        let n_head = count("attention.head_count", 1024)?;
        let n_head_kv = match gguf.get_u64(&key("attention.head_count_kv"))? {
            Some(v) => bounded(&key("attention.head_count_kv"), v, 1, n_head as u64)?,
            None => n_head,
        };
        if n_head % n_head_kv != 0 {
            return Err(invalid(
                &key("attention.head_count_kv"),
                n_head_kv,
                "must divide head_count",
            ));
        }
        let head_dim = match gguf.get_u64(&key("attention.key_length"))? {
            Some(v) => bounded(&key("attention.key_length"), v, 2, 4096)?,
            None if n_embd % n_head == 0 => n_embd / n_head,
            None => {
                return Err(invalid(
                    &key("embedding_length"),
                    n_embd,
                    "not divisible by head_count",
                ))
            }
        };
        if let Some(v) = gguf.get_u64(&key("attention.value_length"))? {
            if v as usize != head_dim {
                return Err(invalid(
                    &key("attention.value_length"),
                    v,
                    "must equal key_length",
                ));
            }
        }
        let rope_dim = match gguf.get_u64(&key("rope.dimension_count"))? {
            Some(v) => bounded(&key("rope.dimension_count"), v, 2, head_dim as u64)?,
            None => head_dim,
        };
        if head_dim % 2 != 0 || rope_dim % 2 != 0 {
            return Err(invalid(
                &key("rope.dimension_count"),
                rope_dim,
                "head and rope dims must be even",
            ));
        }
        // llama.cpp asserts that these architectures rotate whole heads.
        if arch != Arch::Llama && rope_dim != head_dim {
            return Err(invalid(
                &key("rope.dimension_count"),
                rope_dim,
                "must equal the head dimension for this architecture",
            ));
        }
        let context_length = count("context_length", 1 << 24)?;
        let rms_eps = positive(gguf, &key("attention.layer_norm_rms_epsilon"), None)?;
        let default_base = match arch {
            Arch::Gemma3 => 1_000_000.0,
            Arch::Llama | Arch::Qwen2 | Arch::Qwen3 => 10_000.0,
        };
        let rope_base = positive(gguf, &key("rope.freq_base"), Some(default_base))?;
        let rope_freq_scale = match gguf.get_str(&key("rope.scaling.type"))? {
            None | Some("none") => 1.0,
            Some("linear") => 1.0 / positive(gguf, &key("rope.scaling.factor"), Some(1.0))?,
            Some(other) => {
                return Err(invalid(
                    &key("rope.scaling.type"),
                    other,
                    "only linear RoPE scaling is implemented",
                ))
            }
        };
        let has = |name: &str| gguf.tensor_info(name).is_some();
        let mut hp = HParams {
            arch,
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            rope_dim,
            context_length,
            rms_eps,
            rope_layout: RopeLayout::Halves,
            rope_base,
            rope_base_local: rope_base,
            rope_freq_scale,
            rope_freq_factors: None,
            sliding_window: None,
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
            qkv_bias: false,
            qk_norm: false,
            post_norms: false,
            activation: Activation::Silu,
            embed_scale: None,
            tied_output: !has("output.weight"),
            pooling: Pooling::from_gguf(gguf, &key("pooling_type"))?,
        };
        if hp.pooling == Some(Pooling::Rank) {
            return Err(invalid(
                &key("pooling_type"),
                4,
                "a reranker of this architecture: Ward serves BERT rerankers only",
            ));
        }
        match arch {
            Arch::Llama => {
                hp.rope_layout = RopeLayout::Interleaved;
                hp.rope_freq_factors = rope_freq_factors(gguf, rope_dim)?;
            }
            Arch::Qwen2 => hp.qkv_bias = has("blk.0.attn_q.bias"),
            Arch::Qwen3 => hp.qk_norm = true,
            Arch::Gemma3 => {
                hp.qk_norm = true;
                hp.post_norms = true;
                hp.activation = Activation::Gelu;
                hp.embed_scale = Some((n_embd as f32).sqrt());
                // Gemma 3 alternates five sliding-window layers with one global layer, and its
                // local layers use their own RoPE base (10 000 in every release).
                let size = count("attention.sliding_window", 1 << 24)?;
                hp.sliding_window = Some(SlidingWindow { size, pattern: 6 });
                hp.rope_base_local = positive(gguf, &key("rope.freq_base_swa"), Some(10_000.0))?;
                // llama.cpp scales the 27B (62 layers) by 1/√(n_embd / n_head), after Gemma's
                // reference code, and every other size by 1/√head_dim.
                if n_layer == 62 {
                    hp.attn_scale = 1.0 / ((n_embd / n_head) as f32).sqrt();
                }
            }
        }
        hp.check_tensors(gguf)?;
        Ok(hp)
    }

    /// Every tensor of the file must be one this description consumes.
    fn check_tensors(&self, gguf: &GgufFile) -> Result<(), GgufError> {
        let mut per_layer = vec![
            "attn_norm.weight",
            "attn_q.weight",
            "attn_k.weight",
            "attn_v.weight",
            "attn_output.weight",
            "ffn_norm.weight",
            "ffn_gate.weight",
            "ffn_up.weight",
            "ffn_down.weight",
        ];
        if self.qkv_bias {
            per_layer.extend(["attn_q.bias", "attn_k.bias", "attn_v.bias"]);
        }
        if self.qk_norm {
            per_layer.extend(["attn_q_norm.weight", "attn_k_norm.weight"]);
        }
        if self.post_norms {
            per_layer.extend(["post_attention_norm.weight", "post_ffw_norm.weight"]);
        }
        let global = |name: &str| match name {
            "token_embd.weight" | "output_norm.weight" | "output.weight" => true,
            "rope_freqs.weight" => self.rope_freq_factors.is_some(),
            _ => false,
        };
        let in_layer = |name: &str| {
            let Some((il, rest)) = name.strip_prefix("blk.").and_then(|n| n.split_once('.')) else {
                return false;
            };
            // `blk.7.`, never `blk.07.`: one name per tensor.
            il.parse::<usize>()
                .is_ok_and(|n| n < self.n_layer && n.to_string() == il)
                && per_layer.contains(&rest)
        };
        for t in &gguf.header.tensors {
            if !(global(&t.name) || in_layer(&t.name)) {
                return Err(GgufError::InvalidValue {
                    key: t.name.clone(),
                    value: "tensor".into(),
                    reason: format!(
                        "this {} model has a tensor Ward does not use; refusing to run it \
                         without what it computes",
                        self.arch.name()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Refuse any `<arch>.*` metadata key Ward does not know: it may change what the model
/// computes (a soft-cap, a scaling rule), and ignoring it would give wrong answers quietly.
fn check_keys(gguf: &GgufFile, arch: Arch) -> Result<(), GgufError> {
    let extra: &[&str] = match arch {
        Arch::Gemma3 => &[
            "attention.sliding_window",
            // The sliding-window layers' RoPE base (10 000 where a file does not say).
            "rope.freq_base_swa",
            // The vision tower's image token count: the text model does not read it.
            "mm.tokens_per_image",
        ],
        Arch::Llama | Arch::Qwen2 | Arch::Qwen3 => &[],
    };
    refuse_unknown_keys(gguf, arch.name(), &[COMMON_KEYS, extra])
}

/// Refuse any `<arch>.*` key that is not in one of the `known` lists.
pub(crate) fn refuse_unknown_keys(
    gguf: &GgufFile,
    arch: &str,
    known: &[&[&str]],
) -> Result<(), GgufError> {
    let prefix = format!("{arch}.");
    for key in gguf.metadata().keys() {
        let Some(rest) = key.strip_prefix(&prefix) else {
            continue;
        };
        if !known.iter().any(|list| list.contains(&rest)) {
            return Err(invalid(
                key,
                "(present)",
                &format!(
                    "a {arch} setting Ward does not implement; refusing to run the model \
                     without it"
                ),
            ));
        }
    }
    Ok(())
}

/// Llama 3.1's `rope_freqs.weight`: one positive divisor per rotated pair, or `None`.
fn rope_freq_factors(gguf: &GgufFile, rope_dim: usize) -> Result<Option<Arc<[f32]>>, GgufError> {
    const NAME: &str = "rope_freqs.weight";
    let Some(info) = gguf.tensor_info(NAME) else {
        return Ok(None);
    };
    let n = rope_dim / 2;
    if info.dims != [n as u64] || info.ggml_type.name != "F32" {
        return Err(invalid(
            NAME,
            format!("{:?} {}", info.dims, info.ggml_type.name),
            &format!("must be {n} F32 values (one per rotated pair)"),
        ));
    }
    let factors: Vec<f32> = gguf
        .tensor_bytes(info)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if let Some(bad) = factors.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
        return Err(invalid(NAME, bad, "factors must be positive and finite"));
    }
    Ok(Some(factors.into()))
}

pub(crate) fn invalid(key: &str, value: impl ToString, reason: &str) -> GgufError {
    GgufError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

pub(crate) fn bounded(key: &str, v: u64, min: u64, max: u64) -> Result<usize, GgufError> {
    if v < min || v > max {
        return Err(invalid(key, v, &format!("must be between {min} and {max}")));
    }
    Ok(v as usize)
}

pub(crate) fn positive(gguf: &GgufFile, key: &str, default: Option<f32>) -> Result<f32, GgufError> {
    let v = match (gguf.get_f64(key)?, default) {
        (Some(v), _) => v as f32,
        (None, Some(d)) => d,
        (None, None) => return Err(GgufError::MissingKey(key.to_string())),
    };
    if !(v.is_finite() && v > 0.0) {
        return Err(invalid(key, v, "must be a positive finite number"));
    }
    Ok(v)
}
