//! The kernel tiers end to end: every tiled SIMD tier this machine has (x86's AVX2 and AVX-512,
//! Arm's dotprod and i8mm) generates the same text from the real models (their outputs are
//! bit-identical, so greedy decoding cannot diverge), a forced tier the CPU lacks is refused
//! before any work, and `ward tiers` names each tier with why it is skipped where it is.

use std::path::PathBuf;
use std::process::{Command, Output};

use ward_kernels::tier::Tier;

fn ward_on(tier: &str, args: &[&str]) -> Output {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(args)
        .env("WARD_KERNEL_TIER", tier)
        .current_dir(root)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_simd_tier_generates_the_same_text() {
    let tiled = |t: Tier| match t {
        Tier::Avx2 | Tier::Avx512 | Tier::Dotprod | Tier::I8mm => true,
        Tier::Scalar | Tier::Neon => false,
    };
    let simd: Vec<Tier> = Tier::ALL
        .into_iter()
        .filter(|&t| tiled(t) && t.is_supported())
        .collect();
    if simd.len() < 2 {
        let why = format!("only {simd:?} of the tiled SIMD tiers here: nothing to compare");
        return ward_testkit::skip("", &why);
    }
    // Q4_1 (SmolLM2), Q4_K + Q6_K (Gemma 3, Qwen2.5), over a prompt long enough for several
    // tiles of tokens in the prefill.
    for model in [
        "smollm2-135m-instruct",
        "gemma-3-270m",
        "qwen2.5-coder-0.5b-instruct",
    ] {
        let prompt = "A patient with a fever of 39 degrees, a cough and shortness of breath for \
                      three days is seen in the emergency department. The first tests are";
        let args = [
            "run",
            "--model",
            model,
            "--prompt",
            prompt,
            "--max-tokens",
            "24",
        ];
        let outputs: Vec<(Tier, String)> = simd
            .iter()
            .map(|&t| {
                let o = ward_on(t.name(), &args);
                assert!(o.status.success(), "{model} on {t}: {}", text(&o.stderr));
                (t, text(&o.stdout))
            })
            .collect();
        let (first, want) = &outputs[0];
        assert!(!want.trim().is_empty(), "{model}: no text");
        for (t, got) in &outputs[1..] {
            assert_eq!(got, want, "{model}: {t} and {first} differ");
        }
    }
}

#[test]
fn a_forced_tier_the_cpu_cannot_run_is_refused_before_any_work() {
    let mut refused = vec![
        ("avx9".to_string(), "no kernel tier \"avx9\"".to_string()),
        ("amx".to_string(), "no AMX kernels".to_string()),
    ];
    for t in Tier::ALL.into_iter().filter(|t| !t.is_supported()) {
        refused.push((t.name().to_string(), format!("WARD_KERNEL_TIER={t}")));
    }
    for (name, why) in refused {
        let o = ward_on(&name, &["run", "--prompt", "hi", "--max-tokens", "1"]);
        assert_eq!(o.status.code(), Some(2), "{name}");
        assert!(
            text(&o.stderr).contains(&why),
            "{name}: {}",
            text(&o.stderr)
        );
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn tiers_lists_every_tier_and_the_one_in_use() {
    for t in Tier::ALL.into_iter().filter(|t| t.is_supported()) {
        let o = ward_on(t.name(), &["tiers"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let out = text(&o.stdout);
        assert_eq!(out.lines().count(), Tier::ALL.len(), "{out}");
        for other in Tier::ALL {
            let line = out
                .lines()
                .find(|l| l.split_whitespace().next() == Some(other.name()))
                .unwrap_or_else(|| panic!("{other} missing: {out}"));
            let in_use = line.contains("(in use)");
            assert_eq!(in_use, other == t, "{line}");
            assert_eq!(line.contains("skipped: "), !other.is_supported(), "{line}");
        }
    }
}

#[test]
fn bench_reports_the_tier() {
    let tier = Tier::Scalar;
    let args = [
        "bench",
        "--prompt-tokens",
        "8",
        "--gen-tokens",
        "2",
        "--json",
    ];
    let o = ward_on(tier.name(), &args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(text(&o.stdout).trim()).unwrap();
    assert_eq!(v["kernels"], tier.name());
}
