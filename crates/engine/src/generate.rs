//! The generation loop for one sequence: prefill the prompt, then sample, detokenize (whole
//! UTF-8 characters only), check stops, and hand text to the caller as it is produced.

use std::time::{Duration, Instant};

use ward_models::{LoadedModel, ModelError, StreamDecoder, Workspace};

use crate::api::{TokenChoice, TokenLogprob};
use crate::json::{JsonConstraint, JsonSpec};
use crate::sampler::{Sampler, SamplingParams};
use crate::stop::{StopMatcher, StopOutcome};

#[derive(Debug, Clone, Default)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    /// Tokens that end the sequence like the model's end-of-generation tokens do.
    pub stop_token_ids: Vec<u32>,
    /// Keep going past end-of-generation tokens (benchmarks want fixed lengths).
    pub ignore_eos: bool,
    /// Report each sampled token's log-probability with this many alternatives (at most
    /// `MAX_TOP_LOGPROBS`); `None`: no log-probabilities.
    pub logprobs: Option<usize>,
    /// The answer must be a JSON document valid against this schema.
    pub json: Option<JsonSpec>,
}

/// Most alternatives a token's log-probability may come with (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// End-of-generation token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The caller asked to stop (its client went away).
    Cancelled,
    /// The request's deadline passed (reported to the client as an error, not a finish).
    TimedOut,
}

impl FinishReason {
    /// OpenAI's `finish_reason` (the last two are never sent as one: nobody is left to read a
    /// cancelled answer, and a timeout is sent as an error).
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
            FinishReason::TimedOut => "timeout",
        }
    }
}

#[derive(Debug, Clone)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values were reused from an earlier request.
    pub cached_tokens: usize,
    /// Generated token ids (including a final end-of-generation token, if any).
    pub tokens: Vec<u32>,
    pub finish: FinishReason,
    pub prefill_time: Duration,
    pub decode_time: Duration,
}

/// What one sampled token did to a sequence.
pub struct TokenStep {
    pub token: u32,
    /// Text that became final with this token (possibly empty).
    pub text: String,
    /// Set when this token ends the sequence.
    pub finish: Option<FinishReason>,
    /// When the request asked for log-probabilities.
    pub logprob: Option<TokenLogprob>,
}

/// A sequence's output side: the sampler (with its own seeded random state), the detokenizer
/// (whole UTF-8 characters only) and the stop strings. Everything that decides its tokens is
/// here or in its history, so a sequence's output does not depend on what it is batched with.
pub struct Continuation {
    sampler: Sampler,
    stop: StopMatcher,
    decoder: StreamDecoder,
    max_tokens: usize,
    stop_token_ids: Vec<u32>,
    ignore_eos: bool,
    logprobs: Option<usize>,
    /// The raw logits of the last step, kept for log-probabilities (the sampler changes them).
    raw: Vec<f32>,
    json: Option<JsonConstraint>,
    /// The last mask left no token.
    dead_end: bool,
    generated: usize,
}

impl Continuation {
    pub fn new(params: &GenerateParams) -> Continuation {
        Continuation {
            sampler: Sampler::new(params.sampling.clone()),
            stop: StopMatcher::new(&params.stop),
            decoder: StreamDecoder::new(),
            max_tokens: params.max_tokens,
            stop_token_ids: params.stop_token_ids.clone(),
            ignore_eos: params.ignore_eos,
            logprobs: params.logprobs.map(|n| n.min(MAX_TOP_LOGPROBS)),
            raw: Vec::new(),
            json: params.json.clone().map(JsonConstraint::new),
            dead_end: false,
            generated: 0,
        }
    }

    /// Tokens sampled so far.
    pub fn generated(&self) -> usize {
        self.generated
    }

    /// Sample the next token from `logits` (changed in place by the penalties); `history` is
    /// the prompt and the tokens sampled so far.
    pub fn step(&mut self, lm: &LoadedModel, logits: &mut [f32], history: &[u32]) -> TokenStep {
        self.prepare(lm, logits);
        self.sample(lm, logits, history)
    }

    /// Whether [`Continuation::prepare`] has work worth a thread of its own (a JSON mask).
    pub fn is_constrained(&self) -> bool {
        self.json.is_some()
    }

    /// The first half of a step, which reads this sequence's row of logits and nothing else:
    /// keep the raw logits for log-probabilities and mask what the JSON document cannot take.
    /// The scheduler runs it for a batch's constrained sequences at once on the kernel
    /// threads, so one sequence's mask does not hold up the others'.
    pub fn prepare(&mut self, lm: &LoadedModel, logits: &mut [f32]) {
        if self.logprobs.is_some() {
            self.raw.clear();
            self.raw.extend_from_slice(logits);
        }
        if let Some(json) = &mut self.json {
            let ends = lm
                .tokenizer
                .end_of_generation()
                .iter()
                .chain(&self.stop_token_ids);
            self.dead_end = !json.mask(logits, ends.copied());
        }
    }

