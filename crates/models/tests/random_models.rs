//! Small random-weight GGUF models written by the test itself: every architecture loads through
//! the same path as real files, a prompt run in one batch gives the same logits, bit for bit, as
//! the same prompt fed one token at a time (KV cache, RoPE positions and sliding windows agree;
//! logits_fixtures.rs holds `ward synth`'s models of these layouts to llama.cpp), and a
//! wrongly shaped tensor, a tensor the architecture does not use or a metadata setting Ward does
//! not implement is refused with an error naming it.

use ward_models::gguf::writer::{write_gguf, TensorToWrite};
use ward_models::gguf::{Array, Value};
use ward_models::{LoadedModel, ModelError, Workspace};

const D: u64 = 32;
const FF: u64 = 64;
const HEADS: u32 = 4;
const KV_HEADS: u32 = 2;
const HD: u64 = 8;
const VOCAB: u64 = 256;

struct Rand(u64);
impl Rand {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }
}

fn tensor(r: &mut Rand, name: &str, dims: &[u64], scale: f32, offset: f32) -> TensorToWrite {
    let n: u64 = dims.iter().product();
    TensorToWrite::f32(name, dims, (0..n).map(|_| offset + scale * r.next()))
}

type Keys = Vec<(String, Value)>;

fn write_model(arch: &str, n_layer: u32, bad_shape: bool) -> std::path::PathBuf {
    let (keys, ts) = model_parts(arch, n_layer, bad_shape);
    save(arch, &keys, &ts)
}

/// The metadata and tensors of a random `arch` model, for a test to change before saving.
fn model_parts(arch: &str, n_layer: u32, bad_shape: bool) -> (Keys, Vec<TensorToWrite>) {
    let mut r = Rand(arch.len() as u64 + u64::from(bad_shape));
    let p = |k: &str| format!("{arch}.{k}");
    let mut keys: Keys = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (p("block_count"), Value::U32(n_layer)),
        (p("embedding_length"), Value::U32(D as u32)),
        (p("feed_forward_length"), Value::U32(FF as u32)),
        (p("attention.head_count"), Value::U32(HEADS)),
        (p("attention.head_count_kv"), Value::U32(KV_HEADS)),
        (p("attention.key_length"), Value::U32(HD as u32)),
        (p("context_length"), Value::U32(64)),
        (p("attention.layer_norm_rms_epsilon"), Value::F32(1e-6)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("gpt-2".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(Array::String(
                (0..VOCAB).map(|i| format!("<t{i}>")).collect(),
            )),
        ),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(Array::String(vec![])),
        ),
    ];
    if arch == "gemma3" {
        keys.push((p("attention.sliding_window"), Value::U32(4)));
    }
    let mut ts = vec![
        tensor(&mut r, "token_embd.weight", &[D, VOCAB], 1.0, 0.0),
        tensor(&mut r, "output_norm.weight", &[D], 0.1, 1.0),
    ];
    let kv = KV_HEADS as u64 * HD;
    for il in 0..n_layer {
        let b = |n: &str| format!("blk.{il}.{n}.weight");
        let q_rows = if bad_shape && il == 1 { D + 1 } else { D };
        ts.push(tensor(&mut r, &b("attn_norm"), &[D], 0.1, 1.0));
        ts.push(tensor(&mut r, &b("attn_q"), &[D, q_rows], 0.5, 0.0));
        ts.push(tensor(&mut r, &b("attn_k"), &[D, kv], 0.5, 0.0));
        ts.push(tensor(&mut r, &b("attn_v"), &[D, kv], 0.5, 0.0));
        ts.push(tensor(&mut r, &b("attn_output"), &[D, D], 0.5, 0.0));
        ts.push(tensor(&mut r, &b("ffn_norm"), &[D], 0.1, 1.0));
        ts.push(tensor(&mut r, &b("ffn_gate"), &[D, FF], 0.5, 0.0));
        ts.push(tensor(&mut r, &b("ffn_up"), &[D, FF], 0.5, 0.0));
        ts.push(tensor(&mut r, &b("ffn_down"), &[FF, D], 0.5, 0.0));
        if arch == "gemma3" || arch == "qwen3" {
            ts.push(tensor(&mut r, &b("attn_q_norm"), &[HD], 0.1, 1.0));
            ts.push(tensor(&mut r, &b("attn_k_norm"), &[HD], 0.1, 1.0));
        }
        if arch == "gemma3" {
            ts.push(tensor(&mut r, &b("post_attention_norm"), &[D], 0.1, 1.0));
            ts.push(tensor(&mut r, &b("post_ffw_norm"), &[D], 0.1, 1.0));
        }
        if arch == "qwen2" {
            let bias = |t: &str| format!("blk.{il}.attn_{t}.bias");
            ts.push(tensor(&mut r, &bias("q"), &[D], 0.5, 0.0));
            ts.push(tensor(&mut r, &bias("k"), &[kv], 0.5, 0.0));
            ts.push(tensor(&mut r, &bias("v"), &[kv], 0.5, 0.0));
        }
    }
    (keys, ts)
}

