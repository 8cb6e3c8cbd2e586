//! BERT's WordPiece (`tokenizer.ggml.model = "bert"`), as llama.cpp's `llm_tokenizer_wpm`
//! reads it. The vocabulary is in llama.cpp's "phantom space" form: a piece that starts a word
//! carries "▁", a continuation (BERT's "##…") carries nothing.
//!
//! The text is normalised first (NFD with accents dropped, and lowercase, where the file's
//! `tokenizer.ggml.normalizer.*` asks), split at whitespace, and every punctuation mark, ASCII
//! symbol and CJK ideograph becomes a word of its own; control characters vanish. Each word is
//! then covered greedily by the longest vocabulary pieces from its start; a word that cannot be
//! covered, or has more than 100 characters, is the unknown token.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

use super::Vocab;

const MAX_WORD_CHARS: usize = 100;

pub struct WordPiece {
    pub lowercase: bool,
    pub strip_accents: bool,
    pub unk: u32,
    /// The longest piece's text, in bytes.
    pub max_piece_bytes: usize,
}

impl WordPiece {
    /// `text`'s tokens onto `out`, stopping once there are more than `limit`.
    pub fn tokenize(&self, vocab: &Vocab, text: &str, limit: usize, out: &mut Vec<u32>) {
        let mut word1 = String::new();
        for word in words(text, self.lowercase, self.strip_accents) {
            if out.len() > limit {
                return;
            }
            // Hugging Face's WordPiece gives up on words of more than 100 characters.
            if word.chars().nth(MAX_WORD_CHARS).is_some() {
                out.push(self.unk);
                continue;
            }
            word1.clear();
            word1.push('\u{2581}');
            word1.push_str(&word);
            let start = out.len();
            let mut i = 0;
            while i < word1.len() {
                // The longest piece that starts at `i` (pieces are whole code points).
                let longest = (i + 1..=word1.len().min(i + self.max_piece_bytes))
                    .rev()
                    .filter(|&j| word1.is_char_boundary(j))
                    .find_map(|j| vocab.id(&word1[i..j]).map(|id| (id, j)));
                match longest {
                    Some((id, j)) => {
                        out.push(id);
                        i = j;
                    }
                    None => {
                        out.truncate(start);
                        break;
                    }
                }
            }
            if out.len() == start {
                out.push(self.unk);
            }
        }
    }
}

/// The words of `text`, normalised as Hugging Face's `BertNormalizer` and `BertPreTokenizer`
/// do. (llama.cpp differs in three corners, where Ward follows the model's own tokenizer:
/// its NFD keeps only a character's first code point, which drops Hangul's vowels; it strips
/// every mark, Devanagari's spacing vowel signs too, where Hugging Face strips nonspacing marks
/// only; and it splits at a control character that Unicode calls whitespace, U+0085, which
/// Hugging Face deletes.)
fn words(text: &str, lowercase: bool, strip_accents: bool) -> Vec<String> {
    let mut words = vec![String::new()];
    // Cleaning and accent stripping (on the NFD form) come first; lowercasing (the full
    // mapping) after, and the pre-tokenizer sees its output.
    let kept = |c: &char| {
        let control = c.general_category_group() == GeneralCategoryGroup::Other
            && !matches!(c, '\t' | '\n' | '\r');
        let accent = strip_accents && c.general_category() == GeneralCategory::NonspacingMark;
        !(*c == '\0' || *c == '\u{FFFD}' || control || accent)
    };
    let mut split = |c: char| {
        let alone = c.general_category_group() == GeneralCategoryGroup::Punctuation
            || c.is_ascii_punctuation()
            || is_cjk(c as u32);
        if (c.is_whitespace() || alone) && !words.last().is_some_and(String::is_empty) {
            words.push(String::new());
        }
        if alone {
            words.last_mut().expect("never empty").push(c);
            words.push(String::new());
        } else if !c.is_whitespace() {
            words.last_mut().expect("never empty").push(c);
        }
    };
    let mut normalised = |c: char| match lowercase {
        true => c.to_lowercase().for_each(&mut split),
        false => split(c),
    };
    match strip_accents {
        true => text.nfd().filter(kept).for_each(&mut normalised),
        false => text.chars().filter(kept).for_each(&mut normalised),
    }
    if words.last().is_some_and(String::is_empty) {
        words.pop();
    }
    words
}

/// CJK ideographs, with the ranges of Hugging Face's BERT tokenizer (llama.cpp copies them).
fn is_cjk(c: u32) -> bool {
    matches!(c,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B920..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_at_punctuation_cjk_and_whitespace() {
        assert_eq!(
            words("Héllo, WORLD!  患者 a-b\u{200b}c", true, true),
            ["hello", ",", "world", "!", "患", "者", "a", "-", "bc"]
        );
        assert_eq!(words("Héllo ", false, false), ["Héllo"]);
        assert!(words(" \t\n ", true, true).is_empty());
    }
}
