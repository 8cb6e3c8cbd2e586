//! Turning GGUF tensors into compute-ready weights, with shape and type checks. Weights are
//! copied out of the file once, into Ward's matrices, in the file's own block format: the tiled
//! tiers build their tiles straight from the file's mapped bytes.

use std::sync::Arc;

use ward_kernels::activation::Activation;
use ward_kernels::norm::RmsNorm;
use ward_kernels::quant::{matmul_gated, matmul_normed, QuantMatrix, WeightType, GROUP};

use crate::gguf::{GgufError, GgufFile, TensorInfo};
use crate::workspace::sized;
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

    /// A `rows × cols` matrix (GGUF dims `[cols, rows]`: row length first).
    pub fn matrix(&self, name: &str, cols: usize, rows: usize) -> Result<QuantMatrix, ModelError> {
        self.load(name, &[cols, rows], cols, rows)
    }

    /// A plain f32 vector (norm weights), in whatever format the file stores it.
    pub fn f32_vec(&self, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
        let m = self.load(name, &[len], len, 1)?;
        let mut out = vec![0.0; len];
        m.dequantize_row(0, &mut out);
        Ok(out)
    }

    pub fn linear(&self, name: &str, in_dim: usize, out_dim: usize) -> Result<Linear, ModelError> {
        Ok(Linear::new(Arc::new(self.matrix(name, in_dim, out_dim)?)))
    }

    /// Projections of one input (`names[i]` with `out_dims[i]` outputs), fused into one matrix
    /// when the file stores them in the same format.
    pub fn projections(
        &self,
        names: &[String],
        in_dim: usize,
        out_dims: &[usize],
    ) -> Result<Projections, ModelError> {
        let infos = names
            .iter()
            .zip(out_dims)
            .map(|(n, &o)| self.info(n, &[in_dim, o]))
            .collect::<Result<Vec<_>, _>>()?;
        let same_type = infos
            .iter()
            .all(|i| i.ggml_type.id == infos[0].ggml_type.id);
        if !same_type {
            let parts = names
                .iter()
                .zip(out_dims)
                .map(|(n, &o)| self.linear(n, in_dim, o))
                .collect::<Result<_, _>>()?;
            return Ok(Projections::Separate(parts));
        }
        let ty = weight_type(&names[0], infos[0])?;
        let bytes: Vec<_> = infos.iter().map(|i| self.gguf.tensor_bytes(i)).collect();
        let parts: Vec<_> = bytes
            .iter()
            .map(|b| &b[..])
            .zip(out_dims.iter().copied())
            .collect();
        let m =
            QuantMatrix::stacked(ty, &parts, in_dim).map_err(|source| ModelError::BadTensor {
                name: names.join("+"),
                source,
            })?;
        Ok(Projections::Fused {
            all: Linear::new(Arc::new(m)),
            out_dims: out_dims.to_vec(),
        })
    }

    /// The gate and up projections of a gated feed-forward block (`n_ff` outputs each), as one
    /// matrix of paired row groups where the file stores them in the same format and `n_ff` is a
    /// whole number of groups, so the activation is applied as the outputs are computed.
    pub fn gate_up(
        &self,
        gate: &str,
        up: &str,
        in_dim: usize,
        n_ff: usize,
    ) -> Result<GateUp, ModelError> {
        let (gi, ui) = (
            self.info(gate, &[in_dim, n_ff])?,
            self.info(up, &[in_dim, n_ff])?,
        );
        if gi.ggml_type.id != ui.ggml_type.id || !n_ff.is_multiple_of(GROUP) {
            return Ok(GateUp::Separate {
                gate: self.linear(gate, in_dim, n_ff)?,
                up: self.linear(up, in_dim, n_ff)?,
            });
        }
        let ty = weight_type(gate, gi)?;
        let (g, u) = (self.gguf.tensor_bytes(gi), self.gguf.tensor_bytes(ui));
        let m = QuantMatrix::paired(ty, &g, &u, n_ff, in_dim).map_err(|source| {
            ModelError::BadTensor {
                name: format!("{gate}+{up}"),
                source,
            }
        })?;
        Ok(GateUp::Paired(m))
    }

    fn load(
        &self,
        name: &str,
        dims: &[usize],
        cols: usize,
        rows: usize,
    ) -> Result<QuantMatrix, ModelError> {
        let info = self.info(name, dims)?;
        let ty = weight_type(name, info)?;
        let bytes = self.gguf.tensor_bytes(info);
        QuantMatrix::new(ty, &bytes, rows, cols).map_err(|source| ModelError::BadTensor {
            name: name.to_string(),
            source,
        })
    }
}

