//! Random-weight models with a real model's shape, for benchmarks and for checking each
//! architecture against llama.cpp: a Llama-3-8B- or Qwen2.5-7B-shaped Q4_K_M GGUF (4.9 / 4.7
//! GB) runs every kernel at the sizes that matter without downloading one, and tiny ones of
//! each architecture's real layout (Qwen3's wide heads and Q/K norms, Llama 3.1's RoPE
//! frequency factors, Qwen2.5's biases, Gemma 3's sliding windows and extra norms, and `tiny`
//! in Q4_K_M) are the random-weight models that `tests/logits_fixtures.rs` holds to llama.cpp
//! (scripts/reference/random_models.py).
//! The tensor types follow llama.cpp's Q4_K_M recipe (Q6_K for the output matrix and for
//! `attn_v` / `ffn_down` in the layers it gives more bits, Q4_K elsewhere, F32 norms and
//! biases); the blocks hold random bits with small, finite scales. The vocabulary is copied from
//! a real GGUF when one is given (so llama.cpp loads the file and text means something), else
//! a placeholder of one token per id.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::gguf::writer::{write_header, TensorInfo, ALIGN};
use crate::gguf::{Array, GgmlType, GgufError, GgufFile, Value};
use crate::hparams::Arch;

/// The shape of a model: sizes and the architecture's extra tensors.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub name: &'static str,
    pub arch: Arch,
    pub layers: u32,
    pub dim: u64,
    pub ff: u64,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u64,
    /// The placeholder vocabulary's size, when no real one is given.
    pub vocab: u64,
    pub context: u32,
    pub rope_base: f32,
    /// Llama 3.1's `rope_freqs.weight` (scaling factor 8 from 8192 positions).
    pub rope_freqs: bool,
    /// Every matrix in Q8_0 instead of the Q4_K_M recipe: its random blocks are zero-mean, so
    /// a tiny model's logits depend on the tokens and their positions (random Q4_K bits carry
    /// offsets that make one token win everywhere), as an oracle model needs.
    pub q8_0: bool,
    /// An embedding model's `pooling_type` (llama.cpp's numbering), if it is one.
    pub pooling: Option<u32>,
    /// Gemma 3's `attention.sliding_window`: five layers of every six see only this many
    /// positions.
    pub sliding_window: Option<u32>,
}

impl Shape {
    pub const LLAMA3_8B: Shape = Shape {
        name: "llama3-8b",
        arch: Arch::Llama,
        layers: 32,
        dim: 4096,
        ff: 14336,
        heads: 32,
        kv_heads: 8,
        head_dim: 128,
        vocab: 128_256,
        context: 8192,
        rope_base: 500_000.0,
        rope_freqs: false,
        q8_0: false,
        pooling: None,
        sliding_window: None,
    };

    /// HuatuoGPT-o1-7B, DeepSeek-R1-Distill-Qwen-7B and Apollo2-7B have this shape.
    pub const QWEN25_7B: Shape = Shape {
        name: "qwen2.5-7b",
        arch: Arch::Qwen2,
        layers: 28,
        dim: 3584,
        ff: 18944,
        heads: 28,
        kv_heads: 4,
        head_dim: 128,
        vocab: 152_064,
        context: 32768,
        rope_base: 1_000_000.0,
        rope_freqs: false,
        q8_0: false,
        pooling: None,
        sliding_window: None,
    };

    /// Small enough for a test, with every kind of tensor the large one has.
    pub const TINY: Shape = Shape {
        name: "tiny",
        arch: Arch::Llama,
        layers: 9,
        dim: 256,
        ff: 512,
        heads: 8,
        kv_heads: 2,
        head_dim: 32,
        vocab: 300,
        context: 512,
        rope_base: 500_000.0,
        rope_freqs: false,
        q8_0: false,
        pooling: None,
        sliding_window: None,
    };

    /// Llama 3.1's layout in small: frequency factors, 4 query heads per KV head.
    pub const TINY_LLAMA31: Shape = Shape {
        name: "tiny-llama3.1",
        rope_freqs: true,
        q8_0: true,
        layers: 4,
        context: 4096,
        ..Shape::TINY
    };

    /// Qwen3's layout in small: heads wider than n_embd / n_head, Q/K norms.
    pub const TINY_QWEN3: Shape = Shape {
        name: "tiny-qwen3",
        arch: Arch::Qwen3,
        layers: 4,
        heads: 4,
        kv_heads: 2,
        head_dim: 128,
        rope_base: 1_000_000.0,
        q8_0: true,
        context: 4096,
        ..Shape::TINY
    };

