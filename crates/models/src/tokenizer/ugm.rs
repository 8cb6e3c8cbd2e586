//! SentencePiece's unigram model (`tokenizer.ggml.model = "t5"`: XLM-RoBERTa, bge-m3, T5), as
//! llama.cpp's `llm_tokenizer_ugm` reads it.
//!
//! The text is normalised first: the model's precompiled charsmap (NFKC and the like, a
//! double-array trie of byte sequences and their replacements) rewrites the longest matching
//! prefix at each place, spaces become "▁", a "▁" goes before the text (`add_space_prefix`) and,
//! with `remove_extra_whitespaces`, before every run of non-spaces, runs of spaces being
//! dropped. Then the most probable split into vocabulary pieces is found by Viterbi over the
//! pieces' log-probabilities; a character no piece covers is the unknown token (its score the
//! lowest piece's less 10), and unknown tokens in a row become one.

use super::{TokenType, TokenizerError, Vocab};

/// How far below the least likely piece an unknown character scores. (Scores are summed in
/// f64, as llama.cpp does to match SentencePiece exactly.)
const UNKNOWN_PENALTY: f32 = 10.0;

pub struct Unigram {
    charsmap: Option<CharsMap>,
    add_space_prefix: bool,
    remove_extra_whitespaces: bool,
    unk: u32,
    unknown_score: f64,
    /// The longest piece the Viterbi step may use, in bytes.
    max_piece_bytes: usize,
    /// The longest user-defined token, in bytes (0: none); such tokens pass normalisation
    /// untouched.
    max_user_defined_bytes: usize,
}

impl Unigram {
    pub fn new(
        vocab: &Vocab,
        charsmap: Option<&[u8]>,
        add_space_prefix: bool,
        remove_extra_whitespaces: bool,
        unk: u32,
    ) -> Result<Unigram, TokenizerError> {
        let (mut min_score, mut max_piece_bytes, mut max_user_defined_bytes) = (f32::MAX, 1, 0);
        for id in 0..vocab.len() as u32 {
            let text_len = vocab.text(id).map_or(0, str::len);
            match vocab.token_type(id) {
                Some(TokenType::Normal) => min_score = min_score.min(vocab.score(id)),
                Some(TokenType::UserDefined) => {
                    max_user_defined_bytes = max_user_defined_bytes.max(text_len)
                }
                Some(TokenType::Unused) => {}
                _ => continue,
            }
            max_piece_bytes = max_piece_bytes.max(text_len);
        }
        if min_score == f32::MAX {
            return Err(TokenizerError::Invalid(
                "a t5 (unigram) vocabulary needs normal tokens with scores".into(),
            ));
        }
        Ok(Unigram {
            charsmap: charsmap.map(CharsMap::new).transpose()?.flatten(),
            add_space_prefix,
            remove_extra_whitespaces,
            unk,
            // In f32, as llama.cpp computes it (one ulp can decide a near tie).
            unknown_score: f64::from(min_score - UNKNOWN_PENALTY),
            max_piece_bytes,
            max_user_defined_bytes,
        })
    }

    /// `text`'s tokens onto `out`; false, with nothing added, if it has more than `limit`.
    /// A token covers at most the longest piece's bytes of the normalised text (an unknown
    /// character, before runs of them merge, one character), so a normalised text longer than
    /// `limit` of those is refused before the Viterbi step: its memory and work stay
    /// proportional to the limit, however much normalisation grows the text (NFKC can make 33
    /// bytes of 3). A long run of unknown characters, which would merge into one token, is
    /// refused with it.
    pub fn tokenize(&self, vocab: &Vocab, text: &str, limit: usize, out: &mut Vec<u32>) -> bool {
        let max_bytes = limit.saturating_mul(self.max_piece_bytes.max(4));
        let Some(normalized) = self.normalize(vocab, text, max_bytes) else {
            return false;
        };
        let n = normalized.len();
        if n == 0 {
            return true;
        }
        // best[i]: the best split of normalized[..i]: its last token, where that token starts,
        // and the split's score.
        let mut best: Vec<(u32, usize, f64)> = vec![(self.unk, 0, f64::NEG_INFINITY); n + 1];
        best[0].2 = 0.0;
        let mut start = 0;
        while start < n {
            let char_len = utf8_len(normalized.as_bytes()[start]).min(n - start);
            let here = best[start].2;
            let mut whole_char = false;
            let longest = (n - start).min(self.max_piece_bytes);
            for len in 1..=longest {
                let Some(piece) = normalized.get(start..start + len) else {
                    continue; // not a character boundary
                };
                let Some(id) = vocab.id(piece) else { continue };
                let score = match vocab.token_type(id) {
                    Some(TokenType::Normal | TokenType::Unused) => f64::from(vocab.score(id)),
                    // User-defined tokens score 0, the most likely (as llama.cpp has it).
                    Some(TokenType::UserDefined) => 0.0,
                    _ => continue,
                };
                whole_char |= len == char_len;
                if here + score > best[start + len].2 {
                    best[start + len] = (id, start, here + score);
                }
            }
            if !whole_char && here + self.unknown_score > best[start + char_len].2 {
                best[start + char_len] = (self.unk, start, here + self.unknown_score);
            }
            start += char_len;
        }
        let from = out.len();
        let mut at = n;
        let mut prev_unknown = false;
        loop {
            let (id, begin, _) = best[at];
            let unknown = id == self.unk;
            if !(prev_unknown && unknown) {
                out.push(id);
            }
            prev_unknown = unknown;
            if begin == 0 {
                break;
            }
            at = begin;
        }
        out[from..].reverse();
        true
    }

