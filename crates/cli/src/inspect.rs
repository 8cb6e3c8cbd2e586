//! `ward inspect FILE.gguf`: what a model file holds, without loading its weights.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use ward_models::gguf::GgufFile;
use ward_models::{HParams, Tokenizer};

#[derive(Args)]
pub struct InspectArgs {
    file: PathBuf,
    /// Also list every metadata key.
    #[arg(long)]
    metadata: bool,
}

pub fn inspect(a: InspectArgs) -> anyhow::Result<()> {
    let gguf = GgufFile::open(&a.file)?;
    let h = &gguf.header;
    println!("file: {}", a.file.display());
    println!(
        "gguf version: {}, alignment {}, data at byte {}",
        h.version, h.alignment, h.data_offset
    );
    println!(
        "architecture: {}",
        gguf.get_str("general.architecture")?.unwrap_or("(missing)")
    );
    if let Some(name) = gguf.get_str("general.name")? {
        println!("name: {name}");
    }
    match HParams::from_gguf(&gguf) {
        Ok(hp) => {
            println!("hyper-parameters:");
            println!(
                "  layers {}, embedding {}, feed-forward {}",
                hp.n_layer, hp.n_embd, hp.n_ff
            );
            println!(
                "  heads {} (kv {}), head dim {}, rope dim {}",
                hp.n_head, hp.n_head_kv, hp.head_dim, hp.rope_dim
            );
            println!(
                "  context {}, rms eps {:e}, rope base {}",
                hp.context_length, hp.rms_eps, hp.rope_base
            );
            println!("  {}", describe(&hp));
            if let Some(w) = hp.sliding_window {
                println!(
                    "  sliding window {} on {} of every {} layers (rope base {} there)",
                    w.size,
                    w.pattern - 1,
                    w.pattern,
                    hp.rope_base_local
                );
            }
        }
        Err(e) => println!("hyper-parameters: not runnable by Ward: {e}"),
    }
    let mut by_type: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for t in &h.tensors {
        let e = by_type.entry(t.ggml_type.name).or_default();
        e.0 += 1;
        e.1 += t.n_bytes;
    }
    let total: u64 = h.tensors.iter().map(|t| t.n_bytes).sum();
    println!(
        "tensors: {} ({:.1} MiB)",
        h.tensors.len(),
        total as f64 / (1 << 20) as f64
    );
    for (ty, (n, bytes)) in by_type {
        println!(
            "  {ty:>6}: {n:>4} tensors, {:>9.2} MiB",
            bytes as f64 / (1 << 20) as f64
        );
    }
    match Tokenizer::from_gguf(&gguf) {
        Ok(tok) => {
            let text = |id: Option<u32>| {
                id.and_then(|i| tok.vocab().text(i))
                    .unwrap_or("-")
                    .to_string()
            };
            println!(
                "tokenizer: {:?}, {} tokens, bos {:?} (added: {}), eos {:?}",
                tok.kind(),
                tok.vocab().len(),
                text(tok.bos),
                tok.add_bos,
                text(tok.eos)
            );
        }
        Err(e) => println!("tokenizer: not usable: {e}"),
    }
    match gguf.get_str("tokenizer.chat_template")? {
        Some(t) => println!("chat template ({} bytes):\n{t}", t.len()),
        None => println!("chat template: none (a base model; chat needs a registry override)"),
    }
    if a.metadata {
        println!("metadata:");
        for (k, v) in gguf.metadata() {
            println!("  {k} = {}", v.summary());
        }
    }
    Ok(())
}

/// The description's switches, in words: what this file's model computes beyond plain llama.
fn describe(hp: &HParams) -> String {
    let mut parts = vec![
        format!("RoPE {:?}", hp.rope_layout).to_lowercase(),
        format!("{:?}", hp.activation).to_lowercase() + " FFN",
        format!("attention scale {:.6}", hp.attn_scale),
    ];
    let switches = [
        (hp.qkv_bias, "Q/K/V biases"),
        (hp.qk_norm, "Q/K norms"),
        (hp.post_norms, "post-norms"),
        (hp.rope_freq_factors.is_some(), "RoPE frequency factors"),
        (hp.embed_scale.is_some(), "scaled embeddings"),
        (hp.tied_output, "tied output"),
    ];
    parts.extend(switches.iter().filter(|s| s.0).map(|s| s.1.to_string()));
    parts.join(", ")
}
