//! Helpers shared by the integration tests: where the real models and fixtures are.
#![allow(dead_code)]

use std::path::PathBuf;

/// The repository: `$WARD_ROOT` where set (test binaries run from another checkout, as
/// scripts/gpu-check.sh runs them on the GPU machine), else the one they were built in.
pub fn root() -> PathBuf {
    std::env::var_os("WARD_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// A test model fetched by scripts/fetch-models.sh; a missing file fails the test loudly.
pub fn model_path(file: &str) -> PathBuf {
    let p = root().join("models").join(file);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-models.sh",
        p.display()
    );
    p
}

pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";
pub const QWEN2: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
/// The test embedding model (BERT, WordPiece), converted by fetch-models.sh.
pub const MINILM: &str = "all-MiniLM-L6-v2.F16.gguf";
/// The same as a cross-encoder for reranking (rank pooling, an untrained score projection).
pub const MINILM_RERANK: &str = "minilm-rerank-test.F16.gguf";
/// XLM-RoBERTa (bge-m3's architecture) with random weights over a SentencePiece unigram
/// vocabulary (scripts/xlmr_random.py).
pub const XLMR: &str = "xlmr-random-test.F16.gguf";
/// The same architecture as a cross-encoder (bge-reranker-v2-m3's: a sequence classifier).
pub const XLMR_RERANK: &str = "xlmr-rerank-test.F16.gguf";
/// Vocabulary-only GGUFs (tokenizer metadata, no weights) that fetch-models.sh builds.
pub const DEEPSEEK_R1_QWEN_VOCAB: &str = "deepseek-r1-distill-qwen-7b.vocab.gguf";
pub const LLAMA3_VOCAB: &str = "llama-3-instruct.vocab.gguf";

/// A fixture's list of token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

pub fn fixture(name: &str) -> serde_json::Value {
    let p = root().join("scripts/reference/fixtures").join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

/// A message of a fixture, as an OpenAI-style client sends it (content `null` on a turn that
/// only calls tools, arguments as JSON text).
pub fn wire_message(m: &serde_json::Value) -> ward_models::ChatMessage {
    let mut message = ward_models::ChatMessage::new(
        m["role"].as_str().unwrap(),
        m["content"].as_str().unwrap_or(""),
    );
    message.tool_calls = m.get("tool_calls").cloned();
    message.tool_call_id = m["tool_call_id"].as_str().map(String::from);
    message.reasoning_content = m["reasoning_content"].as_str().map(String::from);
    message
}

/// The bytes of `ward synth`'s random model `shape_name` with the vocabulary of the GGUF `vocab`
/// (`None`: the shape's placeholder one), written again exactly as a reference script wrote it
/// for llama.cpp: the fixture `fx` holds its seed and sha256, which must match.
pub fn random_model<'a>(
    shape_name: &str,
    vocab: impl Into<Option<&'a str>>,
    fx: &serde_json::Value,
) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    use ward_models::gguf::GgufFile;
    use ward_models::synthetic::{write_random_model, Shape};
    let shape = Shape::by_name(shape_name).unwrap();
    let vocab = vocab
        .into()
        .map(|v| GgufFile::open(&model_path(v)).unwrap());
    let path = std::env::temp_dir().join(format!("ward-{shape_name}-{}.gguf", std::process::id()));
    let seed = fx["seed"].as_u64().unwrap();
    write_random_model(&path, &shape, seed, vocab.as_ref()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        digest, fx["sha256"],
        "the writer no longer writes the file llama.cpp ran: regenerate the fixture"
    );
    bytes
}