    /// The text as the Viterbi step sees it (spaces as "▁"), or None once it passes
    /// `max_bytes`.
    fn normalize(&self, vocab: &Vocab, text: &str, max_bytes: usize) -> Option<String> {
        let mut out = String::with_capacity(text.len().min(max_bytes));
        let mut space_prepended = false;
        let mut in_word = false;
        let bytes = text.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            let (replacement, consumed) = self.normalize_prefix(vocab, text, at);
            for c in replacement.chars() {
                if c != ' ' {
                    if !in_word {
                        in_word = true;
                        if (self.add_space_prefix && !space_prepended)
                            || self.remove_extra_whitespaces
                        {
                            out.push('\u{2581}');
                            space_prepended = true;
                        }
                    }
                    out.push(c);
                } else {
                    in_word = false;
                    if !self.remove_extra_whitespaces {
                        out.push('\u{2581}');
                    }
                }
            }
            if out.len() > max_bytes {
                return None;
            }
            at += consumed;
        }
        Some(out)
    }

    /// What the text at `at` becomes, and how many of its bytes that takes: a user-defined
    /// token as it is, else the charsmap's replacement for the longest prefix it knows, else
    /// the character unchanged (a byte that starts no valid character becomes U+FFFD).
    fn normalize_prefix<'a>(&'a self, vocab: &Vocab, text: &'a str, at: usize) -> (&'a str, usize) {
        let rest = &text[at..];
        for len in (1..=self.max_user_defined_bytes.min(rest.len())).rev() {
            if let Some(t) = rest.get(..len) {
                if vocab.id(t).and_then(|id| vocab.token_type(id)) == Some(TokenType::UserDefined) {
                    return (t, len);
                }
            }
        }
        if let Some((replacement, len)) = self.charsmap.as_ref().and_then(|m| m.longest(rest)) {
            return (replacement, len);
        }
        let len = rest.chars().next().map_or(1, char::len_utf8);
        (&rest[..len], len)
    }
}

/// UTF-8 sequence length from a lead byte (1 for a stray continuation byte, as llama.cpp).
fn utf8_len(lead: u8) -> usize {
    match lead {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// SentencePiece's precompiled charsmap: a 4-byte length, that many bytes of XOR-compressed
/// double array (Kanda 2018; each 32-bit entry packs BASE in bits 10–30, shifted by bit 9,
/// LCHECK in bits 0–7 and bit 31, LEAF in bit 8), then NUL-terminated replacement strings.
struct CharsMap {
    array: Vec<u32>,
    replacements: Vec<u8>,
}

impl CharsMap {
    /// None for an empty map (an identity normaliser), as llama.cpp reads one.
    fn new(data: &[u8]) -> Result<Option<CharsMap>, TokenizerError> {
        if data.is_empty() {
            return Ok(None);
        }
        let bad = |what: &str| {
            TokenizerError::Invalid(format!("tokenizer.ggml.precompiled_charsmap {what}"))
        };
        let size = data
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or_else(|| bad("is shorter than its length field"))?;
        if size % 4 != 0 || 4 + size >= data.len() {
            return Err(bad("has a trie that runs past its end"));
        }
        let array = data[4..4 + size]
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        Ok(Some(CharsMap {
            array,
            replacements: data[4 + size..].to_vec(),
        }))
    }

    fn node(&self, index: usize) -> Option<u32> {
        self.array.get(index).copied()
    }

    fn base(node: u32) -> usize {
        ((node >> 10) << ((node & (1 << 9)) >> 6)) as usize
    }

    /// The replacement for the longest prefix of `text` the map knows, and that prefix's
    /// length. A file whose trie points outside itself or at an unterminated or non-UTF-8
    /// replacement matches nothing there.
    fn longest<'a>(&'a self, text: &str) -> Option<(&'a str, usize)> {
        let mut index = Self::base(self.node(0)?);
        let mut found = None;
        for (i, &c) in text.as_bytes().iter().enumerate() {
            if c == 0 {
                break;
            }
            index ^= c as usize;
            let node = self.node(index)?;
            if node & ((1 << 31) | 0xFF) != u32::from(c) {
                break;
            }
            let leaf = (node >> 8) & 1 == 1;
            index ^= Self::base(node);
            if leaf {
                let value = (self.node(index)? & ((1 << 31) - 1)) as usize;
                found = Some((value, i + 1));
            }
        }
        let (offset, len) = found?;
        let tail = self.replacements.get(offset..)?;
        let end = tail.iter().position(|&b| b == 0)?;
        // The replacement must end where a character of `text` does, or the rest would be
        // cut mid-character.
        text.get(len..)?;
        Some((std::str::from_utf8(&tail[..end]).ok()?, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A charsmap from a file is read defensively: whatever its bytes, looking a text up in it
    /// never reads outside it, and a replacement is whole UTF-8 that ends at a character
    /// boundary of the text.
    #[test]
    fn a_hostile_charsmap_never_reads_outside_itself() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let texts = ["", "a", "ＡＢＣ", "\u{0}x", "東京 🩺", "ﬁ ㌔ ½"];
        let mut read = 0;
        for _ in 0..3000 {
            let len = (next() % 96) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len >= 4 && next() % 2 == 0 {
                // A plausible trie length, so lookups run.
                let size = ((next() % (len as u64 - 3)) & !3) as u32;
                data[..4].copy_from_slice(&size.to_le_bytes());
            }
            let Ok(Some(map)) = CharsMap::new(&data) else {
                continue;
            };
            read += 1;
            for text in texts {
                if let Some((replacement, n)) = map.longest(text) {
                    assert!(text.is_char_boundary(n) && n > 0);
                    assert!(!replacement.contains('\0'));
                }
            }
        }
        assert!(read > 100, "only {read} charsmaps were read");
    }
}
