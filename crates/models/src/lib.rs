//! ward-models: everything about a model file and its maths.
//!
//! Owns GGUF reading and validation, typed hyper-parameters, the tokenizer and chat template
//! described by the file, the model registry, shared layers and one file per architecture
//! behind the [`CausalLm`] trait. Depends on ward-kernels (all the arithmetic); must
//! not depend on the engine, server or CLI.

pub mod arch;
pub mod cache;
pub mod gguf;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod hf;
pub mod hparams;
pub mod layers;
pub mod prompt;
pub mod registry;
pub mod synthetic;
pub mod template;
pub mod tokenizer;
pub mod weights;
pub mod workspace;

use std::path::{Path, PathBuf};

pub use arch::{BatchItem, CausalLm, Logits};
pub use cache::{KvCache, KvPool, SeqKv};
pub use hparams::{Arch, HParams};
pub use prompt::ChatPrompt;
pub use template::{
    ChatInputs, ChatMessage, ChatTemplate, GenerationPrompt, TemplateError, ThinkingFormat,
    THINKING_FORMATS,
};
pub use tokenizer::{partial_marker, StreamDecoder, Tokenizer, TokenizerError};
pub use workspace::Workspace;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] gguf::GgufError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    #[error(transparent)]
    Checkpoint(#[from] hf::HfError),
    #[error("tensor {name:?} has type {ggml_type}, which Ward cannot compute with yet")]
    UnsupportedTensorType {
        name: String,
        ggml_type: &'static str,
    },
    #[error("token id {token} is outside the {n_vocab}-token vocabulary")]
    TokenOutOfRange { token: u32, n_vocab: usize },
    #[error("no tokens to process")]
    EmptyInput,
    #[error("the prompt has more than {limit} tokens")]
    PromptTooLong { limit: usize },
    #[error("context full: {have} tokens in the cache + {adding} new exceeds the limit of {max}")]
    ContextFull {
        have: usize,
        adding: usize,
        max: usize,
    },
    #[error(
        "the KV cache's blocks do not hold {positions} positions ({blocks} blocks, of a pool \
         of {pool})"
    )]
    KvBlocks {
        positions: usize,
        blocks: usize,
        pool: usize,
    },
    #[error("tensor {name:?}: {source}")]
    BadTensor {
        name: String,
        #[source]
        source: ward_kernels::quant::MatrixError,
    },
    /// Embeddings asked of a generative model (no `<arch>.pooling_type`).
    #[error("this {arch} model generates text; it has no pooling type for embeddings")]
    NotAnEmbeddingModel { arch: String },
    /// The GPU failed, or cannot run this model.
    #[error("GPU: {0}")]
    Gpu(#[from] GpuError),
}

/// Why a model does not run on the GPU.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// The CUDA driver's own error (its code and description).
    #[cfg(feature = "cuda")]
    #[error("CUDA: {0}")]
    Driver(#[from] cudarc::driver::DriverError),
    /// The model asks for something the GPU kernels lack (named).
    #[error("{0} is not implemented on the GPU yet; run this model on the CPU")]
    Unsupported(String),
    #[error("embedding models run on the CPU (serve them without --gpu)")]
    Embeddings,
    #[error("this build of Ward has no CUDA support (build with --features cuda)")]
    NotBuilt,
}

/// A GGUF file, or a Hugging Face directory converted as llama.cpp's converter would, with
/// `options`' adapters merged and its weight matrices in their type (Q8_0 unless asked
/// otherwise).
pub fn open_model(path: &Path, options: &hf::LoadOptions) -> Result<gguf::GgufFile, ModelError> {
    if hf::HfModel::is_checkpoint(path) {
        let q = options
            .quantize
            .unwrap_or(hf::Quantize::To(ward_kernels::quant::WeightType::Q8_0));
        return Ok(hf::HfModel::open_merged(path, q, &options.lora)?.into_gguf());
    }
    if !options.is_default() {
        return Err(hf::HfError::File {
            path: path.to_path_buf(),
            reason: "--quantize and --lora apply to a Hugging Face model directory; a GGUF \
                     file keeps the weights and types it was written with"
                .into(),
        }
        .into());
    }
    Ok(gguf::GgufFile::open(path)?)
}

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// An NVIDIA GPU, by ordinal (builds with the `cuda` feature).
    Cuda(usize),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "CPU"),
            Device::Cuda(n) => write!(f, "GPU {n}"),
        }
    }
}

impl Device {
    /// Refuse, by name, a model whose description asks for what this device's kernels have
    /// not got. The GPU path has been checked on llama and gemma3 without biases or RoPE
    /// frequency factors; anything else runs on the CPU.
    pub fn check_supports(self, hp: &HParams) -> Result<(), ModelError> {
        if self == Device::Cpu {
            return Ok(());
        }
        let lacking = if !matches!(hp.arch, Arch::Llama | Arch::Gemma3) {
            format!("the {} architecture", hp.arch.name())
        } else if hp.qkv_bias {
            "Q/K/V biases".into()
        } else if hp.rope_freq_factors.is_some() {
            "RoPE frequency factors (rope_freqs.weight)".into()
        } else {
            return Ok(());
        };
        Err(GpuError::Unsupported(lacking).into())
    }
}

