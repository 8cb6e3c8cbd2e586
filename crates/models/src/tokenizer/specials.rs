//! Splitting special tokens out of the input, as llama.cpp's `tokenizer_st_partition` does: the
//! special tokens are taken longest text first, and each one claims its leftmost
//! non-overlapping occurrences in the text not yet claimed by a longer one.
//!
//! llama.cpp scans the text once per special token, which costs (special tokens × text
//! length): Gemma's vocabulary has thousands of special tokens, so a long prompt would cost
//! seconds. Here one Aho-Corasick pass finds every occurrence of every special token, and the
//! same claiming order is replayed on those occurrences alone, which gives the same split in
//! time and memory proportional to the text and the occurrences found.

use std::collections::BTreeMap;

use aho_corasick::AhoCorasick;

use super::{Fragment, TokenType, TokenizerError, Vocab};

pub struct Specials {
    /// Control, user-defined and unknown tokens with non-empty texts, longest text first
    /// (equal lengths by id): the order in which they claim text.
    ids: Vec<u32>,
    /// Whether `ids[i]` is a control or unknown token (left as text with control tokens off).
    control: Vec<bool>,
    /// Pattern `i` is the text of `ids[i]`; `None` when there are no special tokens.
    matcher: Option<AhoCorasick>,
}

/// One occurrence of a special token's text: (its rank in `ids`, start, end).
type Occurrence = (usize, usize, usize);

impl Specials {
    pub fn new(vocab: &Vocab) -> Result<Specials, TokenizerError> {
        let mut ids: Vec<u32> = (0..vocab.texts.len() as u32)
            .filter(|&id| {
                matches!(
                    vocab.types[id as usize],
                    TokenType::Control | TokenType::UserDefined | TokenType::Unknown
                ) && !vocab.texts[id as usize].is_empty()
            })
            .collect();
        ids.sort_by_key(|&id| std::cmp::Reverse(vocab.texts[id as usize].len()));
        let control = ids
            .iter()
            .map(|&id| vocab.types[id as usize] != TokenType::UserDefined)
            .collect();
        // Building fails only past the automaton's size limits, far beyond any real
        // vocabulary's special tokens: such a file is refused.
        let matcher = match ids.is_empty() {
            true => None,
            false => Some(
                AhoCorasick::new(ids.iter().map(|&id| &vocab.texts[id as usize])).map_err(|e| {
                    TokenizerError::Invalid(format!("too many special tokens to match: {e}"))
                })?,
            ),
        };
        Ok(Specials {
            ids,
            control,
            matcher,
        })
    }

    /// `text` cut into special tokens and the text between them; with `parse_control` false,
    /// control and unknown tokens' texts stay text.
    pub fn split<'a>(&self, text: &'a str, parse_control: bool) -> Vec<Fragment<'a>> {
        let mut found: Vec<Occurrence> = match &self.matcher {
            Some(m) => m
                .find_overlapping_iter(text)
                .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
                .filter(|&(rank, _, _)| parse_control || !self.control[rank])
                .collect(),
            None => Vec::new(),
        };
        // Longer tokens claim first; each token claims from the left.
        found.sort_unstable();
        // Claimed spans, start → (end, rank); disjoint, so sorted by start they are sorted by
        // end too, and only the last one starting before a span's end can overlap it.
        let mut claimed: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
        for (rank, start, end) in found {
            let overlaps = claimed
                .range(..end)
                .next_back()
                .is_some_and(|(_, &(claimed_end, _))| claimed_end > start);
            if !overlaps {
                claimed.insert(start, (end, rank));
            }
        }
        let mut fragments = Vec::with_capacity(2 * claimed.len() + 1);
        let mut at = 0;
        for (start, (end, rank)) in claimed {
            if start > at {
                fragments.push(Fragment::Text(&text[at..start]));
            }
            fragments.push(Fragment::Token(self.ids[rank]));
            at = end;
        }
        if at < text.len() || fragments.is_empty() {
            fragments.push(Fragment::Text(&text[at..]));
        }
        fragments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(tokens: &[(&str, TokenType)]) -> Vocab {
        Vocab {
            texts: tokens.iter().map(|t| t.0.to_string()).collect(),
            types: tokens.iter().map(|t| t.1).collect(),
            scores: vec![0.0; tokens.len()],
            ids: Default::default(),
        }
    }

    /// llama.cpp's partition, one scan per special token, as the reference.
    fn reference<'a>(v: &Vocab, text: &'a str, parse_control: bool) -> Vec<Fragment<'a>> {
        let specials = Specials::new(v).unwrap();
        let mut fragments = vec![Fragment::Text(text)];
        for (rank, &id) in specials.ids.iter().enumerate() {
            if !parse_control && specials.control[rank] {
                continue;
            }
            let special = v.texts[id as usize].as_str();
            let mut next = Vec::new();
            for f in fragments {
                let Fragment::Text(mut rest) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(at) = rest.find(special) {
                    if at > 0 {
                        next.push(Fragment::Text(&rest[..at]));
                    }
                    next.push(Fragment::Token(id));
                    rest = &rest[at + special.len()..];
                }
                if !rest.is_empty() {
                    next.push(Fragment::Text(rest));
                }
            }
            fragments = next;
        }
        if fragments.is_empty() {
            fragments.push(Fragment::Text(""));
        }
        fragments
    }

    #[test]
    fn the_split_is_llama_cpps_on_overlapping_and_nested_tokens() {
        use TokenType::*;
        let v = vocab(&[
            ("a", Normal),
            ("<|im_end|>", Control),
            ("<|im_start|>", Control),
            ("abc", UserDefined),
            ("zab", Control),
            ("bca", UserDefined),
            ("aa", UserDefined),
            ("aaa", Control),
            ("<unk>", Unknown),
            ("", Control),
            ("<|im", UserDefined),
        ]);
        let texts = [
            "",
            "plain",
            "zabc",
            "abca",
            "aaaaaaa",
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>",
            "<|im<|im_end|>|>zabcabcaa<unk>",
            "xbcabcab",
        ];
        for text in texts {
            for parse_control in [true, false] {
                assert_eq!(
                    Specials::new(&v).unwrap().split(text, parse_control),
                    reference(&v, text, parse_control),
                    "{text:?} parse_control={parse_control}"
                );
            }
        }
    }

    #[test]
    fn random_texts_split_as_llama_cpp_does() {
        use TokenType::*;
        let v = vocab(&[
            ("ab", Control),
            ("ba", UserDefined),
            ("aba", Control),
            ("b", UserDefined),
            ("abab", Unknown),
            ("ca", Control),
        ]);
        let specials = Specials::new(&v).unwrap();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            let len = (state % 24) as usize;
            let text: String = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ['a', 'b', 'c'][(state % 3) as usize]
                })
                .collect();
            for parse_control in [true, false] {
                assert_eq!(
                    specials.split(&text, parse_control),
                    reference(&v, &text, parse_control),
                    "{text:?}"
                );
            }
        }
    }
}
