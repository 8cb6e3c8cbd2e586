//! The generation loop on the real SmolLM2 model: greedy agrees with llama.cpp where the choice
//! is clear, seeds reproduce, stop strings and max_tokens end generation as documented.

use std::path::PathBuf;

use ward_engine::{generate, FinishReason, GenerateParams, SamplingParams};
use ward_models::LoadedModel;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn smollm2() -> LoadedModel {
    let p = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.is_file(), "run scripts/fetch-models.sh");
    LoadedModel::load(&p, None).unwrap()
}

fn run(
    lm: &LoadedModel,
    prompt: &[u32],
    params: &GenerateParams,
) -> (String, Vec<u32>, FinishReason) {
    let mut text = String::new();
    let stats = generate(lm, prompt, params, |t| text.push_str(t)).unwrap();
    (text, stats.tokens, stats.finish)
}

fn params(max_tokens: usize, sampling: SamplingParams, stop: &[&str]) -> GenerateParams {
    GenerateParams {
        max_tokens,
        sampling,
        stop: stop.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn greedy_first_tokens_match_llama_cpp_where_clear() {
    let lm = smollm2();
    let fx: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("scripts/reference/fixtures/logits-smollm2.json"))
            .unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for case in fx["cases"].as_array().unwrap() {
        let top = &case["top5"][0];
        if top[0][1].as_f64().unwrap() - top[1][1].as_f64().unwrap() < 1.0 {
            continue;
        }
        let prompt: Vec<u32> = case["prompt_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let (_, tokens, _) = run(&lm, &prompt, &params(1, SamplingParams::greedy(), &[]));
        assert_eq!(tokens[0] as u64, case["continuation"][0].as_u64().unwrap());
        checked += 1;
    }
    assert!(checked >= 3, "too few clear cases ({checked})");
}

#[test]
fn same_seed_same_tokens() {
    let lm = smollm2();
    let prompt = lm
        .tokenizer
        .encode("The most common causes of fever in children are", true);
    let sampled = |seed| SamplingParams {
        temperature: 0.9,
        top_p: 0.95,
        seed: Some(seed),
        ..Default::default()
    };
    let a = run(&lm, &prompt, &params(24, sampled(42), &[]));
    let b = run(&lm, &prompt, &params(24, sampled(42), &[]));
    let c = run(&lm, &prompt, &params(24, sampled(7), &[]));
    assert_eq!(a.1, b.1);
    assert_eq!(a.0, b.0);
    assert_ne!(a.1, c.1, "different seeds gave the same 24 tokens");
}

#[test]
fn stop_strings_and_max_tokens() {
    let lm = smollm2();
    let prompt = lm
        .tokenizer
        .encode("Write a short list of vital signs:\n1.", true);
    let (full, tokens, finish) = run(&lm, &prompt, &params(40, SamplingParams::greedy(), &[]));
    assert_eq!(finish, FinishReason::Length);
    assert_eq!(tokens.len(), 40);
    assert_eq!(lm.tokenizer.decode(&tokens, false), full);
    // Stop on a piece of text from the middle of the greedy output: the output is exactly what
    // came before it, even though the stop string spans several tokens.
    let start = full.char_indices().nth(full.chars().count() / 2).unwrap().0;
    let stop: String = full[start..].chars().take(6).collect();
    let (stopped, _, finish) = run(
        &lm,
        &prompt,
        &params(40, SamplingParams::greedy(), &[&stop]),
    );
    assert_eq!(finish, FinishReason::Stop);
    assert_eq!(stopped, full[..full.find(&stop).unwrap()]);
    assert!(!stopped.contains(&stop));
}

#[test]
fn end_of_turn_stops_a_chat_answer() {
    let lm = smollm2();
    let prompt = lm
        .chat_prompt(&[ward_models::ChatMessage::new("user", "Say hello.")])
        .unwrap();
    let (text, tokens, finish) = run(&lm, &prompt, &params(200, SamplingParams::greedy(), &[]));
    assert_eq!(
        finish,
        FinishReason::Stop,
        "no end of turn within 200 tokens: {text:?}"
    );
    assert!(lm.tokenizer.is_end_of_generation(*tokens.last().unwrap()));
    assert!(!text.contains("<|im_end|>"));
}

#[test]
fn over_long_requests_are_refused() {
    let lm = smollm2();
    let prompt = lm.tokenizer.encode("hello", true);
    let err = generate(
        &lm,
        &prompt,
        &params(1_000_000, SamplingParams::greedy(), &[]),
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("context"), "{err}");
}