/// A model ready to run: weights, tokenizer and chat template, from one GGUF file.
pub struct LoadedModel {
    pub path: PathBuf,
    pub model: Box<dyn CausalLm>,
    pub tokenizer: Tokenizer,
    /// `None` when neither the file nor the registry supplies a template (base models).
    pub template: Option<ChatTemplate>,
    /// Callers' text may contain control tokens (`ward serve --allow-control-tokens`, for
    /// trusted callers only). Off: a caller's text is read as plain text, and only the
    /// template's markup makes control tokens (see [`tokenizer::caller_text`]).
    pub trust_control_tokens: bool,
    /// Which kernels compute it: the CPU's kernel tier (`ward_kernels::tier`, e.g. "avx512")
    /// or "cuda".
    pub kernels: &'static str,
}

impl LoadedModel {
    /// Load `path` for the CPU; `template_override` (Jinja source) replaces the file's own
    /// chat template.
    pub fn load(path: &Path, template_override: Option<&str>) -> Result<LoadedModel, ModelError> {
        LoadedModel::load_on(path, template_override, Device::Cpu)
    }

    /// Load `path` to run on `device`.
    pub fn load_on(
        path: &Path,
        template_override: Option<&str>,
        device: Device,
    ) -> Result<LoadedModel, ModelError> {
        LoadedModel::load_with(path, template_override, device, None, &Default::default())
    }

    /// [`LoadedModel::load_on`], with the chat template rendered by `template_worker`
    /// processes (`ward serve` runs its own binary, see [`ChatTemplate::new_apart`]) and a
    /// Hugging Face directory loaded as `checkpoint` says.
    pub fn load_with(
        path: &Path,
        template_override: Option<&str>,
        device: Device,
        template_worker: Option<&Path>,
        checkpoint: &hf::LoadOptions,
    ) -> Result<LoadedModel, ModelError> {
        let gguf = open_model(path, checkpoint)?;
        let tokenizer = Tokenizer::from_gguf(&gguf)?;
        let kernels = match device {
            Device::Cpu => ward_kernels::tier::tier().name(),
            Device::Cuda(_) => "cuda",
        };
        let model: Box<dyn CausalLm> = match device {
            Device::Cpu => arch::load(&gguf)?,
            #[cfg(feature = "cuda")]
            Device::Cuda(ordinal) => Box::new(gpu::GpuModel::load(&gguf, ordinal)?),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => return Err(GpuError::NotBuilt.into()),
        };
        if tokenizer.vocab().len() != model.n_vocab() {
            return Err(gguf::GgufError::InvalidValue {
                key: "tokenizer.ggml.tokens".into(),
                value: tokenizer.vocab().len().to_string(),
                reason: format!(
                    "vocabulary size differs from the embedding table's {}",
                    model.n_vocab()
                ),
            }
            .into());
        }
        let source = match template_override {
            Some(t) => Some(t),
            None => gguf.get_str("tokenizer.chat_template")?,
        };
        let token_text = |id: Option<u32>| {
            id.and_then(|i| tokenizer.vocab().text(i))
                .unwrap_or("")
                .to_string()
        };
        let (bos, eos) = (token_text(tokenizer.bos), token_text(tokenizer.eos));
        let template = source
            .map(|s| match template_worker {
                Some(exe) => ChatTemplate::new_apart(s, &bos, &eos, exe),
                None => ChatTemplate::new(s, &bos, &eos),
            })
            .transpose()?;
        Ok(LoadedModel {
            path: path.to_path_buf(),
            model,
            tokenizer,
            template,
            trust_control_tokens: false,
            kernels,
        })
    }

    /// A caller's plain-text prompt (completions, `/tokenize`) of at most `limit` tokens:
    /// control tokens only if trusted, BOS as the model's metadata asks.
    pub fn encode_caller_text(&self, text: &str, limit: usize) -> Result<Vec<u32>, ModelError> {
        self.tokenizer
            .encode_caller(text, true, self.trust_control_tokens, limit)
            .ok_or(ModelError::PromptTooLong { limit })
    }

    /// Token ids of a chat conversation rendered through the template, ready for generation.
    pub fn chat_prompt(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, ModelError> {
        self.chat_prompt_with_tools(messages, None)
    }

    /// `chat_prompt` offering the model OpenAI-style `tools`: through the template where it
    /// renders them, else described in a system message asking for `<tool_call>` blocks (the
    /// Hermes format, which Qwen, SmolLM and many fine-tunes were trained on).
    pub fn chat_prompt_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
    ) -> Result<Vec<u32>, ModelError> {
        let inputs = ChatInputs {
            tools,
            ..ChatInputs::default()
        };
        Ok(self
            .chat_generation_prompt(messages, &inputs, usize::MAX)?
            .tokens)
    }

    /// A conversation's prompt for generation, of at most `limit` tokens (see
    /// [`prompt::chat_prompt`]).
    pub fn chat_generation_prompt(
        &self,
        messages: &[ChatMessage],
        inputs: &ChatInputs,
        limit: usize,
    ) -> Result<ChatPrompt, ModelError> {
        let template = self.template.as_ref().ok_or(TemplateError::Missing)?;
        prompt::chat_prompt(
            &self.tokenizer,
            template,
            messages,
            inputs,
            self.trust_control_tokens,
            limit,
        )
    }
}
