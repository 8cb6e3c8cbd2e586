//! `config.json` (and `generation_config.json`) → the GGUF metadata llama.cpp's
//! `convert_hf_to_gguf.py` writes for the same checkpoint, so an HF directory becomes the same
//! validated model description ([`crate::HParams`]) as a GGUF file.
//!
//! Fail-closed as GGUF loading is: every field of `config.json` is either read, known to change
//! nothing Ward computes, or refused by name; a value Ward does not implement (a RoPE scaling
//! type, sliding-window attention on Qwen2, biases on Llama, another activation) is refused
//! with the reason. Both layouts transformers writes are read: 4.x (`rope_theta`,
//! `rope_scaling`, `torch_dtype`) and 5.x (`rope_parameters`, `dtype`).

use serde_json::{Map, Value as Json};

use super::HfError;
use crate::gguf::{Array, Value};
use crate::hparams::Arch;

/// What the tensor mapping needs besides the metadata.
#[derive(Debug, Clone)]
pub struct Config {
    pub arch: Arch,
    /// GGUF metadata of the architecture, in the order the converter writes it
    /// (`general.file_type` and everything before it comes from the caller).
    pub hparams: Vec<(String, Value)>,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_vocab: usize,
    pub tied: bool,
    /// Llama 3.1's RoPE frequency scaling: `rope_freqs.weight`, generated as the converter does.
    pub rope_freqs: Option<Vec<f32>>,
    /// Gemma 3's sliding window (written after `general.file_type`).
    pub sliding_window: Option<usize>,
}

/// Fields of every architecture's config that change nothing Ward computes: bookkeeping,
/// training settings, token ids (the tokenizer files are authoritative for those).
const INFORMATIONAL: &[&str] = &[
    "_name_or_path",
    "architectures",
    "model_type",
    "transformers_version",
    "torch_dtype",
    "dtype",
    "use_cache",
    "initializer_range",
    "attention_dropout",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "unsloth_version",
    "unsloth_fixed",
];

fn architecture(model_type: &str) -> Option<(Arch, &'static str)> {
    Some(match model_type {
        "llama" => (Arch::Llama, "LlamaForCausalLM"),
        "qwen2" => (Arch::Qwen2, "Qwen2ForCausalLM"),
        "qwen3" => (Arch::Qwen3, "Qwen3ForCausalLM"),
        "gemma3_text" => (Arch::Gemma3, "Gemma3ForCausalLM"),
        _ => return None,
    })
}

