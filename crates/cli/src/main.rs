//! ward: the command-line entry point (serve, run, inspect, bench, pull, list, convert, synth,
//! audit, keys, tiers).
//! The only crate with clap and logging set-up; logs go to stderr, generated text to stdout.

mod audit;
mod bench;
mod config;
mod convert;
mod inspect;
mod keys;
mod loadgen;
mod models;
mod run;
mod serve;
mod synth;
mod tiers;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ward", version, about = "On-prem LLM inference for hospitals")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the OpenAI-compatible API (chat, completions, models) over one model.
    Serve(Box<serve::ServeArgs>),
    /// Generate a continuation of a prompt and print it as it is produced.
    Run(run::RunArgs),
    /// Describe a GGUF file: architecture, hyper-parameters, tensors, tokenizer, template.
    Inspect(inspect::InspectArgs),
    /// Measure prefill and decode speed (`ward bench serve`: load-test a running server).
    Bench(bench::BenchArgs),
    /// Download a registry model (or import it with --from FILE), checking its pinned sha256.
    Pull(models::PullArgs),
    /// The registry's models: which are present and verified.
    List(models::ListArgs),
    /// Convert a Hugging Face model directory to GGUF, as llama.cpp's converter does.
    Convert(convert::ConvertArgs),
    /// Write a random-weight model with a real model's shape, for benchmarks.
    Synth(synth::SynthArgs),
    /// Check an audit log's hash chain (`ward audit verify PATH`), or a prompt against one
    /// entry (`ward audit check PATH --seq N`).
    Audit(audit::AuditArgs),
    /// Render chat templates for `ward serve`, one JSON line at a time on stdin and stdout
    /// (started by the server itself).
    #[command(hide = true)]
    TemplateWorker,
    /// Make API keys for calling services (`ward keys new NAME`).
    Keys(keys::KeysArgs),
    /// The CPU kernel tiers: which this machine runs, and which one is in use
    /// (`WARD_KERNEL_TIER=NAME` forces one).
    Tiers,
}

/// Size the kernels' worker pool (default: the physical cores this process may use); must run
/// before the model does any work.
pub fn set_threads(threads: Option<usize>) {
    if let Some(n) = threads.filter(|&n| n > 0) {
        ward_kernels::pool::configure(n);
    }
}

/// Logs to stderr; `WARD_LOG` (tracing's filter syntax) overrides the default level.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn main() {
    if let Err(e) = config::apply_config_file() {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
    let cli = Cli::parse();
    // A kernel tier forced with WARD_KERNEL_TIER that this CPU cannot run is refused here,
    // before any work, rather than when the first kernel asks for it.
    if let Err(e) = ward_kernels::tier::configured() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    init_logging();
    return_large_blocks_to_the_system();
    let result = match cli.command {
        Command::Serve(a) => serve::serve(*a),
        Command::Run(a) => run::run(a),
        Command::Inspect(a) => inspect::inspect(a),
        Command::Bench(a) => bench::bench(a),
        Command::Pull(a) => models::pull(a),
        Command::List(a) => models::list(a),
        Command::Convert(a) => convert::convert(a),
        Command::Synth(a) => synth::synth(a),
        Command::Audit(a) => audit::audit(a),
        Command::TemplateWorker => ward_models::template::run_template_worker(
            std::io::stdin().lock(),
            std::io::stdout().lock(),
        )
        .map_err(Into::into),
        Command::Keys(a) => keys::keys(a),
        Command::Tiers => tiers::tiers(),
    };
    if let Err(e) = result {
        eprintln!("error: {}", in_words(&e));
        std::process::exit(1);
    }
}

/// An error and its causes, `a: b: c`, each said once: many errors (an OS error inside a
/// library's) also print their cause in their own message.
fn in_words(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain().map(ToString::to_string) {
        if !text.contains(&cause) {
            if !text.is_empty() {
                text += ": ";
            }
            text += &cause;
        }
    }
    text
}

/// Buffers of a megabyte or more (request bodies, prompts being tokenized) are mapped on their
/// own and unmapped when freed. By default glibc raises that threshold after the first such free
/// and keeps later ones in its per-thread arenas, so a burst of large requests would leave the
/// server hundreds of megabytes larger for good.
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator settings; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
