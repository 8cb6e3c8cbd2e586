//! Turning GGUF tensors into compute-ready weights, with shape checks.

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QMatMul, QTensor};
use std::sync::Arc;

use candle_core::{Device, Module, Tensor};
use ward_kernels::quant::{matmul, QuantMatrix, WeightType};

use crate::gguf::{GgufError, GgufFile, TensorInfo};
use crate::ModelError;

pub struct WeightLoader<'a> {
    pub gguf: &'a GgufFile,
}

impl<'a> WeightLoader<'a> {
    pub fn info(&self, name: &str, expected: &[usize]) -> Result<&'a TensorInfo, ModelError> {
        let info = self
            .gguf
            .tensor_info(name)
            .ok_or_else(|| GgufError::MissingTensor(name.to_string()))?;
        let want: Vec<u64> = expected.iter().map(|&d| d as u64).collect();
        if info.dims != want {
            return Err(GgufError::WrongShape {
                name: name.to_string(),
                expected: want,
                found: info.dims.clone(),
            }
            .into());
        }
        Ok(info)
    }

    pub fn has(&self, name: &str) -> bool {
        self.gguf.tensor_info(name).is_some()
    }

    /// A tensor in candle's quantized form. `expected` is in GGUF order (row length first).
    pub fn qtensor(&self, name: &str, expected: &[usize]) -> Result<QTensor, ModelError> {
        let info = self.info(name, expected)?;
        let dtype =
            candle_dtype(info.ggml_type.id).ok_or_else(|| ModelError::UnsupportedTensorType {
                name: name.to_string(),
                ggml_type: info.ggml_type.name,
            })?;
        let bytes = self.gguf.tensor_bytes(info);
        // candle reinterprets the bytes as blocks; copy when the file's alignment does not
        // guarantee the alignment of the block type.
        let aligned;
        let bytes = if (bytes.as_ptr() as usize).is_multiple_of(8) {
            bytes
        } else {
            aligned = AlignedBytes::copy_of(bytes);
            aligned.as_slice()
        };
        let dims: Vec<usize> = expected.iter().rev().copied().collect();
        Ok(qtensor_from_ggml(dtype, bytes, dims, &Device::Cpu)?)
    }

    /// A plain f32 vector (norm weights).
    pub fn f32_vec(&self, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
        let q = self.qtensor(name, &[len])?;
        Ok(q.dequantize(&Device::Cpu)?.to_vec1::<f32>()?)
    }

    pub fn linear(&self, name: &str, in_dim: usize, out_dim: usize) -> Result<Linear, ModelError> {
        Linear::new(
            Arc::new(self.qtensor(name, &[in_dim, out_dim])?),
            in_dim,
            out_dim,
        )
    }
}

/// The candle block type for a ggml type id, where candle can compute with it.
fn candle_dtype(id: u32) -> Option<GgmlDType> {
    Some(match id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

/// Bytes copied into 8-byte-aligned storage.
struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    fn copy_of(bytes: &[u8]) -> AlignedBytes {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: `words` owns at least `bytes.len()` bytes and u8 has no alignment requirement.
        let dst =
            unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), bytes.len()) };
        dst.copy_from_slice(bytes);
        AlignedBytes {
            words,
            len: bytes.len(),
        }
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

/// `y = x · Wᵀ` with a (possibly quantized) weight; quantized weights quantize the activations
/// to their Q8 partner type first, as llama.cpp does.
pub struct Linear {
    w: Matmul,
    pub in_dim: usize,
    pub out_dim: usize,
}

/// Ward's own kernels where it has them for the weight type, candle's otherwise (until every
/// type has moved over).
enum Matmul {
    Ward(QuantMatrix),
    Candle(QMatMul),
}

impl Linear {
    pub fn new(w: Arc<QTensor>, in_dim: usize, out_dim: usize) -> Result<Linear, ModelError> {
        // Q8_0 stays on candle for now: its kernel is already AVX2 there, and Ward's (which
        // rounds activations exactly as llama.cpp does) moves one Gemma logit past the fixture
        // bound; to be settled with the rest of issue #4.
        let ward_type = match w.dtype() {
            GgmlDType::Q4_1 => Some(WeightType::Q4_1),
            _ => None,
        };
        let w = match ward_type {
            Some(ty) if in_dim.is_multiple_of(ward_kernels::quant::BLOCK) => Matmul::Ward(
                QuantMatrix::new(ty, w.data()?.into_owned(), out_dim, in_dim)
                    .map_err(candle_core::Error::Msg)?,
            ),
            _ => Matmul::Candle(QMatMul::from_arc(w)?),
        };
        Ok(Linear { w, in_dim, out_dim })
    }

    /// `x` is `[n_tok][in_dim]`; returns `[n_tok][out_dim]`.
    pub fn forward(&self, x: &[f32]) -> Result<Vec<f32>, ModelError> {
        match &self.w {
            Matmul::Ward(w) => Ok(matmul(w, x)),
            Matmul::Candle(w) => {
                let n_tok = x.len() / self.in_dim;
                let t = Tensor::from_slice(x, (n_tok, self.in_dim), &Device::Cpu)?;
                Ok(w.forward(&t)?.flatten_all()?.to_vec1::<f32>()?)
            }
        }
    }
}

/// Token embeddings kept quantized; only the looked-up rows are dequantized.
pub struct Embedding {
    table: Arc<QTensor>,
    pub dim: usize,
}

impl Embedding {
    pub fn new(table: Arc<QTensor>, dim: usize) -> Embedding {
        Embedding { table, dim }
    }

    pub fn n_vocab(&self) -> usize {
        self.table.shape().dims()[0]
    }

    pub fn lookup(&self, tokens: &[u32]) -> Result<Vec<f32>, ModelError> {
        let n_vocab = self.n_vocab();
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(ModelError::TokenOutOfRange {
                token: bad,
                n_vocab,
            });
        }
        let ids = Tensor::from_slice(tokens, tokens.len(), &Device::Cpu)?;
        Ok(self
            .table
            .embedding(&ids)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }

    /// The table itself, to share as a tied output projection.
    pub fn table(&self) -> Arc<QTensor> {
        self.table.clone()
    }
}
