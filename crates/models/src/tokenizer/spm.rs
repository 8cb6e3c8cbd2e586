//! SentencePiece-style tokenization as llama.cpp's `llm_tokenizer_spm` does it: start from UTF-8
//! characters, repeatedly merge the adjacent pair whose union is the highest-scoring vocabulary
//! entry, then fall back to `<0xXX>` byte tokens for pieces that are not in the vocabulary.

use std::collections::{BinaryHeap, HashMap};

use super::Vocab;

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Max-heap order: higher score first, then the leftmost pair.
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
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
    let mut symbols: Vec<Symbol> = Vec::new();
    for (start, c) in text.char_indices() {
        let i = symbols.len();
        symbols.push(Symbol {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: None,
        });
        if i > 0 {
            symbols[i - 1].next = Some(i);
        }
    }
    if symbols.is_empty() {
        return;
    }
    let mut queue = BinaryHeap::new();
    let mut rev_merge: HashMap<&str, (usize, usize)> = HashMap::new();
    let mut try_add =
        |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], l: Option<usize>, r: Option<usize>| {
            let (Some(l), Some(r)) = (l, r) else { return };
            let piece = &text[symbols[l].start..symbols[l].start + symbols[l].len + symbols[r].len];
            if let Some(id) = vocab.id(piece) {
                queue.push(Bigram {
                    score: vocab.score(id),
                    left: l,
                    right: r,
                    size: piece.len(),
                });
                rev_merge.insert(piece, (l, r));
            }
        };
    for i in 1..symbols.len() {
        try_add(&mut queue, &symbols, Some(i - 1), Some(i));
    }
    while let Some(b) = queue.pop() {
        let (l, r) = (symbols[b.left], symbols[b.right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
            continue;
        }
        symbols[b.left].len += r.len;
        symbols[b.right].len = 0;
        symbols[b.left].next = r.next;
        if let Some(n) = r.next {
            symbols[n].prev = Some(b.left);
        }
        try_add(&mut queue, &symbols, symbols[b.left].prev, Some(b.left));
        try_add(&mut queue, &symbols, Some(b.left), symbols[b.left].next);
    }
    let mut i = Some(0);
    while let Some(idx) = i {
        resegment(vocab, text, &symbols, &rev_merge, symbols[idx], out);
        i = symbols[idx].next;
    }
}

fn resegment(
    vocab: &Vocab,
    text: &str,
    symbols: &[Symbol],
    rev_merge: &HashMap<&str, (usize, usize)>,
    sym: Symbol,
    out: &mut Vec<u32>,
) {
    let piece = &text[sym.start..sym.start + sym.len];
    if let Some(id) = vocab.id(piece) {
        out.push(id);
        return;
    }
    match rev_merge.get(piece) {
        Some(&(l, r)) => {
            resegment(vocab, text, symbols, rev_merge, symbols[l], out);
            resegment(vocab, text, symbols, rev_merge, symbols[r], out);
        }
        None => out.extend(piece.bytes().filter_map(|b| vocab.byte_token(b))),
    }
}
