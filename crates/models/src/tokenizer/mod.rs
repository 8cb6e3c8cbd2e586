//! The tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata, matching llama.cpp's
//! token ids: special tokens are split out first (longest first), then each run of plain text
//! goes through byte-level BPE (`gpt2`), SentencePiece-style merging (`llama`), BERT's
//! WordPiece (`bert`) or SentencePiece's unigram model (`t5`).
//!
//! Text a caller sends is read with control tokens off ([`Tokenizer::encode_caller`],
//! [`caller_text`]): only the operator's own text (and a chat template's markup) may contain
//! them.

mod bpe;
pub mod caller_text;
mod pre;
mod special;
mod specials;
mod spm;
mod stream;
#[cfg(test)]
mod tests;
mod ugm;
mod unicode;
mod wpm;

use std::collections::HashMap;

pub use pre::{PreConfig, PreTokenizer};
pub use stream::{partial_marker, StreamDecoder};

use crate::gguf::{Array, GgufError, GgufFile};

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("unsupported tokenizer: {0}")]
    Unsupported(String),
    #[error("invalid tokenizer metadata: {0}")]
    Invalid(String),
}

/// `tokenizer.ggml.token_type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_i32(v: i32) -> TokenType {
        match v {
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            // 0 (undefined) and 1 are treated as normal text, as llama.cpp does.
            _ => TokenType::Normal,
        }
    }
}

/// Token texts, types and scores, with a reverse index.
pub struct Vocab {
    texts: Vec<String>,
    types: Vec<TokenType>,
    scores: Vec<f32>,
    ids: HashMap<String, u32>,
}

