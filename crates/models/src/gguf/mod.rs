//! GGUF files: memory-mapped, validated once, then read through typed accessors.

mod reader;
mod types;
mod value;
pub mod writer;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use reader::{parse, GgufHeader, TensorInfo};
pub use types::GgmlType;
pub use value::{Array, Value, ValueType};

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("file is truncated: {what} runs past the end of the file (at byte {offset})")]
    Truncated { what: String, offset: u64 },
    #[error("not a GGUF file: magic bytes are {0:02x?}, expected \"GGUF\"")]
    BadMagic([u8; 4]),
    #[error("unsupported GGUF version {0} (supported: 2 and 3)")]
    UnsupportedVersion(u32),
    #[error(
        "{what}: count {count} at byte {offset} is larger than the rest of the file could hold"
    )]
    CountTooLarge {
        what: String,
        count: u64,
        offset: u64,
    },
    #[error("{what}: string at byte {offset} is not valid UTF-8")]
    InvalidUtf8 { what: String, offset: u64 },
    #[error("{what}: unknown metadata value type {raw} at byte {offset}")]
    UnknownValueType { what: String, raw: u32, offset: u64 },
    #[error("metadata {key}: boolean byte {byte} at byte {offset} is neither 0 nor 1")]
    InvalidBool { key: String, byte: u8, offset: u64 },
    #[error("metadata {key}: nested arrays are not supported")]
    NestedArray { key: String },
    #[error("metadata key {0:?} appears twice")]
    DuplicateKey(String),
    #[error("general.alignment is {0}; it must be a non-zero power of two")]
    BadAlignment(u64),
    #[error("tensor {name:?} has {n_dims} dimensions; 1 to 4 are allowed")]
    BadDims { name: String, n_dims: u32 },
    #[error("tensor {name:?} has unknown ggml type {raw}")]
    UnknownTensorType { name: String, raw: u32 },
    #[error("tensor {name:?} offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        name: String,
        offset: u64,
        alignment: u64,
    },
    #[error("tensor {name:?} has invalid shape {dims:?} (zero or overflowing element count)")]
    BadShape { name: String, dims: Vec<u64> },
    #[error("tensor {name:?}: row length {ne0} is not a whole number of {ggml_type} blocks")]
    NotWholeBlocks {
        name: String,
        ggml_type: &'static str,
        ne0: u64,
    },
    #[error("tensor {0:?} appears twice")]
    DuplicateTensor(String),
    #[error("tensor {name:?} (offset {offset}, {n_bytes} bytes) lies outside the {data_len}-byte data section")]
    TensorOutOfBounds {
        name: String,
        offset: u64,
        n_bytes: u64,
        data_len: u64,
    },
    #[error("tensors {0:?} and {1:?} overlap")]
    OverlappingTensors(String, String),
    #[error("required metadata key {0:?} is missing")]
    MissingKey(String),
    #[error("metadata {key} has type {found}, expected {expected}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("metadata {key} = {value} is invalid: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("required tensor {0:?} is missing")]
    MissingTensor(String),
    #[error("tensor {name:?} has shape {found:?}, expected {expected:?}")]
    WrongShape {
        name: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },
}

/// Storage behind a GGUF file: a read-only memory map, bytes owned in memory (tests), or a
/// source that makes each tensor's bytes when asked (a Hugging Face checkpoint, converted as
/// it is loaded).
enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
    Source(Box<dyn TensorSource>),
}

/// Tensor bytes made on demand, in the GGML type and shape the header gives them.
pub trait TensorSource: Send + Sync {
    fn tensor_bytes(&self, name: &str) -> Cow<'_, [u8]>;
}

/// A validated GGUF file. The tensor bytes stay in the map until a model copies what it needs.
pub struct GgufFile {
    bytes: Bytes,
    pub header: GgufHeader,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process. Ward never writes model files;
        // an external writer truncating the file underneath would be an operator error that
        // the OS reports as SIGBUS, which is the same contract llama.cpp and candle accept.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let header = parse(&mmap)?;
        Ok(GgufFile {
            bytes: Bytes::Mapped(mmap),
            header,
        })
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        let header = parse(&bytes)?;
        Ok(GgufFile {
            bytes: Bytes::Owned(bytes),
            header,
        })
    }

    /// A file made by `source`, described by `header` (whose offsets only lay out the file
    /// the source would write).
    pub fn from_source(header: GgufHeader, source: Box<dyn TensorSource>) -> GgufFile {
        GgufFile {
            bytes: Bytes::Source(source),
            header,
        }
    }

    pub fn metadata(&self) -> &BTreeMap<String, Value> {
        &self.header.metadata
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.header.tensors.iter().find(|t| t.name == name)
    }

    /// The raw bytes of one tensor (bounds were checked when the file was opened); made on
    /// the spot by a tensor source.
    pub fn tensor_bytes(&self, info: &TensorInfo) -> Cow<'_, [u8]> {
        let start = (self.header.data_offset + info.offset) as usize;
        let all: &[u8] = match &self.bytes {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
            Bytes::Source(s) => return s.tensor_bytes(&info.name),
        };
        Cow::Borrowed(&all[start..start + info.n_bytes as usize])
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.header.metadata.get(key)
    }

    pub fn get_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(wrong_type(key, "string", v)),
        }
    }

    pub fn require_str(&self, key: &str) -> Result<&str, GgufError> {
        self.get_str(key)?
            .ok_or_else(|| GgufError::MissingKey(key.to_string()))
    }

    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, GgufError> {
        self.get(key)
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| wrong_type(key, "unsigned integer", v))
            })
            .transpose()
    }

    pub fn require_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.get_u64(key)?
            .ok_or_else(|| GgufError::MissingKey(key.to_string()))
    }

    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, GgufError> {
        self.get(key)
            .map(|v| v.as_f64().ok_or_else(|| wrong_type(key, "number", v)))
            .transpose()
    }

    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(wrong_type(key, "bool", v)),
        }
    }

    pub fn get_array(&self, key: &str) -> Result<Option<&Array>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(wrong_type(key, "array", v)),
        }
    }
}

fn wrong_type(key: &str, expected: &'static str, found: &Value) -> GgufError {
    GgufError::WrongType {
        key: key.to_string(),
        expected,
        found: found.type_name(),
    }
}
