//! Structured output: answers that are JSON, and valid against a schema, by construction. At
//! each step the tokens that cannot continue a valid document are masked out of the logits
//! before sampling (`response_format` `json_object` / `json_schema`); once the document is
//! complete only an end-of-generation token remains.
//!
//! The grammar engine is llguidance (the library behind llama.cpp's, vLLM's and SGLang's
//! structured output): it enforces the whole of JSON Schema that Ward accepts (`pattern`,
//! `format`, lengths, bounds…) and computes a mask in tens to hundreds of microseconds on a
//! 150k-token vocabulary (`cargo run --release -p ward-engine --example json_mask_time -- MODEL.gguf`).
//! Ward's part is the policy: which schemas are accepted and with what defaults
//! (`schema.rs`), resource limits per request, errors that never quote the request, and how a
//! mask meets the sampler's end tokens.

mod schema;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use llguidance::api::{ParserLimits, TopLevelGrammar};
use llguidance::toktrie::{ApproximateTokEnv, TokEnv, TokRxInfo, TokTrie};
use llguidance::{Matcher, ParserFactory};
use ward_models::Tokenizer;

pub use schema::SchemaError;

/// A model's vocabulary as llguidance indexes it, built once per model (in the background
/// when its engine starts) and shared by every request.
pub struct Vocabulary {
    factory: ParserFactory,
    /// The id llguidance's masks use for "the document may end here" (one past the model's
    /// tokens).
    eos: u32,
}

impl Vocabulary {
    pub fn new(tokenizer: &Tokenizer) -> Vocabulary {
        let n = tokenizer.vocab().len() as u32;
        // Control tokens have no text: llguidance keeps them apart behind a 0xFF byte, which
        // no JSON text contains, so no document can use one.
        let mut words: Vec<Vec<u8>> = (0..n)
            .map(|id| match tokenizer.token_bytes(id, false) {
                text if !text.is_empty() => text,
                _ => [&[0xFF][..], &tokenizer.token_bytes(id, true)].concat(),
            })
            .collect();
        // llguidance's "the document may end here" gets a token of its own, past the model's:
        // the model's EOS may have text (a user-defined "</s>"), and its bit would then also
        // say "this text may come next".
        words.push(b"\xFF<eos>".to_vec());
        Vocabulary::from_words(words, n)
    }

    /// One token per byte and an end token, [`Vocabulary::BYTES_EOS`]: tests and the fuzz
    /// target say at which byte a document is refused.
    pub fn of_bytes() -> Vocabulary {
        let mut words: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        // 0xFF marks a control token (it is never in UTF-8 text either).
        words[0xFF] = b"\xFF<unused>".to_vec();
        words.push(b"\xFF<eos>".to_vec());
        Vocabulary::from_words(words, Vocabulary::BYTES_EOS)
    }

    pub const BYTES_EOS: u32 = 256;

    fn from_words(words: Vec<Vec<u8>>, eos: u32) -> Vocabulary {
        let trie = TokTrie::from(&TokRxInfo::new(words.len() as u32, eos), &words);
        let env: TokEnv = Arc::new(ApproximateTokEnv::new(trie));
        let mut factory =
            ParserFactory::new_simple(&env).expect("llguidance indexes any vocabulary");
        // Nothing on stderr (a warning could quote the grammar), and errors that describe the
        // failure without the document so far.
        factory.quiet();
        *factory.limits_mut() = ParserLimits {
            // One request's lexer stays within tens of megabytes (1–2 kB a state)...
            max_lexer_states: 20_000,
            // ...its grammar within what a schema of a few hundred kilobytes needs...
            max_grammar_size: 200_000,
            verbose_errors: false,
            // ...and the defaults bound a mask's work (at most ~15 ms on this fuel).
            ..ParserLimits::default()
        };
        Vocabulary { factory, eos }
    }
}

/// What a request's answer must be: the compiled grammar, ready for each of its choices.
#[derive(Clone)]
pub struct JsonSpec {
    start: Matcher,
    eos: u32,
}

