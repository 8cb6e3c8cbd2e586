//! `ward convert DIR --out FILE.gguf`: a Hugging Face model directory as the GGUF file
//! llama.cpp's `convert_hf_to_gguf.py` writes for it (the same metadata, tokenizer, template,
//! tensor names, order and bytes), with no Python.

use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ward_models::hf::lora::parse_lora_arg;
use ward_models::hf::{HfModel, Quantize};

#[derive(Args)]
pub struct ConvertArgs {
    /// The model directory (config.json, *.safetensors, tokenizer.json, tokenizer_config.json).
    dir: PathBuf,
    /// The GGUF file to write (refused if it exists).
    #[arg(long)]
    out: PathBuf,
    /// The weight matrices' type: none (as stored), f32, f16, bf16 or q8_0; as the converter's
    /// --outtype, norms and biases stay F32 and rows that are not whole blocks fall back to F16.
    #[arg(long = "type", value_parser = Quantize::parse, default_value = "none")]
    ty: Quantize,
    /// A PEFT LoRA adapter merged into the weights first (`DIR[:SCALE]`; may be repeated).
    #[arg(long, value_name = "DIR[:SCALE]", value_parser = parse_lora_arg)]
    lora: Vec<(PathBuf, f32)>,
}

pub fn convert(a: ConvertArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let model = HfModel::open_merged(&a.dir, a.ty, &a.lora)
        .with_context(|| format!("reading {}", a.dir.display()))?;
    anyhow::ensure!(
        !a.out.exists(),
        "{} exists; not overwriting it",
        a.out.display()
    );
    // Written beside the target and renamed into place: never a partial file under its name.
    let parent = a.out.parent().filter(|p| !p.as_os_str().is_empty());
    let tmp = parent.unwrap_or(std::path::Path::new(".")).join(format!(
        ".{}.partial",
        a.out.file_name().unwrap_or_default().to_string_lossy()
    ));
    let written = (|| {
        let mut w = BufWriter::new(std::fs::File::create(&tmp)?);
        model.write_gguf(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, &a.out)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", a.out.display()));
    }
    eprintln!(
        "ward: wrote {} ({} tensors, {:.1} MB) in {:.1}s",
        a.out.display(),
        model.tensors.len(),
        std::fs::metadata(&a.out)?.len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
