//! A second, in-process oracle for Hugging Face checkpoints: candle-transformers' Llama, Qwen2
//! and Qwen3 run the same tiny checkpoints (models/hf/) in float32. Where candle agrees with
//! transformers (the fixture's logits), Ward must agree with candle.
//!
//! candle's models give the last position's logits only, so each comparison runs prefixes of
//! the fixture's chat prompt: the last `PREFIXES` positions, each from an empty cache.
//!
//! Measured: candle is within 1e-5 of transformers; Ward, with the checkpoint's weights in F32,
//! within 0.005 / 0.009 / 0.012 of candle (Llama / Qwen2 / Qwen3) — its KV cache holds F16, as
//! llama.cpp's does. (candle-transformers 0.11's Gemma 3 has no RoPE scaling, which the tiny
//! Gemma 3 checkpoint has as MedGemma's does, so it is no oracle for it.)

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{llama, qwen2, qwen3};
use common::{fixture, ids, root};
use ward_kernels::quant::WeightType;
use ward_models::hf::{HfModel, Quantize};
use ward_models::Workspace;

const PREFIXES: usize = 4;

fn weights(dir: &std::path::Path) -> VarBuilder<'static> {
    // SAFETY: the test files are not modified while mapped.
    unsafe {
        VarBuilder::from_mmaped_safetensors(
            &[dir.join("model.safetensors")],
            DType::F32,
            &Device::Cpu,
        )
    }
    .unwrap()
}

fn config(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap()
}

/// candle's last-position logits for `tokens`, from a fresh model state.
fn candle_logits(arch: &str, dir: &std::path::Path, tokens: &[u32]) -> Vec<f32> {
    let input = Tensor::new(tokens, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let c = config(dir);
    let n = |k: &str| c[k].as_u64().unwrap() as usize;
    let logits = match arch {
        "llama" => {
            let cfg: llama::LlamaConfig = serde_json::from_value(c.clone()).unwrap();
            let cfg = cfg.into_config(false);
            let model = llama::Llama::load(weights(dir), &cfg).unwrap();
            let mut cache = llama::Cache::new(false, DType::F32, &cfg, &Device::Cpu).unwrap();
            model.forward(&input, 0, &mut cache).unwrap()
        }
        "qwen2" => {
            let cfg: qwen2::Config = serde_json::from_value(c.clone()).unwrap();
            let mut model = qwen2::ModelForCausalLM::new(&cfg, weights(dir)).unwrap();
            model.forward(&input, 0).unwrap()
        }
        "qwen3" => {
            // A transformers 5 config (rope_parameters), which candle's serde does not read.
            let cfg = qwen3::Config {
                vocab_size: n("vocab_size"),
                hidden_size: n("hidden_size"),
                intermediate_size: n("intermediate_size"),
                num_hidden_layers: n("num_hidden_layers"),
                num_attention_heads: n("num_attention_heads"),
                head_dim: n("head_dim"),
                attention_bias: false,
                num_key_value_heads: n("num_key_value_heads"),
                max_position_embeddings: n("max_position_embeddings"),
                sliding_window: None,
                max_window_layers: n("max_window_layers"),
                tie_word_embeddings: true,
                rope_theta: c["rope_parameters"]["rope_theta"].as_f64().unwrap(),
                rms_norm_eps: c["rms_norm_eps"].as_f64().unwrap(),
                use_sliding_window: false,
                hidden_act: candle_nn::Activation::Silu,
            };
            let mut model = qwen3::ModelForCausalLM::new(&cfg, weights(dir)).unwrap();
            model.forward(&input, 0).unwrap()
        }
        other => panic!("{other}"),
    };
    logits.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Largest difference between `a` and the fixture `position`'s top 8 and probe ids.
fn diff_from(fx: &serde_json::Value, position: &serde_json::Value, a: &[f32]) -> f32 {
    let probe = ids(&fx["logits"]["probe_ids"]);
    let mut worst = 0.0f32;
    for t in position["top"].as_array().unwrap() {
        worst =
            worst.max((a[t[0].as_u64().unwrap() as usize] - t[1].as_f64().unwrap() as f32).abs());
    }
    for (&id, v) in probe.iter().zip(position["probe"].as_array().unwrap()) {
        worst = worst.max((a[id as usize] - v.as_f64().unwrap() as f32).abs());
    }
    worst
}

/// Largest difference between two full logit rows.
fn diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn ward_agrees_with_candle_where_candle_agrees_with_transformers() {
    for (name, arch, tol_candle_hf, tol_ward_candle) in [
        ("tiny-llama-hf", "llama", 1e-3, 0.03),
        ("tiny-qwen2-hf", "qwen2", 1e-3, 0.03),
        ("tiny-qwen3-hf", "qwen3", 1e-3, 0.03),
    ] {
        let fx = fixture(&format!("hf-{name}.json"));
        let dir = root().join("models").join(fx["dir"].as_str().unwrap());
        let prompt = ids(&fx["logits"]["prompt"]);
        // Ward with F32 weights: the same arithmetic candle does, in its own kernels.
        let gguf = HfModel::open(&dir, Quantize::To(WeightType::F32))
            .unwrap()
            .into_gguf();
        let ward = ward_models::arch::load(&gguf).unwrap();
        let mut ws = Workspace::default();
        let mut cache = ward.new_cache(prompt.len());
        let ward_rows = ward
            .forward(&prompt, &mut cache, prompt.len(), &mut ws)
            .unwrap();
        let (mut worst_hf, mut worst_ward) = (0.0f32, 0.0f32);
        for len in prompt.len() + 1 - PREFIXES..=prompt.len() {
            let candle = candle_logits(arch, &dir, &prompt[..len]);
            worst_hf = worst_hf.max(diff_from(&fx, &fx["logits"]["positions"][len - 1], &candle));
            worst_ward = worst_ward.max(diff(ward_rows.row(len - 1), &candle));
        }
        eprintln!(
            "{name}: candle vs transformers {worst_hf:.5}, Ward (F32) vs candle {worst_ward:.5}"
        );
        assert!(
            worst_hf <= tol_candle_hf,
            "{name}: candle and transformers disagree ({worst_hf})"
        );
        assert!(
            worst_ward <= tol_ward_candle,
            "{name}: Ward and candle disagree ({worst_ward})"
        );
    }
}
