//! Llama and Gemma 3 models on an NVIDIA GPU (the `cuda` feature), on Ward's own CUDA kernels
//! (`ward_kernels::cuda`), computing what `arch/decoder.rs` computes on the CPU from the same
//! model description; what the description asks for and these kernels lack is refused at load
//! ([`crate::Device::check_supports`]). The weights go to the device in their GGUF blocks; the KV cache is a device pool laid
//! out as the CPU's (blocks of 64 positions), so the engine's block manager and prefix cache
//! drive it unchanged.
//!
//! A step runs any number of tokens (the engine's batch, up to [`STEP_TOKENS`]), each with its
//! own sequence position and block table: decode tokens of many sequences and prompt chunks
//! together (each token attends to the positions up to its own, so one query per token gives
//! the causal mask). Every matrix is read once per step for all its tokens: the dp4a
//! matrix-vector kernel for up to 8 tokens, the int8 tensor-core kernel beyond, which give the
//! same bits, so a token's logits do not depend on what shares its step. Norms, activations
//! and RoPE are fused with the quantization or KV write that follows them, and decode steps
//! replay a captured CUDA graph (`step.rs`).

mod step;

use std::collections::HashMap;
use std::sync::Mutex;

use cudarc::driver::{CudaSlice, DriverError};
use half::f16;
use ward_kernels::attention::KV_BLOCK;
use ward_kernels::cuda::Gpu;
use ward_kernels::quant::WeightType;
use ward_kernels::rope::Rope;

use crate::arch::{check_batch, BatchItem, CausalLm, Logits};
use crate::cache::KvPool;
use crate::gguf::{GgufError, GgufFile};
use crate::hparams::HParams;
use crate::weights::WeightLoader;
use crate::workspace::{sized, Workspace};
use crate::ModelError;

/// A weight matrix on the device, in its file format.
struct Matrix {
    ty: WeightType,
    bytes: CudaSlice<u8>,
    rows: usize,
    cols: usize,
}

struct Layer {
    attn_norm: CudaSlice<f32>,
    q: Matrix,
    k: Matrix,
    v: Matrix,
    o: Matrix,
    ffn_norm: CudaSlice<f32>,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
    /// Qwen3, Gemma 3: per-head RMSNorm of queries and keys.
    qk_norm: Option<(CudaSlice<f32>, CudaSlice<f32>)>,
    /// Gemma 3: norms of the attention and FFN outputs before they join the residual.
    post_norms: Option<(CudaSlice<f32>, CudaSlice<f32>)>,
    rope: Rope,
    /// Sliding window (0: global attention).
    window: usize,
}

pub struct GpuDecoder {
    gpu: Gpu,
    pub hp: HParams,
    embed: Matrix,
    layers: Vec<Layer>,
    out_norm: CudaSlice<f32>,
    /// `None`: the output projection is the embedding table (tied weights).
    output: Option<Matrix>,
    k_pool: Vec<CudaSlice<f16>>,
    v_pool: Vec<CudaSlice<f16>>,
    kv_blocks: usize,
    /// Captured decode steps by (tokens, attention chunks); they hold the pool's addresses, so
    /// growing the pool drops them.
    graphs: HashMap<(usize, usize), step::Graph>,
    /// Whether decode steps run as CUDA graphs (`WARD_CUDA_GRAPHS=0` turns them off, to
    /// compare).
    pub use_graphs: bool,
}

pub use step::STEP_TOKENS;

impl From<DriverError> for ModelError {
    fn from(e: DriverError) -> ModelError {
        ModelError::Gpu(e.into())
    }
}

fn upload_matrix(
    gpu: &Gpu,
    gguf: &GgufFile,
    name: &str,
    cols: usize,
    rows: usize,
) -> Result<Matrix, ModelError> {
    let info = gguf
        .tensor_info(name)
        .ok_or_else(|| GgufError::MissingTensor(name.to_string()))?;
    if info.dims != [cols as u64, rows as u64] {
        return Err(GgufError::WrongShape {
            name: name.into(),
            expected: vec![cols as u64, rows as u64],
            found: info.dims.clone(),
        }
        .into());
    }
    let ty = WeightType::from_ggml_id(info.ggml_type.id)
        .filter(|&t| ward_kernels::cuda::type_name(t).is_some())
        .ok_or_else(|| ModelError::UnsupportedTensorType {
            name: name.into(),
            ggml_type: info.ggml_type.name,
        })?;
    Ok(Matrix {
        ty,
        bytes: gpu.stream.clone_htod(&*gguf.tensor_bytes(info))?,
        rows,
        cols,
    })
}

