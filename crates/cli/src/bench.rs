//! `ward bench`: prefill and decode speed on a synthetic prompt.

use std::time::Instant;

use clap::Args;
use ward_engine::rng::Rng;
use ward_engine::sampler::argmax;
use ward_models::tokenizer::TokenType;

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long)]
    model: Option<String>,
    #[arg(long, default_value_t = 512)]
    prompt_tokens: usize,
    #[arg(long, default_value_t = 128)]
    gen_tokens: usize,
    /// Threads for the model's maths (default: one per physical core).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

pub fn bench(a: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.prompt_tokens > 0 && a.gen_tokens > 0,
        "--prompt-tokens and --gen-tokens must be > 0"
    );
    crate::set_threads(a.threads);
    let lm = crate::run::load(a.model.as_deref())?;
    // Ordinary vocabulary tokens drawn with a fixed seed, as llama-bench does with random ids.
    let vocab = lm.tokenizer.vocab();
    let normal: Vec<u32> = (0..vocab.len() as u32)
        .filter(|&id| vocab.token_type(id) == Some(TokenType::Normal))
        .collect();
    let mut rng = Rng::seed(1234);
    let prompt: Vec<u32> = (0..a.prompt_tokens)
        .map(|_| normal[(rng.next_u64() % normal.len() as u64) as usize])
        .collect();

    let mut cache = lm.model.new_cache(a.prompt_tokens + a.gen_tokens);
    anyhow::ensure!(
        cache.max_len() >= a.prompt_tokens + a.gen_tokens,
        "prompt + generated tokens exceed the model's context of {}",
        cache.max_len()
    );
    let mut ws = ward_models::Workspace::default();
    let t0 = Instant::now();
    let logits = lm.model.forward(&prompt, &mut cache, 1, &mut ws)?;
    let prefill = t0.elapsed().as_secs_f64();
    let mut next = argmax(logits.last());
    let t1 = Instant::now();
    for _ in 0..a.gen_tokens {
        let logits = lm.model.forward(&[next], &mut cache, 1, &mut ws)?;
        next = argmax(logits.last());
    }
    let decode = t1.elapsed().as_secs_f64();
    let prefill_tok_s = a.prompt_tokens as f64 / prefill;
    let decode_tok_s = a.gen_tokens as f64 / decode;
    let threads = ward_kernels::pool::global().threads();
    // Decode reads every weight once per token (the embedding table too where the output
    // projection is tied to it), so bandwidth / weight bytes bounds decode speed.
    let weight_bytes: u64 = ward_models::gguf::GgufFile::open(&lm.path)?
        .header
        .tensors
        .iter()
        .map(|t| t.n_bytes)
        .sum();
    let bandwidth = ward_kernels::probe::read_bandwidth_gb_s(1 << 30, 3);
    let decode_limit = bandwidth * 1e9 / weight_bytes as f64;
    let model = lm
        .path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if a.json {
        println!(
            "{}",
            serde_json::json!({"model": model, "threads": threads, "prompt_tokens": a.prompt_tokens,
                "gen_tokens": a.gen_tokens, "prefill_tok_s": prefill_tok_s, "decode_tok_s": decode_tok_s,
                "weight_bytes": weight_bytes, "read_bandwidth_gb_s": bandwidth,
                "decode_fraction_of_bandwidth_limit": decode_tok_s / decode_limit})
        );
    } else {
        println!("model {model}, {threads} threads");
        println!(
            "prefill: {} tokens in {prefill:.2}s = {prefill_tok_s:.1} tok/s",
            a.prompt_tokens
        );
        println!(
            "decode:  {} tokens in {decode:.2}s = {decode_tok_s:.1} tok/s",
            a.gen_tokens
        );
        println!(
            "memory:  {bandwidth:.1} GB/s read, {:.1} MB of weights per token: decode limit \
             {decode_limit:.0} tok/s, reached {:.0} %",
            weight_bytes as f64 / 1e6,
            100.0 * decode_tok_s / decode_limit
        );
    }
    Ok(())
}
