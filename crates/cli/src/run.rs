//! `ward run`: one prompt in, generated text out on stdout as it is produced.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use ward_engine::{generate, GenerateParams, SamplingParams};

use ward_models::hf::lora::parse_lora_arg;
use ward_models::hf::{LoadOptions, Quantize};
use ward_models::registry::resolve_model;
use ward_models::{ChatMessage, Device, LoadedModel};

#[derive(Args)]
pub struct RunArgs {
    /// Registry name or path to a .gguf file (default: the registry's default model).
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    prompt: String,
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    frequency_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    presence_penalty: f32,
    #[arg(long)]
    seed: Option<u64>,
    /// Stop before this text (may be repeated). Escapes are read as in a C or Rust string:
    /// `"\n\n"` is two newlines (`\n`, `\r`, `\t`, `\0`, `\\`, `\"`, `\u{XXXX}`).
    #[arg(long, value_parser = unescape)]
    stop: Vec<String>,
    /// Wrap the prompt as one user message through the model's chat template.
    #[arg(long)]
    chat: bool,
    /// Threads for the model's maths (default: one per physical core).
    #[arg(long)]
    threads: Option<usize>,
    /// Run the model on this NVIDIA GPU (builds with the `cuda` feature).
    #[arg(long, value_name = "ORDINAL")]
    gpu: Option<usize>,
    #[command(flatten)]
    checkpoint: CheckpointArgs,
}

/// How a Hugging Face model directory is loaded (serve, run, bench).
#[derive(Args, Clone, Default)]
pub struct CheckpointArgs {
    /// What a Hugging Face model directory's weight matrices become at load: none (as
    /// stored), f32, f16, bf16 or q8_0 (default). GGUF files keep their own types.
    #[arg(long, env = "WARD_QUANTIZE", value_parser = Quantize::parse)]
    pub quantize: Option<Quantize>,
    /// A PEFT LoRA adapter directory merged into the model directory's weights at load, with
    /// an optional scale (`DIR:0.5`; default 1); repeatable, or comma-separated. The model is
    /// then named after the adapter.
    #[arg(long, env = "WARD_LORA", value_name = "DIR[:SCALE]", value_delimiter = ',', value_parser = parse_lora_arg)]
    pub lora: Vec<(PathBuf, f32)>,
}

impl CheckpointArgs {
    pub fn options(&self) -> LoadOptions {
        LoadOptions {
            quantize: self.quantize,
            lora: self.lora.clone(),
        }
    }

    /// The served model's name: the adapters' where there are any.
    pub fn model_name(&self, base: &str) -> String {
        match self.lora.is_empty() {
            true => base.to_string(),
            false => self
                .lora
                .iter()
                .map(|(d, _)| ward_models::hf::dir_name(d))
                .collect::<Vec<_>>()
                .join("+"),
        }
    }
}

/// `--gpu N`: the device a command runs its model on.
pub fn device(gpu: Option<usize>) -> Device {
    gpu.map_or(Device::Cpu, Device::Cuda)
}

pub fn load(
    model: Option<&str>,
    device: Device,
    checkpoint: &CheckpointArgs,
) -> anyhow::Result<LoadedModel> {
    let resolved = resolve_model(model)?;
    eprintln!(
        "ward: loading {} from {} on the {device}",
        resolved.name,
        resolved.path.display()
    );
    LoadedModel::load_with(
        &resolved.path,
        resolved.template_override.as_deref(),
        device,
        None,
        &checkpoint.options(),
    )
    .with_context(|| format!("loading {}", resolved.path.display()))
}

/// `text` with its backslash escapes replaced by what they stand for (a shell passes `"\n"` on
/// as a backslash and an `n`).
fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next() {
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('0') => '\0',
            Some('\\') => '\\',
            Some('"') => '"',
            Some('\'') => '\'',
            Some('u') => {
                let rest = chars.as_str();
                let code = rest
                    .strip_prefix('{')
                    .and_then(|r| r.split_once('}'))
                    .and_then(|(hex, _)| u32::from_str_radix(hex, 16).ok())
                    .and_then(char::from_u32)
                    .ok_or("\\u takes a code point in braces, like \\u{2029}")?;
                chars = rest[rest.find('}').map_or(0, |i| i + 1)..].chars();
                code
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape \\{other} (write \\\\ for a backslash)"
                ))
            }
            None => return Err("a lone backslash at the end (write \\\\ for a backslash)".into()),
        });
    }
    Ok(out)
}

pub fn run(a: RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.temperature >= 0.0 && a.temperature.is_finite(),
        "--temperature must be >= 0"
    );
    anyhow::ensure!(a.top_p > 0.0 && a.top_p <= 1.0, "--top-p must be in (0, 1]");
    anyhow::ensure!((0.0..=1.0).contains(&a.min_p), "--min-p must be in [0, 1]");
    anyhow::ensure!(
        a.repetition_penalty > 0.0,
        "--repetition-penalty must be > 0"
    );
    anyhow::ensure!(a.max_tokens > 0, "--max-tokens must be > 0");
    crate::set_threads(a.threads);
    let lm = load(a.model.as_deref(), device(a.gpu), &a.checkpoint)?;
    let prompt = if a.chat {
        lm.chat_prompt(&[ChatMessage::new("user", &a.prompt)])?
    } else {
        lm.tokenizer.encode(&a.prompt, true)
    };
    let params = GenerateParams {
        max_tokens: a.max_tokens,
        sampling: SamplingParams {
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            min_p: a.min_p,
            repetition_penalty: a.repetition_penalty,
            frequency_penalty: a.frequency_penalty,
            presence_penalty: a.presence_penalty,
            seed: a.seed,
            ..SamplingParams::default()
        },
        stop: a.stop,
        ..Default::default()
    };
    let mut stdout = std::io::stdout().lock();
    let mut write_err = None;
    let stats = generate(&lm, &prompt, &params, |text| {
        if write_err.is_none() {
            if let Err(e) = stdout
                .write_all(text.as_bytes())
                .and_then(|_| stdout.flush())
            {
                write_err = Some(e);
            }
        }
    })?;
    if let Some(e) = write_err {
        return Err(e).context("writing to stdout");
    }
    writeln!(stdout)?;
    eprintln!(
        "ward: {} prompt tokens, {} generated (finish: {}), prefill {:.2}s, decode {:.1} tok/s",
        stats.prompt_tokens,
        stats.tokens.len(),
        stats.finish.as_str(),
        stats.prefill_time.as_secs_f64(),
        stats.tokens.len() as f64 / stats.decode_time.as_secs_f64().max(1e-9)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn escapes_become_the_characters_they_name() {
        assert_eq!(unescape(r"\n\n").unwrap(), "\n\n");
        assert_eq!(
            unescape(r#"a\tb\\c\"d\u{2029}e"#).unwrap(),
            "a\tb\\c\"d\u{2029}e"
        );
        assert_eq!(
            unescape("plain text: 37.5°C").unwrap(),
            "plain text: 37.5°C"
        );
        for bad in [r"\q", "end\\", r"\u{110000}", r"\u2029", r"\u{zz}"] {
            assert!(unescape(bad).is_err(), "{bad}");
        }
    }
}