/// A vector (norm weights) as floats, in whatever format the file stores it.
fn upload_vector(
    gpu: &Gpu,
    gguf: &GgufFile,
    name: &str,
    len: usize,
) -> Result<CudaSlice<f32>, ModelError> {
    let values = WeightLoader { gguf }.f32_vec(name, len)?;
    Ok(gpu.stream.clone_htod(&values)?)
}

impl GpuDecoder {
    /// Load a llama or gemma3 GGUF onto GPU `ordinal`, with a KV pool of `kv_blocks` blocks
    /// per layer.
    pub fn load(
        gguf: &GgufFile,
        ordinal: usize,
        kv_blocks: usize,
    ) -> Result<GpuDecoder, ModelError> {
        let hp = HParams::from_gguf(gguf)?;
        crate::Device::Cuda(ordinal).check_supports(&hp)?;
        let gpu = Gpu::new(ordinal)?;
        let (d, kv, ff) = (hp.n_embd, hp.n_head_kv * hp.head_dim, hp.n_ff);
        let q_dim = hp.n_head * hp.head_dim;
        let vocab = gguf
            .tensor_info("token_embd.weight")
            .and_then(|t| t.dims.get(1).copied())
            .ok_or_else(|| GgufError::MissingTensor("token_embd.weight".into()))?
            as usize;
        let embed = upload_matrix(&gpu, gguf, "token_embd.weight", d, vocab)?;
        let output = match hp.tied_output {
            false => Some(upload_matrix(&gpu, gguf, "output.weight", d, vocab)?),
            true => None,
        };
        let out_norm = upload_vector(&gpu, gguf, "output_norm.weight", d)?;
        let mut layers = Vec::with_capacity(hp.n_layer);
        for il in 0..hp.n_layer {
            let n = |s: &str| format!("blk.{il}.{s}.weight");
            let vector = |s: &str, len| upload_vector(&gpu, gguf, &n(s), len);
            let matrix = |s: &str, cols, rows| upload_matrix(&gpu, gguf, &n(s), cols, rows);
            let window = hp.layer_window(il);
            let qk_norm = match hp.qk_norm {
                true => Some((
                    vector("attn_q_norm", hp.head_dim)?,
                    vector("attn_k_norm", hp.head_dim)?,
                )),
                false => None,
            };
            let post_norms = match hp.post_norms {
                true => Some((
                    vector("post_attention_norm", d)?,
                    vector("post_ffw_norm", d)?,
                )),
                false => None,
            };
            layers.push(Layer {
                attn_norm: vector("attn_norm", d)?,
                q: matrix("attn_q", d, q_dim)?,
                k: matrix("attn_k", d, kv)?,
                v: matrix("attn_v", d, kv)?,
                o: matrix("attn_output", q_dim, d)?,
                ffn_norm: vector("ffn_norm", d)?,
                gate: matrix("ffn_gate", d, ff)?,
                up: matrix("ffn_up", d, ff)?,
                down: matrix("ffn_down", ff, d)?,
                qk_norm,
                post_norms,
                rope: hp.layer_rope(il),
                window: window.unwrap_or(0),
            });
        }
        let mut model = GpuDecoder {
            gpu,
            hp,
            embed,
            layers,
            out_norm,
            output,
            k_pool: Vec::new(),
            v_pool: Vec::new(),
            kv_blocks: 0,
            graphs: HashMap::new(),
            use_graphs: std::env::var("WARD_CUDA_GRAPHS").map_or(true, |v| v != "0"),
        };
        model.ensure_pool(kv_blocks)?;
        Ok(model)
    }