/// Read `config.json`'s object into the model's metadata.
pub fn read(config: &Map<String, Json>) -> Result<Config, HfError> {
    let bad = |field: &str, reason: String| HfError::Config {
        field: field.to_string(),
        reason,
    };
    let model_type = config
        .get("model_type")
        .and_then(Json::as_str)
        .ok_or_else(|| bad("model_type", "missing".into()))?;
    let (arch, class) = architecture(model_type).ok_or_else(|| {
        bad(
            "model_type",
            format!(
                "{model_type:?} is not an architecture Ward loads from a checkpoint (llama, \
                 qwen2, qwen3, gemma3_text)"
            ),
        )
    })?;
    if let Some(archs) = config.get("architectures") {
        if archs.as_array().map(|a| a.as_slice()) != Some(&[Json::from(class)]) {
            return Err(bad(
                "architectures",
                format!("{archs} is not [\"{class}\"]: Ward serves causal language models"),
            ));
        }
    }
    let mut known: Vec<&str> = vec![
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "max_position_embeddings",
        "rms_norm_eps",
        "hidden_act",
        "tie_word_embeddings",
        "rope_theta",
        "rope_scaling",
        "rope_parameters",
    ];
    match arch {
        Arch::Llama => known.extend(["attention_bias", "mlp_bias", "pretraining_tp"]),
        Arch::Qwen2 => known.extend([
            "use_sliding_window",
            "sliding_window",
            "max_window_layers",
            "layer_types",
        ]),
        Arch::Qwen3 => known.extend([
            "attention_bias",
            "use_sliding_window",
            "sliding_window",
            "max_window_layers",
            "layer_types",
        ]),
        Arch::Gemma3 => known.extend([
            "attention_bias",
            "hidden_activation",
            "query_pre_attn_scalar",
            "sliding_window",
            "sliding_window_pattern",
            "layer_types",
            "rope_local_base_freq",
            "attn_logit_softcapping",
            "final_logit_softcapping",
            "use_bidirectional_attention",
            "cache_implementation",
        ]),
    }
    if let Some(field) = config
        .keys()
        .find(|k| !known.contains(&k.as_str()) && !INFORMATIONAL.contains(&k.as_str()))
    {
        return Err(bad(
            field,
            format!(
                "a {model_type} setting Ward does not implement; refusing to run the model \
                 without it"
            ),
        ));
    }
    let count = |field: &str, max: u64| -> Result<usize, HfError> {
        match config.get(field).and_then(Json::as_u64) {
            Some(v) if (1..=max).contains(&v) => Ok(v as usize),
            Some(v) => Err(bad(field, format!("{v} is not between 1 and {max}"))),
            None => Err(bad(field, "missing, or not a positive integer".into())),
        }
    };
    let flag = |field: &str, default: bool| -> Result<bool, HfError> {
        match config.get(field) {
            None | Some(Json::Null) => Ok(default),
            Some(Json::Bool(b)) => Ok(*b),
            Some(v) => Err(bad(field, format!("{v} is not true or false"))),
        }
    };
    let must_be = |field: &str, want: bool| -> Result<(), HfError> {
        if flag(field, want)? != want {
            return Err(bad(field, format!("only {want} is implemented")));
        }
        Ok(())
    };
    let n_layer = count("num_hidden_layers", 1024)?;
    let n_embd = count("hidden_size", 1 << 16)?;
    let n_ff = count("intermediate_size", 1 << 18)?;
    let n_head = count("num_attention_heads", 1024)?;
    let n_head_kv = match config.get("num_key_value_heads") {
        None | Some(Json::Null) => n_head,
        Some(_) => count("num_key_value_heads", n_head as u64)?,
    };
    let n_vocab = count("vocab_size", 1 << 24)?;
    let context = count("max_position_embeddings", 1 << 24)?;
    let head_dim_field = match config.get("head_dim") {
        None | Some(Json::Null) => None,
        Some(_) => Some(count("head_dim", 4096)?),
    };
    if head_dim_field.is_none() && n_embd % n_head != 0 {
        return Err(bad(
            "hidden_size",
            format!("{n_embd} is not divisible by num_attention_heads ({n_head})"),
        ));
    }
    let head_dim = head_dim_field.unwrap_or(n_embd / n_head);
    let rms_eps = config
        .get("rms_norm_eps")
        .and_then(Json::as_f64)
        .filter(|v| v.is_finite() && *v > 0.0)
        .ok_or_else(|| bad("rms_norm_eps", "missing, or not a positive number".into()))?;
    // Gemma names its activation apart, and it is GELU (tanh approximation).
    let (act_field, act) = match arch {
        Arch::Gemma3 => ("hidden_activation", "gelu_pytorch_tanh"),
        _ => ("hidden_act", "silu"),
    };
    match config.get(act_field) {
        Some(v) if v == act => {}
        other => {
            return Err(bad(
                act_field,
                format!(
                    "{}: only \"{act}\" is implemented for {model_type}",
                    other.map_or("missing".into(), Json::to_string)
                ),
            ))
        }
    }
    let tied = flag("tie_word_embeddings", arch != Arch::Llama)?;
    let mut sliding_window = None;
    match arch {
        Arch::Llama => {
            must_be("attention_bias", false)?;
            must_be("mlp_bias", false)?;
            if config
                .get("pretraining_tp")
                .and_then(Json::as_u64)
                .unwrap_or(1)
                != 1
            {
                return Err(bad("pretraining_tp", "only 1 is implemented".into()));
            }
        }
        Arch::Qwen2 | Arch::Qwen3 => {
            if arch == Arch::Qwen3 {
                must_be("attention_bias", false)?;
            }
            must_be("use_sliding_window", false)?;
            if let Some(types) = config.get("layer_types") {
                let all_full = types
                    .as_array()
                    .is_some_and(|t| t.iter().all(|t| t == "full_attention"));
                if !all_full {
                    return Err(bad(
                        "layer_types",
                        "only full attention in every layer is implemented".into(),
                    ));
                }
            }
        }
        Arch::Gemma3 => {
            must_be("attention_bias", false)?;
            must_be("use_bidirectional_attention", false)?;
            for softcap in ["attn_logit_softcapping", "final_logit_softcapping"] {
                if !config.get(softcap).is_none_or(Json::is_null) {
                    return Err(bad(softcap, "soft-capping is not implemented".into()));
                }
            }
            // llama.cpp (and Ward) scale queries by 1/√head_dim, and the 27B (62 layers) by
            // 1/√(hidden / heads): what Gemma's query_pre_attn_scalar says for every release.
            let scalar = if n_layer == 62 {
                n_embd / n_head
            } else {
                head_dim
            };
            if config.get("query_pre_attn_scalar").and_then(Json::as_u64) != Some(scalar as u64) {
                return Err(bad(
                    "query_pre_attn_scalar",
                    format!("only {scalar} (this size's head scaling) is implemented"),
                ));
            }
            // Five sliding-window layers, then a global one: the only pattern llama.cpp reads.
            let pattern_ok = match config.get("layer_types").and_then(Json::as_array) {
                Some(types) => types.iter().enumerate().all(|(i, t)| {
                    *t == if i % 6 == 5 {
                        "full_attention"
                    } else {
                        "sliding_attention"
                    }
                }),
                None => config.get("sliding_window_pattern").and_then(Json::as_u64) == Some(6),
            };
            if !pattern_ok {
                return Err(bad(
                    "layer_types",
                    "only five sliding-window layers to one global one is implemented".into(),
                ));
            }
            sliding_window = Some(count("sliding_window", 1 << 24)?);
        }
    }
    let rope = Rope::read(config, arch)?;

    let p = arch.name();
    let u32v = |v: usize| Value::U32(v as u32);
    let mut hparams = vec![
        (format!("{p}.block_count"), u32v(n_layer)),
        (format!("{p}.context_length"), u32v(context)),
        (format!("{p}.embedding_length"), u32v(n_embd)),
        (format!("{p}.feed_forward_length"), u32v(n_ff)),
        (format!("{p}.attention.head_count"), u32v(n_head)),
    ];
    if config.contains_key("num_key_value_heads") {
        hparams.push((format!("{p}.attention.head_count_kv"), u32v(n_head_kv)));
    }
    if let Some(factor) = rope.linear {
        hparams.push((
            format!("{p}.rope.scaling.type"),
            Value::String("linear".into()),
        ));
        hparams.push((
            format!("{p}.rope.scaling.factor"),
            Value::F32(factor as f32),
        ));
    }
    if let Some(theta) = rope.theta {
        hparams.push((format!("{p}.rope.freq_base"), Value::F32(theta as f32)));
    }
    if let Some(local) = rope.local_theta {
        hparams.push((format!("{p}.rope.freq_base_swa"), Value::F32(local as f32)));
    }
    hparams.push((
        format!("{p}.attention.layer_norm_rms_epsilon"),
        Value::F32(rms_eps as f32),
    ));
    if let Some(d) = head_dim_field {
        hparams.push((format!("{p}.attention.key_length"), u32v(d)));
        hparams.push((format!("{p}.attention.value_length"), u32v(d)));
    }
    let rope_freqs = rope
        .llama3
        .map(|s| s.factors(head_dim, rope.theta.unwrap_or(10_000.0) as f32));
    Ok(Config {
        arch,
        hparams,
        n_layer,
        n_embd,
        n_ff,
        n_head,
        n_head_kv,
        head_dim,
        n_vocab,
        tied,
        rope_freqs,
        sliding_window,
    })
}

