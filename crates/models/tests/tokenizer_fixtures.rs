//! Token ids equal llama.cpp's for the fixture strings (with special tokens, and with control
//! tokens read as text as a caller's text is), and decoding is their exact inverse,
//! also when streamed token by token.

mod common;

use common::{
    fixture, ids, model_path, DEEPSEEK_R1_QWEN_VOCAB as DEEPSEEK_R1_QWEN, GEMMA3,
    LLAMA3_VOCAB as LLAMA3, MINILM, QWEN2, SMOLLM2, XLMR,
};
use ward_models::gguf::{GgufFile, Value};
use ward_models::tokenizer::{PreConfig, PreTokenizer};
use ward_models::{StreamDecoder, Tokenizer};

fn tokenizer(model: &str) -> Tokenizer {
    Tokenizer::from_gguf(&GgufFile::open(&model_path(model)).unwrap()).unwrap()
}

fn check(model: &str, fixture_name: &str) {
    check_tokenizer(&tokenizer(model), fixture_name);
}

/// The three readings of every fixture string equal llama.cpp's; the differences, listed.
fn id_failures(tok: &Tokenizer, cases: &[serde_json::Value]) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want = ids(&case["ids"]);
        let want_special = ids(&case["ids_with_special"]);
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
        // A caller's text: control tokens' texts stay text (llama.cpp's special=False).
        let want_plain = ids(&case["ids_plain"]);
        let got_plain = tok.encode_caller(text, true, false, usize::MAX).unwrap();
        if got_plain != want_plain {
            failures.push(format!(
                "{text:?} (control tokens as text): ward {got_plain:?} llama.cpp {want_plain:?}"
            ));
        }
    }
    failures
}

fn check_tokenizer(tok: &Tokenizer, fixture_name: &str) {
    let cases = fixture(fixture_name);
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 30, "need at least 30 fixture strings");
    let failures = id_failures(tok, cases);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want = ids(&case["ids"]);
        // Decoding is the exact inverse (special-token texts included).
        assert_eq!(tok.decode(&want, true), text, "decode of {want:?}");
        // Streaming, a token at a time, gives the same text once control tokens are dropped,
        // and never splits a character.
        let mut dec = StreamDecoder::new();
        let mut streamed = String::new();
        for &id in &want {
            streamed.push_str(&dec.push(tok, id));
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

/// BERT's WordPiece. Its ids are the model's own tokenizer's (Hugging Face `tokenizers`, which
/// sentence-transformers runs) for every string, and llama.cpp's wherever llama.cpp agrees with
/// that (all but the four strings named below). Lowercased, accents stripped, punctuation split
/// off: decoding does not give the text back.
#[test]
fn minilm_wordpiece_matches_its_own_tokenizer_and_llama_cpp() {
    let tok = tokenizer(MINILM);
    let cases = fixture("tokenizer-minilm.json");
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 100);
    let (agreeing, differing): (Vec<_>, Vec<_>) = cases
        .iter()
        .cloned()
        .partition(|c| c["ids_with_special"] == c["hf_ids"]);
    // llama.cpp keeps only the first code point of an NFD decomposition (Hangul loses its
    // vowels), strips Devanagari's spacing vowel signs, and splits at U+0085.
    let mut differing: Vec<_> = differing
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    differing.sort();
    assert_eq!(
        differing,
        [
            "English, Русский, Ελληνικά, עברית, العربية, हिन्दी, ไทย, 日本語, 한국어",
            "Metformin (二甲双胍) 500 mg, Aspirin (アスピリン) 100 mg, 아스피린 정",
            "line\u{2028}separator\u{2029}paragraph\u{85}next",
            "नमस्ते डॉक्टर, मुझे बुखार है।",
        ]
    );
    let failures = id_failures(&tok, &agreeing);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for case in cases {
        let text = case["text"].as_str().unwrap();
        assert_eq!(tok.encode(text, true), ids(&case["hf_ids"]), "{text:?}");
    }
    assert_eq!(
        tok.decode(&tok.encode("Naïve CAFÉ-au-lait", false), false),
        " naive cafe - au - lait"
    );
    // Hugging Face's WordPiece gives up on words of more than 100 characters.
    let unk = tok.vocab().id("[UNK]").unwrap();
    assert_eq!(tok.encode(&"a".repeat(101), false), [unk]);
    assert_ne!(tok.encode(&"a".repeat(100), false), [unk]);
}