fn save(name: &str, keys: &Keys, ts: &[TensorToWrite]) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "ward-random-{name}-{}-{n}.gguf",
        std::process::id()
    ));
    let meta: Vec<(&str, Value)> = keys.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    std::fs::write(&path, write_gguf(&meta, ts)).unwrap();
    path
}

/// The error loading `keys` and `ts` gives.
fn load_error(keys: &Keys, ts: &[TensorToWrite]) -> String {
    let path = save("refused", keys, ts);
    let err = LoadedModel::load(&path, None).err().expect("refused");
    std::fs::remove_file(&path).unwrap();
    err.to_string()
}

fn batch_equals_incremental(arch: &str, n_layer: u32) {
    let path = write_model(arch, n_layer, false);
    let lm = LoadedModel::load(&path, None).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(lm.model.hparams().arch.name(), arch);
    batch_equals_incremental_of(lm, arch);
}

fn batch_equals_incremental_of(lm: LoadedModel, arch: &str) {
    let tokens: Vec<u32> = (0..13).map(|i| (i * 37 % VOCAB) as u32).collect();
    let (mut batch_ws, mut ws) = (Workspace::default(), Workspace::default());
    let mut cache = lm.model.new_cache(64);
    let batch = lm
        .model
        .forward(&tokens, &mut cache, tokens.len(), &mut batch_ws)
        .unwrap();
    let mut cache = lm.model.new_cache(64);
    for (i, &t) in tokens.iter().enumerate() {
        let one = lm.model.forward(&[t], &mut cache, 1, &mut ws).unwrap();
        // Batch invariance: a position's logits have the same bits however it was batched.
        let (one, batch) = (one.row(0), batch.row(i));
        let same = one
            .iter()
            .zip(batch)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        if !same {
            let worst = one.iter().zip(batch).map(|(a, b)| (a - b).abs());
            let worst = worst.fold(0.0f32, f32::max);
            panic!("{arch} position {i}: batch and incremental logits differ by up to {worst:e}");
        }
    }
    assert_eq!(cache.len(), tokens.len());
}

#[test]
fn llama_batch_equals_incremental() {
    batch_equals_incremental("llama", 2);
}

#[test]
fn qwen2_batch_equals_incremental() {
    batch_equals_incremental("qwen2", 2);
}

#[test]
fn qwen3_batch_equals_incremental() {
    batch_equals_incremental("qwen3", 2);
}

