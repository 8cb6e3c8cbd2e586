//! Hugging Face model directories, as training writes them (issue #21): `config.json`, the
//! weights in safetensors, `tokenizer.json` and `tokenizer_config.json`. A directory becomes
//! the GGUF llama.cpp's `convert_hf_to_gguf.py` would write for it (the same metadata, tensor
//! names, types and order), held as a [`GgufFile`] whose tensors are converted from the memory
//! map when the model asks for them: loading a checkpoint runs the same validation and the
//! same model code as loading a GGUF file, and holds no second full-size copy. `ward convert`
//! writes that GGUF out ([`HfModel::write_gguf`]).

pub mod checkpoint;
mod config;
pub mod lora;
pub mod recipe;
mod sentencepiece;
mod tensors;
mod vocab;

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};
use ward_kernels::quant::WeightType;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use config::Llama3Scaling;
pub use recipe::Mix;
pub use tensors::Planned;

use crate::gguf::writer::{write_header, TensorInfo as InfoToWrite, ALIGN};
use crate::gguf::{GgmlType, GgufFile, GgufHeader, TensorInfo, TensorSource, Value};

#[derive(Debug, thiserror::Error)]
pub enum HfError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("config.json: {field}: {reason}")]
    Config { field: String, reason: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("checkpoint tensor {name:?}: {reason}")]
    Tensor { name: String, reason: String },
    #[error("LoRA adapter {dir}: {reason}")]
    Adapter { dir: PathBuf, reason: String },
}

/// What the checkpoint's weight matrices become (`--quantize`, `ward convert --type`). Norms and
/// biases stay F32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantize {
    /// As stored (BF16, F16 or F32).
    None,
    /// One type, as the converter's `--outtype` writes it (F32, F16, BF16, Q8_0).
    To(WeightType),
    /// A llama-quantize mix (Q4_K_M, …): the converter's output quantized as llama-quantize
    /// would.
    Mix(Mix),
}

/// The converter's own output types.
const OUTTYPES: [WeightType; 4] = [
    WeightType::F32,
    WeightType::F16,
    WeightType::BF16,
    WeightType::Q8_0,
];

impl Quantize {
    /// `none`, one of the converter's types (`f32`, `f16`, `bf16`, `q8_0`), or one of
    /// llama-quantize's mixes (`q4_k_m`, `q6_k`, …; `q4_k` is `q4_k_m`).
    pub fn parse(s: &str) -> Result<Quantize, String> {
        if s == "none" {
            return Ok(Quantize::None);
        }
        if let Some(mix) = Mix::parse(s) {
            return Ok(Quantize::Mix(mix));
        }
        OUTTYPES
            .into_iter()
            .find(|t| format!("{t:?}").eq_ignore_ascii_case(s))
            .map(Quantize::To)
            .ok_or_else(|| {
                let names: Vec<String> = OUTTYPES
                    .iter()
                    .map(|t| format!("{t:?}").to_lowercase())
                    .chain(Mix::names().map(String::from))
                    .collect();
                format!(
                    "{s:?} is not a type Ward quantizes to (none, {})",
                    names.join(", ")
                )
            })
    }
}

/// How a Hugging Face directory is loaded: `--quantize` and `--lora`.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Default: Q8_0.
    pub quantize: Option<Quantize>,
    /// Adapters merged at load: directory and the operator's scale.
    pub lora: Vec<(PathBuf, f32)>,
}

impl LoadOptions {
    pub fn is_default(&self) -> bool {
        self.quantize.is_none() && self.lora.is_empty()
    }
}

/// A Hugging Face directory as the GGUF model it converts to.
pub struct HfModel {
    pub dir: PathBuf,
    /// GGUF metadata, in the converter's order.
    pub metadata: Vec<(String, Value)>,
    /// The tensors, in the converter's order.
    pub tensors: Vec<Planned>,
    /// The LoRA adapters merged into the weights, in order.
    pub adapters: Vec<lora::Adapter>,
    checkpoint: Checkpoint,
    by_name: HashMap<String, usize>,
}

/// Files of a directory are read whole only below this size (config and tokenizer files; a
/// real tokenizer.json is 7–17 MB).
const MAX_JSON_BYTES: u64 = 256 << 20;

fn read_small(path: &Path) -> Result<Option<Vec<u8>>, HfError> {
    let io = |e: std::io::Error| HfError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
        Ok(m) if m.len() > MAX_JSON_BYTES => {
            return Err(HfError::File {
                path: path.to_path_buf(),
                reason: format!("{} bytes is too large for this file", m.len()),
            })
        }
        Ok(_) => {}
    }
    std::fs::read(path).map(Some).map_err(io)
}