impl std::fmt::Debug for JsonSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonSpec(<grammar>)")
    }
}

impl JsonSpec {
    /// Any JSON object (`json_object`).
    pub fn any_object(vocabulary: &Vocabulary) -> JsonSpec {
        JsonSpec::compile(vocabulary, &serde_json::json!({"type": "object"}))
            .expect("the object schema compiles")
    }

    /// A caller's JSON Schema, or why it cannot be used (in words that never quote it).
    pub fn compile(
        vocabulary: &Vocabulary,
        schema: &serde_json::Value,
    ) -> Result<JsonSpec, SchemaError> {
        let prepared = schema::prepare(schema)?;
        let grammar = TopLevelGrammar::from_json_schema(prepared);
        // A panic in the compiler is one more reason to refuse the schema, not the server's end.
        let parser = llguidance::panic_utils::catch_unwind(AssertUnwindSafe(|| {
            vocabulary.factory.create_parser(grammar)
        }))
        .map_err(|e| SchemaError::from_llguidance(&e.to_string(), schema))?;
        Ok(JsonSpec {
            start: Matcher::new(Ok(parser)),
            eos: vocabulary.eos,
        })
    }
}

/// A sequence's progress through its JSON document.
#[derive(Clone)]
pub struct JsonConstraint {
    matcher: Matcher,
    eos: u32,
    /// The mask being applied, a bit per token (kept, so that the step allocates nothing
    /// beyond the bit vector llguidance returns: 3 allocations a step, see the `token_costs`
    /// example).
    bits: Vec<u32>,
}

impl JsonConstraint {
    pub fn new(spec: JsonSpec) -> JsonConstraint {
        JsonConstraint {
            matcher: spec.start,
            eos: spec.eos,
            bits: Vec::new(),
        }
    }

    /// Mask out of `logits` every token that cannot come next: text tokens that cannot
    /// continue the document, and the end-of-generation tokens (`ends`, stop ids included)
    /// until it is complete. False if no token is left (the grammar failed, say on its
    /// per-step work limit): the answer ends there.
    pub fn mask(&mut self, logits: &mut [f32], ends: impl IntoIterator<Item = u32>) -> bool {
        let allowed = match self.matcher.compute_mask_or_eos() {
            Ok(mask) => mask,
            Err(_) => {
                tracing::warn!("structured output: the grammar stopped (a work or size limit)");
                logits.fill(f32::NEG_INFINITY);
                return false;
            }
        };
        // llguidance's EOS bit says the document may end here; any end token may then end
        // it, and none is text (an end token may have text: a user-defined token).
        let may_end = allowed.is_allowed(self.eos);
        self.bits.clear();
        self.bits.extend_from_slice(allowed.as_slice());
        let mut set = |id: u32, on: bool| {
            if let Some(word) = self.bits.get_mut(id as usize / 32) {
                let bit = 1 << (id % 32);
                *word = if on { *word | bit } else { *word & !bit };
            }
        };
        set(self.eos, false);
        ends.into_iter().for_each(|id| set(id, may_end));
        let mut any = false;
        for (row, &word) in logits
            .chunks_mut(32)
            .zip(self.bits.iter().chain(std::iter::repeat(&0)))
        {
            if word == 0 {
                row.fill(f32::NEG_INFINITY);
                continue;
            }
            for (j, l) in row.iter_mut().enumerate() {
                if word >> j & 1 == 1 {
                    any |= l.is_finite();
                } else {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        any
    }

    /// The document is complete and nothing can follow it: the answer ends here.
    pub fn is_complete(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// Move past `token`, which `mask` allowed; an end token ends the answer instead.
    pub fn accept(&mut self, token: u32, is_end: bool) {
        if !is_end {
            let took = self.matcher.consume_token(token);
            debug_assert!(took.is_ok(), "a masked token was sampled");
        }
    }
}

#[cfg(test)]
mod tests;
