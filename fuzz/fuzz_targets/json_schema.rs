//! Structured output: an arbitrary JSON Schema compiled as a request's `response_format` is,
//! then arbitrary bytes offered to its constraint the way a constrained answer is, one token at
//! a time (on a vocabulary of one token per byte) until one is masked. Besides never panicking
//! or running away: every prefix the constraint lets end is one JSON document that serde_json
//! reads (an object, for `json_object`), which is how the server reads a forced tool call back
//! (crates/server/src/openai/tools.rs); and a constraint copied mid-document (as each of a
//! request's choices copies the compiled one) goes on exactly as the original.
//!
//! Input: the schema's JSON, a NUL byte, then the document's bytes. A schema that does not
//! parse or compile leaves the document to `json_object`'s schema (any object).

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use ward_engine::json::{JsonConstraint, JsonSpec, Vocabulary};
use ward_fuzz::Input;

const EOS: usize = Vocabulary::BYTES_EOS as usize;

/// The tokens the mask leaves.
fn allowed(c: &mut JsonConstraint) -> Vec<bool> {
    let mut logits = vec![0.0f32; EOS + 1];
    c.mask(&mut logits, [EOS as u32]);
    logits.iter().map(|l| l.is_finite()).collect()
}

fuzz_target!(|data: &[u8]| {
    static BYTES: OnceLock<Vocabulary> = OnceLock::new();
    let bytes = BYTES.get_or_init(Vocabulary::of_bytes);
    let mut input = Input(data);
    let schema_text = input.until(0);
    let doc = input.rest();
    let compiled = serde_json::from_slice::<Value>(schema_text)
        .ok()
        .and_then(|s| JsonSpec::compile(bytes, &s).ok());
    let any_object = compiled.is_none();
    let mut constraint = JsonConstraint::new(compiled.unwrap_or_else(|| JsonSpec::any_object(bytes)));
    let split = doc.len() / 3;
    let mut copy: Option<JsonConstraint> = None;
    for (i, &byte) in doc.iter().enumerate() {
        if i == split {
            copy = Some(constraint.clone());
        }
        let now = allowed(&mut constraint);
        if let Some(copy) = &mut copy {
            assert_eq!(allowed(copy), now, "a copied constraint disagrees at byte {i}");
        }
        if now[EOS] {
            let prefix = &doc[..i];
            match serde_json::from_slice::<Value>(prefix) {
                Ok(v) => assert!(!any_object || v.is_object(), "not an object"),
                // JSON has no bound on exponents; serde_json refuses what overflows an f64.
                Err(e) if e.to_string().starts_with("number out of range") => {}
                Err(e) => panic!(
                    "{:?} may end, serde_json says: {e}",
                    String::from_utf8_lossy(prefix)
                ),
            }
        }
        if !now[usize::from(byte)] {
            break;
        }
        constraint.accept(byte.into(), false);
        if let Some(copy) = &mut copy {
            copy.accept(byte.into(), false);
        }
    }
});