/// Metadata the converter writes after `general.file_type`: Llama's vocabulary size and RoPE
/// dimensions, Gemma's sliding window.
pub fn trailing(config: &Config) -> Vec<(String, Value)> {
    if let Some(w) = config.sliding_window {
        return vec![(
            "gemma3.attention.sliding_window".into(),
            Value::U32(w as u32),
        )];
    }
    match config.arch {
        Arch::Llama => vec![
            ("llama.vocab_size".into(), Value::U32(config.n_vocab as u32)),
            (
                "llama.rope.dimension_count".into(),
                Value::U32(config.head_dim as u32),
            ),
        ],
        _ => Vec::new(),
    }
}

/// The RoPE settings of either layout.
struct Rope {
    theta: Option<f64>,
    linear: Option<f64>,
    llama3: Option<Llama3Scaling>,
    /// Gemma 3's base for its sliding-window layers.
    local_theta: Option<f64>,
}

impl Rope {
    fn read(config: &Map<String, Json>, arch: Arch) -> Result<Rope, HfError> {
        let bad = |field: &str, reason: String| HfError::Config {
            field: field.to_string(),
            reason,
        };
        // transformers 5 keeps θ and the scaling in one object (per kind of layer for Gemma 3:
        // full_attention and sliding_attention); 4.x has them apart.
        let by_layer = config
            .get("rope_parameters")
            .and_then(|p| Some((p.get("full_attention")?, p.get("sliding_attention"))));
        let (params, field) = match (config.get("rope_parameters"), by_layer) {
            (_, Some((Json::Object(p), _))) => (Some(p), "rope_parameters.full_attention"),
            (Some(Json::Object(p)), _) => (Some(p), "rope_parameters"),
            (None | Some(Json::Null), _) => (
                config.get("rope_scaling").and_then(Json::as_object),
                "rope_scaling",
            ),
            (Some(v), _) => return Err(bad("rope_parameters", format!("{v} is not an object"))),
        };
        if !matches!(
            config.get("rope_scaling"),
            None | Some(Json::Null | Json::Object(_))
        ) {
            return Err(bad("rope_scaling", "not an object".into()));
        }
        let number = |obj: &Map<String, Json>, key: &str| -> Result<Option<f64>, HfError> {
            match obj.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .map(Some)
                    .ok_or_else(|| bad(&format!("{field}.{key}"), format!("{v} is not positive"))),
            }
        };
        let theta = match params
            .map(|p| number(p, "rope_theta"))
            .transpose()?
            .flatten()
        {
            Some(t) => Some(t),
            None => number(config, "rope_theta")?,
        };
        let local_theta = match by_layer.and_then(|(_, s)| s) {
            Some(Json::Object(s)) => {
                if !matches!(
                    s.get("rope_type").and_then(Json::as_str),
                    None | Some("default")
                ) {
                    return Err(bad(
                        "rope_parameters.sliding_attention.rope_type",
                        "only default RoPE on the sliding-window layers is implemented".into(),
                    ));
                }
                number(s, "rope_theta")?
            }
            _ => number(config, "rope_local_base_freq")?,
        };
        let mut rope = Rope {
            theta,
            linear: None,
            llama3: None,
            local_theta: (arch == Arch::Gemma3).then(|| local_theta.unwrap_or(10_000.0)),
        };
        let Some(params) = params else {
            return Ok(rope);
        };
        let kind = params
            .get("rope_type")
            .or_else(|| params.get("type"))
            .and_then(Json::as_str)
            .unwrap_or("default");
        let known: &[&str] = match kind {
            "default" => &[],
            "linear" => &["factor"],
            "llama3" => &[
                "factor",
                "low_freq_factor",
                "high_freq_factor",
                "original_max_position_embeddings",
            ],
            other => {
                return Err(bad(
                    &format!("{field}.rope_type"),
                    format!("{other:?}: Ward implements default, linear and llama3 RoPE scaling"),
                ))
            }
        };
        if let Some(k) = params.keys().find(|k| {
            !["rope_type", "type", "rope_theta"].contains(&k.as_str())
                && !known.contains(&k.as_str())
        }) {
            return Err(bad(
                &format!("{field}.{k}"),
                format!("a {kind} RoPE setting Ward does not implement"),
            ));
        }
        match kind {
            "linear" => rope.linear = number(params, "factor")?,
            "llama3" => {
                let get = |k: &str, d: f64| Ok::<f64, HfError>(number(params, k)?.unwrap_or(d));
                rope.llama3 = Some(Llama3Scaling {
                    factor: get("factor", 8.0)?,
                    low: get("low_freq_factor", 1.0)?,
                    high: get("high_freq_factor", 4.0)?,
                    original_context: get("original_max_position_embeddings", 8192.0)?,
                });
            }
            _ => {}
        }
        Ok(rope)
    }
}

