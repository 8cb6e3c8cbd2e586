//! `ward bench`: prefill and decode speed on a synthetic prompt.

use std::time::Instant;

use clap::{Args, Subcommand};
use ward_engine::rng::Rng;
use ward_engine::sampler::argmax;
use ward_models::tokenizer::TokenType;
use ward_models::{BatchItem, SeqKv, Workspace};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    serve: Option<BenchCommand>,
    #[arg(long)]
    model: Option<String>,
    #[arg(long, default_value_t = 512)]
    prompt_tokens: usize,
    #[arg(long, default_value_t = 128)]
    gen_tokens: usize,
    /// Threads for the model's maths (default: one per physical core).
    #[arg(long)]
    threads: Option<usize>,
    /// Sequences run together, each with its own copy of the prompt: every step is one batched
    /// forward pass, and the speeds are for all of them together.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
    /// Run the model on this NVIDIA GPU (builds with the `cuda` feature).
    #[arg(long, value_name = "ORDINAL")]
    gpu: Option<usize>,
    #[command(flatten)]
    checkpoint: crate::run::CheckpointArgs,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Load-test a running OpenAI-compatible server: aggregate tokens/s, time to first token
    /// and inter-token latency at several numbers of concurrent streams.
    Serve(crate::loadgen::LoadArgs),
}

pub fn bench(a: BenchArgs) -> anyhow::Result<()> {
    if let Some(BenchCommand::Serve(load)) = a.serve {
        return crate::loadgen::load(load);
    }
    anyhow::ensure!(
        a.prompt_tokens > 0 && a.gen_tokens > 0 && a.batch > 0,
        "--prompt-tokens, --gen-tokens and --batch must be > 0"
    );
    crate::set_threads(a.threads);
    let lm = crate::run::load(a.model.as_deref(), crate::run::device(a.gpu), &a.checkpoint)?;
    // Ordinary vocabulary tokens drawn with a fixed seed, as llama-bench does with random ids.
    let vocab = lm.tokenizer.vocab();
    let normal: Vec<u32> = (0..vocab.len() as u32)
        .filter(|&id| vocab.token_type(id) == Some(TokenType::Normal))
        .collect();
    let mut rng = Rng::seed(1234);
    let prompt: Vec<u32> = (0..a.prompt_tokens)
        .map(|_| normal[(rng.next_u64() % normal.len() as u64) as usize])
        .collect();

    let context = lm.model.hparams().context_length;
    anyhow::ensure!(
        context >= a.prompt_tokens + a.gen_tokens,
        "prompt + generated tokens exceed the model's context of {context}"
    );
    // Every sequence's cache in one pool, as the server keeps them.
    let mut pool = lm.model.new_pool(0);
    let mut seqs: Vec<SeqKv> = (0..a.batch)
        .map(|_| {
            let mut seq = SeqKv::new(context);
            pool.append_blocks(&mut seq, a.prompt_tokens + a.gen_tokens);
            seq
        })
        .collect();
    let mut ws = Workspace::default();
    // One step for every sequence: `tokens[i]` into `seqs[i]`; the next token of each.
    let mut step = |tokens: &[&[u32]], seqs: &mut [SeqKv]| -> anyhow::Result<Vec<u32>> {
        let mut batch: Vec<BatchItem> = tokens
            .iter()
            .zip(seqs.iter_mut())
            .map(|(tokens, seq)| BatchItem {
                tokens,
                seq,
                n_logits: 1,
            })
            .collect();
        let logits = lm.model.forward_batch(&mut batch, &mut pool, &mut ws)?;
        Ok((0..tokens.len()).map(|i| argmax(logits.row(i))).collect())
    };
    let t0 = Instant::now();
    let mut next = step(&vec![&prompt[..]; a.batch], &mut seqs)?;
    let prefill = t0.elapsed().as_secs_f64();
    ward_kernels::pool::measure(true);
    let t1 = Instant::now();
    for _ in 0..a.gen_tokens {
        let tokens: Vec<&[u32]> = next.iter().map(std::slice::from_ref).collect();
        next = step(&tokens, &mut seqs)?;
    }
    let decode = t1.elapsed().as_secs_f64();
    let sync = ward_kernels::pool::sync_stats();
    ward_kernels::pool::measure(false);
    // Per decode step: the pool jobs handed out, and the microseconds the handing thread spent
    // waiting at their barriers (time that is not the caller's own share of the work).
    let jobs_per_step = sync.jobs as f64 / a.gen_tokens as f64;
    let wait_us_per_step = sync.waiting.as_secs_f64() * 1e6 / a.gen_tokens as f64;
    let step_us = decode * 1e6 / a.gen_tokens as f64;
    let prefill_tok_s = (a.batch * a.prompt_tokens) as f64 / prefill;
    let decode_tok_s = (a.batch * a.gen_tokens) as f64 / decode;
    let threads = ward_kernels::pool::global().threads();
    let kernels = lm.kernels;
    // Decode reads every weight once per token, so bandwidth / weight bytes bounds decode speed:
    // the embedding table counts only where the output projection is tied to it (otherwise a
    // step reads one row of it).
    let tensors = ward_models::gguf::GgufFile::open(&lm.path)?.header.tensors;
    let untied = tensors.iter().any(|t| t.name == "output.weight");
    let weight_bytes: u64 = tensors
        .iter()
        .filter(|t| !(untied && t.name == "token_embd.weight"))
        .map(|t| t.n_bytes)
        .sum();
    let bandwidth = ward_kernels::probe::read_bandwidth_gb_s(1 << 30, 3);
    let decode_limit = bandwidth * 1e9 / weight_bytes as f64;
    // Weights are read once per step, whatever the batch.
    let weight_fraction = decode_tok_s / a.batch as f64 / decode_limit;
    let model = lm
        .path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if a.json {
        println!(
            "{}",
            serde_json::json!({"model": model, "kernels": kernels, "threads": threads, "batch": a.batch, "prompt_tokens": a.prompt_tokens,
                "gen_tokens": a.gen_tokens, "prefill_tok_s": prefill_tok_s, "decode_tok_s": decode_tok_s,
                "weight_bytes": weight_bytes, "read_bandwidth_gb_s": bandwidth,
                "decode_fraction_of_bandwidth_limit": weight_fraction,
                "decode_pool_jobs_per_step": jobs_per_step, "decode_barrier_wait_us_per_step": wait_us_per_step})
        );
    } else {
        println!(
            "model {model}, {kernels} kernels, {threads} threads, {} sequences",
            a.batch
        );
        println!(
            "prefill: {} tokens in {prefill:.2}s = {prefill_tok_s:.1} tok/s",
            a.batch * a.prompt_tokens
        );
        println!(
            "decode:  {} tokens in {decode:.2}s = {decode_tok_s:.1} tok/s",
            a.batch * a.gen_tokens
        );
        println!(
            "memory:  {bandwidth:.1} GB/s read, {:.1} MB of weights per step: decode limit \
             {decode_limit:.0} steps/s, reached {:.0} %",
            weight_bytes as f64 / 1e6,
            100.0 * weight_fraction
        );
        println!(
            "sync:    {jobs_per_step:.0} pool jobs per decode step, {wait_us_per_step:.0} µs of \
             {step_us:.0} waiting at their barriers ({:.1} %)",
            100.0 * wait_us_per_step / step_us
        );
    }
    Ok(())
}
