//! Structured output: answers that are JSON, and valid against a schema, by construction. At
//! each step the tokens whose bytes cannot continue a valid document are masked out of the
//! logits before sampling (`response_format` `json_object` / `json_schema`); once the document
//! is complete only an end-of-generation token remains.

mod matcher;
mod schema;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ward_models::Tokenizer;

pub use matcher::Matcher;
use matcher::State;
pub use schema::{Schema, SchemaError};

/// Every token's bytes in sorted order, so a mask walks each shared prefix once.
pub struct TokenTrie {
    /// Ids of the tokens with bytes, sorted by their bytes.
    order: Vec<u32>,
    /// Bytes by token id (empty for control tokens, which JSON never needs).
    bytes: Vec<Vec<u8>>,
    /// `lcp[k]`: bytes `order[k]` shares with `order[k - 1]`.
    lcp: Vec<usize>,
    /// `order` cut where the first byte changes, into parts of about `PART` tokens: each
    /// part's walk starts from the matcher's state alone, so the kernel threads share a mask.
    parts: Vec<Range<usize>>,
    /// The most bytes of any token.
    longest: usize,
}

/// About how many tokens one part of a mask's walk covers.
const PART: usize = 2048;

impl TokenTrie {
    pub fn new(tokenizer: &Tokenizer) -> TokenTrie {
        let n = tokenizer.vocab().len() as u32;
        let bytes: Vec<Vec<u8>> = (0..n).map(|id| tokenizer.token_bytes(id, false)).collect();
        let mut order: Vec<u32> = (0..n)
            .filter(|&id| !bytes[id as usize].is_empty())
            .collect();
        order.sort_by(|&a, &b| bytes[a as usize].cmp(&bytes[b as usize]));
        let lcp: Vec<usize> = (0..order.len())
            .map(|k| {
                if k == 0 {
                    return 0;
                }
                let (a, b) = (&bytes[order[k - 1] as usize], &bytes[order[k] as usize]);
                a.iter().zip(b).take_while(|(x, y)| x == y).count()
            })
            .collect();
        let mut parts = Vec::new();
        let mut start = 0;
        for (k, &shared) in lcp.iter().enumerate() {
            if shared == 0 && k - start >= PART {
                parts.push(start..k);
                start = k;
            }
        }
        if start < order.len() {
            parts.push(start..order.len());
        }
        let longest = bytes.iter().map(Vec::len).max().unwrap_or(0);
        TokenTrie {
            order,
            bytes,
            lcp,
            parts,
            longest,
        }
    }

    pub fn bytes(&self, token: u32) -> &[u8] {
        &self.bytes[token as usize]
    }

    /// Bit `id` of the result: all of token `id`'s bytes can follow `state`. The parts of the
    /// vocabulary are walked on the kernel threads.
    fn allowed(&self, state: &Matcher) -> Vec<u64> {
        let bits: Vec<AtomicU64> = (0..self.bytes.len().div_ceil(64))
            .map(|_| AtomicU64::new(0))
            .collect();
        let pool = ward_kernels::pool::global();
        let per_call = self.parts.len().div_ceil(4 * pool.threads()).max(1);
        pool.for_each_range(self.parts.len(), per_call, |parts| {
            let mut states = vec![state.clone(); self.longest + 1];
            for part in &self.parts[parts] {
                self.walk(part.clone(), &mut states, &bits);
            }
        });
        bits.into_iter().map(AtomicU64::into_inner).collect()
    }

