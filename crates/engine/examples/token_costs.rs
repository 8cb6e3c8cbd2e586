//! The per-token work around the forward pass, on a real model's vocabulary and logits
//! (Gemma 3's 262k tokens is the largest Ward runs), beside a decode step of that model: a draw
//! of the sampler with and without penalties, and a structured output mask; and reading a long
//! prompt's special tokens, beside the one scan per special token that llama.cpp (and Ward
//! before) makes. Each line gives the time per call and the heap allocations a warm call makes.
//!
//!   cargo run --release -p ward-engine --example token_costs -- models/gemma-3-270m-q4_k_m.gguf

use std::hint::black_box;
use std::time::Instant;

use ward_engine::json::{JsonConstraint, JsonSpec, Vocabulary};
use ward_engine::{Sampler, SamplingParams};
use ward_models::tokenizer::TokenType;
use ward_models::{LoadedModel, Tokenizer, Workspace};
use ward_testkit::{allocations_in, CountingAllocator};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f` `rounds` times after one warm-up call; prints microseconds per call and
/// allocations per warm call.
fn measure(what: &str, rounds: usize, mut f: impl FnMut()) {
    f();
    let started = Instant::now();
    let allocs = allocations_in(|| (0..rounds).for_each(|_| f())) as f64 / rounds as f64;
    let us = started.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    println!("  {what:<44} {us:>9.1} us   {allocs:>5.1} allocations");
}

/// The model's logits for the token after a clinical prompt, and the time of a decode step.
fn real_logits(lm: &LoadedModel) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    let prompt = lm.tokenizer.encode(
        "Assessment: 67-year-old man with crushing chest pain radiating to the left arm, \
         diaphoresis and ST elevation in II, III and aVF. The most likely diagnosis is",
        true,
    );
    let mut cache = lm.model.new_cache(prompt.len() + 64);
    let mut ws = Workspace::default();
    let logits = lm
        .model
        .forward(&prompt, &mut cache, 1, &mut ws)?
        .last()
        .to_vec();
    let next = ward_engine::sampler::argmax(&logits);
    measure("decode step of the model (for scale)", 16, || {
        lm.model.forward(&[next], &mut cache, 1, &mut ws).unwrap();
    });
    Ok(logits)
}

fn samplers(base: Vec<f32>) {
    let n = base.len();
    let history: Vec<u32> = (0..1_000u32).map(|i| i * 7919 % n as u32).collect();
    let mut row = base.clone();
    let cases = [
        ("greedy", SamplingParams::greedy()),
        (
            "temperature 0.7, top_p 0.9",
            SamplingParams {
                temperature: 0.7,
                top_p: 0.9,
                ..Default::default()
            },
        ),
        (
            "top_k 40, top_p 0.95, min_p 0.05",
            SamplingParams {
                temperature: 0.7,
                top_k: 40,
                top_p: 0.95,
                min_p: 0.05,
                ..Default::default()
            },
        ),
        (
            "top_p 0.9 + penalties over 64 tokens",
            SamplingParams {
                temperature: 0.7,
                top_p: 0.9,
                repetition_penalty: 1.1,
                frequency_penalty: 0.2,
                presence_penalty: 0.2,
                ..Default::default()
            },
        ),
        (
            "greedy + penalties over 1000 tokens",
            SamplingParams {
                repetition_penalty: 1.1,
                frequency_penalty: 0.2,
                penalty_last_n: 1_000,
                ..SamplingParams::greedy()
            },
        ),
    ];
    // Each draw below starts with a fresh copy of the row (a draw changes it): this much of
    // each line is the copy.
    measure("copy of the logits row", 200, || {
        row.copy_from_slice(&base);
        black_box(&row);
    });
    for (what, params) in cases {
        let mut sampler = Sampler::new(SamplingParams {
            seed: Some(1),
            ..params
        });
        measure(&format!("sampler: {what}"), 200, || {
            row.copy_from_slice(&base);
            black_box(sampler.sample(&mut row, &history));
        });
    }
}

fn json_mask(tokenizer: &Tokenizer) -> Result<(), Box<dyn std::error::Error>> {
    let vocabulary = Vocabulary::new(tokenizer);
    let spec = JsonSpec::any_object(&vocabulary);
    let document = tokenizer.encode(
        r#"{"findings": "a long string value inside a string"#,
        false,
    );
    let mut logits = vec![0.0f32; tokenizer.vocab().len()];
    let eos = tokenizer.eos.unwrap_or(0);
    let mut constraint = JsonConstraint::new(spec);
    for &t in &document {
        constraint.accept(t, false);
    }
    // Inside a string, where most of an answer's tokens are.
    measure("json mask (inside a string)", 200, || {
        black_box(constraint.mask(&mut logits, [eos]));
    });
    Ok(())
}

fn specials(tokenizer: &Tokenizer) {
    let vocab = tokenizer.vocab();
    let special_texts: Vec<&str> = (0..vocab.len() as u32)
        .filter(|&id| {
            matches!(
                vocab.token_type(id),
                Some(TokenType::Control | TokenType::UserDefined | TokenType::Unknown)
            )
        })
        .filter_map(|id| vocab.text(id))
        .filter(|t| !t.is_empty())
        .collect();
    let note = "Patient, 67, admitted with chest pain radiating to the left arm; troponin rising. ";
    let text = note.repeat(100_000 / note.len());
    println!(
        "  a {} KB prompt, {} special tokens:",
        text.len() / 1000,
        special_texts.len()
    );
    measure("  one scan per special token (llama.cpp's)", 1, || {
        for s in &special_texts {
            black_box(text.match_indices(s).count());
        }
    });
    measure("  Ward's whole encode (one pass + BPE)", 3, || {
        black_box(tokenizer.encode(&text, false));
    });
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("token_costs MODEL.gguf")?;
    let lm = LoadedModel::load(std::path::Path::new(&path), None)?;
    println!("{path}: {} tokens", lm.tokenizer.vocab().len());
    samplers(real_logits(&lm)?);
    json_mask(&lm.tokenizer)?;
    specials(&lm.tokenizer);
    Ok(())
}