fn json_object(path: &Path) -> Result<Option<Map<String, Json>>, HfError> {
    let Some(bytes) = read_small(path)? else {
        return Ok(None);
    };
    match serde_json::from_slice(&bytes) {
        Ok(Json::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(HfError::File {
            path: path.to_path_buf(),
            reason: "not a JSON object".into(),
        }),
        Err(e) => Err(HfError::File {
            path: path.to_path_buf(),
            reason: format!("not valid JSON: {e}"),
        }),
    }
}

impl HfModel {
    /// Whether `path` is a directory to load as a checkpoint.
    pub fn is_checkpoint(path: &Path) -> bool {
        path.is_dir()
    }

    pub fn open(dir: &Path, quantize: Quantize) -> Result<HfModel, HfError> {
        HfModel::open_merged(dir, quantize, &[])
    }

    /// The model with LoRA adapters (directory, operator's scale) merged into its weights; it
    /// is then named after them.
    pub fn open_merged(
        dir: &Path,
        quantize: Quantize,
        loras: &[(PathBuf, f32)],
    ) -> Result<HfModel, HfError> {
        let need = |name: &str| -> Result<Map<String, Json>, HfError> {
            json_object(&dir.join(name))?.ok_or_else(|| HfError::File {
                path: dir.join(name),
                reason: "missing: a Hugging Face model directory has one".into(),
            })
        };
        let config_json = need("config.json")?;
        let cfg = config::read(&config_json)?;
        let checkpoint = Checkpoint::open(dir)?;
        let adapters = loras
            .iter()
            .map(|(d, scale)| lora::Adapter::open(d, *scale, &checkpoint))
            .collect::<Result<Vec<_>, _>>()?;
        let tensors = tensors::plan(&checkpoint, &cfg, quantize, &adapters)?;

        let tokenizer_json = read_small(&dir.join("tokenizer.json"))?;
        let tokenizer_model = read_small(&dir.join("tokenizer.model"))?;
        let chat_template_file = read_small(&dir.join("chat_template.jinja"))?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let tokenizer = vocab::metadata(&vocab::TokenizerFiles {
            arch: cfg.arch,
            tokenizer_json: tokenizer_json.as_deref(),
            tokenizer_model: tokenizer_model.as_deref(),
            tokenizer_config: json_object(&dir.join("tokenizer_config.json"))?.as_ref(),
            chat_template_file,
            config: &config_json,
            n_vocab: cfg.n_vocab,
        })?;
        let generation = json_object(&dir.join("generation_config.json"))?.unwrap_or_default();

        let n_params: u64 = tensors.iter().map(|t| t.dims.iter().product::<u64>()).sum();
        let name = match adapters.is_empty() {
            true => dir_name(dir),
            false => adapters
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join("+"),
        };
        let mut metadata = vec![
            (
                "general.architecture".to_string(),
                Value::String(cfg.arch.name().into()),
            ),
            ("general.type".into(), Value::String("model".into())),
        ];
        metadata.extend(config::sampling(&generation));
        metadata.push(("general.name".into(), Value::String(name)));
        metadata.push((
            "general.size_label".into(),
            Value::String(size_label(n_params)),
        ));
        metadata.extend(cfg.hparams.iter().cloned());
        let version = ("general.quantization_version".to_string(), Value::U32(2));
        if let Quantize::Mix(mix) = quantize {
            // llama-quantize sets these two again on the converter's file, which moves them
            // to the end.
            metadata.extend(config::trailing(&cfg));
            metadata.extend(tokenizer);
            metadata.push(version);
            metadata.push(("general.file_type".into(), Value::U32(mix.file_type())));
        } else {
            metadata.push(("general.file_type".into(), Value::U32(file_type(&tensors))));
            metadata.extend(config::trailing(&cfg));
            metadata.push(version);
            metadata.extend(tokenizer);
        }

        let by_name = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(HfModel {
            dir: dir.to_path_buf(),
            metadata,
            tensors,
            adapters,
            checkpoint,
            by_name,
        })
    }

    /// The header of the GGUF this model converts to, and where each tensor's data goes.
    fn header(&self) -> (Vec<u8>, Vec<TensorInfo>) {
        let metadata: Vec<(&str, Value)> = self
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let dims: Vec<&[u64]> = self.tensors.iter().map(|t| t.dims.as_slice()).collect();
        let infos: Vec<InfoToWrite> = self
            .tensors
            .iter()
            .zip(&dims)
            .map(|(t, d)| InfoToWrite {
                name: &t.name,
                dims: d,
                ggml_type: ggml_type(t.ty),
                bytes: t.n_bytes(),
            })
            .collect();
        let bytes = write_header(&metadata, &infos);
        let mut offset = 0u64;
        let placed = self
            .tensors
            .iter()
            .map(|t| {
                let info = TensorInfo {
                    name: t.name.clone(),
                    dims: t.dims.clone(),
                    ggml_type: ggml_type(t.ty),
                    offset,
                    n_bytes: t.n_bytes() as u64,
                };
                offset += (t.n_bytes() as u64).div_ceil(ALIGN as u64) * ALIGN as u64;
                info
            })
            .collect();
        (bytes, placed)
    }

    /// The model as a GGUF file whose tensors are converted when they are read.
    pub fn into_gguf(self) -> GgufFile {
        let (bytes, tensors) = self.header();
        let header = GgufHeader {
            version: 3,
            metadata: self.metadata.iter().cloned().collect(),
            tensors,
            alignment: ALIGN as u64,
            data_offset: bytes.len() as u64,
        };
        GgufFile::from_source(header, Box::new(self))
    }

    /// Write the GGUF file, one tensor at a time (`ward convert`).
    pub fn write_gguf(&self, out: &mut impl Write) -> std::io::Result<()> {
        let (header, _) = self.header();
        out.write_all(&header)?;
        for t in &self.tensors {
            let bytes = t.bytes(&self.checkpoint, &self.adapters);
            out.write_all(&bytes)?;
            out.write_all(&[0u8; ALIGN][..bytes.len().next_multiple_of(ALIGN) - bytes.len()])?;
        }
        out.flush()
    }
}

impl TensorSource for HfModel {
    fn tensor_bytes(&self, name: &str) -> Cow<'_, [u8]> {
        let i = self.by_name[name];
        self.tensors[i].bytes(&self.checkpoint, &self.adapters)
    }
}

