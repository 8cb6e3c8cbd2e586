//! `ward synth SHAPE`: write a random-weight Q4_K_M GGUF with a real model's shape, for
//! benchmarks (`ward bench --model FILE`); see `ward_models::synthetic`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ward_models::synthetic::{write_random_q4_k_m, LlamaShape};

#[derive(Args)]
pub struct SynthArgs {
    /// The shape: `llama3-8b` (4.9 GB) or `tiny`.
    shape: String,
    /// Where to write it (default: models/synthetic-SHAPE-q4_k_m.gguf).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn synth(a: SynthArgs) -> anyhow::Result<()> {
    let shape = LlamaShape::by_name(&a.shape)
        .with_context(|| format!("unknown shape {:?}; known: llama3-8b, tiny", a.shape))?;
    let out = match a.out {
        Some(p) => p,
        None => ward_models::registry::Registry::find_dir()?
            .join(format!("synthetic-{}-q4_k_m.gguf", shape.name)),
    };
    let started = std::time::Instant::now();
    let bytes = write_random_q4_k_m(&out, &shape, a.seed)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}: {bytes} bytes of random {} weights (Q4_K_M) in {:.1} s",
        out.display(),
        shape.name,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
