//! Structured output's token masks on SmolLM2's real vocabulary, at every step of a document
//! whose states repeat: the mask (the vocabulary walked in parts on the kernel threads, or found
//! in the request's cache) allows exactly the tokens whose bytes the matcher takes one by one.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use ward_engine::json::{JsonConstraint, JsonSpec, Matcher, Schema, TokenTrie};
use ward_models::gguf::GgufFile;
use ward_models::Tokenizer;

#[test]
fn masks_allow_exactly_the_tokens_the_matcher_takes() {
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
    let doc =
        r#"{"drugs": ["aspirin", "heparin", "aspirin", "heparin"], "doses": [1, 2.5, 1, 2.5]}"#;
    let tokens = tokenizer.encode(doc, false);
    let vocab = tokenizer.vocab().len();
    let masked = |c: &mut JsonConstraint| {
        let mut logits = vec![0.0f32; vocab];
        assert!(c.mask(&mut logits, |_| false));
        logits.iter().map(|l| l.is_finite()).collect::<Vec<bool>>()
    };
    // The plain reference: each token's bytes fed to a copy of the matcher.
    let mut matcher = Matcher::new(schema.clone());
    let mut cached = JsonConstraint::new(spec(Arc::default()));
    for (i, &token) in tokens.iter().enumerate() {
        let want: Vec<bool> = (0..vocab as u32)
            .map(|t| {
                let mut m = matcher.clone();
                let bytes = trie.bytes(t);
                !bytes.is_empty() && bytes.iter().all(|&b| m.feed(b))
            })
            .collect();
        let mut fresh = JsonConstraint::new(spec(Arc::default()));
        tokens[..i].iter().for_each(|&t| fresh.accept(t));
        assert_eq!(masked(&mut fresh), want, "step {i}");
        assert_eq!(masked(&mut cached), want, "step {i}, from the cache");
        assert!(
            want[token as usize],
            "the document's own token {i} is masked"
        );
        cached.accept(token);
        trie.bytes(token)
            .iter()
            .for_each(|&b| assert!(matcher.feed(b)));
    }
    assert!(cached.is_complete());
}
