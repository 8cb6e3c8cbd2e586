//! Token ids equal llama.cpp's for the fixture strings, and decoding is their exact inverse,
//! also when streamed token by token.

mod common;

use common::{fixture, model_path, GEMMA3, SMOLLM2};
use ward_models::gguf::GgufFile;
use ward_models::{StreamDecoder, Tokenizer};

fn check(model: &str, fixture_name: &str) {
    let tok = Tokenizer::from_gguf(&GgufFile::open(&model_path(model)).unwrap()).unwrap();
    let cases = fixture(fixture_name);
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 30, "need at least 30 fixture strings");
    let ids_of = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want = ids_of(&case["ids"]);
        let want_special = ids_of(&case["ids_with_special"]);
        let got = tok.encode(text, false);
        if got != want {
            failures.push(format!("{text:?}: ward {got:?} llama.cpp {want:?}"));
        }
        let got_special = tok.encode(text, true);
        if got_special != want_special {
            failures.push(format!(
                "{text:?} (with BOS/EOS): ward {got_special:?} llama.cpp {want_special:?}"
            ));
        }
        // Decoding is the exact inverse (special-token texts included).
        assert_eq!(tok.decode(&want, true), text, "decode of {want:?}");
        // Streaming, a token at a time, gives the same text once control tokens are dropped,
        // and never splits a character.
        let mut dec = StreamDecoder::new();
        let mut streamed = String::new();
        for &id in &want {
            streamed.push_str(&dec.push(&tok, id));
        }
        streamed.push_str(&dec.finish());
        assert_eq!(
            streamed,
            tok.decode(&want, false),
            "streamed decode of {text:?}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} strings differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn smollm2_bpe_matches_llama_cpp() {
    check(SMOLLM2, "tokenizer-smollm2.json");
}

#[test]
fn gemma3_spm_matches_llama_cpp() {
    check(GEMMA3, "tokenizer-gemma3.json");
}

#[test]
fn partial_utf8_is_held_until_complete() {
    let tok = Tokenizer::from_gguf(&GgufFile::open(&model_path(SMOLLM2)).unwrap()).unwrap();
    // An emoji that byte-level BPE splits across several tokens.
    let ids = tok.encode("🩺", false);
    assert!(ids.len() > 1, "expected the emoji to span tokens: {ids:?}");
    let mut dec = StreamDecoder::new();
    let pieces: Vec<String> = ids.iter().map(|&id| dec.push(&tok, id)).collect();
    assert!(
        pieces[..pieces.len() - 1].iter().all(|p| p.is_empty()),
        "{pieces:?}"
    );
    assert_eq!(pieces.last().unwrap(), "🩺");
    // A stream cut in the middle of the character ends in a replacement character.
    let mut dec = StreamDecoder::new();
    dec.push(&tok, ids[0]);
    assert_eq!(dec.finish(), "\u{FFFD}");
}

#[test]
fn end_of_generation_tokens() {
    let smol = Tokenizer::from_gguf(&GgufFile::open(&model_path(SMOLLM2)).unwrap()).unwrap();
    let im_end = smol.vocab().id("<|im_end|>").unwrap();
    assert!(smol.is_end_of_generation(im_end));
    assert!(!smol.add_bos);
    let gemma = Tokenizer::from_gguf(&GgufFile::open(&model_path(GEMMA3)).unwrap()).unwrap();
    assert!(gemma.add_bos && gemma.bos == gemma.vocab().id("<bos>"));
    assert!(gemma.is_end_of_generation(gemma.vocab().id("<end_of_turn>").unwrap()));
    assert!(gemma.is_end_of_generation(gemma.vocab().id("<eos>").unwrap()));
}
