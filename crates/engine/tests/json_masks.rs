//! Structured output's token masks on SmolLM2's real vocabulary, at every step of a document:
//! a token is allowed exactly when its bytes, fed one at a time to the same schema's constraint
//! over a vocabulary of single bytes, are each allowed. That holds Ward's view of the model's
//! vocabulary (each token's bytes, control tokens apart) to the grammar itself.

use std::path::PathBuf;

use serde_json::json;
use ward_engine::json::{JsonConstraint, JsonSpec, Vocabulary};
use ward_models::gguf::GgufFile;
use ward_models::Tokenizer;

const BYTE_EOS: u32 = Vocabulary::BYTES_EOS;

fn allowed(c: &mut JsonConstraint, vocab: usize, end: u32) -> Vec<bool> {
    let mut logits = vec![0.0f32; vocab];
    assert!(c.mask(&mut logits, [end]));
    logits.iter().map(|l| l.is_finite()).collect()
}

#[test]
fn masks_allow_exactly_the_tokens_whose_bytes_the_grammar_takes() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(path.is_file(), "run scripts/fetch-models.sh");
    let tokenizer = Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    let schema = json!({"type": "object", "properties": {
        "drugs": {"type": "array", "items": {"type": "string", "maxLength": 12}},
        "doses": {"type": "array", "items": {"type": "number", "minimum": 0}}}});
    let model = JsonSpec::compile(&Vocabulary::new(&tokenizer), &schema).unwrap();
    let bytes = JsonSpec::compile(&Vocabulary::of_bytes(), &schema).unwrap();

    let doc = r#"{"drugs": ["aspirin", "heparin", "aspirin"], "doses": [1, 2.5, 100]}"#;
    let tokens = tokenizer.encode(doc, false);
    let vocab = tokenizer.vocab().len();
    let eos = tokenizer.eos.unwrap();
    let mut on_model = JsonConstraint::new(model);
    let mut on_bytes = JsonConstraint::new(bytes);
    // Every step checks the document's token, every control token and a spread of the rest.
    let checked: Vec<u32> = (0..vocab as u32)
        .filter(|&t| t % 97 == 0 || tokenizer.token_bytes(t, false).is_empty())
        .collect();
    let mut allowed_somewhere = 0;
    for (i, &token) in tokens.iter().enumerate() {
        let mask = allowed(&mut on_model, vocab, eos);
        for &t in checked.iter().chain([&token]) {
            let text = tokenizer.token_bytes(t, false);
            let mut c = on_bytes.clone();
            let takes = !text.is_empty()
                && text.iter().all(|&b| {
                    let ok = allowed(&mut c, 257, BYTE_EOS)[b as usize];
                    if ok {
                        c.accept(b.into(), false);
                    }
                    ok
                });
            assert_eq!(mask[t as usize], takes, "step {i}, token {t} {text:?}");
            allowed_somewhere += usize::from(takes);
        }
        assert!(
            mask[token as usize],
            "the document's own token {i} is masked"
        );
        assert!(
            !mask[eos as usize],
            "the end allowed mid-document at step {i}"
        );
        on_model.accept(token, false);
        for &b in &tokenizer.token_bytes(token, false) {
            on_bytes.accept(b.into(), false);
        }
    }
    assert!(
        allowed_somewhere > 1000,
        "the sample tests little: {allowed_somewhere}"
    );
    assert!(on_model.is_complete());
    let end = allowed(&mut on_model, vocab, eos);
    assert!(end[eos as usize] && end.iter().filter(|&&ok| ok).count() == 1);
}
