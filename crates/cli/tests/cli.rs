//! The `ward` binary as a user runs it.

use std::path::PathBuf;
use std::process::{Command, Output};

fn ward(args: &[&str]) -> Output {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(args)
        .current_dir(root)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

#[test]
fn run_prints_only_generated_text_on_stdout() {
    let args = ["run", "--prompt", "Fever is", "--max-tokens", "12"];
    let a = ward(&args);
    assert!(a.status.success(), "{}", text(&a.stderr));
    let out = text(&a.stdout);
    assert!(!out.trim().is_empty());
    assert!(!out.contains("ward:"), "log text on stdout: {out:?}");
    assert!(text(&a.stderr).contains("smollm2-135m-instruct"));
    // Greedy by default: the same command prints the same text.
    assert_eq!(text(&ward(&args).stdout), out);
}

#[test]
fn run_with_seed_is_reproducible_and_chat_uses_the_template() {
    let args = [
        "run",
        "--chat",
        "--prompt",
        "Name one antibiotic.",
        "--max-tokens",
        "16",
        "--temperature",
        "0.8",
        "--seed",
        "3",
    ];
    let a = ward(&args);
    assert!(a.status.success(), "{}", text(&a.stderr));
    assert_eq!(text(&ward(&args).stdout), text(&a.stdout));
    let gemma = ward(&[
        "run",
        "--model",
        "gemma-3-270m",
        "--chat",
        "--prompt",
        "hi",
        "--max-tokens",
        "4",
    ]);
    assert!(!gemma.status.success());
    assert!(
        text(&gemma.stderr).contains("no chat template"),
        "{}",
        text(&gemma.stderr)
    );
}

#[test]
fn inspect_describes_the_model() {
    let o = ward(&["inspect", "models/gemma-3-270m-q4_k_m.gguf"]);
    assert!(o.status.success());
    let out = text(&o.stdout);
    for needle in [
        "architecture: gemma3",
        "sliding window 512",
        "tensors: 236",
        "Q8_0",
        "tokenizer: Spm, 262144 tokens",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    let o = ward(&["inspect", "models/SmolLM2-135M-Instruct.Q4_1.gguf"]);
    assert!(text(&o.stdout).contains("<|im_start|>"));
}

#[test]
fn inspect_shows_the_model_description() {
    let o = ward(&["inspect", "models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"]);
    let out = text(&o.stdout);
    assert!(out.contains("rope halves, silu FFN"), "{out}");
    assert!(out.contains("Q/K/V biases"), "{out}");
}

#[test]
fn list_says_which_models_this_build_runs_and_why_not() {
    let dir = std::env::temp_dir().join(format!("ward-cli-list-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::os::unix::fs::symlink(
        root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
            .canonicalize()
            .unwrap(),
        dir.join("here.gguf"),
    )
    .unwrap();
    let entry = |name: &str, arch: &str| {
        format!(
            "[[model]]\nname = \"{name}\"\nfile = \"{name}.gguf\"\narchitecture = \"{arch}\"\n\
             license = \"x\"\n"
        )
    };
    let registry = format!(
        "default = \"here\"\n{}{}{}",
        entry("here", "llama"),
        entry("later", "qwen3"),
        entry("moe", "qwen3moe")
    );
    std::fs::write(dir.join("registry.toml"), registry).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ward"))
        .arg("list")
        .env("WARD_MODELS_DIR", &dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let out = text(&o.stdout);
    let column = out.lines().next().unwrap().find("RUNS").unwrap();
    let runs = |name: &str| {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        line[column..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(runs("here"), "yes", "{out}");
    assert_eq!(runs("later"), "arch", "{out}");
    assert_eq!(runs("moe"), "no", "{out}");
    assert!(
        out.contains("moe: the qwen3moe architecture is not implemented"),
        "{out}"
    );
}

#[test]
fn bad_inputs_give_clear_errors() {
    let garbage =
        std::env::temp_dir().join(format!("ward-cli-garbage-{}.gguf", std::process::id()));
    std::fs::write(&garbage, b"definitely not a model file").unwrap();
    let o = ward(&["inspect", garbage.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("not a GGUF file"),
        "{}",
        text(&o.stderr)
    );
    let o = ward(&["run", "--model", garbage.to_str().unwrap(), "--prompt", "x"]);
    assert_eq!(o.status.code(), Some(1));
    std::fs::remove_file(&garbage).unwrap();
    let o = ward(&["run", "--model", "no-such-model", "--prompt", "x"]);
    assert!(
        text(&o.stderr).contains("unknown model")
            && text(&o.stderr).contains("smollm2-135m-instruct")
    );
    // The default build has no CUDA, and says so.
    let o = ward(&["run", "--gpu", "0", "--prompt", "x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("no CUDA support"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn bench_json_is_one_line() {
    let o = ward(&[
        "bench",
        "--prompt-tokens",
        "16",
        "--gen-tokens",
        "4",
        "--threads",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert_eq!(out.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["threads"], 2);
    assert!(
        v["prefill_tok_s"].as_f64().unwrap() > 0.0 && v["decode_tok_s"].as_f64().unwrap() > 0.0
    );
    assert!(v["model"].as_str().unwrap().contains("SmolLM2"));
}

#[test]
fn serve_refuses_a_taken_port_and_an_unknown_model_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = ward(&["serve", "--port", &port]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("binding 127.0.0.1:") && err.contains(&port),
        "{err}"
    );

    let out = ward(&["serve", "--port", "0", "--model", "no-such-model"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no-such-model"),
        "{}",
        text(&out.stderr)
    );
}
