//! Hugging Face checkpoints (models/hf/, built by scripts/fetch-models.sh) against their oracles
//! in scripts/reference/fixtures/hf-*.json (scripts/reference/hf_checkpoints.py):
//!
//! * the GGUF Ward converts a directory to is byte for byte the one llama.cpp's
//!   `convert_hf_to_gguf.py` writes, for every output type both have;
//! * Ward's tokenizer, reading the converted vocabulary, gives transformers' ids;
//! * unquantized, Ward's logits match transformers' float32 logits closely, and greedy decoding
//!   picks the same tokens; quantized to Q8_0 at load, within a measured tolerance;
//! * llama.cpp running that converted file and Ward agree (llama.cpp's logits from
//!   hf_checkpoints.py --llama-cpp).

mod common;

use common::{fixture, ids, root};
use sha2::{Digest, Sha256};
use ward_kernels::quant::WeightType;
use ward_models::hf::{HfModel, Quantize};
use ward_models::{CausalLm, Tokenizer, Workspace};

const CHECKPOINTS: [&str; 4] = [
    "tiny-llama-hf",
    "tiny-qwen2-hf",
    "tiny-qwen3-hf",
    "tiny-gemma3-hf",
];

fn dir(fx: &serde_json::Value) -> std::path::PathBuf {
    root().join("models").join(fx["dir"].as_str().unwrap())
}

#[test]
fn conversion_is_byte_for_byte_llama_cpps() {
    for name in CHECKPOINTS {
        let fx = fixture(&format!("hf-{name}.json"));
        for (outtype, quantize) in [
            ("bf16", Quantize::None),
            ("f16", Quantize::To(WeightType::F16)),
            ("f32", Quantize::To(WeightType::F32)),
            ("q8_0", Quantize::To(WeightType::Q8_0)),
        ] {
            let model = HfModel::open(&dir(&fx), quantize).unwrap();
            let mut out = Vec::new();
            model.write_gguf(&mut out).unwrap();
            let want = &fx["convert"][outtype];
            let sha: String = Sha256::digest(&out)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(
                (out.len() as u64, sha.as_str()),
                (
                    want["bytes"].as_u64().unwrap(),
                    want["sha256"].as_str().unwrap()
                ),
                "{name} --outtype {outtype}"
            );
        }
    }
}

