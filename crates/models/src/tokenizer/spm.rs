//! SentencePiece-style tokenization as llama.cpp's `llm_tokenizer_spm` does it: start from UTF-8
//! characters, repeatedly merge the adjacent pair whose union is the highest-scoring vocabulary
//! entry, then fall back to `<0xXX>` byte tokens for pieces that are not in the vocabulary.

use std::collections::{BinaryHeap, HashMap};

use super::Vocab;

/// Positions and lengths are u32 (a fragment is at most a request body, far below 4 GiB) and
/// links use [`NONE`], so a symbol takes 16 bytes and a queued pair 16: a long prompt costs
/// tens of bytes per character, not a hundred.
#[derive(Clone, Copy)]
struct Symbol {
    start: u32,
    len: u32,
    prev: u32,
    next: u32,
}

const NONE: u32 = u32::MAX;

/// Max-heap order: higher score first, then the leftmost pair.
struct Bigram {
    score: f32,
    left: u32,
    right: u32,
    size: u32,
}

impl PartialEq for Bigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bigram {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.score.total_cmp(&o.score).then(o.left.cmp(&self.left))
    }
}

/// Tokenize one fragment of raw text whose spaces are already escaped as U+2581.
pub fn tokenize(vocab: &Vocab, text: &str, out: &mut Vec<u32>) {
    if text.len() >= NONE as usize {
        // Past u32 positions (no request is near this size): bytes, rather than wrong merges.
        out.extend(text.bytes().filter_map(|b| vocab.byte_token(b)));
        return;
    }
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.chars().count());
    for (start, c) in text.char_indices() {
        let i = symbols.len() as u32;
        symbols.push(Symbol {
            start: start as u32,
            len: c.len_utf8() as u32,
            prev: if i == 0 { NONE } else { i - 1 },
            next: NONE,
        });
        if i > 0 {
            symbols[i as usize - 1].next = i;
        }
    }
    if symbols.is_empty() {
        return;
    }
    let piece_of = |s: &Symbol, len: u32| &text[s.start as usize..(s.start + len) as usize];
    let mut queue = BinaryHeap::new();
    let mut rev_merge: HashMap<&str, (u32, u32)> = HashMap::new();
    let mut try_add = |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], l: u32, r: u32| {
        if l == NONE || r == NONE {
            return;
        }
        let (left, right) = (&symbols[l as usize], &symbols[r as usize]);
        let piece = piece_of(left, left.len + right.len);
        if let Some(id) = vocab.id(piece) {
            queue.push(Bigram {
                score: vocab.score(id),
                left: l,
                right: r,
                size: piece.len() as u32,
            });
            rev_merge.insert(piece, (l, r));
        }
    };
    for i in 1..symbols.len() as u32 {
        try_add(&mut queue, &symbols, i - 1, i);
    }
    while let Some(b) = queue.pop() {
        let (l, r) = (symbols[b.left as usize], symbols[b.right as usize]);
        if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
            continue;
        }
        symbols[b.left as usize].len += r.len;
        symbols[b.right as usize].len = 0;
        symbols[b.left as usize].next = r.next;
        if r.next != NONE {
            symbols[r.next as usize].prev = b.left;
        }
        try_add(&mut queue, &symbols, l.prev, b.left);
        try_add(&mut queue, &symbols, b.left, r.next);
    }
    let mut i = 0;
    while i != NONE {
        let sym = symbols[i as usize];
        resegment(vocab, text, &symbols, &rev_merge, sym, out);
        i = sym.next;
    }
}

fn resegment(
    vocab: &Vocab,
    text: &str,
    symbols: &[Symbol],
    rev_merge: &HashMap<&str, (u32, u32)>,
    sym: Symbol,
    out: &mut Vec<u32>,
) {
    let piece = &text[sym.start as usize..(sym.start + sym.len) as usize];
    if let Some(id) = vocab.id(piece) {
        out.push(id);
        return;
    }
    match rev_merge.get(piece) {
        Some(&(l, r)) => {
            resegment(vocab, text, symbols, rev_merge, symbols[l as usize], out);
            resegment(vocab, text, symbols, rev_merge, symbols[r as usize], out);
        }
        None => out.extend(piece.bytes().filter_map(|b| vocab.byte_token(b))),
    }
}
