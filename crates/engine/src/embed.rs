//! The embedding engine: an embedding model (a BERT encoder, or a decoder that pools its final
//! hidden states, as Qwen3-Embedding does) on a thread of its own, behind the [`Embedder`]
//! trait. As for generation, inputs are tokenized and checked in `embed`, on the caller's
//! thread, so a bad request is refused at once; the encoder thread then runs each request's
//! inputs in as few passes as `max_batch_tokens` allows (many inputs, one pass), and answers
//! with unit-length vectors (a reranker, with its scores).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use tokio::sync::oneshot;
use ward_models::arch::bert::{normalize, Bert, EncoderWorkspace, Pooling};
use ward_models::gguf::GgufFile;
use ward_models::{CausalLm, ModelError, Tokenizer, Workspace};

use crate::api::{EmbedInput, EmbedRequest, Embedder, Embeddings, ModelInfo, SubmitError};

/// How the encoder shares the machine between requests.
#[derive(Debug, Clone, Copy)]
pub struct EmbedderConfig {
    /// Requests accepted but not yet running before new ones are refused.
    pub max_queue: usize,
    /// Tokens in one pass (at least the model's context, so any one input fits): bounds the
    /// memory a pass takes.
    pub max_batch_tokens: usize,
    /// Callers' text may contain control tokens (`--allow-control-tokens`).
    pub trust_control_tokens: bool,
}

/// The longest input a decoder embedding model takes: its KV cache for one input is allocated
/// whole, so this bounds the memory a request can make it take (Qwen3-Embedding's 32k context
/// would take gigabytes).
const DECODER_MAX_INPUT: usize = 8192;

/// The model and its workspace.
enum Encoder {
    Bert(Bert, EncoderWorkspace),
    /// One input at a time, each with its own KV cache.
    Decoder(Box<dyn CausalLm>, Workspace),
}

impl Encoder {
    /// The embedding model (or reranker) a GGUF holds.
    fn load(gguf: &GgufFile) -> Result<Encoder, ModelError> {
        if gguf.require_str("general.architecture")? == "bert" {
            return Ok(Encoder::Bert(
                Bert::load(gguf)?,
                EncoderWorkspace::default(),
            ));
        }
        let model = ward_models::arch::load(gguf)?;
        let hp = model.hparams();
        if hp.pooling.is_none() {
            return Err(ModelError::NotAnEmbeddingModel {
                arch: hp.arch.name().into(),
            });
        }
        Ok(Encoder::Decoder(model, Workspace::default()))
    }

    /// Values per input.
    fn dim(&self) -> usize {
        match self {
            Encoder::Bert(bert, _) => bert.output_dim(),
            Encoder::Decoder(model, _) => model.hparams().n_embd,
        }
    }

    /// The longest input.
    fn context_length(&self) -> usize {
        match self {
            Encoder::Bert(bert, _) => bert.params().context_length,
            Encoder::Decoder(model, _) => model.hparams().context_length.min(DECODER_MAX_INPUT),
        }
    }

    fn n_vocab(&self) -> usize {
        match self {
            Encoder::Bert(bert, _) => bert.n_vocab(),
            Encoder::Decoder(model, _) => model.n_vocab(),
        }
    }

    fn is_reranker(&self) -> bool {
        matches!(self, Encoder::Bert(bert, _) if bert.params().pooling == Pooling::Rank)
    }

