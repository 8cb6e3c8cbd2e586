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

/// A models directory of its own, with `registry` as its registry.toml.
fn models_dir(tag: &str, registry: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ward-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("registry.toml"), registry).unwrap();
    dir
}

#[test]
fn pull_from_a_file_shows_its_hashing_and_without_the_hub_names_from() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let smollm2 = root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let registry = "default = \"small\"\n[[model]]\nname = \"small\"\nfile = \"small.gguf\"\n\
        architecture = \"llama\"\nlicense = \"x\"\n\
        sha256 = \"b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53\"\n\
        hf = { repo = \"someone/small-GGUF\", file = \"small.gguf\" }\n";
    let dir = models_dir("pull", registry);
    let pull = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ward"))
            .args(["pull", "small"])
            .args(extra)
            .env("WARD_MODELS_DIR", &dir)
            // Nothing listens there: the Hub is unreachable, as on a closed hospital network.
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .output()
            .unwrap()
    };
    let offline = pull(&[]);
    let err = text(&offline.stderr);
    assert_eq!(offline.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot be reached") && err.contains("ward pull small --from FILE"),
        "{err}"
    );
    let imported = pull(&["--from", smollm2.to_str().unwrap()]);
    let err = text(&imported.stderr);
    assert!(imported.status.success(), "{err}");
    assert!(err.contains("100% of 0.1 GB"), "{err}");
    assert!(text(&imported.stdout).contains("verified sha256 b179c952"));
    // Listed as verified, in JSON too; and inspected by its name.
    let list = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["list", "--json"])
        .env("WARD_MODELS_DIR", &dir)
        .output()
        .unwrap();
    let models: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(models[0]["name"], "small");
    assert_eq!(models[0]["state"], "verified");
    assert_eq!(models[0]["runs"], "yes");
    let inspect = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["inspect", "small", "--json"])
        .env("WARD_MODELS_DIR", &dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(v["architecture"], "llama");
    assert_eq!(v["hyper_parameters"]["layers"], 30);
    assert_eq!(v["tokenizer"]["kind"], "bpe");
    assert!(v["file"].as_str().unwrap().ends_with("small.gguf"));
}

#[test]
fn errors_name_the_problem_once_in_words() {
    let o = ward(&["inspect", "/nonexistent/model.gguf"]);
    let err = text(&o.stderr);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    let o = ward(&["run", "--prompt", "Fever is", "--max-tokens", "3"]);
    let err = text(&o.stderr);
    assert!(
        err.contains("on the CPU") && err.contains("(finish: length)"),
        "{err}"
    );
}

#[test]
fn run_reads_escapes_in_stop_strings() {
    // Counting from 1 with a comma between: greedy SmolLM2 writes "1, 2, 3, ...".
    let args = ["run", "--prompt", "1, 2, 3, 4,", "--max-tokens", "12"];
    let all = text(&ward(&args).stdout);
    let cut = ward(&[&args[..], &["--stop", r"\u{2C} 7"]].concat());
    assert!(cut.status.success(), "{}", text(&cut.stderr));
    let cut = text(&cut.stdout);
    assert!(
        all.contains(", 7") && !cut.contains(", 7"),
        "{all:?} / {cut:?}"
    );
    let bad = ward(&[&args[..], &["--stop", r"\q"]].concat());
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("unknown escape"));
}
