//! `ward synth SHAPE`: write a random-weight GGUF (Q4_K_M, or Q8_0 for the small oracle shapes)
//! with a real model's shape, for benchmarks (`ward bench --model FILE`) and random-weight
//! oracle models; see `ward_models::synthetic`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ward_models::gguf::GgufFile;
use ward_models::synthetic::{write_random_checkpoint, write_random_model, Shape};

#[derive(Args)]
pub struct SynthArgs {
    /// The shape: `llama3-8b` (4.9 GB), `qwen2.5-7b` (4.7 GB), `tiny`, `tiny-llama3.1`,
    /// `tiny-qwen2.5`, `tiny-gemma3` or `tiny-qwen3` (or `tiny-qwen3-embedding`, the same with
    /// last-token pooling).
    shape: String,
    /// A GGUF whose vocabulary to use (its `tokenizer.*` metadata), so that llama.cpp loads the
    /// file and text means something: a Llama 3, Qwen or Gemma 3 model for those shapes.
    /// Default: one placeholder token per id.
    #[arg(long)]
    vocab: Option<PathBuf>,
    /// Where to write it (default: models/synthetic-SHAPE-TYPE.gguf, TYPE q4_k_m or q8_0).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write a Hugging Face checkpoint directory instead (BF16 safetensors in 5 GB shards with
    /// their index, config.json), taking tokenizer.json and tokenizer_config.json from this
    /// directory (models/hf/tiny-qwen2 for qwen2.5-7b, models/hf/tiny-llama for llama3-8b): the
    /// input for measuring `--model DIR` loads.
    #[arg(long, value_name = "TOKENIZER_DIR", requires = "out")]
    hf_with_tokenizer: Option<PathBuf>,
}

pub fn synth(a: SynthArgs) -> anyhow::Result<()> {
    let shape = Shape::by_name(&a.shape).with_context(|| {
        let known: Vec<_> = Shape::ALL.iter().map(|s| s.name).collect();
        format!("unknown shape {:?}; known: {}", a.shape, known.join(", "))
    })?;
    let vocab = match &a.vocab {
        Some(p) => Some(GgufFile::open(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    let ty = if shape.q8_0 { "Q8_0" } else { "Q4_K_M" };
    let out = match a.out {
        Some(p) => p,
        None => ward_models::registry::Registry::find_dir()?.join(format!(
            "synthetic-{}-{}.gguf",
            shape.name,
            ty.to_lowercase()
        )),
    };
    let started = std::time::Instant::now();
    if let Some(tokenizer) = &a.hf_with_tokenizer {
        let bytes = write_random_checkpoint(&out, &shape, a.seed, tokenizer, 5_000_000_000)
            .with_context(|| format!("writing {}", out.display()))?;
        println!(
            "{}: {bytes} bytes of random {} weights (BF16 checkpoint) in {:.1} s",
            out.display(),
            shape.name,
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let bytes = write_random_model(&out, &shape, a.seed, vocab.as_ref())
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}: {bytes} bytes of random {} weights ({ty}) in {:.1} s",
        out.display(),
        shape.name,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
