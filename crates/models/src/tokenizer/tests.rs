//! Tokenizer metadata that contradicts itself is refused with an error that names the problem,
//! never a panic; and the pre-tokenizers cut hand-checked strings where llama.cpp does (the
//! fixtures in tests/tokenizer_fixtures.rs check them against llama.cpp on real vocabularies).

use super::pre::PreTokenizer;
use super::{Tokenizer, TokenizerError};
use crate::gguf::writer::write_gguf;
use crate::gguf::{Array, GgufFile, Value};

/// A tiny byte-level BPE vocabulary: the bytes of "ab c" and two merges ("a b", "Ġ c").
fn metadata() -> Vec<(&'static str, Value)> {
    let strings =
        |v: &[&str]| Value::Array(Array::String(v.iter().map(|s| s.to_string()).collect()));
    vec![
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("llama-bpe".into())),
        (
            "tokenizer.ggml.tokens",
            strings(&["a", "b", "c", "Ġ", "ab", "Ġc", "<s>"]),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(Array::I32(vec![1, 1, 1, 1, 1, 1, 3])),
        ),
        ("tokenizer.ggml.merges", strings(&["a b", "Ġ c"])),
        ("tokenizer.ggml.bos_token_id", Value::U32(6)),
    ]
}

fn load(meta: &[(&str, Value)]) -> Result<Tokenizer, TokenizerError> {
    Tokenizer::from_gguf(&GgufFile::from_bytes(write_gguf(meta, &[])).unwrap())
}

/// `metadata()` with `key` set to `value` (or removed when `None`).
fn with(key: &str, value: Option<Value>) -> Vec<(&'static str, Value)> {
    let mut m: Vec<_> = metadata().into_iter().filter(|(k, _)| *k != key).collect();
    if let Some(v) = value {
        let k = metadata().iter().map(|(k, _)| *k).find(|k| *k == key);
        m.push((k.expect("a key of metadata()"), v));
    }
    m
}

fn refused(meta: &[(&str, Value)], needle: &str) {
    match load(meta) {
        Ok(_) => panic!("accepted metadata that should be refused ({needle})"),
        Err(e) => assert!(e.to_string().contains(needle), "{e} (wanted {needle:?})"),
    }
}

#[test]
fn the_small_vocabulary_works() {
    let tok = load(&metadata()).unwrap();
    // llama-bpe: BOS by default, whole-word lookup before merging.
    assert_eq!(tok.encode("ab c", true), vec![6, 4, 5]);
    assert_eq!(tok.decode(&[6, 4, 5], false), "ab c");
}

#[test]
fn merges_outside_the_vocabulary_are_refused() {
    let strings = |v: &[&str]| {
        Some(Value::Array(Array::String(
            v.iter().map(|s| s.to_string()).collect(),
        )))
    };
    refused(&with("tokenizer.ggml.merges", strings(&["a x"])), "\"x\"");
    refused(&with("tokenizer.ggml.merges", strings(&["b c"])), "\"bc\"");
    refused(
        &with("tokenizer.ggml.merges", strings(&["abc"])),
        "separating space",
    );
    refused(
        &with(
            "tokenizer.ggml.merges",
            Some(Value::Array(Array::U32(vec![1]))),
        ),
        "merges",
    );
    refused(&with("tokenizer.ggml.merges", None), "merges");
}

#[test]
fn special_token_ids_outside_the_vocabulary_are_refused() {
    for key in [
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.eot_token_id",
        "tokenizer.ggml.eom_token_id",
        "tokenizer.ggml.fim_pad_token_id",
    ] {
        let mut m = with("tokenizer.ggml.bos_token_id", None);
        m.push((key, Value::U32(7)));
        refused(&m, key);
        let mut m = with("tokenizer.ggml.bos_token_id", None);
        m.push((key, Value::U64(u64::MAX)));
        refused(&m, key);
    }
}

#[test]
fn bos_implied_but_not_named_is_refused() {
    // llama.cpp would quietly use token 11 here.
    refused(
        &with("tokenizer.ggml.bos_token_id", None),
        "bos_token_id is missing",
    );
    let mut m = with("tokenizer.ggml.bos_token_id", None);
    m.push(("tokenizer.ggml.add_bos_token", Value::Bool(false)));
    assert!(load(&m).is_ok());
    m.push(("tokenizer.ggml.add_eos_token", Value::Bool(true)));
    refused(&m, "eos_token_id is missing");
}

#[test]
fn token_type_and_tokens_must_agree() {
    refused(
        &with(
            "tokenizer.ggml.token_type",
            Some(Value::Array(Array::I32(vec![1; 6]))),
        ),
        "token_type must be 7",
    );
    refused(
        &with(
            "tokenizer.ggml.token_type",
            Some(Value::Array(Array::U8(vec![1; 7]))),
        ),
        "token_type",
    );
    refused(
        &with(
            "tokenizer.ggml.tokens",
            Some(Value::Array(Array::String(vec![]))),
        ),
        "tokens",
    );
    refused(&with("tokenizer.ggml.tokens", None), "tokens");
}

#[test]
fn unknown_pre_tokenizers_are_refused() {
    for name in ["deepseek-llm", "chameleon", "kimi-k2", "something-new"] {
        refused(
            &with("tokenizer.ggml.pre", Some(Value::String(name.into()))),
            name,
        );
    }
    refused(
        &with("tokenizer.ggml.pre", Some(Value::U32(3))),
        "tokenizer.ggml.pre",
    );
}

/// The words of `text`, as strings.
fn words(pre: PreTokenizer, text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    pre.split(&chars)
        .into_iter()
        .map(|s| chars[s].iter().collect())
        .collect()
}

#[test]
fn llama3_family_splits() {
    use PreTokenizer::*;
    assert_eq!(
        words(Llama3, "I'M 12345 ok"),
        ["I", "'M", " ", "123", "45", " ok"]
    );
    assert_eq!(
        words(Qwen2, "I'M 12345 ok"),
        ["I", "'M", " ", "1", "2", "3", "4", "5", " ok"]
    );
    // A leading non-letter joins a letter run; newlines end whitespace runs; the last space
    // before a word stays with it.
    assert_eq!(
        words(Llama3, "(x)\n\n  y  \r\n"),
        ["(x", ")\n\n", " ", " y", "  \r\n"]
    );
    assert_eq!(words(Llama3, "a.\r\n b"), ["a", ".\r\n", " b"]);
    // Qwen3.5 keeps combining marks with their letters.
    assert_eq!(words(Qwen2, "e\u{301}x"), ["e", "\u{301}x"]);
    assert_eq!(words(Qwen35, "e\u{301}x"), ["e\u{301}x"]);
    assert_eq!(
        words(Gpt2, "I'M  12345 ok"),
        ["I", "'", "M", " ", " 12345", " ok"]
    );
}

#[test]
fn deepseek3_and_default_splits() {
    use PreTokenizer::*;
    assert_eq!(
        words(DeepSeek3, "abc中文かな1234"),
        ["abc", "中文かな", "123", "4"]
    );
    assert_eq!(words(DeepSeek3, "x.Net (a)"), ["x", ".Net", " (", "a", ")"]);
    assert_eq!(
        words(Default, "a1234567 b!?c"),
        ["a", "123", "456", "7", " b", "!?", "c"]
    );
}
