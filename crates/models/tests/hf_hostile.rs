//! Hugging Face directories that lie: each is a copy of a tiny test checkpoint (models/hf/) with
//! one thing wrong, and each is refused with an error naming what, never a panic, never an
//! allocation beyond the files.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::root;
use safetensors::{serialize, tensor::TensorView, Dtype, SafeTensors};
use serde_json::{json, Value};
use ward_models::hf::{HfModel, Quantize};

/// A copy of `models/hf/<name>` in a fresh temporary directory, changed by `edit`, removed when
/// dropped: a run makes dozens of 25-40 MB copies, and a full /tmp fails every later build.
fn copy_of(name: &str, case: &str, edit: impl FnOnce(&Path)) -> Scratch {
    let src = root().join("models/hf").join(name);
    let dst = Scratch(
        std::env::temp_dir().join(format!("ward-hf-hostile-{}-{case}", std::process::id())),
    );
    let _ = std::fs::remove_dir_all(&*dst);
    std::fs::create_dir_all(&*dst).unwrap();
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dst.join(f.file_name())).unwrap();
    }
    edit(&dst);
    dst
}

struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn edit_json(dir: &Path, file: &str, edit: impl FnOnce(&mut Value)) {
    let path = dir.join(file);
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

type Tensors = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

/// Rewrite model.safetensors with `edit` applied to its tensors (name → dtype, shape, bytes).
fn edit_weights(dir: &Path, edit: impl FnOnce(&mut Tensors)) {
    edit_weights_named(dir, "model.safetensors", edit)
}

/// The same for the safetensors file `file`.
fn edit_weights_named(dir: &Path, file: &str, edit: impl FnOnce(&mut Tensors)) {
    let path = dir.join(file);
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Tensors = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, (t.dtype(), t.shape().to_vec(), t.data().to_vec())))
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, (d, s, b))| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, serialize(views, None).unwrap()).unwrap();
}

