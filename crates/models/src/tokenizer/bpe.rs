//! GPT-2 style byte-level BPE, as llama.cpp's `llm_tokenizer_bpe` does it: pre-tokenize with the
//! model's `tokenizer.ggml.pre` rules (pre.rs), map bytes to printable code points, merge by rank.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::TokenizerError;

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
    /// Ranks from `tokenizer.ggml.merges`. Every merge must name two tokens and make a third:
    /// a merge outside the vocabulary means the metadata contradicts itself (a truncated or
    /// mismatched vocabulary), and tokenizing with it would emit ids for the wrong text.
    pub fn new(
        merges: &[String],
        is_token: impl Fn(&str) -> bool,
    ) -> Result<Merges, TokenizerError> {
        let mut ranks = HashMap::with_capacity(merges.len());
        let mut joined = String::new();
        for (i, m) in merges.iter().enumerate() {
            // llama.cpp looks for the separating space from the second byte on.
            let sep = m.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1);
            let Some(sep) = sep else {
                return Err(TokenizerError::Invalid(format!(
                    "merge #{i} has no separating space"
                )));
            };
            let (left, right) = (&m[..sep], &m[sep + 1..]);
            joined.clear();
            joined.push_str(left);
            joined.push_str(right);
            for part in [left, right, joined.as_str()] {
                if !is_token(part) {
                    return Err(TokenizerError::Invalid(format!(
                        "merge #{i} {m:?} needs {part:?}, which is not in tokenizer.ggml.tokens"
                    )));
                }
            }
            ranks
                .entry((left.to_string(), right.to_string()))
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
