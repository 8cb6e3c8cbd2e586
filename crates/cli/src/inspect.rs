//! `ward inspect MODEL`: what a model file holds, without loading its weights.

use std::collections::BTreeMap;
use std::path::Path;

use clap::Args;
use serde_json::{json, Value};
use ward_models::gguf::GgufFile;
use ward_models::registry::resolve_model;
use ward_models::{HParams, Tokenizer};

#[derive(Args)]
pub struct InspectArgs {
    /// A registry name (`ward list`), a path to a .gguf file, or a Hugging Face model directory
    /// (described as the GGUF it converts to, its weights as stored).
    model: String,
    /// Also list every metadata key.
    #[arg(long)]
    metadata: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn inspect(a: InspectArgs) -> anyhow::Result<()> {
    let path = resolve_model(Some(&a.model))?.path;
    let as_stored = ward_models::hf::LoadOptions {
        quantize: Some(ward_models::hf::Quantize::None),
        lora: Vec::new(),
    };
    let gguf = match ward_models::hf::HfModel::is_checkpoint(&path) {
        true => ward_models::open_model(&path, &as_stored)?,
        false => GgufFile::open(&path)?,
    };
    if a.json {
        println!("{}", describe_json(&gguf, &path, a.metadata)?);
        return Ok(());
    }
    let h = &gguf.header;
    println!("file: {}", path.display());
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

/// What `inspect` prints, as one JSON object; parts Ward cannot read are `{"error": why}`.
fn describe_json(gguf: &GgufFile, path: &Path, metadata: bool) -> anyhow::Result<Value> {
    let h = &gguf.header;
    let hparams = match HParams::from_gguf(gguf) {
        Ok(hp) => json!({
            "layers": hp.n_layer,
            "embedding": hp.n_embd,
            "feed_forward": hp.n_ff,
            "heads": hp.n_head,
            "kv_heads": hp.n_head_kv,
            "head_dim": hp.head_dim,
            "rope_dim": hp.rope_dim,
            "context_length": hp.context_length,
            "rms_eps": hp.rms_eps,
            "rope_base": hp.rope_base,
            "sliding_window": hp.sliding_window.map(|w| json!({
                "size": w.size, "pattern": w.pattern, "rope_base": hp.rope_base_local,
            })),
            "description": describe(&hp),
        }),
        Err(e) => json!({"error": e.to_string()}),
    };
    let mut by_type: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for t in &h.tensors {
        let e = by_type.entry(t.ggml_type.name).or_default();
        e.0 += 1;
        e.1 += t.n_bytes;
    }
    let by_type: serde_json::Map<String, Value> = by_type
        .into_iter()
        .map(|(ty, (n, bytes))| (ty.to_string(), json!({"tensors": n, "bytes": bytes})))
        .collect();
    let tokenizer = match Tokenizer::from_gguf(gguf) {
        Ok(tok) => {
            let text = |id: Option<u32>| id.and_then(|i| tok.vocab().text(i));
            json!({
                "kind": format!("{:?}", tok.kind()).to_lowercase(),
                "tokens": tok.vocab().len(),
                "bos": text(tok.bos),
                "add_bos": tok.add_bos,
                "eos": text(tok.eos),
            })
        }
        Err(e) => json!({"error": e.to_string()}),
    };
    let mut v = json!({
        "file": path.display().to_string(),
        "gguf_version": h.version,
        "alignment": h.alignment,
        "data_offset": h.data_offset,
        "architecture": gguf.get_str("general.architecture")?,
        "name": gguf.get_str("general.name")?,
        "hyper_parameters": hparams,
        "tensors": {
            "count": h.tensors.len(),
            "bytes": h.tensors.iter().map(|t| t.n_bytes).sum::<u64>(),
            "by_type": by_type,
        },
        "tokenizer": tokenizer,
        "chat_template": gguf.get_str("tokenizer.chat_template")?,
    });
    if metadata {
        let all: serde_json::Map<String, Value> = gguf
            .metadata()
            .iter()
            .map(|(k, val)| (k.to_string(), Value::String(val.summary())))
            .collect();
        v["metadata"] = Value::Object(all);
    }
    Ok(v)
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