    /// The walk of `order[part]`, whose first token shares nothing with the one before.
    /// `states[d]`: the state after the first d bytes of the current token, valid for
    /// d <= depth (`states[0]` is the state the mask is for); a prefix of `failed + 1` bytes of
    /// the previous token was rejected.
    fn walk(&self, part: Range<usize>, states: &mut [Matcher], bits: &[AtomicU64]) {
        let mut depth = 0;
        let mut failed: Option<usize> = None;
        for k in part {
            let token = self.order[k];
            let (bytes, lcp) = (&self.bytes[token as usize], self.lcp[k]);
            if failed.is_some_and(|f| lcp > f) {
                continue; // shares the rejected prefix
            }
            failed = None;
            depth = depth.min(lcp);
            while depth < bytes.len() {
                let (done, rest) = states.split_at_mut(depth + 1);
                rest[0].copy_from(&done[depth]);
                if !rest[0].feed(bytes[depth]) {
                    failed = Some(depth);
                    break;
                }
                depth += 1;
            }
            if failed.is_none() {
                let id = token as usize;
                bits[id / 64].fetch_or(1 << (id % 64), Ordering::Relaxed);
            }
        }
    }
}

/// Most masks a request keeps (each a bit per token: 19 KB for a 151k-token vocabulary).
const MAX_CACHED_MASKS: usize = 256;

/// The masks computed for a request, by matcher state: a document's states repeat (inside a
/// string, after a comma, at each array item), and a state's mask never changes, so most
/// steps find theirs here instead of walking the vocabulary (5 to 13 ms a token on the test
/// models, time the whole batch would wait).
#[derive(Default)]
pub struct MaskCache(Mutex<HashMap<State, Arc<[u64]>>>);

/// What a request's answer must be.
#[derive(Clone)]
pub struct JsonSpec {
    pub schema: Arc<Schema>,
    pub trie: Arc<TokenTrie>,
    /// Shared by the request's choices.
    pub masks: Arc<MaskCache>,
}

impl std::fmt::Debug for JsonSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JsonSpec(<{} schema nodes>)", self.schema.nodes.len())
    }
}

/// A sequence's progress through its JSON document.
pub struct JsonConstraint {
    spec: JsonSpec,
    matcher: Matcher,
}

impl JsonConstraint {
    pub fn new(spec: JsonSpec) -> JsonConstraint {
        JsonConstraint {
            matcher: Matcher::new(spec.schema.clone()),
            spec,
        }
    }

    /// The tokens that can come next in the matcher's state, as bits by token id: from the
    /// cache, or walked and kept.
    fn allowed_now(&mut self) -> Arc<[u64]> {
        let key = self.matcher.state();
        let cache = &self.spec.masks.0;
        if let Some(bits) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return bits.clone();
        }
        let bits: Arc<[u64]> = self.spec.trie.allowed(&self.matcher).into();
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED_MASKS {
            cache.clear();
        }
        cache.insert(key, bits.clone());
        bits
    }

    /// Mask out of `logits` every token that cannot come next: while the document is
    /// unfinished, those whose bytes cannot continue it; once it is complete, all but the
    /// end-of-generation tokens (`is_end`, which also stop ids answer). False if no token is
    /// left.
    pub fn mask(&mut self, logits: &mut [f32], is_end: impl Fn(u32) -> bool) -> bool {
        let complete = self.matcher.is_complete();
        let allowed = if complete {
            None
        } else {
            Some(self.allowed_now())
        };
        let mut any = false;
        for (id, l) in logits.iter_mut().enumerate() {
            // An end token may have text (a user-defined token): still not before the end.
            let end = is_end(id as u32);
            let ok = match &allowed {
                None => end,
                Some(bits) => !end && bits.get(id / 64).is_some_and(|w| w >> (id % 64) & 1 == 1),
            };
            if ok {
                any |= l.is_finite();
            } else {
                *l = f32::NEG_INFINITY;
            }
        }
        any
    }

    /// The document is complete: the answer ends here.
    pub fn is_complete(&self) -> bool {
        self.matcher.is_complete()
    }

    /// Move past `token`, which `mask` allowed.
    pub fn accept(&mut self, token: u32) {
        for &b in self.spec.trie.bytes(token) {
            let ok = self.matcher.feed(b);
            debug_assert!(ok, "a masked token was sampled");
        }
    }
}

#[cfg(test)]
mod tests;
