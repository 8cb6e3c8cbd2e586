//! The engine thread: a dedicated OS thread owns the model's KV pool and runs the batching
//! scheduler, taking in new requests between steps. Prompt preparation (template,
//! tokenization, length checks) happens in `submit`, on the caller's thread, so bad requests
//! are refused at once instead of after waiting their turn.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ward_models::cache::KV_BLOCK;
use ward_models::{ChatInputs, LoadedModel, ModelError, ThinkingFormat};

use crate::api::{
    Engine, EventStream, GenerateRequest, ModelInfo, Prompt, ResponseFormat, SubmitError,
};
use crate::generate::GenerateParams;
use crate::json::{JsonSpec, Vocabulary};
use crate::scheduler::{Job, Scheduler, SchedulerConfig, SchedulerLoad};

/// How the engine shares the machine between requests.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Requests accepted but not yet running before new ones are refused.
    pub max_queue: usize,
    /// Bytes for the KV cache of all sequences together.
    pub kv_cache_bytes: usize,
    /// Tokens in one forward pass while sequences are decoding (their next tokens plus prompt
    /// chunks): bounds the inter-token latency a long prompt causes the others.
    pub max_batch_tokens: usize,
    /// Tokens in one forward pass when no sequence is decoding (prompt chunks only).
    pub max_prefill_tokens: usize,
    /// Sequences running at once.
    pub max_running: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_queue: 64,
            kv_cache_bytes: 1 << 30,
            // On a 2-core CPU a 64-token pass takes about 0.1 s: a decode step with a prompt
            // chunk beside it stays within a few plain decode steps.
            max_batch_tokens: 64,
            max_prefill_tokens: 512,
            max_running: 64,
        }
    }
}

/// A cheap, cloneable handle to the engine thread.
#[derive(Clone)]
pub struct EngineHandle {
    lm: Arc<LoadedModel>,
    info: Arc<ModelInfo>,
    jobs: Sender<Job>,
    max_queue: usize,
    max_running: usize,
    shared: Arc<Shared>,
    /// The vocabulary as the JSON grammar engine indexes it (built in the background from
    /// the start).
    vocabulary: Arc<OnceLock<Vocabulary>>,
}

/// What the engine thread reports back.
struct Shared {
    /// Jobs sent and not yet taken in by the scheduler.
    in_channel: AtomicUsize,
    /// The scheduler's state after its last step.
    load: Mutex<SchedulerLoad>,
}

