//! Ward's JSON matcher against llguidance on the same vocabulary, schema and document: the time
//! each takes to compute a step's token mask, and where the masks differ.
//!
//!   cargo run --release --manifest-path tools/llguidance-eval/Cargo.toml -- MODEL.gguf

use std::sync::Arc;
use std::time::Instant;

use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use toktrie::{ApproximateTokEnv, TokRxInfo, TokTrie};
use ward_engine::json::{JsonConstraint, JsonSpec, MaskCache, Schema, TokenTrie};
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

fn stats(name: &str, mut t: Vec<f64>) {
    t.sort_by(f64::total_cmp);
    let mean = t.iter().sum::<f64>() / t.len() as f64;
    println!(
        "  {name:<28} mean {:>8.1} us  p50 {:>8.1}  p90 {:>8.1}  max {:>9.1}",
        mean,
        t[t.len() / 2],
        t[t.len() * 9 / 10],
        t[t.len() - 1]
    );
}

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).expect("llguidance-eval MODEL.gguf");
    let gguf = GgufFile::open(std::path::Path::new(&path))?;
    let tok = Tokenizer::from_gguf(&gguf)?;
    let n = tok.vocab().len() as u32;
    let eos = tok.eos.unwrap_or(0);
    println!("{path}: {n} tokens");

    // llguidance's view of the vocabulary: each token's bytes, special tokens behind 0xFF.
    let started = Instant::now();
    let words: Vec<Vec<u8>> = (0..n)
        .map(|id| match tok.token_bytes(id, false) {
            b if !b.is_empty() => b,
            _ => [&[0xFFu8][..], &tok.token_bytes(id, true)].concat(),
        })
        .collect();
    let trie = TokTrie::from(&TokRxInfo::new(n, eos), &words);
    let env: toktrie::TokEnv = Arc::new(ApproximateTokEnv::new(trie));
    let factory = ParserFactory::new_simple(&env)?;
    println!("  llguidance vocabulary index  {:>8.1} ms", started.elapsed().as_secs_f64() * 1e3);
    let started = Instant::now();
    let ward_trie = Arc::new(TokenTrie::new(&tok));
    println!("  Ward vocabulary index        {:>8.1} ms", started.elapsed().as_secs_f64() * 1e3);

    let schema: serde_json::Value = serde_json::from_str(SCHEMA)?;
    let started = Instant::now();
    let mut llg = Matcher::new(factory.create_parser(TopLevelGrammar::from_json_schema(schema.clone())));
    println!("  llguidance schema compile    {:>8.1} ms", started.elapsed().as_secs_f64() * 1e3);
    let started = Instant::now();
    let ward_schema = Arc::new(Schema::compile(&schema).map_err(|e| anyhow::anyhow!(e.0))?);
    println!("  Ward schema compile          {:>8.1} ms", started.elapsed().as_secs_f64() * 1e3);
    let spec = |masks| JsonSpec {
        schema: ward_schema.clone(),
        trie: ward_trie.clone(),
        masks,
    };
    let mut cached = JsonConstraint::new(spec(Arc::new(MaskCache::default())));

    let tokens = tok.encode(DOC, false);
    println!("  document: {} tokens", tokens.len());
    let (mut t_llg, mut t_cold, mut t_cached) = (vec![], vec![], vec![]);
    let (mut ward_only, mut llg_only, mut steps_differing) = (0usize, 0usize, 0usize);
    let mut logits = vec![0.0f32; n as usize];
    for (i, &t) in tokens.iter().enumerate() {
        // Both timed to a masked row of logits, as sampling needs it.
        let mut llg_logits = vec![0.0f32; n as usize];
        let started = Instant::now();
        let mask = llg.compute_mask()?;
        for (id, l) in llg_logits.iter_mut().enumerate() {
            if !mask.is_allowed(id as u32) {
                *l = f32::NEG_INFINITY;
            }
        }
        t_llg.push(started.elapsed().as_secs_f64() * 1e6);
        // Ward with nothing cached: a fresh constraint replayed to this step.
        let mut cold = JsonConstraint::new(spec(Arc::new(MaskCache::default())));
        for &p in &tokens[..i] {
            cold.accept(p);
        }
        logits.fill(0.0);
        let started = Instant::now();
        cold.mask(&mut logits, |id| id == eos);
        t_cold.push(started.elapsed().as_secs_f64() * 1e6);
        let mut cached_logits = vec![0.0f32; n as usize];
        let started = Instant::now();
        cached.mask(&mut cached_logits, |id| id == eos);
        t_cached.push(started.elapsed().as_secs_f64() * 1e6);
        let (mut w, mut l) = (0, 0);
        let mut example = None;
        for id in 0..n {
            let ward = logits[id as usize].is_finite();
            let lg = llg_logits[id as usize].is_finite();
            if ward && !lg {
                w += 1;
                example.get_or_insert((id, "ward only"));
            } else if lg && !ward {
                l += 1;
                example.get_or_insert((id, "llguidance only"));
            }
        }
        if w + l > 0 {
            steps_differing += 1;
            if steps_differing <= 12 {
                let (id, who) = example.unwrap();
                let before = String::from_utf8_lossy(&tokens[..i].iter().flat_map(|&p| tok.token_bytes(p, true)).collect::<Vec<_>>()).into_owned();
                let tail: String = before.chars().rev().take(24).collect::<Vec<_>>().into_iter().rev().collect();
                println!("    step {i:>3} after …{tail:?}: {w} ward-only, {l} llguidance-only, e.g. {:?} ({who})",
                    String::from_utf8_lossy(&tok.token_bytes(id, true)));
            }
        }
        ward_only += w;
        llg_only += l;
        assert!(mask.is_allowed(t), "llguidance refuses the document's token at step {i}");
        assert!(logits[t as usize].is_finite(), "Ward refuses the document's token at step {i}");
        llg.consume_token(t)?;
        cached.accept(t);
    }
    println!("  mask per token:");
    stats("llguidance", t_llg);
    stats("Ward (nothing cached)", t_cold);
    stats("Ward (request's cache)", t_cached);
    println!(
        "  steps whose masks differ: {steps_differing} of {}; tokens allowed by Ward only {ward_only}, by llguidance only {llg_only}",
        tokens.len()
    );
    Ok(())
}