    /// Give the device KV pool at least `kv_blocks` blocks per layer, keeping what it holds
    /// (blocks are the outermost dimension, so the old pool is a prefix of the new).
    pub fn ensure_pool(&mut self, kv_blocks: usize) -> Result<(), ModelError> {
        if kv_blocks <= self.kv_blocks {
            return Ok(());
        }
        let hp = &self.hp;
        let pool_len = kv_blocks * hp.n_head_kv * KV_BLOCK * hp.head_dim;
        let s = self.gpu.stream.clone();
        let grow = |old: &mut Vec<CudaSlice<f16>>| -> Result<(), DriverError> {
            for il in 0..hp.n_layer {
                let mut new = s.alloc_zeros::<f16>(pool_len)?;
                if let Some(prev) = old.get(il) {
                    s.memcpy_dtod(prev, &mut new.slice_mut(..prev.len()))?;
                }
                if il < old.len() {
                    old[il] = new;
                } else {
                    old.push(new);
                }
            }
            Ok(())
        };
        self.graphs.clear();
        grow(&mut self.k_pool)?;
        grow(&mut self.v_pool)?;
        self.kv_blocks = kv_blocks;
        Ok(())
    }

    pub fn n_vocab(&self) -> usize {
        self.embed.rows
    }
}

/// [`GpuDecoder`] behind the [`CausalLm`] interface the engine drives: the engine's block tables
/// index the device pool (the host pool it also allocates is never written, so its zeroed
/// pages are never touched), and a batch runs up to [`STEP_TOKENS`] tokens a step.
pub struct GpuModel {
    hp: HParams,
    n_vocab: usize,
    inner: Mutex<GpuDecoder>,
}

impl GpuModel {
    pub fn load(gguf: &GgufFile, ordinal: usize) -> Result<GpuModel, ModelError> {
        let inner = GpuDecoder::load(gguf, ordinal, 0)?;
        Ok(GpuModel {
            hp: inner.hp.clone(),
            n_vocab: inner.n_vocab(),
            inner: Mutex::new(inner),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GpuDecoder> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CausalLm for GpuModel {
    fn hparams(&self) -> &HParams {
        &self.hp
    }

    fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    fn new_pool(&self, n_blocks: usize) -> KvPool {
        // Out of device memory here is reported by the first step, which tries again.
        let _ = self.lock().ensure_pool(n_blocks);
        let hp = &self.hp;
        KvPool::new(hp.n_layer, hp.n_head_kv, hp.head_dim, n_blocks)
    }

    fn forward_batch<'w>(
        &self,
        batch: &mut [BatchItem<'_>],
        pool: &mut KvPool,
        ws: &'w mut Workspace,
    ) -> Result<Logits<'w>, ModelError> {
        let mut gpu = self.lock();
        gpu.ensure_pool(pool.n_blocks())?;
        check_batch(batch, pool.n_blocks().min(gpu.kv_blocks))?;
        // Every token with its position and its sequence's blocks, and whether it wants logits.
        let mut work: Vec<(u32, usize, usize, bool)> = Vec::new();
        for (i, item) in batch.iter().enumerate() {
            let (n, wanted) = (item.tokens.len(), item.n_logits.min(item.tokens.len()));
            for (j, &t) in item.tokens.iter().enumerate() {
                work.push((t, item.seq.len() + j, i, j >= n - wanted));
            }
        }
        let n_rows = work.iter().filter(|w| w.3).count();
        let data = sized(&mut ws.logits, n_rows * self.n_vocab);
        let mut row = 0;
        for group in work.chunks(STEP_TOKENS) {
            let tokens: Vec<u32> = group.iter().map(|w| w.0).collect();
            let positions: Vec<usize> = group.iter().map(|w| w.1).collect();
            let tables: Vec<&[u32]> = group.iter().map(|w| &batch[w.2].seq.blocks[..]).collect();
            let wants: Vec<bool> = group.iter().map(|w| w.3).collect();
            let logits = gpu.step(&tokens, &positions, &tables, &wants)?;
            data[row * self.n_vocab..][..logits.len()].copy_from_slice(&logits);
            row += logits.len() / self.n_vocab;
        }
        for item in batch.iter_mut() {
            item.seq.advance(item.tokens.len());
        }
        Ok(Logits {
            n_vocab: self.n_vocab,
            data,
        })
    }
}