impl EngineHandle {
    /// Start the engine thread for `lm`, served under the name `id`. The thread ends when every
    /// handle is dropped and the requests in flight are done.
    pub fn start(lm: LoadedModel, id: &str, config: EngineConfig) -> std::io::Result<Self> {
        let invalid =
            |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_string());
        if config.max_queue == 0 || config.max_running == 0 {
            return Err(invalid(
                "the queue and the running set need room for a request",
            ));
        }
        if config.max_batch_tokens < config.max_running {
            return Err(invalid(
                "max_batch_tokens must be at least max_running (one token each)",
            ));
        }
        let kv_blocks = config.kv_cache_bytes / lm.model.kv_block_bytes();
        if kv_blocks < 2 {
            return Err(invalid(&format!(
                "the KV cache needs at least 2 blocks of {} bytes for this model",
                lm.model.kv_block_bytes()
            )));
        }
        // A sequence must fit the pool on its own (it can then always finish, preempting the
        // others): the context the server offers is the smaller of the two.
        let info = model_info(&lm, id, kv_blocks * KV_BLOCK);
        let lm = Arc::new(lm);
        let (jobs, rx) = channel();
        // The pool's size is reported from the start, not from the first step.
        let shared = Arc::new(Shared {
            in_channel: AtomicUsize::new(0),
            load: Mutex::new(SchedulerLoad {
                kv_blocks_total: kv_blocks,
                ..SchedulerLoad::default()
            }),
        });
        let scheduler = SchedulerConfig {
            kv_blocks,
            max_batch_tokens: config.max_batch_tokens,
            max_prefill_tokens: config.max_prefill_tokens,
            max_running: config.max_running,
        };
        let (thread_lm, thread_shared) = (lm.clone(), shared.clone());
        std::thread::Builder::new()
            .name("ward-engine".into())
            .spawn(move || run(&thread_lm, scheduler, rx, &thread_shared))?;
        tracing::info!(
            kv_blocks,
            kv_positions = kv_blocks * KV_BLOCK,
            kv_mib = (kv_blocks * lm.model.kv_block_bytes()) >> 20,
            "KV cache"
        );
        // Indexing the vocabulary for structured output takes 0.1 s (SmolLM2) to 0.8 s
        // (Gemma's 262k tokens): done now, on a thread of its own, the first JSON request
        // does not wait for it on a server thread.
        let vocabulary: Arc<OnceLock<Vocabulary>> = Arc::default();
        let (index_lm, index) = (lm.clone(), vocabulary.clone());
        std::thread::Builder::new()
            .name("ward-json-vocab".into())
            .spawn(move || {
                index.get_or_init(|| Vocabulary::new(&index_lm.tokenizer));
            })?;
        Ok(EngineHandle {
            lm,
            info: Arc::new(info),
            jobs,
            max_queue: config.max_queue,
            max_running: config.max_running,
            shared,
            vocabulary,
        })
    }

    /// The tokens to run for `prompt`, and whether a chat prompt leaves the thinking open.
    fn prompt_tokens(
        &self,
        prompt: Prompt,
        tools: Option<&serde_json::Value>,
        kwargs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(Vec<u32>, Option<ThinkingFormat>), SubmitError> {
        let invalid = |message: String, param| SubmitError::InvalidPrompt { message, param };
        // Tokenizing stops past the context: a longer prompt could never run.
        let context_length = self.info.context_length;
        let too_long = SubmitError::PromptTooLong { context_length };
        let (tokens, thinking) = match prompt {
            Prompt::Text(text) => match self.lm.encode_caller_text(&text, context_length) {
                Ok(tokens) => (tokens, None),
                Err(_) => return Err(too_long),
            },
            Prompt::Tokens(ids) => {
                let n_vocab = self.lm.model.n_vocab();
                if let Some(bad) = ids.iter().find(|&&id| id as usize >= n_vocab) {
                    return Err(invalid(
                        format!("token id {bad} is outside the {n_vocab}-token vocabulary"),
                        "prompt",
                    ));
                }
                (ids, None)
            }
            Prompt::Chat(messages) => {
                let inputs = ChatInputs {
                    tools,
                    kwargs: Some(kwargs),
                    now: None,
                };
                match self
                    .lm
                    .chat_generation_prompt(&messages, &inputs, context_length)
                {
                    Ok(p) => (p.tokens, p.thinking),
                    Err(ModelError::PromptTooLong { .. }) => return Err(too_long),
                    Err(ModelError::Template(ward_models::TemplateError::Missing)) => {
                        return Err(SubmitError::NoChatTemplate)
                    }
                    Err(e) => return Err(invalid(e.to_string(), "messages")),
                }
            }
        };
        if tokens.is_empty() {
            return Err(invalid("the prompt is empty".into(), "prompt"));
        }
        Ok((tokens, thinking))
    }
}

