//! Structured output's cost per token on a real vocabulary: the time to index the vocabulary,
//! to compile a nested clinical schema, and to mask a row of logits at each step of a valid
//! 130-token document.
//!
//!   cargo run --release -p ward-engine --example json_mask_time -- models/FILE.gguf

use std::time::Instant;

use ward_engine::json::{JsonConstraint, JsonSpec, Vocabulary};
use ward_models::gguf::GgufFile;
use ward_models::Tokenizer;

const SCHEMA: &str = r#"{"type":"object","properties":{
 "patient":{"type":"object","properties":{
   "mrn":{"type":"string","pattern":"^[0-9]{7}$"},
   "name":{"type":"string","minLength":1,"maxLength":40},
   "birth_date":{"type":"string","format":"date"}},
   "required":["mrn","name","birth_date"],"additionalProperties":false},
 "diagnoses":{"type":"array","minItems":1,"maxItems":5,"items":{"type":"object","properties":{
   "icd10":{"type":"string","pattern":"^[A-Z][0-9]{2}(\\.[0-9]{1,4})?$"},
   "description":{"type":"string"}},"required":["icd10","description"],"additionalProperties":false}},
 "medications":{"type":"array","items":{"type":"object","properties":{
   "name":{"type":"string"},
   "dose_mg":{"type":"number","minimum":0,"maximum":5000},
   "route":{"enum":["PO","IV","IM","SC"]}},"required":["name","dose_mg","route"],"additionalProperties":false}},
 "follow_up_days":{"type":"integer","minimum":0,"maximum":365}},
 "required":["patient","diagnoses","medications","follow_up_days"],"additionalProperties":false}"#;

const DOC: &str = r#"{"patient":{"mrn":"4711023","name":"Jane Roe","birth_date":"1958-03-14"},"diagnoses":[{"icd10":"I21.4","description":"Non-ST elevation myocardial infarction"},{"icd10":"E11.65","description":"Type 2 diabetes with hyperglycemia"}],"medications":[{"name":"aspirin","dose_mg":100,"route":"PO"},{"name":"heparin","dose_mg":5000,"route":"IV"}],"follow_up_days":14}"#;

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("json_mask_time MODEL.gguf")?;
    let tokenizer = Tokenizer::from_gguf(&GgufFile::open(std::path::Path::new(&path))?)?;
    let n = tokenizer.vocab().len();
    let eos = tokenizer.eos.unwrap_or(0);
    println!("{path}: {n} tokens");
    let started = Instant::now();
    let vocabulary = Vocabulary::new(&tokenizer);
    println!("  vocabulary index   {:>8.1} ms", ms(started));
    let schema: serde_json::Value = serde_json::from_str(SCHEMA)?;
    let started = Instant::now();
    let mut constraint = JsonConstraint::new(JsonSpec::compile(&vocabulary, &schema)?);
    println!("  schema compile     {:>8.1} ms", ms(started));
    let tokens = tokenizer.encode(DOC, false);
    let mut times = Vec::new();
    let mut logits = vec![0.0f32; n];
    for &token in &tokens {
        logits.fill(0.0);
        let started = Instant::now();
        assert!(constraint.mask(&mut logits, [eos]));
        times.push(ms(started) * 1e3);
        assert!(
            logits[token as usize].is_finite(),
            "the document's token is masked"
        );
        constraint.accept(token, false);
    }
    assert!(constraint.is_complete());
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "  mask per token ({} tokens): mean {mean:.1} us, p50 {:.1}, p90 {:.1}, max {:.1}",
        times.len(),
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        times[times.len() - 1]
    );
    Ok(())
}