    /// The second half of a step, after [`Continuation::prepare`].
    pub fn sample(&mut self, lm: &LoadedModel, logits: &mut [f32], history: &[u32]) -> TokenStep {
        if self.dead_end {
            // Nothing can continue the document (the grammar failed on a limit).
            self.generated += 1;
            return TokenStep {
                token: lm.tokenizer.eos.unwrap_or(0),
                text: self.release_held_back(),
                finish: Some(FinishReason::Stop),
                logprob: None,
            };
        }
        let token = self.sampler.sample(logits, history);
        let document_done = self.json.as_mut().is_some_and(|json| {
            let is_end =
                lm.tokenizer.is_end_of_generation(token) || self.stop_token_ids.contains(&token);
            json.accept(token, is_end);
            json.is_complete()
        });
        self.generated += 1;
        let logprob = self
            .logprobs
            .map(|n| token_logprob(lm, &self.raw, token, n));
        let mut step = self.finish_step(lm, token);
        if document_done && step.finish.is_none() {
            // A complete JSON answer ends here (even with `ignore_eos`).
            step.text += &self.release_held_back();
            step.finish = Some(FinishReason::Stop);
        }
        step.logprob = logprob;
        step
    }

    /// Detokenize `token` and check whether it ends the sequence.
    fn finish_step(&mut self, lm: &LoadedModel, token: u32) -> TokenStep {
        if (!self.ignore_eos && lm.tokenizer.is_end_of_generation(token))
            || self.stop_token_ids.contains(&token)
        {
            let text = self.release_held_back();
            return TokenStep {
                token,
                text,
                finish: Some(FinishReason::Stop),
                logprob: None,
            };
        }
        let piece = self.decoder.push(&lm.tokenizer, token);
        let (text, finish) = match self.stop.push(&piece) {
            StopOutcome::Stopped(t) => (t, Some(FinishReason::Stop)),
            StopOutcome::Continue(t) if self.generated >= self.max_tokens => {
                (t + &self.release_held_back(), Some(FinishReason::Length))
            }
            StopOutcome::Continue(t) => (t, None),
        };
        TokenStep {
            token,
            text,
            finish,
            logprob: None,
        }
    }

    /// At the end: text held back as an unfinished character or a possible stop string.
    fn release_held_back(&mut self) -> String {
        match self.stop.push(&self.decoder.finish()) {
            StopOutcome::Continue(t) => t + &self.stop.finish(),
            StopOutcome::Stopped(t) => t,
        }
    }
}

/// `token`'s log-probability under `logits` and the `n` likeliest tokens'.
fn token_logprob(lm: &LoadedModel, logits: &[f32], token: u32, n: usize) -> TokenLogprob {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l));
    let sum: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    let log_z = max + sum.ln() as f32;
    let choice = |id: u32| TokenChoice {
        id,
        bytes: lm.tokenizer.token_bytes(id, true),
        logprob: logits[id as usize] - log_z,
    };
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    let likelier = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    if n > 0 && n < ids.len() {
        ids.select_nth_unstable_by(n - 1, likelier);
    }
    ids.truncate(n);
    ids.sort_unstable_by(likelier);
    TokenLogprob {
        token: choice(token),
        top: ids.into_iter().map(choice).collect(),
    }
}

/// Generate a continuation of `prompt` with a fresh cache of its own (the CLI's `ward run`; the
/// server batches sequences in the engine thread instead); `on_text` receives each piece of
/// text as it becomes final.
pub fn generate(
    lm: &LoadedModel,
    prompt: &[u32],
    params: &GenerateParams,
    mut on_text: impl FnMut(&str),
) -> Result<GenerationStats, ModelError> {
    let max = lm.model.hparams().context_length;
    if prompt.len() + params.max_tokens > max {
        return Err(ModelError::ContextFull {
            have: prompt.len(),
            adding: params.max_tokens,
            max,
        });
    }
    if params.max_tokens == 0 {
        return Err(ModelError::EmptyInput);
    }
    let mut cache = lm.model.new_cache(max);
    let mut ws = Workspace::default();
    let mut out = Continuation::new(params);
    // Prompt followed by the generated tokens: what the penalties look at.
    let mut history = prompt.to_vec();

    let t0 = Instant::now();
    let mut logits = lm.model.forward(prompt, &mut cache, 1, &mut ws)?.data;
    let prefill_time = t0.elapsed();
    let t1 = Instant::now();
    let finish = loop {
        let step = out.step(lm, logits, &history);
        history.push(step.token);
        if !step.text.is_empty() {
            on_text(&step.text);
        }
        if let Some(finish) = step.finish {
            break finish;
        }
        logits = lm
            .model
            .forward(&[step.token], &mut cache, 1, &mut ws)?
            .data;
    };
    Ok(GenerationStats {
        prompt_tokens: prompt.len(),
        cached_tokens: 0,
        tokens: history.split_off(prompt.len()),
        finish,
        prefill_time,
        decode_time: t1.elapsed(),
    })
}