    /// Qwen3-Embedding's layout in small: Qwen3 with last-token pooling.
    pub const TINY_QWEN3_EMBEDDING: Shape = Shape {
        name: "tiny-qwen3-embedding",
        pooling: Some(3),
        ..Shape::TINY_QWEN3
    };

    /// Qwen2.5's layout in small: Q/K/V biases.
    pub const TINY_QWEN25: Shape = Shape {
        name: "tiny-qwen2.5",
        arch: Arch::Qwen2,
        layers: 4,
        rope_base: 1_000_000.0,
        q8_0: true,
        context: 4096,
        ..Shape::TINY
    };

    /// Gemma 3's layout in small: five sliding-window layers and one global one (a window far
    /// shorter than the oracle's prompts), Q/K norms, norms after attention and the FFN, one
    /// KV head, heads wider than n_embd / n_head. Its output matrix is its own, not the
    /// embeddings' as in Gemma's releases: random embeddings, scaled by √n_embd, dominate the
    /// residual stream, so a tied model only repeats its last token. (The gemma-3-270m fixture
    /// covers the tied read.)
    pub const TINY_GEMMA3: Shape = Shape {
        name: "tiny-gemma3",
        arch: Arch::Gemma3,
        layers: 6,
        heads: 4,
        kv_heads: 1,
        head_dim: 128,
        rope_base: 1_000_000.0,
        q8_0: true,
        context: 4096,
        sliding_window: Some(32),
        ..Shape::TINY
    };

    pub const ALL: [Shape; 8] = [
        Shape::LLAMA3_8B,
        Shape::QWEN25_7B,
        Shape::TINY,
        Shape::TINY_LLAMA31,
        Shape::TINY_QWEN3,
        Shape::TINY_QWEN3_EMBEDDING,
        Shape::TINY_QWEN25,
        Shape::TINY_GEMMA3,
    ];

    pub fn by_name(name: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|s| s.name == name)
    }
}

struct Planned {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
}

fn ggml(name: &str) -> GgmlType {
    GgmlType::from_name(name).expect("a ggml type")
}

fn plan(s: &Shape, vocab: u64) -> Vec<Planned> {
    let (q4k, q6k, f32) = match s.q8_0 {
        false => (ggml("Q4_K"), ggml("Q6_K"), ggml("F32")),
        true => (ggml("Q8_0"), ggml("Q8_0"), ggml("F32")),
    };
    let t = |name: String, dims: &[u64], ty| Planned {
        name,
        dims: dims.to_vec(),
        ty,
    };
    let q = s.head_dim * u64::from(s.heads);
    let kv = s.head_dim * u64::from(s.kv_heads);
    let mut out = vec![
        t("token_embd.weight".into(), &[s.dim, vocab], q4k),
        t("output_norm.weight".into(), &[s.dim], f32),
        t("output.weight".into(), &[s.dim, vocab], q6k),
    ];
    if s.rope_freqs {
        out.push(t("rope_freqs.weight".into(), &[s.head_dim / 2], f32));
    }
    for il in 0..s.layers {
        let b = |n: &str| format!("blk.{il}.{n}.weight");
        let more = if crate::hf::recipe::use_more_bits(il as usize, s.layers as usize) {
            q6k
        } else {
            q4k
        };
        out.push(t(b("attn_norm"), &[s.dim], f32));
        out.push(t(b("attn_q"), &[s.dim, q], q4k));
        out.push(t(b("attn_k"), &[s.dim, kv], q4k));
        out.push(t(b("attn_v"), &[s.dim, kv], more));
        out.push(t(b("attn_output"), &[q, s.dim], q4k));
        if s.arch == Arch::Qwen2 {
            let bias = |n: &str| format!("blk.{il}.{n}.bias");
            out.push(t(bias("attn_q"), &[q], f32));
            out.push(t(bias("attn_k"), &[kv], f32));
            out.push(t(bias("attn_v"), &[kv], f32));
        }
        if matches!(s.arch, Arch::Qwen3 | Arch::Gemma3) {
            out.push(t(b("attn_q_norm"), &[s.head_dim], f32));
            out.push(t(b("attn_k_norm"), &[s.head_dim], f32));
        }
        if s.arch == Arch::Gemma3 {
            out.push(t(b("post_attention_norm"), &[s.dim], f32));
            out.push(t(b("post_ffw_norm"), &[s.dim], f32));
        }
        out.push(t(b("ffn_norm"), &[s.dim], f32));
        out.push(t(b("ffn_gate"), &[s.dim, s.ff], q4k));
        out.push(t(b("ffn_up"), &[s.dim, s.ff], q4k));
        out.push(t(b("ffn_down"), &[s.ff, s.dim], more));
    }
    out
}

