//! The real tokenizers (SmolLM2's, Qwen2.5's, Llama 3's and DeepSeek-R1-Qwen's byte-level
//! BPE, Gemma 3's SentencePiece, the XLM-RoBERTa test model's unigram) both ways: arbitrary text encoded as the operator's text, as a
//! caller's (control tokens off, with a token limit) and escaped as a template's input, and
//! arbitrary token ids decoded at once and streamed. Beyond never panicking, the properties
//! the tokenizer promises are checked:
//! - decoding is the exact inverse of encoding (special tokens' texts included), wherever every
//!   character of the text has a spelling in the vocabulary;
//! - a limit only ever refuses, and only text that has more tokens than it allows: within it the
//!   tokens are the unlimited ones;
//! - a caller's text escaped for a template, then read back, gives the same tokens as reading it
//!   with control tokens off (escaping never changes what plain text means);
//! - streamed decoding equals decoding at once.
//!
//! Input: a byte choosing the tokenizer and the mode, then the text (lossily UTF-8) or the ids
//! (4 bytes each).

#![no_main]

use libfuzzer_sys::fuzz_target;
use ward_fuzz::{vocabs, Input};
use ward_models::tokenizer::TokenizerKind;
use ward_models::{StreamDecoder, Tokenizer};

fuzz_target!(init: { vocabs(); }, |data: &[u8]| {
    let mut input = Input(data);
    let head = input.byte();
    let vocabs = vocabs();
    let vocab = &vocabs[usize::from(head & 7) % vocabs.len()];
    let tok = &vocab.tokenizer;
    if head & 0x80 == 0 {
        let text = String::from_utf8_lossy(input.rest());
        let spelled = text.bytes().all(|b| vocab.spelled[usize::from(b)]);
        encode(
            tok,
            &text,
            spelled,
            head & 0x40 != 0,
            usize::from(head >> 3 & 7),
        );
    } else {
        let mut ids = Vec::new();
        while !input.0.is_empty() {
            // Mostly ids inside the vocabulary, some far outside it.
            let raw = input.u32();
            let n = tok.vocab().len() as u32;
            ids.push(if raw & 0x8000_0000 == 0 { raw % n } else { raw });
        }
        decode(tok, &ids);
    }
});

fn encode(tok: &Tokenizer, text: &str, spelled: bool, add_special: bool, limit: usize) {
    let ids = tok.encode(text, add_special);
    let plain = tok
        .encode_caller(text, add_special, false, usize::MAX)
        .unwrap();

    // Round trip, for text the vocabulary can spell (BOS/EOS would decode to their texts).
    // SentencePiece writes a space as ▁, so a ▁ in the text reads back as a space.
    let round_trip = match tok.kind() {
        TokenizerKind::Bpe => spelled,
        TokenizerKind::Spm => spelled && !text.contains('\u{2581}'),
        // WordPiece lowercases, strips accents and drops spaces; the unigram model normalises
        // (NFKC) and merges spaces: neither reads back.
        TokenizerKind::Wpm | TokenizerKind::Ugm => false,
    };
    if round_trip && !add_special {
        assert_eq!(tok.decode(&ids, true), text, "decode(encode(text))");
        assert_eq!(
            tok.decode(&plain, true),
            text,
            "decode(encode_caller(text))"
        );
    }

    // A limit refuses or gives the same tokens. A text is refused unread when it has too many
    // bytes for the tokens allowed, each token standing for a few of them; bytes the vocabulary
    // cannot spell stand for no token, so only a spelled text has as many as it promises.
    for trusted in [false, true] {
        let full = tok
            .encode_caller(text, add_special, trusted, usize::MAX)
            .unwrap();
        match tok.encode_caller(text, add_special, trusted, limit) {
            Some(limited) => assert_eq!(limited, full, "encode_caller with limit {limit}"),
            None => assert!(
                !spelled || full.len() > limit,
                "refused {} tokens at limit {limit}",
                full.len()
            ),
        }
    }
    assert_eq!(
        tok.encode_caller(text, add_special, true, usize::MAX)
            .unwrap(),
        ids
    );

    // Escaping for a template and reading back changes nothing for plain text.
    let escaped = tok.escape_controls(text);
    let unescaped = tok.encode_caller(text, false, false, usize::MAX).unwrap();
    assert_eq!(
        tok.encode_escaped(&escaped, usize::MAX).unwrap(),
        unescaped,
        "encode_escaped(escape_controls(text))"
    );
}

fn decode(tok: &Tokenizer, ids: &[u32]) {
    let _ = tok.decode(ids, true);
    let whole = tok.decode(ids, false);
    let mut stream = StreamDecoder::new();
    let mut streamed = String::new();
    for &id in ids {
        streamed.push_str(&stream.push(tok, id));
    }
    streamed.push_str(&stream.finish());
    assert_eq!(streamed, whole, "streamed decode");
}
