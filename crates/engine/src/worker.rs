//! The engine thread: a dedicated OS thread owns the model's KV cache and runs one sequence at a
//! time, first come first served, from a bounded queue. Prompt preparation (template,
//! tokenization, context check) happens in `submit`, on the caller's thread, so bad requests
//! are refused at once instead of after waiting their turn.

use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use ward_models::{LoadedModel, ModelError};

use crate::api::{
    Engine, Event, EventSender, EventStream, GenerateRequest, ModelInfo, Prompt, SubmitError, Usage,
};
use crate::generate::{generate_in, FinishReason, GenerateParams, GenerationStats, Session};

struct Job {
    id: String,
    prompt: Vec<u32>,
    params: GenerateParams,
    events: EventSender,
}

/// A cheap, cloneable handle to the engine thread.
#[derive(Clone)]
pub struct EngineHandle {
    lm: Arc<LoadedModel>,
    info: Arc<ModelInfo>,
    queue: SyncSender<Job>,
    capacity: usize,
    waiting: Arc<AtomicUsize>,
}

impl EngineHandle {
    /// Start the engine thread for `lm`, served under the name `id`, with room for `max_queue`
    /// requests waiting behind the running one. The thread ends when every handle is dropped.
    pub fn start(lm: LoadedModel, id: &str, max_queue: usize) -> std::io::Result<Self> {
        let info = model_info(&lm, id);
        let lm = Arc::new(lm);
        let (queue, jobs) = sync_channel(max_queue);
        let waiting = Arc::new(AtomicUsize::new(0));
        let (thread_lm, thread_waiting) = (lm.clone(), waiting.clone());
        std::thread::Builder::new()
            .name("ward-engine".into())
            .spawn(move || run(&thread_lm, jobs, &thread_waiting))?;
        Ok(EngineHandle {
            lm,
            info: Arc::new(info),
            queue,
            capacity: max_queue,
            waiting,
        })
    }

    fn prompt_tokens(&self, prompt: Prompt) -> Result<Vec<u32>, SubmitError> {
        let invalid = |message: String, param| SubmitError::InvalidPrompt { message, param };
        let tokens = match prompt {
            Prompt::Text(text) => self.lm.tokenizer.encode(&text, true),
            Prompt::Tokens(ids) => {
                let n_vocab = self.lm.model.n_vocab();
                if let Some(bad) = ids.iter().find(|&&id| id as usize >= n_vocab) {
                    return Err(invalid(
                        format!("token id {bad} is outside the {n_vocab}-token vocabulary"),
                        "prompt",
                    ));
                }
                ids
            }
            Prompt::Chat(messages) => match self.lm.chat_prompt(&messages) {
                Ok(tokens) => tokens,
                Err(ModelError::Template(ward_models::TemplateError::Missing)) => {
                    return Err(SubmitError::NoChatTemplate)
                }
                Err(e) => return Err(invalid(e.to_string(), "messages")),
            },
        };
        if tokens.is_empty() {
            return Err(invalid("the prompt is empty".into(), "prompt"));
        }
        Ok(tokens)
    }
}

impl Engine for EngineHandle {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn submit(&self, request: GenerateRequest) -> Result<EventStream, SubmitError> {
        let prompt = self.prompt_tokens(request.prompt)?;
        let context_length = self.info.context_length;
        let max_tokens = request
            .max_tokens
            .unwrap_or(context_length.saturating_sub(prompt.len()));
        if max_tokens == 0 || prompt.len() + max_tokens > context_length {
            return Err(SubmitError::ContextLengthExceeded {
                prompt_tokens: prompt.len(),
                max_tokens,
                context_length,
            });
        }
        let (events, stream) = EventStream::channel(prompt.len());
        let job = Job {
            id: request.id,
            prompt,
            params: GenerateParams {
                max_tokens,
                sampling: request.sampling,
                stop: request.stop,
            },
            events,
        };
        // Counted before sending so the engine's decrement can never come first.
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.queue.try_send(job).map_err(|e| {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            match e {
                TrySendError::Full(_) => SubmitError::QueueFull {
                    capacity: self.capacity,
                },
                TrySendError::Disconnected(_) => SubmitError::ShuttingDown,
            }
        })?;
        Ok(stream)
    }

    fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

/// Counts and timings only: the text stays out of the log.
fn log_stats(id: &str, stats: &GenerationStats) {
    // The first token comes from the prefill's logits; decoding makes the rest.
    let decoded = stats.tokens.len().saturating_sub(1);
    let decode_s = stats.decode_time.as_secs_f64();
    tracing::info!(
        request_id = %id,
        prompt_tokens = stats.prompt_tokens,
        cached_tokens = stats.cached_tokens,
        completion_tokens = stats.tokens.len(),
        finish = ?stats.finish,
        prefill_ms = stats.prefill_time.as_millis() as u64,
        decode_tok_s = format_args!("{:.1}", decoded as f64 / decode_s.max(1e-9)),
        "generated"
    );
}

fn model_info(lm: &LoadedModel, id: &str) -> ModelInfo {
    // Changes whenever the engine version or the model file does (cheaply: no hashing of
    // gigabytes at start-up; #6's pinned sha256 is the strong identity).
    let file_len = std::fs::metadata(&lm.path).map(|m| m.len()).unwrap_or(0);
    let identity = format!("{}/{id}/{file_len}", env!("CARGO_PKG_VERSION"));
    let fnv = identity.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    ModelInfo {
        id: id.to_string(),
        context_length: lm.model.hparams().context_length,
        has_chat_template: lm.template.is_some(),
        fingerprint: format!("fp_{fnv:016x}"),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    }
}

fn run(lm: &LoadedModel, jobs: Receiver<Job>, waiting: &AtomicUsize) {
    let mut session = Session::new(lm);
    while let Ok(job) = jobs.recv() {
        waiting.fetch_sub(1, Ordering::SeqCst);
        if job.events.is_cancelled() {
            continue; // the client left while waiting
        }
        // A bug in one request must not take the engine down for everyone: contain it, reset
        // the cache it may have left half-written, and report it on that request only.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            generate_in(lm, &mut session, &job.prompt, &job.params, |text| {
                if job.events.is_cancelled() {
                    ControlFlow::Break(())
                } else {
                    if !text.is_empty() {
                        job.events.send(Event::Text(text.to_string()));
                    }
                    ControlFlow::Continue(())
                }
            })
        }));
        let last = match result {
            Ok(Ok(stats)) => {
                log_stats(&job.id, &stats);
                if stats.finish == FinishReason::Cancelled {
                    continue;
                }
                Event::Finished(Usage {
                    finish: stats.finish,
                    prompt_tokens: stats.prompt_tokens,
                    cached_tokens: stats.cached_tokens,
                    completion_tokens: stats.tokens.len(),
                })
            }
            Ok(Err(e)) => {
                tracing::error!(request_id = %job.id, error = %e, "generation failed");
                Event::Failed(e.to_string())
            }
            Err(_) => {
                tracing::error!(request_id = %job.id, "generation panicked; cache reset");
                session.clear();
                Event::Failed("internal error in the engine".into())
            }
        };
        job.events.send(last);
    }
}