/// Llama 3.1's RoPE scaling (`rope_type: llama3`).
#[derive(Debug, Clone, Copy)]
pub struct Llama3Scaling {
    pub factor: f64,
    pub low: f64,
    pub high: f64,
    pub original_context: f64,
}

impl Llama3Scaling {
    /// `rope_freqs.weight`: one divisor per rotated pair, computed in float32 as the
    /// converter's torch code does (Python's float constants rounded to float32 on the way in).
    pub fn factors(&self, head_dim: usize, base: f32) -> Vec<f32> {
        let (factor, low, original) = (self.factor as f32, self.low as f32, self.original_context);
        let low_wavelen = (self.original_context / self.low) as f32;
        let high_wavelen = (self.original_context / self.high) as f32;
        let span = (self.high - self.low) as f32;
        (0..head_dim / 2)
            .map(|i| {
                let freq = 1.0 / base.powf((2 * i) as f32 / head_dim as f32);
                let wavelen = std::f32::consts::TAU / freq;
                if wavelen < high_wavelen {
                    1.0
                } else if wavelen > low_wavelen {
                    factor
                } else {
                    let smooth = (original as f32 / wavelen - low) / span;
                    1.0 / ((1.0 - smooth) / factor + smooth)
                }
            })
            .collect()
    }
}

/// `general.sampling.*` from `generation_config.json`, as the converter copies them.
pub fn sampling(generation: &Map<String, Json>) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if let Some(k) = generation.get("top_k").and_then(Json::as_i64) {
        out.push(("general.sampling.top_k".into(), Value::I32(k as i32)));
    }
    for (field, key) in [
        ("top_p", "top_p"),
        ("min_p", "min_p"),
        ("temperature", "temp"),
        ("repetition_penalty", "penalty_repeat"),
    ] {
        if let Some(v) = generation.get(field).and_then(Json::as_f64) {
            out.push((format!("general.sampling.{key}"), Value::F32(v as f32)));
        }
    }
    out
}

/// An array of strings as GGUF metadata.
pub fn strings(items: Vec<String>) -> Value {
    Value::Array(Array::String(items))
}