fn bytes_of(p: &Planned) -> usize {
    let n: u64 = p.dims.iter().product();
    (n / p.ty.block_size * p.ty.type_size) as usize
}

/// Write a random-weight model (Q4_K_M, or Q8_0 for the oracle shapes) of shape `shape` to `path` (through a temporary file, so
/// an interrupted write leaves nothing behind), with the vocabulary, merges and special tokens
/// of `vocab` (a GGUF, of which only the `tokenizer.*` metadata is read) or a placeholder. The
/// same arguments always give the same bytes. Returns the file's size.
pub fn write_random_model(
    path: &Path,
    shape: &Shape,
    seed: u64,
    vocab: Option<&GgufFile>,
) -> Result<u64, SynthError> {
    let arch = shape.arch.name();
    let p = |k: &str| format!("{arch}.{k}");
    let mut keys: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (
            "general.name".into(),
            Value::String(format!("random {}", shape.name)),
        ),
        (p("block_count"), Value::U32(shape.layers)),
        (p("embedding_length"), Value::U32(shape.dim as u32)),
        (p("feed_forward_length"), Value::U32(shape.ff as u32)),
        (p("attention.head_count"), Value::U32(shape.heads)),
        (p("attention.head_count_kv"), Value::U32(shape.kv_heads)),
        (p("attention.key_length"), Value::U32(shape.head_dim as u32)),
        (
            p("attention.value_length"),
            Value::U32(shape.head_dim as u32),
        ),
        (p("rope.dimension_count"), Value::U32(shape.head_dim as u32)),
        (p("rope.freq_base"), Value::F32(shape.rope_base)),
        (p("context_length"), Value::U32(shape.context)),
        (p("attention.layer_norm_rms_epsilon"), Value::F32(1e-6)),
    ];
    if let Some(pooling) = shape.pooling {
        keys.push((p("pooling_type"), Value::U32(pooling)));
    }
    if let Some(window) = shape.sliding_window {
        keys.push((p("attention.sliding_window"), Value::U32(window)));
    }
    let n_vocab = match vocab {
        Some(v) => copy_vocabulary(v, &mut keys)?,
        None => {
            keys.extend(placeholder_vocabulary(shape.vocab));
            shape.vocab
        }
    };
    let meta: Vec<(&str, Value)> = keys.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let planned = plan(shape, n_vocab);
    let infos: Vec<TensorInfo> = planned
        .iter()
        .map(|t| TensorInfo {
            name: &t.name,
            dims: &t.dims,
            ggml_type: t.ty,
            bytes: bytes_of(t),
        })
        .collect();
    let tmp = path.with_extension("gguf.partial");
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
    let header = write_header(&meta, &infos);
    out.write_all(&header)?;
    let mut written = header.len() as u64;
    let mut rng = seed | 1;
    let mut block = Vec::new();
    for t in &planned {
        let n: u64 = t.dims.iter().product();
        if t.name == "rope_freqs.weight" {
            for f in llama31_rope_factors(shape.head_dim as usize, shape.rope_base) {
                out.write_all(&f.to_le_bytes())?;
            }
        } else if t.name.ends_with(".bias") {
            for _ in 0..n {
                out.write_all(&(0.5 * unit(&mut rng)).to_le_bytes())?;
            }
        } else if t.ty.name == "F32" {
            // Norm weights near 1.
            for _ in 0..n {
                out.write_all(&(1.0 + 0.1 * unit(&mut rng)).to_le_bytes())?;
            }
        } else {
            for _ in 0..n / t.ty.block_size {
                random_block(t.ty, &mut rng, &mut block);
                out.write_all(&block)?;
            }
        }
        let len = bytes_of(t);
        let pad = len.div_ceil(ALIGN) * ALIGN - len;
        out.write_all(&vec![0u8; pad])?;
        written += (len + pad) as u64;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(written)
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the vocabulary file: {0}")]
    Vocab(#[from] GgufError),
    #[error("cannot write {0}")]
    Shape(String),
}

/// Every `tokenizer.*` key of `vocab` into `keys`; the number of tokens.
fn copy_vocabulary(vocab: &GgufFile, keys: &mut Vec<(String, Value)>) -> Result<u64, GgufError> {
    let n = match vocab.get_array("tokenizer.ggml.tokens")? {
        Some(Array::String(t)) if !t.is_empty() => t.len() as u64,
        _ => return Err(GgufError::MissingKey("tokenizer.ggml.tokens".into())),
    };
    for (k, v) in vocab.metadata() {
        if k.starts_with("tokenizer.") {
            keys.push((k.clone(), v.clone()));
        }
    }
    Ok(n)
}

/// One token per id and no merges: enough for `ward bench`, not for text. (`gpt-2` is the
/// pre-tokenizer's name llama.cpp knows; it refuses `gpt2`.)
fn placeholder_vocabulary(n: u64) -> Vec<(String, Value)> {
    vec![
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("gpt-2".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(Array::String((0..n).map(|i| format!("<t{i}>")).collect())),
        ),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(Array::String(vec![])),
        ),
    ]
}