impl Engine for EngineHandle {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn tokenize(
        &self,
        prompt: Prompt,
        tools: Option<&serde_json::Value>,
        kwargs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Vec<u32>, SubmitError> {
        Ok(self.prompt_tokens(prompt, tools, kwargs)?.0)
    }

    fn detokenize(&self, tokens: &[u32]) -> Result<String, SubmitError> {
        let n_vocab = self.lm.model.n_vocab();
        if let Some(bad) = tokens.iter().find(|&&id| id as usize >= n_vocab) {
            return Err(SubmitError::InvalidPrompt {
                message: format!("token id {bad} is outside the {n_vocab}-token vocabulary"),
                param: "tokens",
            });
        }
        Ok(self.lm.tokenizer.decode(tokens, true))
    }

    fn submit(&self, request: GenerateRequest) -> Result<EventStream, SubmitError> {
        let reasoning = match request.prompt {
            Prompt::Chat(_) => self.lm.template.as_ref().and_then(|t| t.reasoning()),
            _ => None,
        };
        let (prompt, thinking) = self.prompt_tokens(
            request.prompt,
            request.tools.as_ref(),
            &request.chat_template_kwargs,
        )?;
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
        if self.queue_depth() >= self.max_queue {
            return Err(SubmitError::QueueFull {
                capacity: self.max_queue,
            });
        }
        let n_vocab = self.lm.model.n_vocab();
        for (param, ids) in [
            ("stop_token_ids", request.stop_token_ids.clone()),
            (
                "logit_bias",
                request.sampling.logit_bias.iter().map(|b| b.0).collect(),
            ),
        ] {
            if let Some(bad) = ids.iter().find(|&&id| id as usize >= n_vocab) {
                return Err(SubmitError::InvalidPrompt {
                    message: format!("token id {bad} is outside the {n_vocab}-token vocabulary"),
                    param,
                });
            }
        }
        let json = match &request.response_format {
            None => None,
            Some(format) => {
                let vocabulary = self
                    .vocabulary
                    .get_or_init(|| Vocabulary::new(&self.lm.tokenizer));
                Some(match format {
                    ResponseFormat::JsonObject => JsonSpec::any_object(vocabulary),
                    ResponseFormat::JsonSchema(s) => {
                        JsonSpec::compile(vocabulary, s).map_err(|e| {
                            SubmitError::InvalidPrompt {
                                message: format!("response_format: {e}"),
                                param: "response_format",
                            }
                        })?
                    }
                })
            }
        };
        let (events, mut stream) = EventStream::channel(prompt.len());
        stream.thinking = thinking;
        stream.reasoning = reasoning;
        let job = Job {
            id: request.id,
            prompt,
            params: GenerateParams {
                max_tokens,
                sampling: request.sampling,
                stop: request.stop,
                stop_token_ids: request.stop_token_ids,
                ignore_eos: request.ignore_eos,
                logprobs: request.logprobs,
                json,
            },
            salt: request.cache_salt,
            tenant: request.tenant,
            deadline: request.timeout.map(|t| Instant::now() + t),
            events,
        };
        // Counted before sending so the engine's decrement can never come first.
        self.shared.in_channel.fetch_add(1, Ordering::SeqCst);
        self.jobs.send(job).map_err(|_| {
            self.shared.in_channel.fetch_sub(1, Ordering::SeqCst);
            SubmitError::ShuttingDown
        })?;
        Ok(stream)
    }

    fn capacity(&self) -> usize {
        self.max_queue + self.max_running
    }

    fn queue_depth(&self) -> usize {
        self.shared.in_channel.load(Ordering::SeqCst) + self.load().waiting
    }

    /// The scheduler's state after its last step.
    fn load(&self) -> SchedulerLoad {
        *self.shared.load.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn model_info(lm: &LoadedModel, id: &str, kv_positions: usize) -> ModelInfo {
    ModelInfo {
        context_length: lm.model.hparams().context_length.min(kv_positions),
        has_chat_template: lm.template.is_some(),
        kernels: lm.kernels.to_string(),
        architecture: lm.model.hparams().arch.name().to_string(),
        ..ModelInfo::describe(&lm.path, id)
    }
}

fn run(lm: &LoadedModel, config: SchedulerConfig, jobs: Receiver<Job>, shared: &Shared) {
    let mut scheduler = Scheduler::new(lm, config);
    let publish = |load| *shared.load.lock().unwrap_or_else(|e| e.into_inner()) = load;
    // A job moves from the channel's count to the scheduler's waiting count as one: the
    // published load counts it before the channel stops counting it, so `queue_depth` may
    // count it twice for a moment (a refusal too many) but never misses it (a request admitted
    // past `max_queue`). The step publishes again as soon as it has admitted sequences.
    let take = |scheduler: &mut Scheduler, job| {
        scheduler.add(job);
        publish(scheduler.load());
        shared.in_channel.fetch_sub(1, Ordering::SeqCst);
    };
    loop {
        if scheduler.is_idle() {
            // Nothing to do: sleep until a request comes (or every handle is gone).
            match jobs.recv() {
                Ok(job) => take(&mut scheduler, job),
                Err(_) => return,
            }
        }
        while let Ok(job) = jobs.try_recv() {
            take(&mut scheduler, job);
        }
        let ran = scheduler.step(publish);
        publish(scheduler.load());
        if !ran {
            // Nothing could run (a client gone mid-queue, say): wait briefly for news rather
            // than spin.
            match jobs.recv_timeout(Duration::from_millis(5)) {
                Ok(job) => take(&mut scheduler, job),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {}
            }
        }
    }
}