/// The error loading `dir` gives, from reading the files to building the model.
fn refused(dir: &Path) -> String {
    let loaded = HfModel::open(dir, Quantize::None)
        .map_err(|e| e.to_string())
        .and_then(|m| {
            ward_models::arch::load(&m.into_gguf())
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
    match loaded {
        Ok(()) => panic!("{} was accepted", dir.display()),
        Err(e) => e,
    }
}

fn assert_refused(dir: &Path, wanted: &[&str]) {
    let e = refused(dir);
    eprintln!("{}: {e}", dir.file_name().unwrap().to_string_lossy());
    for w in wanted {
        assert!(
            e.contains(w),
            "{}: {e:?} does not mention {w:?}",
            dir.display()
        );
    }
}

#[test]
fn the_tiny_checkpoints_themselves_load() {
    for name in ["tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-gemma3"] {
        let d = copy_of(name, &format!("{name}-as-is"), |_| {});
        let m = HfModel::open(&d, Quantize::None).unwrap();
        ward_models::arch::load(&m.into_gguf()).unwrap();
    }
}

#[test]
fn configs_that_ask_for_what_ward_does_not_compute_are_refused_by_name() {
    type Case = (&'static str, fn(&mut Value), &'static [&'static str]);
    let cases: [Case; 7] = [
        (
            "unknown-field",
            |c| c["use_mamba_layers"] = json!(true),
            &["use_mamba_layers", "does not implement"],
        ),
        (
            "yarn",
            |c| c["rope_scaling"] = json!({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}),
            &["rope_scaling.rope_type", "yarn"],
        ),
        (
            "sliding-window",
            |c| c["use_sliding_window"] = json!(true),
            &["use_sliding_window"],
        ),
        (
            "gelu",
            |c| c["hidden_act"] = json!("gelu"),
            &["hidden_act", "gelu"],
        ),
        (
            "mistral",
            |c| c["model_type"] = json!("mistral"),
            &["model_type", "mistral"],
        ),
        (
            "zero-heads",
            |c| c["num_attention_heads"] = json!(0),
            &["num_attention_heads"],
        ),
        (
            "huge-layers",
            |c| c["num_hidden_layers"] = json!(1u64 << 40),
            &["num_hidden_layers"],
        ),
    ];
    for (case, edit, wanted) in cases {
        let d = copy_of("tiny-qwen2", case, |d| edit_json(d, "config.json", edit));
        assert_refused(&d, wanted);
    }
}

#[test]
fn a_config_that_contradicts_the_tensors_is_refused() {
    // A wider model than the tensors hold.
    let d = copy_of("tiny-qwen2", "wider", |d| {
        edit_json(d, "config.json", |c| c["hidden_size"] = json!(128))
    });
    assert_refused(
        &d,
        &["model.embed_tokens.weight", "shape", "config.json makes it"],
    );
    // Fewer layers: the second layer's tensors are left over.
    let d = copy_of("tiny-qwen2", "fewer-layers", |d| {
        edit_json(d, "config.json", |c| c["num_hidden_layers"] = json!(1))
    });
    assert_refused(&d, &["model.layers.1.", "not a tensor of this qwen2 model"]);
    // More layers: the third layer's tensors are missing.
    let d = copy_of("tiny-qwen2", "more-layers", |d| {
        edit_json(d, "config.json", |c| c["num_hidden_layers"] = json!(3))
    });
    assert_refused(&d, &["blk.2.", "missing"]);
    // An untied model without its output matrix.
    let d = copy_of("tiny-llama", "no-lm-head", |d| {
        edit_weights(d, |t| {
            t.remove("lm_head.weight");
        })
    });
    assert_refused(&d, &["lm_head.weight is missing"]);
}

#[test]
fn tensors_the_model_does_not_use_or_cannot_read_are_refused() {
    let d = copy_of("tiny-qwen2", "extra-tensor", |d| {
        edit_weights(d, |t| {
            t.insert(
                "model.layers.0.mlp.experts.0.weight".into(),
                (Dtype::F32, vec![2], vec![0; 8]),
            );
        })
    });
    assert_refused(&d, &["model.layers.0.mlp.experts.0.weight", "not a tensor"]);
    let d = copy_of("tiny-qwen2", "f64-norm", |d| {
        edit_weights(d, |t| {
            t.insert(
                "model.norm.weight".into(),
                (Dtype::F64, vec![64], vec![0; 512]),
            );
        })
    });
    assert_refused(&d, &["model.norm.weight", "F64"]);
    let d = copy_of("tiny-qwen2", "truncated", |d| {
        let p = d.join("model.safetensors");
        let len = std::fs::metadata(&p).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(len - 100)
            .unwrap();
    });
    assert_refused(&d, &["model.safetensors", "not a valid safetensors file"]);
}

#[test]
fn tokenizers_that_name_unknown_tokens_are_refused() {
    // A merge of a token the vocabulary has not got.
    let d = copy_of("tiny-qwen2", "bad-merge", |d| {
        edit_json(d, "tokenizer.json", |t| {
            t["model"]["merges"][0] = json!("Ġnotatoken Ġneither")
        })
    });
    assert_refused(&d, &["tokenizer.json cannot be loaded"]);
    // An added token past the embedding table.
    let d = copy_of("tiny-qwen2", "token-past-table", |d| {
        edit_json(d, "tokenizer.json", |t| {
            t["added_tokens"].as_array_mut().unwrap().push(json!({
                "id": 200000, "content": "<|extra|>", "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true}))
        })
    });
    assert_refused(&d, &["<|extra|>", "200000", "embedding table"]);
    // A table smaller than the tokenizer (and than the tensors).
    let d = copy_of("tiny-qwen2", "small-vocab", |d| {
        edit_json(d, "config.json", |c| c["vocab_size"] = json!(1000))
    });
    assert_refused(&d, &["model.embed_tokens.weight", "[1000, 64]"]);
    let d = copy_of("tiny-qwen2", "no-tokenizer", |d| {
        std::fs::remove_file(d.join("tokenizer.json")).unwrap()
    });
    assert_refused(&d, &["tokenizer.json", "missing"]);
    // Gemma's SentencePiece model: missing, cut short, or not a protobuf.
    let d = copy_of("tiny-gemma3", "no-tokenizer-model", |d| {
        std::fs::remove_file(d.join("tokenizer.model")).unwrap()
    });
    assert_refused(&d, &["tokenizer.model is missing"]);
    let d = copy_of("tiny-gemma3", "cut-tokenizer-model", |d| {
        let p = d.join("tokenizer.model");
        let len = std::fs::metadata(&p).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
    });
    assert_refused(&d, &["tokenizer.model"]);
    let d = copy_of("tiny-gemma3", "json-as-tokenizer-model", |d| {
        std::fs::copy(d.join("config.json"), d.join("tokenizer.model")).unwrap();
    });
    assert_refused(&d, &["tokenizer.model"]);
    // A Llama checkpoint with a SentencePiece model (Llama 2, Mistral) is not read as BPE.
    let d = copy_of("tiny-llama", "llama-with-spm", |d| {
        std::fs::copy(
            root().join("models/hf/tiny-gemma3/tokenizer.model"),
            d.join("tokenizer.model"),
        )
        .unwrap();
    });
    assert_refused(&d, &["SentencePiece Llama checkpoints"]);
    let d = copy_of("tiny-qwen2", "not-json", |d| {
        std::fs::write(d.join("tokenizer_config.json"), b"{\"chat_template\": ").unwrap()
    });
    assert_refused(&d, &["tokenizer_config.json", "not valid JSON"]);
}

fn refused_with_adapter(base: &str, adapter: &Path) -> String {
    let d = root().join("models/hf").join(base);
    match HfModel::open_merged(&d, Quantize::None, &[(adapter.to_path_buf(), 1.0)]) {
        Ok(_) => panic!("{} on {base} was accepted", adapter.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn adapters_that_do_not_fit_their_base_are_refused() {
    let check = |base: &str, adapter: &Path, wanted: &[&str]| {
        let e = refused_with_adapter(base, adapter);
        eprintln!("{}: {e}", adapter.file_name().unwrap().to_string_lossy());
        for w in wanted {
            assert!(e.contains(w), "{e:?} does not mention {w:?}");
        }
    };
    // Qwen3's adapter shapes (wider heads) on Llama: another model's adapter.
    let qwen2_adapter = root().join("models/hf/tiny-qwen2-lora");
    let d = copy_of("tiny-qwen2-lora", "qwen3-shaped", |d| {
        edit_weights_named(d, "adapter_model.safetensors", |t| {
            let (dtype, _, _) =
                t["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"].clone();
            t.insert(
                "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight".into(),
                (dtype, vec![128, 8], vec![0; 128 * 8 * 4]),
            );
        })
    });
    check(
        "tiny-qwen2",
        &d,
        &["q_proj.lora_B.weight", "[128, 8]", "another model"],
    );
    // Qwen2's adapter on Qwen3, whose heads are twice as wide.
    check(
        "tiny-qwen3",
        &qwen2_adapter,
        &["proj.lora_B.weight", "another model"],
    );
    // Layers the base has not got.
    let d = copy_of("tiny-qwen2-lora", "layer-9", |d| {
        edit_weights_named(d, "adapter_model.safetensors", |t| {
            let a = t
                .remove("base_model.model.model.layers.1.mlp.up_proj.lora_A.weight")
                .unwrap();
            t.insert(
                "base_model.model.model.layers.9.mlp.up_proj.lora_A.weight".into(),
                a,
            );
        })
    });
    check("tiny-qwen2", &d, &["layers.9.mlp.up_proj", "has not got"]);
    let d = copy_of("tiny-qwen2-lora", "not-targeted", |d| {
        edit_json(d, "adapter_config.json", |c| {
            c["target_modules"] = json!(["q_proj", "v_proj"])
        })
    });
    check("tiny-qwen2", &d, &["not among target_modules"]);
    let d = copy_of("tiny-qwen2-lora", "dora", |d| {
        edit_json(d, "adapter_config.json", |c| c["use_dora"] = json!(true))
    });
    check("tiny-qwen2", &d, &["use_dora", "does not apply"]);
    let d = copy_of("tiny-qwen2-lora", "alone", |d| {
        edit_weights_named(d, "adapter_model.safetensors", |t| {
            t.remove("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight");
        })
    });
    check(
        "tiny-qwen2",
        &d,
        &["down_proj.weight", "without its partner"],
    );
    let d = copy_of("tiny-qwen2-lora", "prefix-tuning", |d| {
        edit_json(d, "adapter_config.json", |c| {
            c["peft_type"] = json!("PREFIX_TUNING")
        })
    });
    check("tiny-qwen2", &d, &["peft_type", "LoRA adapters only"]);
}

#[test]
fn gemma_settings_ward_does_not_compute_are_refused_by_name() {
    type Case = (&'static str, fn(&mut Value), &'static [&'static str]);
    let cases: [Case; 5] = [
        (
            "softcap",
            |c| c["final_logit_softcapping"] = json!(30.0),
            &["final_logit_softcapping"],
        ),
        (
            "scalar",
            |c| c["query_pre_attn_scalar"] = json!(64),
            &["query_pre_attn_scalar"],
        ),
        (
            "pattern",
            |c| c["sliding_window_pattern"] = json!(4),
            &["layer_types"],
        ),
        (
            "act",
            |c| c["hidden_activation"] = json!("silu"),
            &["hidden_activation"],
        ),
        (
            "yarn",
            |c| c["rope_scaling"] = json!({"rope_type": "yarn", "factor": 8.0}),
            &["rope_scaling.rope_type"],
        ),
    ];
    for (case, edit, wanted) in cases {
        let d = copy_of("tiny-gemma3", &format!("gemma-{case}"), |d| {
            edit_json(d, "config.json", edit)
        });
        assert_refused(&d, wanted);
    }
}