/// The frequency factors llama.cpp's converter writes for Llama 3.1's `rope_scaling` (factor
/// 8, low/high frequency factors 1 and 4, 8192 original positions): wavelengths longer than
/// 8192 / 1 are slowed 8×, shorter than 8192 / 4 kept, and those between blended.
fn llama31_rope_factors(head_dim: usize, base: f32) -> Vec<f32> {
    let (factor, low, high, old_ctx) = (8.0f64, 1.0f64, 4.0f64, 8192.0f64);
    let (low_wavelen, high_wavelen) = (old_ctx / low, old_ctx / high);
    (0..head_dim / 2)
        .map(|i| {
            let freq = 1.0 / f64::from(base).powf((2 * i) as f64 / head_dim as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            let f = if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor
            } else {
                let smooth = (old_ctx / wavelen - low) / (high - low);
                1.0 / ((1.0 - smooth) / factor + smooth)
            };
            f as f32
        })
        .collect()
}

fn next(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

fn unit(rng: &mut u64) -> f32 {
    (next(rng) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
}

/// One block of random bits whose f16 scales are small and finite.
fn random_block(ty: GgmlType, rng: &mut u64, out: &mut Vec<u8>) {
    out.clear();
    while out.len() < ty.type_size as usize {
        out.extend_from_slice(&next(rng).to_le_bytes());
    }
    out.truncate(ty.type_size as usize);
    // Q4_K: d at 0, dmin at 2; Q6_K: d at 208; Q8_0: d at 0.
    let fields: &[usize] = match ty.name {
        "Q4_K" => &[0, 2],
        "Q6_K" => &[208],
        _ => &[0],
    };
    for &at in fields {
        let v = half::f16::from_f32(0.0005 + 0.002 * unit(rng).abs());
        out[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
}

/// Write a Hugging Face checkpoint directory with `shape`'s layout and random BF16 weights (what
/// training leaves: `config.json`, safetensors shards of at most `shard_bytes` with their
/// index), with the tokenizer files of `tokenizer_dir` copied in: the 7B-sized input for
/// measuring `--model DIR` load time and memory. Qwen2 and Llama shapes only.
pub fn write_random_checkpoint(
    dir: &Path,
    shape: &Shape,
    seed: u64,
    tokenizer_dir: &Path,
    shard_bytes: u64,
) -> Result<u64, SynthError> {
    let (model_type, class) = match shape.arch {
        Arch::Qwen2 => ("qwen2", "Qwen2ForCausalLM"),
        Arch::Llama => ("llama", "LlamaForCausalLM"),
        other => return Err(SynthError::Shape(format!("{other:?} checkpoints"))),
    };
    std::fs::create_dir_all(dir)?;
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(tokenizer_dir.join(f), dir.join(f))?;
    }
    let config = serde_json::json!({
        "architectures": [class], "model_type": model_type, "vocab_size": shape.vocab,
        "hidden_size": shape.dim, "intermediate_size": shape.ff,
        "num_hidden_layers": shape.layers, "num_attention_heads": shape.heads,
        "num_key_value_heads": shape.kv_heads, "max_position_embeddings": shape.context,
        "rms_norm_eps": 1e-6, "rope_theta": shape.rope_base, "hidden_act": "silu",
        "tie_word_embeddings": false, "torch_dtype": "bfloat16",
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )?;
    let (q, kv) = (
        shape.head_dim * u64::from(shape.heads),
        shape.head_dim * u64::from(shape.kv_heads),
    );
    let mut tensors: Vec<(String, Vec<u64>)> = vec![
        (
            "model.embed_tokens.weight".into(),
            vec![shape.vocab, shape.dim],
        ),
        ("lm_head.weight".into(), vec![shape.vocab, shape.dim]),
        ("model.norm.weight".into(), vec![shape.dim]),
    ];
    for il in 0..shape.layers {
        let p = |n: &str| format!("model.layers.{il}.{n}");
        tensors.push((p("input_layernorm.weight"), vec![shape.dim]));
        tensors.push((p("post_attention_layernorm.weight"), vec![shape.dim]));
        for (n, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
            tensors.push((p(&format!("self_attn.{n}.weight")), vec![rows, shape.dim]));
            if shape.arch == Arch::Qwen2 {
                tensors.push((p(&format!("self_attn.{n}.bias")), vec![rows]));
            }
        }
        tensors.push((p("self_attn.o_proj.weight"), vec![shape.dim, q]));
        tensors.push((p("mlp.gate_proj.weight"), vec![shape.ff, shape.dim]));
        tensors.push((p("mlp.up_proj.weight"), vec![shape.ff, shape.dim]));
        tensors.push((p("mlp.down_proj.weight"), vec![shape.dim, shape.ff]));
    }
    // Shards in order, each up to shard_bytes.
    let mut shards: Vec<Vec<(String, Vec<u64>)>> = vec![Vec::new()];
    let mut in_shard = 0u64;
    for t in tensors {
        let bytes = 2 * t.1.iter().product::<u64>();
        if in_shard > 0 && in_shard + bytes > shard_bytes {
            shards.push(Vec::new());
            in_shard = 0;
        }
        in_shard += bytes;
        shards.last_mut().unwrap().push(t);
    }
    let n = shards.len();
    let mut weight_map = serde_json::Map::new();
    let mut rng = seed | 1;
    let mut total = 0u64;
    for (i, shard) in shards.iter().enumerate() {
        let file = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
        let mut header = serde_json::Map::new();
        let mut offset = 0u64;
        for (name, dims) in shard {
            let bytes = 2 * dims.iter().product::<u64>();
            header.insert(
                name.clone(),
                serde_json::json!({"dtype": "BF16", "shape": dims, "data_offsets": [offset, offset + bytes]}),
            );
            offset += bytes;
            weight_map.insert(name.clone(), file.clone().into());
        }
        let mut head = serde_json::to_vec(&header).unwrap();
        head.resize(head.len().next_multiple_of(8), b' ');
        let mut out = BufWriter::with_capacity(1 << 22, std::fs::File::create(dir.join(&file))?);
        out.write_all(&(head.len() as u64).to_le_bytes())?;
        out.write_all(&head)?;
        let mut buf = Vec::with_capacity(1 << 20);
        for (name, dims) in shard {
            let vector = dims.len() == 1;
            let mut left = dims.iter().product::<u64>();
            while left > 0 {
                buf.clear();
                for _ in 0..left.min(1 << 19) {
                    let r = next(&mut rng);
                    // Norms near 1; biases and matrices small, of random sign: ±(1 + m/128)·2^e.
                    let bits: u16 = if vector && !name.ends_with(".bias") {
                        0x3F80 | (r & 0x0F) as u16
                    } else {
                        let e = 127 - 10 + (r >> 8) % 6;
                        ((r >> 16) as u16 & 0x8000) | ((e as u16) << 7) | (r & 0x7F) as u16
                    };
                    buf.extend_from_slice(&bits.to_le_bytes());
                }
                out.write_all(&buf)?;
                left -= (buf.len() / 2) as u64;
            }
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        total += 8 + head.len() as u64 + offset;
    }
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_vec_pretty(&index).unwrap(),
    )?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_matches_llama_cpp_for_32_layers() {
        let more_bits = crate::hf::recipe::use_more_bits;
        let picked: Vec<usize> = (0..32).filter(|&i| more_bits(i, 32)).collect();
        assert_eq!(
            picked,
            [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
        );
    }

    #[test]
    fn the_8b_shape_is_the_size_of_a_real_q4_k_m_file() {
        let bytes: usize = plan(&Shape::LLAMA3_8B, 128_256).iter().map(bytes_of).sum();
        // Meta's Llama-3-8B Q4_K_M GGUFs are 4.92 GB.
        assert!((4.8e9..5.0e9).contains(&(bytes as f64)), "{bytes}");
    }

    #[test]
    fn llama31_factors_slow_only_the_long_wavelengths() {
        let f = llama31_rope_factors(128, 500_000.0);
        assert_eq!(f.len(), 64);
        assert_eq!(f[0], 1.0);
        assert_eq!(f[63], 8.0);
        assert!(f.windows(2).all(|w| w[0] <= w[1]), "{f:?}");
    }
}
