//! Random-weight models with a real model's shape, for benchmarks: a Llama-3-8B-shaped
//! Q4_K_M GGUF (4.9 GB) runs every kernel at the sizes that matter without downloading one.
//! The tensor types follow llama.cpp's Q4_K_M recipe (Q6_K for the output matrix and for
//! `attn_v` / `ffn_down` in the layers it gives more bits, Q4_K elsewhere, F32 norms); the
//! blocks hold random bits with small, finite scales. The tokenizer is a placeholder (one
//! token per id, no merges): these files are for `ward bench`, not for text.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::gguf::writer::{write_header, TensorInfo, ALIGN};
use crate::gguf::{Array, GgmlType, Value};

/// The shape of a Llama-architecture model.
#[derive(Debug, Clone, Copy)]
pub struct LlamaShape {
    pub name: &'static str,
    pub layers: u32,
    pub dim: u64,
    pub ff: u64,
    pub heads: u32,
    pub kv_heads: u32,
    pub vocab: u64,
    pub context: u32,
    pub rope_base: f32,
}

impl LlamaShape {
    pub const LLAMA3_8B: LlamaShape = LlamaShape {
        name: "llama3-8b",
        layers: 32,
        dim: 4096,
        ff: 14336,
        heads: 32,
        kv_heads: 8,
        vocab: 128_256,
        context: 8192,
        rope_base: 500_000.0,
    };

    /// Small enough for a test, with every kind of tensor the large one has.
    pub const TINY: LlamaShape = LlamaShape {
        name: "tiny",
        layers: 9,
        dim: 256,
        ff: 512,
        heads: 8,
        kv_heads: 2,
        vocab: 300,
        context: 512,
        rope_base: 500_000.0,
    };

    pub fn by_name(name: &str) -> Option<LlamaShape> {
        [LlamaShape::LLAMA3_8B, LlamaShape::TINY]
            .into_iter()
            .find(|s| s.name == name)
    }
}

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers, and every third one
/// between, get the larger type for `attn_v` and `ffn_down`.
fn more_bits(layer: u32, layers: u32) -> bool {
    layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2
}

struct Planned {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
}

fn ggml(name: &str) -> GgmlType {
    GgmlType::from_name(name).expect("a ggml type")
}

fn plan(s: &LlamaShape) -> Vec<Planned> {
    let (q4k, q6k, f32) = (ggml("Q4_K"), ggml("Q6_K"), ggml("F32"));
    let t = |name: String, dims: &[u64], ty| Planned {
        name,
        dims: dims.to_vec(),
        ty,
    };
    let head_dim = s.dim / u64::from(s.heads);
    let kv = head_dim * u64::from(s.kv_heads);
    let mut out = vec![
        t("token_embd.weight".into(), &[s.dim, s.vocab], q4k),
        t("output_norm.weight".into(), &[s.dim], f32),
        t("output.weight".into(), &[s.dim, s.vocab], q6k),
    ];
    for il in 0..s.layers {
        let b = |n: &str| format!("blk.{il}.{n}.weight");
        let more = if more_bits(il, s.layers) { q6k } else { q4k };
        out.push(t(b("attn_norm"), &[s.dim], f32));
        out.push(t(b("attn_q"), &[s.dim, s.dim], q4k));
        out.push(t(b("attn_k"), &[s.dim, kv], q4k));
        out.push(t(b("attn_v"), &[s.dim, kv], more));
        out.push(t(b("attn_output"), &[s.dim, s.dim], q4k));
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

/// Write a random-weight Q4_K_M model of shape `shape` to `path` (through a temporary file, so
/// an interrupted write leaves nothing behind). Returns the file's size.
pub fn write_random_q4_k_m(path: &Path, shape: &LlamaShape, seed: u64) -> std::io::Result<u64> {
    let p = |k: &str| format!("llama.{k}");
    let head_dim = shape.dim as u32 / shape.heads;
    let keys: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String("llama".into())),
        (
            "general.name".into(),
            Value::String(format!("random {}", shape.name)),
        ),
        (p("block_count"), Value::U32(shape.layers)),
        (p("embedding_length"), Value::U32(shape.dim as u32)),
        (p("feed_forward_length"), Value::U32(shape.ff as u32)),
        (p("attention.head_count"), Value::U32(shape.heads)),
        (p("attention.head_count_kv"), Value::U32(shape.kv_heads)),
        (p("rope.dimension_count"), Value::U32(head_dim)),
        (p("rope.freq_base"), Value::F32(shape.rope_base)),
        (p("context_length"), Value::U32(shape.context)),
        (p("attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("gpt2".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(Array::String(
                (0..shape.vocab).map(|i| format!("<t{i}>")).collect(),
            )),
        ),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(Array::String(vec![])),
        ),
    ];
    let meta: Vec<(&str, Value)> = keys.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let planned = plan(shape);
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
        if t.ty.name == "F32" {
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
    // Q4_K: d at 0, dmin at 2; Q6_K: d at 208.
    let fields: &[usize] = if ty.name == "Q4_K" { &[0, 2] } else { &[208] };
    for &at in fields {
        let v = half::f16::from_f32(0.0005 + 0.002 * unit(rng).abs());
        out[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_matches_llama_cpp_for_32_layers() {
        let picked: Vec<u32> = (0..32).filter(|&i| more_bits(i, 32)).collect();
        assert_eq!(
            picked,
            [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
        );
    }

    #[test]
    fn the_8b_shape_is_the_size_of_a_real_q4_k_m_file() {
        let bytes: usize = plan(&LlamaShape::LLAMA3_8B).iter().map(bytes_of).sum();
        // Meta's Llama-3-8B Q4_K_M GGUFs are 4.92 GB.
        assert!((4.8e9..5.0e9).contains(&(bytes as f64)), "{bytes}");
    }
}