/// SentencePiece's unigram model (XLM-RoBERTa's and bge-m3's `t5` tokenizer): llama.cpp's
/// ids for every string, control tokens read or not; and SentencePiece's own (the
/// sentencepiece library on the same vocabulary) for all but one, where two splits score the
/// same and SentencePiece keeps the other.
#[test]
fn xlmr_unigram_matches_llama_cpp_and_sentencepiece() {
    let tok = tokenizer(XLMR);
    let data = fixture("xlmr-random-test.json");
    let cases = data["tokens"].as_array().unwrap();
    assert!(cases.len() >= 100);
    let mut failures = Vec::new();
    let mut ties = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let got = tok.encode_caller(text, true, false, usize::MAX).unwrap();
        if got != ids(&case["ids_plain"]) {
            failures.push(format!(
                "{text:?}: ward {got:?} llama.cpp {}",
                case["ids_plain"]
            ));
        }
        let got = tok.encode(text, true);
        if got != ids(&case["ids_with_special"]) {
            failures.push(format!(
                "{text:?} (control tokens read): ward {got:?} llama.cpp {}",
                case["ids_with_special"]
            ));
        }
        if case["spm_ids"] != case["ids_plain"] {
            ties.push(text);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(ties, ["0000000 00 000 0"]);
    // A caller's limit bounds the normalised text: a long text is refused before the Viterbi
    // step, runs of spaces (which vanish) are not counted.
    assert_eq!(
        tok.encode_caller(&"a ".repeat(100_000), false, false, 10),
        None
    );
    assert_eq!(
        tok.encode_caller(&" ".repeat(100_000), false, false, 10),
        Some(vec![])
    );
    let ids = tok.encode_caller("東京 hello", false, false, 10).unwrap();
    assert_eq!(
        tok.encode_caller("東京 hello", false, false, ids.len()),
        Some(ids.clone())
    );
    assert_eq!(
        tok.encode_caller("東京 hello", false, false, ids.len() - 1),
        None
    );
    // Pieces decode to their text with "▁" as a space: NFKC and merged spaces do not come back.
    let ids = tok.encode("ＡＢＣ　１２３  東京", false);
    assert_eq!(tok.decode(&ids, false), " ABC 123 東京");
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
fn qwen2_bpe_matches_llama_cpp() {
    let tok = tokenizer(QWEN2);
    assert_eq!(tok.pre_config().unwrap().pre, PreTokenizer::Qwen2);
    check_tokenizer(&tok, "tokenizer-qwen2.json");
}

#[test]
fn deepseek_r1_qwen_bpe_matches_llama_cpp() {
    let tok = tokenizer(DEEPSEEK_R1_QWEN);
    assert_eq!(tok.pre_config().unwrap().pre, PreTokenizer::Qwen2);
    // Qwen2's rules, but this model's metadata asks for BOS.
    assert!(tok.add_bos && tok.bos == tok.vocab().id("<｜begin▁of▁sentence｜>"));
    check_tokenizer(&tok, "tokenizer-deepseek-r1-qwen.json");
}

#[test]
fn llama3_bpe_matches_llama_cpp() {
    let tok = tokenizer(LLAMA3);
    let cfg = tok.pre_config().unwrap();
    assert_eq!(cfg.pre, PreTokenizer::Llama3);
    assert!(cfg.ignore_merges);
    // The file has no add_bos_token: llama-bpe implies it.
    assert!(tok.add_bos && tok.bos == Some(128000));
    assert!(tok.is_end_of_generation(128009) && tok.is_end_of_generation(128001));
    check_tokenizer(&tok, "tokenizer-llama3.json");
}

/// Pre-tokenizers no small model carries, checked on Llama 3's vocabulary with its
/// tokenizer.ggml.pre changed, as scripts/reference/tokenizers.py changed it for llama.cpp. Llama
/// 3's vocabulary has multi-digit tokens, so digit rules show (Qwen's own vocabulary hides them).
fn check_llama3_vocab_as(pre: Option<&str>, want: PreTokenizer) {
    let mut gguf = GgufFile::open(&model_path(LLAMA3)).unwrap();
    let meta = &mut gguf.header.metadata;
    match pre {
        Some(p) => meta.insert("tokenizer.ggml.pre".into(), Value::String(p.into())),
        None => meta.remove("tokenizer.ggml.pre"),
    };
    let tok = Tokenizer::from_gguf(&gguf).unwrap();
    assert_eq!(tok.pre_config().unwrap().pre, want);
    let name = pre.unwrap_or("default");
    check_tokenizer(&tok, &format!("tokenizer-llama3-as-{name}.json"));
}

#[test]
fn qwen2_pre_tokenizer_splits_digits_like_llama_cpp() {
    check_llama3_vocab_as(Some("qwen2"), PreTokenizer::Qwen2);
}

#[test]
fn qwen35_pre_tokenizer_matches_llama_cpp() {
    check_llama3_vocab_as(Some("qwen35"), PreTokenizer::Qwen35);
}

#[test]
fn deepseek_v3_pre_tokenizer_matches_llama_cpp() {
    check_llama3_vocab_as(Some("deepseek-v3"), PreTokenizer::DeepSeek3);
}

#[test]
fn missing_pre_tokenizer_uses_llama_cpp_default() {
    check_llama3_vocab_as(None, PreTokenizer::Default);
}

#[test]
fn pre_tokenizer_names_follow_llama_cpp() {
    let cfg = |name| PreConfig::from_name(Some(name)).unwrap();
    for name in ["llama-bpe", "llama3", "llama-v3"] {
        let c = cfg(name);
        assert!(
            c.pre == PreTokenizer::Llama3 && c.ignore_merges && c.add_bos,
            "{name}"
        );
    }
    for name in ["qwen2", "deepseek-r1-qwen"] {
        let c = cfg(name);
        assert!(c.pre == PreTokenizer::Qwen2 && !c.ignore_merges && !c.add_bos && !c.clean_spaces);
    }
    assert_eq!(cfg("smollm").pre, PreTokenizer::DigitsThenGpt2);
    // Names llama.cpp does not know, or splits in ways Ward does not implement, are refused.
    for name in [
        "gpt-4o-mini",
        "deepseek-llm",
        "deepseek-coder",
        "tekken",
        "no-such",
    ] {
        let err = PreConfig::from_name(Some(name)).unwrap_err().to_string();
        assert!(err.contains(name), "{name}: {err}");
    }
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
