//! llama.cpp's quantization mixes (`llama-quantize … Q4_K_M`): which type each tensor of a
//! model gets, from `llama_tensor_get_type` in `src/llama-quant.cpp`, for the dense
//! architectures Ward converts and no importance matrix. Applied to the tensors as the converter
//! lays them out (and in its order: llama.cpp counts `attn_v` and `ffn_down` tensors as it meets
//! them, and the converter writes layer 10 before layer 2), so a checkpoint quantized here gets
//! the types, and with `quantize_row` the bytes, that converting it and running llama-quantize
//! give.

use ward_kernels::quant::WeightType::{self, *};

/// A llama.cpp file type (`general.file_type`) whose mix Ward reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q2K,
    Q3KS,
    Q3KM,
    Q3KL,
    Q4KS,
    Q4KM,
    Q5KS,
    Q5KM,
    Q6K,
}

/// (name, llama.cpp's `llama_ftype` value, default type) of each mix.
const MIXES: [(&str, Mix, u32, WeightType); 13] = [
    ("q4_0", Mix::Q4_0, 2, Q4_0),
    ("q4_1", Mix::Q4_1, 3, Q4_1),
    ("q5_0", Mix::Q5_0, 8, Q5_0),
    ("q5_1", Mix::Q5_1, 9, Q5_1),
    ("q2_k", Mix::Q2K, 10, Q2_K),
    ("q3_k_s", Mix::Q3KS, 11, Q3_K),
    ("q3_k_m", Mix::Q3KM, 12, Q3_K),
    ("q3_k_l", Mix::Q3KL, 13, Q3_K),
    ("q4_k_s", Mix::Q4KS, 14, Q4_K),
    ("q4_k_m", Mix::Q4KM, 15, Q4_K),
    ("q5_k_s", Mix::Q5KS, 16, Q5_K),
    ("q5_k_m", Mix::Q5KM, 17, Q5_K),
    ("q6_k", Mix::Q6K, 18, Q6_K),
];

impl Mix {
    /// A mix by llama-quantize's name (`Q4_K_M`, any case); `q3_k`, `q4_k` and `q5_k` are its
    /// `_M` mixes, as llama-quantize reads them.
    pub fn parse(s: &str) -> Option<Mix> {
        let s = s.to_ascii_lowercase();
        let s = match s.as_str() {
            "q3_k" | "q4_k" | "q5_k" => format!("{s}_m"),
            _ => s,
        };
        MIXES.iter().find(|m| m.0 == s).map(|m| m.1)
    }

    pub fn names() -> impl Iterator<Item = &'static str> {
        MIXES.iter().map(|m| m.0)
    }

    fn entry(self) -> &'static (&'static str, Mix, u32, WeightType) {
        MIXES
            .iter()
            .find(|m| m.1 == self)
            .expect("every mix is listed")
    }

    /// `general.file_type`.
    pub fn file_type(self) -> u32 {
        self.entry().2
    }

    fn default_type(self) -> WeightType {
        self.entry().3
    }
}

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers, and every third one
/// between, get the larger type for `attn_v` and `ffn_down`.
pub fn use_more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i as isize - (n / 8) as isize) % 3 == 2
}

/// What the model looks like to llama-quantize.
pub struct Shape {
    pub n_layer: usize,
    /// Query heads per KV head.
    pub n_gqa: usize,
    /// No `output.weight`: the embeddings get the output's type.
    pub tied: bool,
}

/// Counts llama-quantize keeps as it walks the tensors.
#[derive(Default)]
pub struct Walk {
    i_attention_wv: usize,
    i_ffn_down: usize,
}