fn weight_type(name: &str, info: &TensorInfo) -> Result<WeightType, ModelError> {
    WeightType::from_ggml_id(info.ggml_type.id).ok_or_else(|| ModelError::UnsupportedTensorType {
        name: name.to_string(),
        ggml_type: info.ggml_type.name,
    })
}

/// `y = x · Wᵀ`; quantized weights convert the activations to their 8-bit partner format
/// first, as llama.cpp does. Shared (`Arc`) so a tied output projection reuses the embeddings.
pub struct Linear {
    w: Arc<QuantMatrix>,
    pub in_dim: usize,
    pub out_dim: usize,
}

impl Linear {
    pub fn new(w: Arc<QuantMatrix>) -> Linear {
        let (in_dim, out_dim) = (w.cols(), w.rows());
        Linear { w, in_dim, out_dim }
    }

    /// `x` is `[n_tok][in_dim]`, `y` `[n_tok][out_dim]`.
    pub fn forward(&self, x: &[f32], y: &mut [f32]) {
        matmul_normed(&self.w, x, None, y)
    }

    /// The same of `x` normalised by `norm` (fused into the activation conversion).
    pub fn forward_normed(&self, x: &[f32], norm: RmsNorm, y: &mut [f32]) {
        matmul_normed(&self.w, x, Some(norm), y)
    }
}

/// Several projections of the same input (Q/K/V): one matrix where they share a
/// format, so the input is converted once and the pool is woken once for all of them.
pub enum Projections {
    Fused { all: Linear, out_dims: Vec<usize> },
    Separate(Vec<Linear>),
}

impl Projections {
    /// `x` is `[n_tok][in_dim]`, normalised by `norm`; `outs[i]` receives projection i's
    /// `[n_tok][out_dim]`. `fused` holds the fused matrix's output on its way to `outs`.
    pub fn forward(&self, x: &[f32], norm: RmsNorm, fused: &mut Vec<f32>, outs: &mut [&mut [f32]]) {
        match self {
            Projections::Separate(parts) => {
                for (p, out) in parts.iter().zip(outs) {
                    p.forward_normed(x, norm, out);
                }
            }
            Projections::Fused { all, out_dims } => {
                let n_tok = x.len() / all.in_dim;
                let y = sized(fused, n_tok * all.out_dim);
                all.forward_normed(x, norm, y);
                for (t, row) in y.chunks_exact(all.out_dim).enumerate() {
                    let mut at = 0;
                    for (out, &d) in outs.iter_mut().zip(out_dims) {
                        out[t * d..][..d].copy_from_slice(&row[at..at + d]);
                        at += d;
                    }
                }
            }
        }
    }
}

/// The first half of a gated feed-forward block, `act(x · Gᵀ) ⊙ (x · Uᵀ)`.
pub enum GateUp {
    /// One matrix of paired row groups (`matmul_gated`): one pass, one pool wake-up.
    Paired(QuantMatrix),
    Separate {
        gate: Linear,
        up: Linear,
    },
}

impl GateUp {
    /// `x` is `[n_tok][in_dim]`, normalised by `norm`; `y` is `[n_tok][n_ff]`; `up` holds the
    /// up projection where it is a matrix of its own.
    pub fn forward(
        &self,
        x: &[f32],
        norm: RmsNorm,
        act: Activation,
        y: &mut [f32],
        up: &mut Vec<f32>,
    ) {
        match self {
            GateUp::Paired(m) => matmul_gated(m, x, Some(norm), act, y),
            GateUp::Separate { gate, up: up_proj } => {
                gate.forward_normed(x, norm, y);
                let up = sized(up, y.len());
                up_proj.forward_normed(x, norm, up);
                act.apply_parallel(y, up);
            }
        }
    }
}

/// Token embeddings kept in the file's format; only the looked-up rows become floats.
pub struct Embedding {
    table: Arc<QuantMatrix>,
    pub dim: usize,
}

impl Embedding {
    pub fn new(table: Arc<QuantMatrix>) -> Embedding {
        let dim = table.cols();
        Embedding { table, dim }
    }

    pub fn n_vocab(&self) -> usize {
        self.table.rows()
    }

    /// The rows of `tokens`, into `out` (`[n_tok][dim]`).
    pub fn lookup(&self, tokens: &[u32], out: &mut [f32]) -> Result<(), ModelError> {
        let n_vocab = self.n_vocab();
        for (&t, row) in tokens.iter().zip(out.chunks_exact_mut(self.dim)) {
            if t as usize >= n_vocab {
                return Err(ModelError::TokenOutOfRange { token: t, n_vocab });
            }
            self.table.dequantize_row(t as usize, row);
        }
        Ok(())
    }

    /// The table itself, to share as a tied output projection.
    pub fn table(&self) -> Arc<QuantMatrix> {
        self.table.clone()
    }
}
