//! The generation loop for one sequence: prefill the prompt, then sample, detokenize (whole
//! UTF-8 characters only), check stops, and hand text to the caller as it is produced.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use ward_models::{KvCache, LoadedModel, ModelError, StreamDecoder, Workspace};

use crate::sampler::{Sampler, SamplingParams};
use crate::stop::{StopMatcher, StopOutcome};

#[derive(Debug, Clone)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// End-of-generation token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The caller asked to stop (its client went away).
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values were reused from the previous request.
    pub cached_tokens: usize,
    /// Generated token ids (including a final end-of-generation token, if any).
    pub tokens: Vec<u32>,
    pub finish: FinishReason,
    pub prefill_time: Duration,
    pub decode_time: Duration,
}

/// A KV cache and the tokens it holds, kept from one request to the next so that a prompt
/// starting the same way (a conversation's history, a shared system prompt, a teacher-forced
/// prefix) skips recomputing what is already there. Reuse gives the same numbers as a fresh
/// prefill: every row is computed on its own, whatever else is in the batch.
pub struct Session {
    cache: KvCache,
    tokens: Vec<u32>,
    workspace: Workspace,
}

impl Session {
    pub fn new(lm: &LoadedModel) -> Session {
        Session {
            cache: lm.model.new_cache(usize::MAX),
            tokens: Vec::new(),
            workspace: Workspace::default(),
        }
    }

    /// Keep the longest cached prefix of `prompt` that still leaves one token to run (the
    /// forward pass must produce logits), drop the rest; returns how many tokens are kept.
    fn reuse_prefix(&mut self, prompt: &[u32]) -> usize {
        let common = self
            .tokens
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len().saturating_sub(1));
        self.cache.truncate(common);
        self.tokens.truncate(common);
        common
    }

    /// Run `tokens`; the logits of the last one, in the session's workspace.
    fn forward(&mut self, lm: &LoadedModel, tokens: &[u32]) -> Result<&mut [f32], ModelError> {
        match lm
            .model
            .forward(tokens, &mut self.cache, 1, &mut self.workspace)
        {
            Ok(logits) => {
                self.tokens.extend_from_slice(tokens);
                Ok(logits.data)
            }
            Err(e) => {
                // The cache may hold part of this step: start afresh next time. (`clear`, but
                // field by field: the workspace is still lent to the logits.)
                self.cache.truncate(0);
                self.tokens.clear();
                Err(e)
            }
        }
    }

    pub fn clear(&mut self) {
        self.cache.truncate(0);
        self.tokens.clear();
    }
}

/// Generate a continuation of `prompt` with a fresh cache; `on_text` receives each piece of text.
pub fn generate(
    lm: &LoadedModel,
    prompt: &[u32],
    params: &GenerateParams,
    mut on_text: impl FnMut(&str),
) -> Result<GenerationStats, ModelError> {
    generate_in(lm, &mut Session::new(lm), prompt, params, |t| {
        on_text(t);
        ControlFlow::Continue(())
    })
}

/// Generate a continuation of `prompt` in `session`, reusing its cached prefix. `on_text` is
/// called once per generated token (with the text that became final, possibly empty) and may
/// break to cancel; the loop then stops before the next forward pass.
pub fn generate_in(
    lm: &LoadedModel,
    session: &mut Session,
    prompt: &[u32],
    params: &GenerateParams,
    mut on_text: impl FnMut(&str) -> ControlFlow<()>,
) -> Result<GenerationStats, ModelError> {
    let max = lm.model.hparams().context_length;
    if prompt.len() + params.max_tokens > max {
        return Err(ModelError::ContextFull {
            have: prompt.len(),
            adding: params.max_tokens,
            max,
        });
    }
    let mut sampler = Sampler::new(params.sampling.clone());
    let mut stop = StopMatcher::new(&params.stop);
    let mut decoder = StreamDecoder::new();
    // Prompt followed by the generated tokens: what the penalties look at.
    let mut history = prompt.to_vec();
    let n_generated = |h: &[u32]| h.len() - prompt.len();

    let t0 = Instant::now();
    let cached_tokens = session.reuse_prefix(prompt);
    let mut logits = session.forward(lm, &prompt[cached_tokens..])?;
    let prefill_time = t0.elapsed();
    let t1 = Instant::now();
    let mut finish = FinishReason::Length;
    let mut stopped_by_string = false;
    while n_generated(&history) < params.max_tokens {
        let next = sampler.sample(logits, &history);
        history.push(next);
        if lm.tokenizer.is_end_of_generation(next) {
            finish = FinishReason::Stop;
            break;
        }
        let text = decoder.push(&lm.tokenizer, next);
        let outcome = match stop.push(&text) {
            StopOutcome::Continue(t) => on_text(&t),
            StopOutcome::Stopped(t) => {
                // The caller is told of the stop with this text; whether it wants more is moot.
                let _ = on_text(&t);
                finish = FinishReason::Stop;
                stopped_by_string = true;
                break;
            }
        };
        if outcome.is_break() {
            finish = FinishReason::Cancelled;
            break;
        }
        if n_generated(&history) < params.max_tokens {
            logits = session.forward(lm, &[next])?;
        }
    }
    if !stopped_by_string && finish != FinishReason::Cancelled {
        // Release held-back text: an unfinished character, or text that never became a stop.
        let _ = match stop.push(&decoder.finish()) {
            StopOutcome::Continue(t) => on_text(&format!("{t}{}", stop.finish())),
            StopOutcome::Stopped(t) => on_text(&t),
        };
    }
    Ok(GenerationStats {
        prompt_tokens: prompt.len(),
        cached_tokens,
        tokens: history.split_off(prompt.len()),
        finish,
        prefill_time,
        decode_time: t1.elapsed(),
    })
}