impl Walk {
    /// The type of the tensor `name` (GGML dims `dims`) under `mix`; `None` for a tensor
    /// llama-quantize copies as it is (1-D tensors, norms).
    pub fn type_of(
        &mut self,
        mix: Mix,
        shape: &Shape,
        name: &str,
        dims: &[u64],
    ) -> Option<WeightType> {
        if dims.len() < 2 || !name.ends_with("weight") || name.contains("_norm.weight") {
            return None;
        }
        let nx = dims[0] as usize;
        let n_attention_wv = shape.n_layer;
        let mut ty = mix.default_type();
        let is_output = name == "output.weight";
        let is_embd = name == "token_embd.weight";
        if is_output || (shape.tied && is_embd) {
            ty = if !nx.is_multiple_of(ty.block_len()) {
                Q8_0
            } else if ty != Q8_0 {
                Q6_K
            } else {
                ty
            };
        } else if is_embd {
            // The default type, unless a mix below Q3 (none Ward offers) says otherwise.
        } else if name.contains("attn_v.weight") {
            let i = self.i_attention_wv;
            match mix {
                Mix::Q2K => ty = if shape.n_gqa >= 4 { Q4_K } else { Q3_K },
                Mix::Q3KM => ty = if i < 2 { Q5_K } else { Q4_K },
                Mix::Q3KL => ty = Q5_K,
                Mix::Q4KM | Mix::Q5KM if use_more_bits(i, n_attention_wv) => ty = Q6_K,
                Mix::Q4KS if i < 4 => ty = Q5_K,
                _ => {}
            }
            // llama.cpp's 70B rule (8 query heads per KV head make attn_v small).
            if shape.n_layer == 80 && matches!(ty, Q3_K | Q4_K) {
                ty = Q5_K;
            }
            self.i_attention_wv += 1;
        } else if name.contains("ffn_down") {
            let (i, n) = (self.i_ffn_down, shape.n_layer);
            match mix {
                Mix::Q2K => ty = Q3_K,
                Mix::Q3KM => ty = if i < n / 16 { Q5_K } else { Q4_K },
                Mix::Q3KL => ty = Q5_K,
                Mix::Q4KM if use_more_bits(i, n) => ty = Q6_K,
                Mix::Q5KM if use_more_bits(i, n) => ty = Q6_K,
                Mix::Q4KS if i < n / 8 => ty = Q5_K,
                _ => {}
            }
            self.i_ffn_down += 1;
        } else if name.contains("attn_output.weight") {
            match mix {
                Mix::Q2K => ty = Q3_K,
                Mix::Q3KM => ty = Q4_K,
                Mix::Q3KL => ty = Q5_K,
                _ => {}
            }
        }
        Some(fallback(ty, nx))
    }
}

/// llama.cpp's `tensor_type_fallback`: a type whose blocks do not tile the row gives way to a
/// 32-value one, then to F16.
fn fallback(ty: WeightType, nx: usize) -> WeightType {
    if nx.is_multiple_of(ty.block_len()) {
        return ty;
    }
    let smaller = match ty {
        Q2_K | Q3_K => Q4_0,
        Q4_K => Q5_0,
        Q5_K => Q5_1,
        Q6_K => Q8_0,
        other => other,
    };
    if nx.is_multiple_of(smaller.block_len()) {
        smaller
    } else {
        F16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_k_m_of_a_7b_shape_is_llama_cpps() {
        // Qwen2.5-7B: 28 layers, 3584 wide (14 × 256), GQA 7; untied.
        let shape = Shape {
            n_layer: 28,
            n_gqa: 7,
            tied: false,
        };
        let mut walk = Walk::default();
        let mut t = |name: &str, nx: u64| walk.type_of(Mix::Q4KM, &shape, name, &[nx, 512]);
        assert_eq!(t("token_embd.weight", 3584), Some(Q4_K));
        assert_eq!(t("output.weight", 3584), Some(Q6_K));
        assert_eq!(t("blk.0.attn_norm.weight", 3584), None);
        assert_eq!(t("blk.0.attn_q.weight", 3584), Some(Q4_K));
        // Layers 0–2 (first eighth), then every third: 5, 8, …; the last eighth from 24.
        let v: Vec<_> = (0..28)
            .map(|_| t("blk.x.attn_v.weight", 3584).unwrap())
            .collect();
        let six: Vec<usize> = (0..28).filter(|&i| v[i] == Q6_K).collect();
        assert_eq!(six, [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27]);
        // ffn_down rows are 18944 wide: 74 blocks of 256.
        assert_eq!(t("blk.0.ffn_down.weight", 18944), Some(Q6_K));
        // 896 (Qwen2.5-0.5B) is not whole 256-blocks: Q4_K falls back to Q5_0, Q6_K to Q8_0.
        assert_eq!(t("blk.1.ffn_gate.weight", 896), Some(Q5_0));
        assert_eq!(t("output.weight", 896), Some(Q8_0));
    }

    #[test]
    fn names_read_as_llama_quantize_reads_them() {
        assert_eq!(Mix::parse("Q4_K_M"), Some(Mix::Q4KM));
        assert_eq!(Mix::parse("q4_k"), Some(Mix::Q4KM));
        assert_eq!(Mix::parse("q6_k"), Some(Mix::Q6K));
        assert_eq!(Mix::parse("q8_0"), None); // the converter's own type
        assert_eq!(Mix::Q4KM.file_type(), 15);
    }
}
