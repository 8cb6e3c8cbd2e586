//! Structured output's token masks on SmolLM2's real vocabulary: a mask found in the request's
//! cache (the same matcher state seen before) is the mask a fresh walk of the vocabulary gives,
//! at every step of a document whose states repeat.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use ward_engine::json::{JsonConstraint, JsonSpec, Schema, TokenTrie};
use ward_models::gguf::GgufFile;
use ward_models::Tokenizer;

#[test]
fn cached_masks_are_the_masks_walked_afresh() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(path.is_file(), "run scripts/fetch-models.sh");
    let tokenizer = Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    let trie = Arc::new(TokenTrie::new(&tokenizer));
    let schema = Arc::new(
        Schema::compile(&json!({"type": "object", "properties": {
            "drugs": {"type": "array", "items": {"type": "string"}},
            "doses": {"type": "array", "items": {"type": "number"}}}}))
        .unwrap(),
    );
    let spec = |masks| JsonSpec {
        schema: schema.clone(),
        trie: trie.clone(),
        masks,
    };
    let doc = r#"{"drugs": ["aspirin", "heparin", "aspirin", "heparin"], "doses": [1, 2.5, 1, 2.5]}"#;
    let tokens = tokenizer.encode(doc, false);
    let vocab = tokenizer.vocab().len();
    let masked = |c: &mut JsonConstraint| {
        let mut logits = vec![0.0f32; vocab];
        assert!(c.mask(&mut logits, |_| false));
        logits.iter().map(|l| l.is_finite()).collect::<Vec<bool>>()
    };
    let mut cached = JsonConstraint::new(spec(Arc::default()));
    for (i, &token) in tokens.iter().enumerate() {
        let mut fresh = JsonConstraint::new(spec(Arc::default()));
        tokens[..i].iter().for_each(|&t| fresh.accept(t));
        let want = masked(&mut fresh);
        assert_eq!(masked(&mut cached), want, "step {i}");
        assert!(want[token as usize], "the document's own token {i} is masked");
        cached.accept(token);
    }
    assert!(cached.is_complete());
}
