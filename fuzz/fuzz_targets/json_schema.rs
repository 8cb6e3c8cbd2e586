//! Structured output: an arbitrary JSON Schema compiled as a request's `response_format` is,
//! then arbitrary bytes fed to the matcher the way a constrained answer is, one at a time until
//! one is refused. Besides never panicking: every prefix the matcher calls a complete document
//! is one JSON document (an object, for any schema Ward compiles) that serde_json reads, which
//! is how the server reads a forced tool call back (crates/server/src/openai/tools.rs); and a
//! matcher copied mid-document goes on exactly as the original (the token mask runs on copies).
//!
//! Input: the schema's JSON, a NUL byte, then the document's bytes. A schema that does not
//! parse or compile leaves the document to `json_object`'s schema (any object).

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use ward_engine::json::{Matcher, Schema};
use ward_fuzz::Input;

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let schema_text = input.until(0);
    let doc = input.rest();
    let schema = serde_json::from_slice::<Value>(schema_text)
        .ok()
        .and_then(|s| Schema::compile(&s).ok())
        .unwrap_or_else(Schema::any_object);
    let schema = Arc::new(schema);
    let mut matcher = Matcher::new(schema.clone());
    // From a third of the way in, a second matcher that read something else first and then
    // copied this one's state (as the token mask's scratch states do) must follow it exactly.
    let split = doc.len() / 3;
    let mut reused = Matcher::new(schema);
    for (i, &byte) in doc.iter().enumerate() {
        if i == split {
            for &b in &doc[..split / 2] {
                if !reused.feed(b) {
                    break;
                }
            }
            reused.copy_from(&matcher);
        }
        let took = matcher.feed(byte);
        if i >= split {
            assert_eq!(
                reused.feed(byte),
                took,
                "a copied matcher disagrees at byte {i}"
            );
        }
        if !took {
            break;
        }
        if matcher.is_complete() {
            let prefix = &doc[..=i];
            match serde_json::from_slice::<Value>(prefix) {
                Ok(v) => assert!(v.is_object(), "a complete document that is not an object"),
                Err(e) => panic!(
                    "the matcher calls {:?} complete, serde_json says: {e}",
                    String::from_utf8_lossy(prefix)
                ),
            }
        }
    }
});
