//! ward: the command-line entry point (run, inspect, bench; serve and the rest come later).
//! The only crate with clap and logging set-up; logs go to stderr, generated text to stdout.

mod bench;
mod inspect;
mod run;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ward", version, about = "On-prem LLM inference for hospitals")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a continuation of a prompt and print it as it is produced.
    Run(run::RunArgs),
    /// Describe a GGUF file: architecture, hyper-parameters, tensors, tokenizer, template.
    Inspect(inspect::InspectArgs),
    /// Measure prefill and decode speed.
    Bench(bench::BenchArgs),
}

/// Size candle's CPU thread pools; must run before the first tensor operation.
pub fn set_threads(threads: Option<usize>) {
    if let Some(n) = threads.filter(|&n| n > 0) {
        // Single-threaded at this point: no other thread reads the environment yet.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    }
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run::run(a),
        Command::Inspect(a) => inspect::inspect(a),
        Command::Bench(a) => bench::bench(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
