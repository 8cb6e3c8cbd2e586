//! What the fuzz targets share: the test models' tokenizers and chat templates (loaded once per
//! process), and a reader that splits one fuzz input into the pieces a target needs.

use std::path::PathBuf;
use std::sync::OnceLock;

use ward_models::gguf::GgufFile;
use ward_models::Tokenizer;

/// The real vocabularies the tokenizer and template targets run on (scripts/fetch-models.sh
/// fetches and builds them; scripts/fuzz.sh runs it first). One of each kind Ward tokenizes:
/// byte-level BPE with three pre-tokenizers, SentencePiece, and SentencePiece's unigram model.
const VOCABS: [&str; 6] = [
    "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma-3-270m-q4_k_m.gguf",
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "llama-3-instruct.vocab.gguf",
    "deepseek-r1-distill-qwen-7b.vocab.gguf",
    "xlmr-random-test.F16.gguf",
];

pub struct Vocab {
    pub file: &'static str,
    pub tokenizer: Tokenizer,
    /// The file's own `tokenizer.chat_template`, if it has one.
    pub chat_template: Option<String>,
    /// `spelled[b]`: some token stands for byte `b` alone. Text made of such bytes only can be
    /// spelled out in tokens; SmolLM2's vocabulary, for one, has no token for most ASCII
    /// control characters, so they are dropped (as llama.cpp drops them).
    pub spelled: [bool; 256],
}

impl Vocab {
    /// A token's text, for a template's `bos_token` / `eos_token`.
    pub fn token_text(&self, id: Option<u32>) -> String {
        id.and_then(|i| self.tokenizer.vocab().text(i))
            .unwrap_or("")
            .to_string()
    }
}

/// `models/` of this checkout (or `$WARD_MODELS`).
pub fn models_dir() -> PathBuf {
    match std::env::var_os("WARD_MODELS") {
        Some(dir) => dir.into(),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models")),
    }
}

/// The test models' tokenizers, loaded on first use.
pub fn vocabs() -> &'static [Vocab] {
    static VOCABS_LOADED: OnceLock<Vec<Vocab>> = OnceLock::new();
    VOCABS_LOADED.get_or_init(|| {
        VOCABS
            .iter()
            .map(|&file| {
                let path = models_dir().join(file);
                let gguf = GgufFile::open(&path).unwrap_or_else(|e| {
                    panic!("{e}: run scripts/fetch-models.sh first (scripts/fuzz.sh does)")
                });
                let tokenizer = Tokenizer::from_gguf(&gguf).expect("a test model's tokenizer");
                let mut spelled = [false; 256];
                for id in 0..tokenizer.vocab().len() as u32 {
                    if let [b] = tokenizer.token_bytes(id, false)[..] {
                        spelled[usize::from(b)] = true;
                    }
                }
                Vocab {
                    file,
                    tokenizer,
                    spelled,
                    chat_template: gguf
                        .get_str("tokenizer.chat_template")
                        .expect("a string")
                        .map(String::from),
                }
            })
            .collect()
    })
}

/// The vocabulary a file's name picks: the tokenizer whose control tokens a template of that
/// family writes.
pub fn vocab_for_template(name: &str) -> &'static Vocab {
    let file = match name {
        n if n.starts_with("gemma") => "gemma-3-270m-q4_k_m.gguf",
        n if n.starts_with("llama3") => "llama-3-instruct.vocab.gguf",
        n if n.starts_with("deepseek") => "deepseek-r1-distill-qwen-7b.vocab.gguf",
        _ => "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    };
    vocabs().iter().find(|v| v.file == file).expect("listed")
}

/// A fuzz input read front to back; past its end every read gives zeros or nothing, so any
/// input is a valid one.
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// The bytes up to the next `sep` (or the end), without it.
    pub fn until(&mut self, sep: u8) -> &'a [u8] {
        let end = self
            .0
            .iter()
            .position(|&b| b == sep)
            .unwrap_or(self.0.len());
        let (piece, rest) = self.0.split_at(end);
        self.0 = rest.get(1..).unwrap_or_default();
        piece
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}