impl Vocab {
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    pub fn id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    pub fn text(&self, id: u32) -> Option<&str> {
        self.texts.get(id as usize).map(String::as_str)
    }

    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }

    fn score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }

    /// SentencePiece byte-fallback token for one byte.
    fn byte_token(&self, b: u8) -> Option<u32> {
        self.id(&format!("<0x{b:02X}>"))
            .or_else(|| std::str::from_utf8(&[b]).ok().and_then(|s| self.id(s)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerKind {
    /// `tokenizer.ggml.model = "gpt2"`: byte-level BPE.
    Bpe,
    /// `tokenizer.ggml.model = "llama"`: SentencePiece-style.
    Spm,
    /// `tokenizer.ggml.model = "bert"`: WordPiece.
    Wpm,
    /// `tokenizer.ggml.model = "t5"`: SentencePiece's unigram model (XLM-RoBERTa, T5).
    Ugm,
}

enum Model {
    Bpe(Box<ByteLevelBpe>),
    Spm,
    Wpm(wpm::WordPiece),
    Ugm(ugm::Unigram),
}

struct ByteLevelBpe {
    pre: PreConfig,
    merges: bpe::Merges,
    /// GPT-2's byte → printable code point map, and its inverse for decoding.
    byte_chars: [char; 256],
    char_bytes: HashMap<char, u8>,
}

pub struct Tokenizer {
    vocab: Vocab,
    model: Model,
    /// Control, user-defined and unknown tokens: split out of the input before the text itself
    /// is tokenized.
    specials: specials::Specials,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// What `add_eos` appends: EOS, or for WordPiece the separator.
    suffix: Option<u32>,
    /// The separator between a pair's texts (a reranker's query and document), and whether it
    /// is added.
    sep: Option<u32>,
    add_sep: bool,
    /// Tokens that end generation: EOS plus the end-of-turn tokens llama.cpp also stops on.
    end_of_generation: Vec<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    add_space_prefix: bool,
    /// The most input bytes one token stands for: a text of N bytes has at least
    /// N / max_token_bytes tokens.
    max_token_bytes: usize,
}

/// A piece of input: raw text, or a special token found in it.
#[derive(Debug, PartialEq)]
enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

/// Which special tokens' texts in the input become those tokens.
#[derive(Clone, Copy, PartialEq)]
enum Parse {
    /// All of them (the operator's text).
    All,
    /// User-defined ones only (llama.cpp's `parse_special = false`).
    NoControl,
    /// All, in a text whose caller-supplied parts were escaped by
    /// [`Tokenizer::escape_controls`]:
    /// those parts are restored and read with [`Parse::NoControl`].
    Escaped,
}

impl Tokenizer {
    pub fn from_gguf(gguf: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        let model_name = gguf.require_str("tokenizer.ggml.model")?;
        let texts: Vec<String> = match gguf.get_array("tokenizer.ggml.tokens")? {
            // llama.cpp names empty token texts so that they stay distinct.
            Some(Array::String(v)) if !v.is_empty() => v
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    if t.is_empty() {
                        format!("[EMPTY_{i}]")
                    } else {
                        t.clone()
                    }
                })
                .collect(),
            _ => {
                return Err(TokenizerError::Invalid(
                    "tokenizer.ggml.tokens must be a non-empty string array".into(),
                ))
            }
        };
        let n = texts.len();
        let types = match gguf.get_array("tokenizer.ggml.token_type")? {
            Some(Array::I32(v)) if v.len() == n => {
                v.iter().map(|&t| TokenType::from_i32(t)).collect()
            }
            None => vec![TokenType::Normal; n],
            _ => {
                return Err(TokenizerError::Invalid(format!(
                    "tokenizer.ggml.token_type must be {n} i32 values"
                )))
            }
        };
        let scores = match gguf.get_array("tokenizer.ggml.scores")? {
            Some(Array::F32(v)) if v.len() == n => v.clone(),
            None => Vec::new(),
            _ => {
                return Err(TokenizerError::Invalid(format!(
                    "tokenizer.ggml.scores must be {n} f32 values"
                )))
            }
        };
        let mut ids = HashMap::with_capacity(n);
        for (i, t) in texts.iter().enumerate() {
            // On duplicate texts the last id wins, as in llama.cpp's token_to_id.
            ids.insert(t.clone(), i as u32);
        }
        let mut vocab = Vocab {
            texts,
            types,
            scores,
            ids,
        };

        let model = match model_name {
            "gpt2" => {
                let pre = PreConfig::from_name(gguf.get_str("tokenizer.ggml.pre")?)?;
                let merges = match gguf.get_array("tokenizer.ggml.merges")? {
                    Some(Array::String(m)) => bpe::Merges::new(m, |t| vocab.id(t).is_some())?,
                    _ => {
                        return Err(TokenizerError::Invalid(
                            "gpt2 tokenizer needs tokenizer.ggml.merges".into(),
                        ))
                    }
                };
                let byte_chars = bpe::byte_to_char_table();
                let char_bytes = byte_chars
                    .iter()
                    .enumerate()
                    .map(|(b, &c)| (c, b as u8))
                    .collect();
                Model::Bpe(Box::new(ByteLevelBpe {
                    pre,
                    merges,
                    byte_chars,
                    char_bytes,
                }))
            }
            "llama" => {
                if vocab.scores.is_empty() {
                    return Err(TokenizerError::Invalid(
                        "llama tokenizer needs tokenizer.ggml.scores".into(),
                    ));
                }
                Model::Spm
            }
            "bert" => {
                let lowercase = gguf
                    .get_bool("tokenizer.ggml.normalizer.lowercase")?
                    .unwrap_or(false);
                let strip_accents = gguf
                    .get_bool("tokenizer.ggml.normalizer.strip_accents")?
                    .unwrap_or(lowercase);
                Model::Wpm(wpm::WordPiece {
                    lowercase,
                    strip_accents,
                    unk: required_id(gguf, "tokenizer.ggml.unknown_token_id", n)?,
                    max_piece_bytes: vocab.texts.iter().map(String::len).max().unwrap_or(1),
                })
            }
            "t5" => {
                if vocab.scores.is_empty() {
                    return Err(TokenizerError::Invalid(
                        "t5 tokenizer needs tokenizer.ggml.scores".into(),
                    ));
                }
                let charsmap = match gguf.get_array("tokenizer.ggml.precompiled_charsmap")? {
                    None => None,
                    Some(Array::U8(bytes)) => Some(bytes.clone()),
                    Some(Array::I8(bytes)) => Some(bytes.iter().map(|&b| b as u8).collect()),
                    Some(_) => {
                        return Err(TokenizerError::Invalid(
                            "tokenizer.ggml.precompiled_charsmap must be bytes".into(),
                        ))
                    }
                };
                let flag = |key| gguf.get_bool(key).map(|v| v.unwrap_or(false));
                Model::Ugm(ugm::Unigram::new(
                    &vocab,
                    charsmap.as_deref(),
                    flag("tokenizer.ggml.add_space_prefix")?,
                    flag("tokenizer.ggml.remove_extra_whitespaces")?,
                    required_id(gguf, "tokenizer.ggml.unknown_token_id", n)?,
                )?)
            }
            other => {
                return Err(TokenizerError::Unsupported(format!(
                    "tokenizer.ggml.model = {other:?}"
                )))
            }
        };
        let is_spm = matches!(model, Model::Spm);
        // llama.cpp adds BOS by default for SentencePiece and for some BPE families (Llama 3).
        let default_bos = match &model {
            Model::Spm | Model::Wpm(_) => true,
            Model::Ugm(_) => false,
            Model::Bpe(bpe) => bpe.pre.add_bos,
        };

        let token_id = |key: &str| -> Result<Option<u32>, TokenizerError> {
            match gguf.get_u64(key)? {
                None => Ok(None),
                Some(id) if (id as usize) < n => Ok(Some(id as u32)),
                Some(id) => Err(TokenizerError::Invalid(format!(
                    "{key} = {id} is outside the {n}-token vocabulary"
                ))),
            }
        };
        let bos = token_id("tokenizer.ggml.bos_token_id")?;
        let eos = token_id("tokenizer.ggml.eos_token_id")?;
        let end_of_generation = special::apply_llama_cpp_rules(&mut vocab, &token_id, eos)?;
        let mut add_bos = gguf
            .get_bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(default_bos);
        let mut add_eos = gguf
            .get_bool("tokenizer.ggml.add_eos_token")?
            .unwrap_or(matches!(model, Model::Ugm(_)));
        let mut suffix = eos;
        // llama.cpp's WordPiece always frames a text as [CLS] … [SEP], whatever the flags say.
        if let Model::Wpm(_) = model {
            (add_bos, add_eos) = (true, true);
            suffix = Some(required_id(gguf, "tokenizer.ggml.seperator_token_id", n)?);
        }
        let add_space_prefix = gguf
            .get_bool("tokenizer.ggml.add_space_prefix")?
            .unwrap_or(is_spm);
        // llama.cpp would fall back to token 11 (BPE) or 1 (SentencePiece) here; a file that asks
        // for BOS without naming it is refused instead.
        if add_bos && bos.is_none() {
            return Err(TokenizerError::Invalid(
                "add_bos_token is set (or implied by the tokenizer) but bos_token_id is missing"
                    .into(),
            ));
        }
        let sep = token_id("tokenizer.ggml.seperator_token_id")?;
        let add_sep = gguf
            .get_bool("tokenizer.ggml.add_sep_token")?
            .unwrap_or(matches!(model, Model::Wpm(_)));
        if add_eos && suffix.is_none() {
            return Err(TokenizerError::Invalid(
                "add_eos_token is set but eos_token_id is missing".into(),
            ));
        }

        let specials = specials::Specials::new(&vocab)?;
        let mut tokenizer = Tokenizer {
            vocab,
            model,
            specials,
            bos,
            eos,
            suffix,
            sep,
            add_sep,
            end_of_generation,
            add_bos,
            add_eos,
            add_space_prefix,
            max_token_bytes: 1,
        };
        tokenizer.max_token_bytes = (0..n as u32)
            .map(|id| tokenizer.token_bytes(id, true).len())
            .max()
            .unwrap_or(1)
            .max(1);
        Ok(tokenizer)
    }

    pub fn kind(&self) -> TokenizerKind {
        match self.model {
            Model::Bpe(_) => TokenizerKind::Bpe,
            Model::Spm => TokenizerKind::Spm,
            Model::Wpm(_) => TokenizerKind::Wpm,
            Model::Ugm(_) => TokenizerKind::Ugm,
        }
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The byte-level BPE pre-tokenizer and its llama.cpp flags (None for SentencePiece).
    pub fn pre_config(&self) -> Option<PreConfig> {
        match &self.model {
            Model::Bpe(bpe) => Some(bpe.pre),
            Model::Spm | Model::Wpm(_) | Model::Ugm(_) => None,
        }
    }

    /// Whether generating `id` ends the sequence.
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.end_of_generation.contains(&id)
    }

    /// The tokens that end a generation (EOS, EOT, `<|im_end|>`…).
    pub fn end_of_generation(&self) -> &[u32] {
        &self.end_of_generation
    }

    /// Token ids for `text`. Special-token texts in the input become their tokens (as the
    /// llama.cpp server does); `add_special` adds BOS/EOS as the model's metadata asks. For
    /// the operator's own text: a caller's goes through [`Tokenizer::encode_caller`].
    pub fn encode(&self, text: &str, add_special: bool) -> Vec<u32> {
        self.encode_with(text, add_special, Parse::All, usize::MAX)
            .unwrap_or_default()
    }

    /// Token ids for a caller's `text`. Unless the caller is trusted with `control_tokens`,
    /// control (and unknown) tokens' texts are read as plain text, as llama.cpp's
    /// `parse_special = false` reads them; user-defined tokens are still found. `None` as soon
    /// as there are more than `limit` tokens (a prompt longer than the context costs no more
    /// than one that fills it).
    pub fn encode_caller(
        &self,
        text: &str,
        add_special: bool,
        control_tokens: bool,
        limit: usize,
    ) -> Option<Vec<u32>> {
        let parse = match control_tokens {
            true => Parse::All,
            false => Parse::NoControl,
        };
        self.encode_with(text, add_special, parse, limit)
    }

    /// A (query, document) pair as a reranker reads it, framed as llama.cpp's server frames
    /// one: BOS, the query, EOS, the separator, the document, EOS, each where the model's
    /// metadata asks for it. Both texts are a caller's (see [`Tokenizer::encode_caller`]);
    /// `None` beyond `limit` tokens.
    pub fn encode_pair(
        &self,
        query: &str,
        document: &str,
        control_tokens: bool,
        limit: usize,
    ) -> Option<Vec<u32>> {
        let eos = self.eos.or(self.sep);
        let mut out = Vec::new();
        if self.add_bos {
            out.extend(self.bos);
        }
        out.extend(self.encode_caller(query, false, control_tokens, limit)?);
        if self.add_eos {
            out.extend(eos);
        }
        if self.add_sep {
            out.extend(self.sep);
        }
        out.extend(self.encode_caller(document, false, control_tokens, limit)?);
        if self.add_eos {
            out.extend(eos);
        }
        (out.len() <= limit).then_some(out)
    }

    fn encode_with(
        &self,
        text: &str,
        add_special: bool,
        parse: Parse,
        limit: usize,
    ) -> Option<Vec<u32>> {
        // Too long to fit, whatever its tokens: refused before any work. (An escape marker,
        // at most 18 bytes, stands for at least one token.) A unigram model's runs of spaces
        // vanish in normalisation, so its text is measured after it (`ugm::Unigram::tokenize`).
        if !matches!(self.model, Model::Ugm(_))
            && text.len().div_ceil(self.max_token_bytes.max(18)) > limit
        {
            return None;
        }
        let mut out = Vec::new();
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let mut prev_special = true;
        self.encode_fragments(text, parse, &mut prev_special, limit, &mut out);
        if add_special && self.add_eos {
            out.extend(self.suffix);
        }
        (out.len() <= limit).then_some(out)
    }

    /// `text`'s tokens onto `out`, stopping once there are more than `limit`; `prev_special`
    /// says whether a special token came last (a SentencePiece text after one gets the space
    /// prefix).
    fn encode_fragments(
        &self,
        text: &str,
        parse: Parse,
        prev_special: &mut bool,
        limit: usize,
        out: &mut Vec<u32>,
    ) {
        for fragment in self.specials.split(text, parse != Parse::NoControl) {
            if out.len() > limit {
                return;
            }
            match fragment {
                Fragment::Token(id) => {
                    out.push(id);
                    *prev_special = true;
                }
                Fragment::Text(t) if parse == Parse::Escaped && caller_text::is_escaped(t) => {
                    let restored = caller_text::restore(&self.vocab, t);
                    self.encode_fragments(&restored, Parse::NoControl, prev_special, limit, out);
                }
                Fragment::Text(t) => {
                    self.encode_text(t, *prev_special, limit, out);
                    *prev_special = false;
                }
            }
        }
    }

    fn encode_text(&self, text: &str, prev_special: bool, limit: usize, out: &mut Vec<u32>) {
        match &self.model {
            Model::Wpm(wpm) => wpm.tokenize(&self.vocab, text, limit, out),
            // Each piece of text gets its own space prefix, as llama.cpp's unigram has it.
            Model::Ugm(ugm) => {
                let room = limit.saturating_sub(out.len());
                if !ugm.tokenize(&self.vocab, text, room, out) {
                    // Over the limit: left as the other tokenizers leave it, with more tokens
                    // than allowed (their values do not matter: the caller refuses).
                    out.resize(limit.saturating_add(1), 0);
                }
            }
            Model::Spm => {
                let prefix = if self.add_space_prefix && prev_special {
                    " "
                } else {
                    ""
                };
                let escaped = format!("{prefix}{text}").replace(' ', "\u{2581}");
                spm::tokenize(&self.vocab, &escaped, out);
            }
            Model::Bpe(bpe) => {
                let chars: Vec<char> = text.chars().collect();
                let mut word = String::new();
                for span in bpe.pre.pre.split(&chars) {
                    if out.len() > limit {
                        return;
                    }
                    word.clear();
                    for &c in &chars[span] {
                        for &b in c.encode_utf8(&mut [0; 4]).as_bytes() {
                            word.push(bpe.byte_chars[b as usize]);
                        }
                    }
                    if bpe.pre.ignore_merges {
                        if let Some(id) = self.vocab.id(&word) {
                            out.push(id);
                            continue;
                        }
                    }
                    for piece in bpe.merges.apply(&word) {
                        match self.vocab.id(&piece) {
                            Some(id) => out.push(id),
                            // Merged pieces are tokens (checked at load), so only a byte that
                            // an incomplete vocabulary lacks gets here. llama.cpp then looks up
                            // each byte of the piece as a one-byte text, which only ASCII can be.
                            None => {
                                out.extend(piece.bytes().filter(u8::is_ascii).filter_map(|b| {
                                    self.vocab.id(std::str::from_utf8(&[b]).unwrap_or_default())
                                }))
                            }
                        }
                    }
                }
            }
        }
    }

    /// The bytes one token stands for. Control and unknown tokens give nothing unless
    /// `with_special`; a byte-level token may be part of a multi-byte UTF-8 character.
    pub fn token_bytes(&self, id: u32, with_special: bool) -> Vec<u8> {
        let (Some(text), Some(ty)) = (self.vocab.text(id), self.vocab.token_type(id)) else {
            return Vec::new();
        };
        match ty {
            TokenType::Control | TokenType::Unknown if !with_special => Vec::new(),
            TokenType::Control | TokenType::Unknown | TokenType::UserDefined => {
                text.as_bytes().to_vec()
            }
            TokenType::Unused => Vec::new(),
            TokenType::Byte => parse_byte_token(text).map(|b| vec![b]).unwrap_or_default(),
            TokenType::Normal => match &self.model {
                Model::Spm | Model::Wpm(_) | Model::Ugm(_) => {
                    text.replace('\u{2581}', " ").into_bytes()
                }
                Model::Bpe(bpe) => {
                    let mut out = Vec::with_capacity(text.len());
                    for c in text.chars() {
                        match bpe.char_bytes.get(&c) {
                            Some(&b) => out.push(b),
                            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                        }
                    }
                    out
                }
            },
        }
    }

    /// Text for a sequence of tokens (invalid UTF-8 is replaced, as at the end of a stream).
    pub fn decode(&self, ids: &[u32], with_special: bool) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| self.token_bytes(id, with_special))
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A token id the tokenizer cannot work without, inside the vocabulary.
fn required_id(gguf: &GgufFile, key: &str, n: usize) -> Result<u32, TokenizerError> {
    match gguf.get_u64(key)? {
        Some(id) if (id as usize) < n => Ok(id as u32),
        Some(id) => Err(TokenizerError::Invalid(format!(
            "{key} = {id} is outside the {n}-token vocabulary"
        ))),
        None => Err(TokenizerError::Invalid(format!("{key} is missing"))),
    }
}

fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}