/// `--type q4_k_m` and the other mixes write what llama-quantize writes from the converter's
/// BF16 file (these 64-wide models exercise its fallbacks: Q4_K to Q5_0, Q6_K to Q8_0, …;
/// the K-quant blocks themselves are held to ggml by ward-kernels' `quantized_bytes_match_ggml`).
#[test]
fn quantization_mixes_are_byte_for_byte_llama_quantizes() {
    for name in CHECKPOINTS {
        let fx = fixture(&format!("hf-{name}.json"));
        for (mix, want) in fx["llama_quantize"].as_object().unwrap() {
            let quantize = Quantize::parse(mix).unwrap();
            let mut out = Vec::new();
            HfModel::open(&dir(&fx), quantize)
                .unwrap()
                .write_gguf(&mut out)
                .unwrap();
            assert_eq!(
                (out.len() as u64, sha256_hex(&out)),
                (
                    want["bytes"].as_u64().unwrap(),
                    want["sha256"].as_str().unwrap().to_string()
                ),
                "{name} {mix}"
            );
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn tokenizer_gives_transformers_ids() {
    for name in CHECKPOINTS {
        let fx = fixture(&format!("hf-{name}.json"));
        let gguf = HfModel::open(&dir(&fx), Quantize::None)
            .unwrap()
            .into_gguf();
        let tok = Tokenizer::from_gguf(&gguf).unwrap();
        let mut failures = Vec::new();
        for case in fx["tokens"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            for (add_special, key) in [(false, "ids"), (true, "ids_with_specials")] {
                let (got, want) = (tok.encode(text, add_special), ids(&case[key]));
                if got != want {
                    failures.push(format!(
                        "{text:?} ({key}): ward {got:?} transformers {want:?}"
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
    }
}

/// The logits at every position of the fixture's prompt.
fn ward_logits(model: &dyn CausalLm, prompt: &[u32]) -> Vec<Vec<f32>> {
    let mut ws = Workspace::default();
    let mut cache = model.new_cache(prompt.len() + 8);
    let logits = model
        .forward(prompt, &mut cache, prompt.len(), &mut ws)
        .unwrap();
    (0..prompt.len()).map(|i| logits.row(i).to_vec()).collect()
}

/// Greedy continuation of `prompt` by `n` tokens.
fn ward_greedy(model: &dyn CausalLm, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut ws = Workspace::default();
    let mut cache = model.new_cache(prompt.len() + n);
    let mut input = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..n {
        let logits = model.forward(&input, &mut cache, 1, &mut ws).unwrap();
        let row = logits.row(0);
        let best = (0..row.len())
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap();
        out.push(best as u32);
        input = vec![best as u32];
    }
    out
}

/// Largest difference from an oracle's `positions` (each one's top 8 and the probe ids).
fn max_diff(fx: &serde_json::Value, positions: &serde_json::Value, ward: &[Vec<f32>]) -> f32 {
    let probe = ids(&fx["logits"]["probe_ids"]);
    let mut worst = 0.0f32;
    for (pos, row) in positions.as_array().unwrap().iter().zip(ward) {
        for t in pos["top"].as_array().unwrap() {
            let (id, v) = (
                t[0].as_u64().unwrap() as usize,
                t[1].as_f64().unwrap() as f32,
            );
            worst = worst.max((row[id] - v).abs());
        }
        for (&id, v) in probe.iter().zip(pos["probe"].as_array().unwrap()) {
            worst = worst.max((row[id as usize] - v.as_f64().unwrap() as f32).abs());
        }
    }
    worst
}

/// llama.cpp, running the GGUF `ward convert` writes (the converter's, byte for byte), and Ward
/// running the same model agree at every position of the prompt, closer than either is to
/// transformers (both round activations the same way). Measured worst differences: BF16 0.016 /
/// 0.001 / 0.044 / 0.054 (Llama / Qwen2 / Qwen3 / Gemma 3), Q8_0 0.000 / 0.000 / 0.110 / 0.264.
#[test]
fn logits_match_llama_cpp_on_the_converted_file() {
    for (name, tol_bf16, tol_q8) in [
        ("tiny-llama-hf", 0.05, 0.05),
        ("tiny-qwen2-hf", 0.05, 0.05),
        ("tiny-qwen3-hf", 0.1, 0.25),
        ("tiny-gemma3-hf", 0.1, 0.35),
    ] {
        let fx = fixture(&format!("hf-{name}.json"));
        let prompt = ids(&fx["logits"]["prompt"]);
        for (outtype, quantize, tol) in [
            ("bf16", Quantize::None, tol_bf16),
            ("q8_0", Quantize::To(WeightType::Q8_0), tol_q8),
        ] {
            let gguf = HfModel::open(&dir(&fx), quantize).unwrap().into_gguf();
            let model = ward_models::arch::load(&gguf).unwrap();
            let ward = ward_logits(model.as_ref(), &prompt);
            let diff = max_diff(&fx, &fx["llama_cpp"][outtype], &ward);
            eprintln!("{name} {outtype}: worst difference from llama.cpp {diff:.4}");
            assert!(diff <= tol, "{name} {outtype}: {diff} > {tol}");
        }
    }
}

/// Unquantized (BF16 weights as stored), Ward's logits are transformers' to within the rounding
/// of activations to BF16 for the BF16 dot products; quantized to Q8_0 at load (weights and
/// activations in 8 bits), within that rounding. Measured worst differences over each
/// position's top 8 and 16 probe ids, on top logits of 6–9 (Llama), 16–21 (Qwen) and 17–30
/// (Gemma 3): unquantized 0.044 / 0.109 / 0.099 / 0.065 (Llama / Qwen2 / Qwen3 / Gemma 3,
/// under 1 % of the top logit), Q8_0 0.21 / 0.46 / 0.48 / 0.29 (at most 2.3 %). The bounds
/// sit a little above; a wrong permutation, bias or norm moves logits by whole units.
#[test]
fn logits_match_transformers() {
    for (name, tol_none, tol_q8) in [
        ("tiny-llama-hf", 0.06, 0.3),
        ("tiny-qwen2-hf", 0.15, 0.6),
        ("tiny-qwen3-hf", 0.15, 0.65),
        ("tiny-gemma3-hf", 0.1, 0.4),
    ] {
        let fx = fixture(&format!("hf-{name}.json"));
        let prompt = ids(&fx["logits"]["prompt"]);
        for (quantize, tol) in [
            (Quantize::None, tol_none),
            (Quantize::To(WeightType::Q8_0), tol_q8),
        ] {
            let gguf = HfModel::open(&dir(&fx), quantize).unwrap().into_gguf();
            let model = ward_models::arch::load(&gguf).unwrap();
            let diff = max_diff(
                &fx,
                &fx["logits"]["positions"],
                &ward_logits(model.as_ref(), &prompt),
            );
            eprintln!("{name} {quantize:?}: worst logit difference {diff:.4}");
            assert!(diff <= tol, "{name} {quantize:?}: {diff} > {tol}");
            if quantize == Quantize::None {
                let greedy = ward_greedy(model.as_ref(), &prompt, 8);
                assert_eq!(
                    greedy,
                    ids(&fx["logits"]["greedy"]),
                    "{name}: greedy tokens"
                );
            }
        }
    }
}

/// A LoRA adapter merged at load gives the logits of PEFT's `merge_and_unload()` (float32):
/// merged in F32 they agree to rounding; merged into the checkpoint's BF16 (`--quantize none`),
/// within BF16's rounding of the merged weights. Greedy tokens are PEFT's. Measured worst
/// differences (Llama / Qwen2): F32 0.005 / 0.012, BF16 0.051 / 0.143.
#[test]
fn lora_merge_matches_peft() {
    for (name, adapter, tol_f32, tol_bf16) in [
        ("tiny-llama-hf", "tiny-llama-lora", 0.03, 0.1),
        ("tiny-qwen2-hf", "tiny-qwen2-lora", 0.03, 0.25),
    ] {
        let fx = fixture(&format!("hf-{name}.json"));
        let want = &fx["lora"][adapter];
        let prompt = ids(&want["prompt"]);
        let adapter_dir = root().join("models/hf").join(adapter);
        for (quantize, tol) in [
            (Quantize::To(WeightType::F32), tol_f32),
            (Quantize::None, tol_bf16),
        ] {
            let model =
                HfModel::open_merged(&dir(&fx), quantize, &[(adapter_dir.clone(), 1.0)]).unwrap();
            assert_eq!(
                model
                    .metadata
                    .iter()
                    .find(|(k, _)| k == "general.name")
                    .unwrap()
                    .1,
                ward_models::gguf::Value::String(adapter.into())
            );
            let model = ward_models::arch::load(&model.into_gguf()).unwrap();
            let diff = max_diff(
                &fx,
                &want["positions"],
                &ward_logits(model.as_ref(), &prompt),
            );
            eprintln!(
                "{name} + {adapter} {quantize:?}: worst logit difference from PEFT {diff:.4}"
            );
            assert!(
                diff <= tol,
                "{name} + {adapter} {quantize:?}: {diff} > {tol}"
            );
            assert_eq!(
                ward_greedy(model.as_ref(), &prompt, 8),
                ids(&want["greedy"])
            );
        }
    }
}