#[test]
fn llama_with_rope_frequency_factors_batch_equals_incremental() {
    let (keys, mut ts) = model_parts("llama", 2, false);
    let factors = (0..HD / 2).map(|i| 1.0 + i as f32);
    ts.push(TensorToWrite::f32("rope_freqs.weight", &[HD / 2], factors));
    let path = save("llama3", &keys, &ts);
    let lm = LoadedModel::load(&path, None).unwrap();
    assert!(lm.model.hparams().rope_freq_factors.is_some());
    batch_equals_incremental_of(lm, "llama3");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn what_an_architecture_does_not_use_is_refused_by_name() {
    // A tensor the architecture has no place for: biases on llama, qwen2's on qwen3, norms
    // of another layer, frequency factors outside llama.
    for (arch, name) in [
        ("llama", "blk.0.attn_output.bias"),
        ("llama", "blk.0.attn_q.bias"),
        ("qwen3", "blk.1.attn_v.bias"),
        ("llama", "blk.2.attn_norm.weight"),
        ("llama", "blk.01.attn_norm.weight"),
        ("qwen2", "rope_freqs.weight"),
        ("gemma3", "rope_freqs.weight"),
        ("llama", "output.bias"),
    ] {
        let (keys, mut ts) = model_parts(arch, 2, false);
        ts.push(TensorToWrite::f32(
            name,
            &[HD / 2],
            vec![1.0; (HD / 2) as usize],
        ));
        let err = load_error(&keys, &ts);
        assert!(
            err.contains(name) && err.contains("does not use"),
            "{arch} {name}: {err}"
        );
    }
    // A metadata setting Ward does not implement, or experts, or a RoPE scaling it lacks.
    for (arch, key, value) in [
        ("gemma3", "gemma3.attn_logit_softcapping", Value::F32(50.0)),
        ("gemma3", "gemma3.final_logit_softcapping", Value::F32(30.0)),
        ("llama", "llama.attention.sliding_window", Value::U32(4)),
        ("llama", "llama.expert_count", Value::U32(8)),
        (
            "qwen2",
            "qwen2.rope.scaling.type",
            Value::String("yarn".into()),
        ),
        (
            "qwen3",
            "qwen3.attention.layer_norm_epsilon",
            Value::F32(1e-5),
        ),
    ] {
        let (mut keys, ts) = model_parts(arch, 2, false);
        keys.push((key.to_string(), value));
        let err = load_error(&keys, &ts);
        assert!(err.contains(key), "{arch} {key}: {err}");
    }
    // One shard of a split file.
    let (mut keys, ts) = model_parts("llama", 2, false);
    keys.push(("split.count".into(), Value::U16(3)));
    assert!(load_error(&keys, &ts).contains("split"));
}

#[test]
fn gemma3_batch_equals_incremental_across_the_window() {
    // Six layers: five sliding-window layers (window 4, shorter than the 13-token prompt) and
    // one global layer.
    batch_equals_incremental("gemma3", 6);
}

#[test]
fn wrong_tensor_shape_is_named() {
    let path = write_model("llama", 2, true);
    let err = LoadedModel::load(&path, None).err().unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(&err, ModelError::Gguf(_)), "{err}");
    assert!(err.to_string().contains("blk.1.attn_q.weight"), "{err}");
}

#[test]
fn context_limit_and_token_range_are_checked() {
    let path = write_model("llama", 1, false);
    let lm = LoadedModel::load(&path, None).unwrap();
    std::fs::remove_file(&path).unwrap();
    let mut cache = lm.model.new_cache(4);
    let ws = &mut Workspace::default();
    assert!(matches!(
        lm.model.forward(&[1, 2, 3, 4, 5], &mut cache, 1, ws),
        Err(ModelError::ContextFull { .. })
    ));
    assert!(matches!(
        lm.model.forward(&[VOCAB as u32], &mut cache, 1, ws),
        Err(ModelError::TokenOutOfRange { .. })
    ));
    assert!(matches!(
        lm.model.forward(&[], &mut cache, 1, ws),
        Err(ModelError::EmptyInput)
    ));
}

/// `ward synth`'s Q4_K_M model (Q4_K and Q6_K tiles rather than F32 rows; logits_fixtures.rs
/// holds it to llama.cpp).
#[test]
fn a_synthetic_q4_k_m_model_batch_equals_incremental() {
    use ward_models::synthetic::{write_random_model, Shape};
    let shape = Shape::TINY;
    let path = std::env::temp_dir().join(format!("ward-synthetic-{}.gguf", std::process::id()));
    let size = write_random_model(&path, &shape, 7, None).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
    let lm = LoadedModel::load(&path, None).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(lm.model.n_vocab(), shape.vocab as usize);
    batch_equals_incremental_of(lm, "tiny");
}

#[test]
fn the_gpu_refuses_what_its_kernels_lack_by_name() {
    use ward_models::gguf::GgufFile;
    use ward_models::{Device, HParams};
    let describe = |keys: &Keys, ts: &[TensorToWrite]| {
        let path = save("gpu", keys, ts);
        let hp = HParams::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        hp
    };
    let gpu = Device::Cuda(0);
    for (arch, lacking) in [
        ("qwen2", "qwen2 architecture"),
        ("qwen3", "qwen3 architecture"),
    ] {
        let (keys, ts) = model_parts(arch, 2, false);
        let err = gpu.check_supports(&describe(&keys, &ts)).unwrap_err();
        assert!(err.to_string().contains(lacking), "{err}");
    }
    let (keys, mut ts) = model_parts("llama", 2, false);
    assert!(gpu.check_supports(&describe(&keys, &ts)).is_ok());
    ts.push(TensorToWrite::f32(
        "rope_freqs.weight",
        &[HD / 2],
        vec![1.0; (HD / 2) as usize],
    ));
    let hp = describe(&keys, &ts);
    let err = gpu.check_supports(&hp).unwrap_err();
    assert!(err.to_string().contains("frequency factors"), "{err}");
    assert!(Device::Cpu.check_supports(&hp).is_ok());
}