/// The files of a model directory Ward reads (and so what identifies the model): the config,
/// tokenizer and template files present, and the weights (`model.safetensors`, or the index
/// and the shards it names), sorted by name; an adapter's config and weights.
pub fn files_read(dir: &Path) -> std::io::Result<Vec<String>> {
    if dir.join("adapter_config.json").is_file() {
        return Ok(vec![
            "adapter_config.json".into(),
            "adapter_model.safetensors".into(),
        ]);
    }
    let mut names: Vec<String> = [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer.model",
        "tokenizer_config.json",
        "chat_template.jinja",
        "model.safetensors",
        "model.safetensors.index.json",
    ]
    .into_iter()
    .filter(|n| dir.join(n).is_file())
    .map(String::from)
    .collect();
    names.extend(
        Checkpoint::open(dir)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?
            .shard_files()
            .filter(|f| *f != "model.safetensors")
            .map(String::from),
    );
    names.sort();
    Ok(names)
}

/// A directory's own name (what a model or adapter is called).
pub fn dir_name(dir: &Path) -> String {
    dir.canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into())
}

fn ggml_type(ty: WeightType) -> GgmlType {
    GgmlType::from_id(ty.ggml_id()).expect("Ward's weight types are GGML types")
}

/// `general.file_type` (llama.cpp's `llama_ftype`) of the type most matrices have.
fn file_type(tensors: &[Planned]) -> u32 {
    let mut counts: HashMap<WeightType, usize> = HashMap::new();
    for t in tensors.iter().filter(|t| t.dims.len() == 2) {
        *counts.entry(t.ty).or_default() += 1;
    }
    match counts.into_iter().max_by_key(|&(_, n)| n).map(|(t, _)| t) {
        Some(WeightType::F16) => 1,
        Some(WeightType::Q8_0) => 7,
        Some(WeightType::BF16) => 32,
        _ => 0,
    }
}

/// gguf-py's `size_label`: the parameter count with two significant digits at least.
fn size_label(n: u64) -> String {
    let n = n as f64;
    let (scaled, suffix) = if n > 1e12 {
        (n * 1e-12, "T")
    } else if n > 1e9 {
        (n * 1e-9, "B")
    } else if n > 1e6 {
        (n * 1e-6, "M")
    } else {
        (n * 1e-3, "K")
    };
    let digits = format!("{}", scaled.round_ties_even() as u64)
        .trim_start_matches('0')
        .len();
    format!(
        "{scaled:.prec$}{suffix}",
        prec = 2usize.saturating_sub(digits)
    )
}

#[cfg(test)]
mod tests;
