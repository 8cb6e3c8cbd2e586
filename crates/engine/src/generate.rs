//! The generation loop for one sequence: prefill the prompt, then sample, detokenize (whole
//! UTF-8 characters only), check stops, and hand text to the caller as it is produced.

use std::time::{Duration, Instant};

use ward_models::{LoadedModel, ModelError, StreamDecoder};

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
}

#[derive(Debug, Clone)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    /// Generated token ids (including a final end-of-generation token, if any).
    pub tokens: Vec<u32>,
    pub finish: FinishReason,
    pub prefill_time: Duration,
    pub decode_time: Duration,
}

/// Generate a continuation of `prompt`; `on_text` receives each piece of output text.
pub fn generate(
    lm: &LoadedModel,
    prompt: &[u32],
    params: &GenerateParams,
    mut on_text: impl FnMut(&str),
) -> Result<GenerationStats, ModelError> {
    let max_len = prompt.len() + params.max_tokens;
    let mut cache = lm.model.new_cache(max_len);
    if max_len > cache.max_len() {
        return Err(ModelError::ContextFull {
            have: prompt.len(),
            adding: params.max_tokens,
            max: cache.max_len(),
        });
    }
    let mut sampler = Sampler::new(params.sampling.clone());
    let mut stop = StopMatcher::new(&params.stop);
    let mut decoder = StreamDecoder::new();
    // Prompt followed by the generated tokens: what the penalties look at.
    let mut history = prompt.to_vec();
    let n_generated = |h: &[u32]| h.len() - prompt.len();

    let t0 = Instant::now();
    let mut logits = lm.model.forward(prompt, &mut cache, 1)?.data;
    let prefill_time = t0.elapsed();
    let t1 = Instant::now();
    let mut finish = FinishReason::Length;
    let mut stopped_by_string = false;
    while n_generated(&history) < params.max_tokens {
        let next = sampler.sample(&mut logits, &history);
        history.push(next);
        if lm.tokenizer.is_end_of_generation(next) {
            finish = FinishReason::Stop;
            break;
        }
        let text = decoder.push(&lm.tokenizer, next);
        match stop.push(&text) {
            StopOutcome::Continue(t) => on_text(&t),
            StopOutcome::Stopped(t) => {
                on_text(&t);
                finish = FinishReason::Stop;
                stopped_by_string = true;
                break;
            }
        }
        if n_generated(&history) < params.max_tokens {
            logits = lm.model.forward(&[next], &mut cache, 1)?.data;
        }
    }
    if !stopped_by_string {
        // Release held-back text: an unfinished character, or text that never became a stop.
        match stop.push(&decoder.finish()) {
            StopOutcome::Continue(t) => on_text(&format!("{t}{}", stop.finish())),
            StopOutcome::Stopped(t) => on_text(&t),
        }
    }
    Ok(GenerationStats {
        prompt_tokens: prompt.len(),
        tokens: history.split_off(prompt.len()),
        finish,
        prefill_time,
        decode_time: t1.elapsed(),
    })
}