    fn embed(&mut self, inputs: &[&[u32]]) -> Result<Vec<f32>, ModelError> {
        match self {
            Encoder::Bert(bert, ws) => bert.embed(inputs, ws),
            Encoder::Decoder(model, ws) => {
                let mut out = Vec::new();
                for input in inputs {
                    out.extend(model.embed(input, ws)?);
                }
                Ok(out)
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedderError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("starting the encoder thread: {0}")]
    Thread(std::io::Error),
}

struct Job {
    inputs: Vec<Vec<u32>>,
    reply: oneshot::Sender<Result<Embeddings, SubmitError>>,
}

pub struct EmbedderHandle {
    info: ModelInfo,
    dim: usize,
    reranker: bool,
    tokenizer: Arc<Tokenizer>,
    n_vocab: usize,
    trust_control_tokens: bool,
    jobs: SyncSender<Job>,
    max_queue: usize,
    /// Jobs sent and not yet taken by the encoder thread.
    queued: Arc<AtomicUsize>,
}

impl EmbedderHandle {
    /// Load the encoder in `path` and start its thread; served under the name `id`.
    pub fn load(path: &Path, id: &str, config: EmbedderConfig) -> Result<Self, EmbedderError> {
        let gguf = GgufFile::open(path).map_err(ModelError::from)?;
        let tokenizer = Arc::new(Tokenizer::from_gguf(&gguf).map_err(ModelError::from)?);
        let encoder = Encoder::load(&gguf)?;
        let (dim, context_length) = (encoder.dim(), encoder.context_length());
        let (n_vocab, reranker) = (encoder.n_vocab(), encoder.is_reranker());
        let architecture = gguf
            .require_str("general.architecture")
            .map_err(ModelError::from)?
            .to_string();
        let info = ModelInfo {
            context_length,
            has_chat_template: false,
            architecture,
            ..ModelInfo::describe(path, id)
        };
        let (jobs, rx) = sync_channel(config.max_queue.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let max_batch_tokens = config.max_batch_tokens.max(context_length);
        let thread_queued = queued.clone();
        std::thread::Builder::new()
            .name("ward-embed".into())
            .spawn(move || {
                run(
                    encoder,
                    dim,
                    !reranker,
                    rx,
                    max_batch_tokens,
                    &thread_queued,
                )
            })
            .map_err(EmbedderError::Thread)?;
        Ok(EmbedderHandle {
            info,
            dim,
            reranker,
            tokenizer,
            n_vocab,
            trust_control_tokens: config.trust_control_tokens,
            jobs,
            max_queue: config.max_queue.max(1),
            queued,
        })
    }

    fn tokens(&self, input: EmbedInput) -> Result<Vec<u32>, SubmitError> {
        let context_length = self.info.context_length;
        let ids = match input {
            EmbedInput::Text(text) => self
                .tokenizer
                .encode_caller(&text, true, self.trust_control_tokens, context_length)
                .ok_or(SubmitError::PromptTooLong { context_length })?,
            EmbedInput::Tokens(ids) => ids,
            EmbedInput::Pair(query, document) => self
                .tokenizer
                .encode_pair(&query, &document, self.trust_control_tokens, context_length)
                .ok_or(SubmitError::PromptTooLong { context_length })?,
        };
        if ids.is_empty() {
            return Err(SubmitError::InvalidPrompt {
                message: "an input has no tokens".into(),
                param: "input",
            });
        }
        if ids.len() > context_length {
            return Err(SubmitError::PromptTooLong { context_length });
        }
        if let Some(bad) = ids.iter().find(|&&t| t as usize >= self.n_vocab) {
            return Err(SubmitError::InvalidPrompt {
                message: format!(
                    "token id {bad} is outside the {}-token vocabulary",
                    self.n_vocab
                ),
                param: "input",
            });
        }
        Ok(ids)
    }
}

impl Embedder for EmbedderHandle {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn dimensions(&self) -> usize {
        self.dim
    }

    fn is_reranker(&self) -> bool {
        self.reranker
    }

    fn embed(
        &self,
        request: EmbedRequest,
    ) -> Result<oneshot::Receiver<Result<Embeddings, SubmitError>>, SubmitError> {
        let inputs = request
            .inputs
            .into_iter()
            .map(|i| self.tokens(i))
            .collect::<Result<Vec<_>, _>>()?;
        let (reply, answer) = oneshot::channel();
        self.queued.fetch_add(1, Ordering::SeqCst);
        match self.jobs.try_send(Job { inputs, reply }) {
            Ok(()) => Ok(answer),
            Err(e) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    TrySendError::Full(_) => SubmitError::QueueFull {
                        capacity: self.max_queue,
                    },
                    TrySendError::Disconnected(_) => SubmitError::ShuttingDown,
                })
            }
        }
    }

    fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    fn capacity(&self) -> usize {
        self.max_queue
    }
}

/// The encoder thread: one request at a time, its inputs in passes of at most
/// `max_batch_tokens` tokens. Ends when every handle is gone.
fn run(
    mut encoder: Encoder,
    dim: usize,
    unit_length: bool,
    jobs: Receiver<Job>,
    max_batch_tokens: usize,
    queued: &AtomicUsize,
) {
    for job in jobs {
        queued.fetch_sub(1, Ordering::SeqCst);
        if job.reply.is_closed() {
            continue; // the caller went away while it waited
        }
        let prompt_tokens = job.inputs.iter().map(Vec::len).sum();
        let mut vectors = Vec::with_capacity(job.inputs.len() * dim);
        let mut result = Ok(());
        for pass in passes(&job.inputs, max_batch_tokens) {
            let inputs: Vec<&[u32]> = pass.iter().map(Vec::as_slice).collect();
            match encoder.embed(&inputs) {
                Ok(v) => vectors.extend(v),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let answer = result
            .map(|()| {
                if unit_length {
                    normalize(&mut vectors, dim);
                }
                Embeddings {
                    dim,
                    vectors,
                    prompt_tokens,
                }
            })
            .map_err(|e| SubmitError::InvalidPrompt {
                message: e.to_string(),
                param: "input",
            });
        let _ = job.reply.send(answer);
    }
}

/// Consecutive runs of inputs of at most `max_tokens` tokens together (an input longer than
/// that runs alone).
fn passes(inputs: &[Vec<u32>], max_tokens: usize) -> Vec<&[Vec<u32>]> {
    let mut out = Vec::new();
    let (mut start, mut tokens) = (0, 0);
    for (i, input) in inputs.iter().enumerate() {
        if i > start && tokens + input.len() > max_tokens {
            out.push(&inputs[start..i]);
            (start, tokens) = (i, 0);
        }
        tokens += input.len();
    }
    if start < inputs.len() {
        out.push(&inputs[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_pack_inputs_up_to_the_token_budget() {
        let inputs: Vec<Vec<u32>> = [3, 4, 2, 9, 1].iter().map(|&n| vec![0; n]).collect();
        let lens = |p: Vec<&[Vec<u32>]>| -> Vec<Vec<usize>> {
            p.iter().map(|s| s.iter().map(Vec::len).collect()).collect()
        };
        assert_eq!(lens(passes(&inputs, 9)), [vec![3, 4, 2], vec![9], vec![1]]);
        assert_eq!(
            lens(passes(&inputs, 5)),
            [vec![3], vec![4], vec![2], vec![9], vec![1]]
        );
        assert_eq!(lens(passes(&inputs, 100)), [vec![3, 4, 2, 9, 1]]);
        assert!(passes(&[], 5).is_empty());
    }
}
