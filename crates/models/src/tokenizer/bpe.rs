//! GPT-2 style byte-level BPE, as llama.cpp's `llm_tokenizer_bpe` does it: pre-tokenize with the
//! model's `tokenizer.ggml.pre` rules, map bytes to printable code points, merge by rank.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::unicode::{class, Class};
use super::TokenizerError;

/// Pre-tokenizer families from llama.cpp's `llm_tokenizer_bpe` that Ward implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
    Gpt2,
    /// Every digit on its own (`\p{N}`), then the GPT-2 rules (SmolLM, StarCoder, Refact, …).
    DigitsThenGpt2,
}

impl PreTokenizer {
    pub fn from_name(pre: &str) -> Result<PreTokenizer, TokenizerError> {
        match pre {
            "gpt-2" | "gpt2" | "phi-2" | "jina-es" | "jina-de" | "gpt-4o-mini" | "roberta-bpe" => {
                Ok(PreTokenizer::Gpt2)
            }
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" => Ok(PreTokenizer::DigitsThenGpt2),
            other => Err(TokenizerError::Unsupported(format!(
                "BPE pre-tokenizer {other:?}"
            ))),
        }
    }

    /// Split `text` into words (as char slices of the input).
    pub fn split(self, text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let spans = match self {
            PreTokenizer::Gpt2 => std::iter::once(0..chars.len()).collect(),
            PreTokenizer::DigitsThenGpt2 => split_digits(&chars, 0..chars.len()),
        };
        spans
            .into_iter()
            .flat_map(|s| split_gpt2(&chars, s))
            .map(|r| chars[r].iter().collect())
            .collect()
    }
}

type Span = std::ops::Range<usize>;

/// `\p{N}` as a splitting regex: each number code point becomes its own word, the gaps stay words.
fn split_digits(chars: &[char], span: Span) -> Vec<Span> {
    let mut out = Vec::new();
    let mut start = span.start;
    for i in span.clone() {
        if class(chars[i]) == Class::Number {
            if start < i {
                out.push(start..i);
            }
            out.push(i..i + 1);
            start = i + 1;
        }
    }
    if start < span.end {
        out.push(start..span.end);
    }
    out
}

/// A port of llama.cpp's hand-written matcher for the GPT-2 regex (`unicode_regex_split_custom_gpt2`).
fn split_gpt2(chars: &[char], span: Span) -> Vec<Span> {
    let (ini, end) = (span.start, span.end);
    let cpt = |pos: usize| if pos < end { Some(chars[pos]) } else { None };
    let cls = |pos: usize| cpt(pos).map(class);
    let mut out = Vec::new();
    let mut prev = ini;
    let mut add = |to: usize, out: &mut Vec<Span>| {
        if to > prev {
            out.push(prev..to);
        }
        prev = to;
    };
    let mut pos = ini;
    while pos < end {
        let c = chars[pos];
        // 's|'t|'re|'ve|'m|'ll|'d
        if c == '\'' && pos + 1 < end {
            let n1 = chars[pos + 1];
            if matches!(n1, 's' | 't' | 'm' | 'd') {
                pos += 2;
                add(pos, &mut out);
                continue;
            }
            if pos + 2 < end {
                let n2 = chars[pos + 2];
                if matches!((n1, n2), ('r', 'e') | ('v', 'e') | ('l', 'l')) {
                    pos += 3;
                    add(pos, &mut out);
                    continue;
                }
            }
        }
        let lead = if c == ' ' { cls(pos + 1) } else { cls(pos) };
        let skip_space = usize::from(c == ' ');
        // ' ?\p{L}+', ' ?\p{N}+' and ' ?[^\s\p{L}\p{N}]+'
        if let Some(k @ (Class::Letter | Class::Number | Class::Other)) = lead {
            pos += skip_space;
            while cls(pos) == Some(k) {
                pos += 1;
            }
            add(pos, &mut out);
            continue;
        }
        let mut n_ws = 0;
        while cls(pos + n_ws) == Some(Class::Whitespace) {
            n_ws += 1;
        }
        if n_ws > 1 && pos + n_ws < end {
            // '\s+(?!\S)': leave the last space to lead the next word
            pos += n_ws - 1;
            add(pos, &mut out);
        } else if n_ws > 0 {
            pos += n_ws;
            add(pos, &mut out);
        } else {
            pos += 1;
            add(pos, &mut out);
        }
    }
    out
}

/// GPT-2's reversible map from bytes to printable code points.
pub fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable =
            (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).expect("latin-1")
        } else {
            n += 1;
            char::from_u32(255 + n).expect("BMP")
        };
    }
    table
}

/// Byte-level BPE merges: rank of each (left, right) pair.
pub struct Merges {
    ranks: HashMap<(String, String), u32>,
}

impl Merges {
    pub fn new(merges: &[String]) -> Result<Merges, TokenizerError> {
        let mut ranks = HashMap::with_capacity(merges.len());
        for (i, m) in merges.iter().enumerate() {
            // llama.cpp looks for the separating space from the second byte on.
            let sep = m.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1);
            let Some(sep) = sep else {
                return Err(TokenizerError::Invalid(format!(
                    "merge #{i} has no separating space"
                )));
            };
            ranks
                .entry((m[..sep].to_string(), m[sep + 1..].to_string()))
                .or_insert(i as u32);
        }
        Ok(Merges { ranks })
    }

    /// Merge the code points of one byte-encoded word into pieces, lowest rank first and, on
    /// equal ranks, leftmost first (llama.cpp's `llm_bigram_bpe` order).
    pub fn apply(&self, word: &str) -> Vec<String> {
        let mut pieces: Vec<String> = word.chars().map(String::from).collect();
        // Linked list over `pieces`; merged-away entries become empty.
        let mut next: Vec<Option<usize>> = (0..pieces.len())
            .map(|i| (i + 1 < pieces.len()).then_some(i + 1))
            .collect();
        let mut prev: Vec<Option<usize>> = (0..pieces.len()).map(|i| i.checked_sub(1)).collect();
        let mut queue = BinaryHeap::new();
        let push = |queue: &mut BinaryHeap<_>, pieces: &[String], l: usize, r: usize| {
            if let Some(&rank) = self.ranks.get(&(pieces[l].clone(), pieces[r].clone())) {
                queue.push(Reverse((rank, l, r, format!("{}{}", pieces[l], pieces[r]))));
            }
        };
        for i in 1..pieces.len() {
            push(&mut queue, &pieces, i - 1, i);
        }
        while let Some(Reverse((_, l, r, text))) = queue.pop() {
            // Skip pairs made stale by an earlier merge on either side.
            if pieces[l].is_empty()
                || pieces[r].is_empty()
                || pieces[l].len() + pieces[r].len() != text.len()
            {
                continue;
            }
            if !(text.starts_with(pieces[l].as_str()) && text.ends_with(pieces[r].as_str())) {
                continue;
            }
            let right = std::mem::take(&mut pieces[r]);
            pieces[l].push_str(&right);
            next[l] = next[r];
            if let Some(n) = next[r] {
                prev[n] = Some(l);
            }
            if let Some(p) = prev[l] {
                push(&mut queue, &pieces, p, l);
            }
            if let Some(n) = next[l] {
                push(&mut queue, &pieces, l, n);
            }
        }
        pieces.into_iter().filter(|p| !p.is_empty()).collect()
    }
}
