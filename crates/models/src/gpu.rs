//! Llama and Gemma 3 models on an NVIDIA GPU (the `cuda` feature), on Ward's own CUDA kernels
//! (`ward_kernels::cuda`), computing what `arch/llama.rs` and `arch/gemma3.rs` compute on the
//! CPU. The weights go to the device in their GGUF blocks; the KV cache is a device pool laid
//! out as the CPU's (blocks of 64 positions), so the engine's block manager and prefix cache
//! drive it unchanged.
//!
//! A step runs any number of tokens (the engine's batch, up to [`STEP_TOKENS`]), each with its
//! own sequence position and block table: decode tokens of many sequences and prompt chunks
//! together (each token attends to the positions up to its own, so one query per token gives
//! the causal mask). Every matrix is read once per step for all its tokens: the dp4a
//! matrix-vector kernel for up to 8 tokens, the int8 tensor-core kernel beyond, which give the
//! same bits, so a token's logits do not depend on what shares its step. Norms, activations
//! and RoPE are fused with the quantization or KV write that follows them. Not yet: a CUDA
//! graph per decode step.

use std::sync::Mutex;

use cudarc::driver::{CudaSlice, DriverError};
use half::f16;
use ward_kernels::attention::KV_BLOCK;
use ward_kernels::cuda::{AttentionShape, Gpu};
use ward_kernels::quant::WeightType;
use ward_kernels::rope::{Rope, RopeLayout};

use crate::arch::{check_batch, BatchItem, CausalLm, Logits};
use crate::cache::KvPool;
use crate::gguf::{GgufError, GgufFile};
use crate::hparams::{Arch, HParams};
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
    /// Gemma 3: per-head RMSNorm of queries and keys.
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
}

impl From<DriverError> for ModelError {
    fn from(e: DriverError) -> ModelError {
        ModelError::Gpu(format!("CUDA: {e}"))
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
        bytes: gpu.stream.clone_htod(gguf.tensor_bytes(info))?,
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

/// Buffers of one step, sized for `n` tokens.
struct Scratch {
    x: CudaSlice<f32>,
    normed: CudaSlice<f32>,
    xq: CudaSlice<u8>,
    q: CudaSlice<f32>,
    k: CudaSlice<f32>,
    v: CudaSlice<f32>,
    /// Gemma's normed queries and keys.
    qn: CudaSlice<f32>,
    kn: CudaSlice<f32>,
    attn: CudaSlice<f32>,
    attn_q: CudaSlice<u8>,
    out: CudaSlice<f32>,
    gate: CudaSlice<f32>,
    up: CudaSlice<f32>,
    ff_q: CudaSlice<u8>,
}

/// Most tokens one step takes (a prompt longer than this is read over several steps).
pub const STEP_TOKENS: usize = 512;

/// Bytes of Q8_1 activations for `values` values.
fn q8_1_bytes(values: usize) -> usize {
    values / 32 * 36
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
        let gemma = hp.arch == Arch::Gemma3;
        let gpu = Gpu::new(ordinal)?;
        let (d, kv, ff) = (hp.n_embd, hp.n_head_kv * hp.head_dim, hp.n_ff);
        let q_dim = hp.n_head * hp.head_dim;
        let vocab = gguf
            .tensor_info("token_embd.weight")
            .and_then(|t| t.dims.get(1).copied())
            .ok_or_else(|| GgufError::MissingTensor("token_embd.weight".into()))?
            as usize;
        let embed = upload_matrix(&gpu, gguf, "token_embd.weight", d, vocab)?;
        let output = match gguf.tensor_info("output.weight") {
            Some(_) => Some(upload_matrix(&gpu, gguf, "output.weight", d, vocab)?),
            None => None,
        };
        let out_norm = upload_vector(&gpu, gguf, "output_norm.weight", d)?;
        let layout = if gemma {
            RopeLayout::Halves
        } else {
            RopeLayout::Interleaved
        };
        let mut layers = Vec::with_capacity(hp.n_layer);
        for il in 0..hp.n_layer {
            let n = |s: &str| format!("blk.{il}.{s}.weight");
            let vector = |s: &str, len| upload_vector(&gpu, gguf, &n(s), len);
            let matrix = |s: &str, cols, rows| upload_matrix(&gpu, gguf, &n(s), cols, rows);
            let window = hp.layer_window(il);
            let (qk_norm, post_norms) = if gemma {
                (
                    Some((
                        vector("attn_q_norm", hp.head_dim)?,
                        vector("attn_k_norm", hp.head_dim)?,
                    )),
                    Some((
                        vector("post_attention_norm", d)?,
                        vector("post_ffw_norm", d)?,
                    )),
                )
            } else {
                (None, None)
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
                rope: hp.layer_rope(il, layout),
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
        grow(&mut self.k_pool)?;
        grow(&mut self.v_pool)?;
        self.kv_blocks = kv_blocks;
        Ok(())
    }

    pub fn n_vocab(&self) -> usize {
        self.embed.rows
    }

    fn scratch(&self, n: usize) -> Result<Scratch, DriverError> {
        let s = &self.gpu.stream;
        let hp = &self.hp;
        let (d, q_dim, kv) = (
            hp.n_embd,
            hp.n_head * hp.head_dim,
            hp.n_head_kv * hp.head_dim,
        );
        Ok(Scratch {
            x: s.alloc_zeros(n * d)?,
            normed: s.alloc_zeros(n * d)?,
            xq: s.alloc_zeros(q8_1_bytes(n * d))?,
            q: s.alloc_zeros(n * q_dim)?,
            k: s.alloc_zeros(n * kv)?,
            v: s.alloc_zeros(n * kv)?,
            qn: s.alloc_zeros(n * q_dim)?,
            kn: s.alloc_zeros(n * kv)?,
            attn: s.alloc_zeros(n * q_dim)?,
            attn_q: s.alloc_zeros(q8_1_bytes(n * q_dim))?,
            out: s.alloc_zeros(n * d)?,
            gate: s.alloc_zeros(n * hp.n_ff)?,
            up: s.alloc_zeros(n * hp.n_ff)?,
            ff_q: s.alloc_zeros(q8_1_bytes(n * hp.n_ff))?,
        })
    }

    /// `x += out`, through the block's post-norm first where the model has one (Gemma 3);
    /// `tmp` is scratch of `x`'s size.
    fn add_residual(
        &self,
        x: &mut CudaSlice<f32>,
        out: &CudaSlice<f32>,
        tmp: &mut CudaSlice<f32>,
        post_norm: Option<&CudaSlice<f32>>,
        n: usize,
    ) -> Result<(), DriverError> {
        match post_norm {
            Some(w) => {
                self.gpu.rms_norm(out, w, tmp, n, self.hp.rms_eps)?;
                self.gpu.add(x, tmp)
            }
            None => self.gpu.add(x, out),
        }
    }

    fn matmul(
        &self,
        m: &Matrix,
        xq: &CudaSlice<u8>,
        y: &mut CudaSlice<f32>,
        n: usize,
    ) -> Result<(), DriverError> {
        self.gpu.matmul(m.ty, &m.bytes, xq, y, m.rows, m.cols, n)
    }

    /// One step over `tokens` (at most [`STEP_TOKENS`]): token `i` sits at position
    /// `positions[i]` of the sequence whose KV blocks are `tables[i]` (in order; they must cover
    /// that position). Returns the logits of the tokens `wants_logits` marks, in order,
    /// `[token][vocab]` (a prompt chunk whose tokens only fill the cache wants none, and skips
    /// the output projection).
    pub fn step(
        &mut self,
        tokens: &[u32],
        positions: &[usize],
        tables: &[&[u32]],
        wants_logits: &[bool],
    ) -> Result<Vec<f32>, ModelError> {
        let n = tokens.len();
        assert!(n > 0 && n <= STEP_TOKENS);
        assert!(positions.len() == n && tables.len() == n && wants_logits.len() == n);
        let vocab = self.n_vocab();
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(ModelError::TokenOutOfRange {
                token: bad,
                n_vocab: vocab,
            });
        }
        let block_len = KV_BLOCK;
        let max_blocks = tables.iter().map(|t| t.len()).max().unwrap_or(0).max(1);
        for (i, t) in tables.iter().enumerate() {
            let blocks = positions[i] / block_len + 1;
            if t.len() < blocks || t.iter().any(|&b| b as usize >= self.kv_blocks) {
                return Err(ModelError::KvBlocks {
                    positions: positions[i] + 1,
                    blocks: t.len(),
                    pool: self.kv_blocks,
                });
            }
        }
        let hp = self.hp.clone();
        let s = self.gpu.stream.clone();
        let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
        let pos: Vec<i32> = positions.iter().map(|&p| p as i32).collect();
        let lens: Vec<i32> = positions.iter().map(|&p| p as i32 + 1).collect();
        let slots: Vec<i32> = (0..n)
            .map(|i| {
                (tables[i][positions[i] / block_len] as usize * block_len
                    + positions[i] % block_len) as i32
            })
            .collect();
        let mut table = vec![0i32; n * max_blocks];
        for (i, t) in tables.iter().enumerate() {
            for (j, &b) in t.iter().enumerate() {
                table[i * max_blocks + j] = b as i32;
            }
        }
        let (d_ids, d_pos, d_lens) = (
            s.clone_htod(&ids)?,
            s.clone_htod(&pos)?,
            s.clone_htod(&lens)?,
        );
        let (d_slots, d_table) = (s.clone_htod(&slots)?, s.clone_htod(&table)?);
        let mut b = self.scratch(n)?;
        let (d, q_dim) = (hp.n_embd, hp.n_head * hp.head_dim);
        self.gpu
            .get_rows(self.embed.ty, &self.embed.bytes, &d_ids, &mut b.x, n, d)?;
        let gemma = hp.arch == Arch::Gemma3;
        if gemma {
            self.gpu.scale(&mut b.x, (d as f32).sqrt())?;
        }
        let max_len = positions.iter().max().map_or(1, |p| p + 1);
        for (il, l) in self.layers.iter().enumerate() {
            let shape = AttentionShape {
                sequences: n,
                n_head: hp.n_head,
                n_kv_head: hp.n_head_kv,
                head_dim: hp.head_dim,
                max_blocks,
                max_len,
                window: l.window,
                scale: hp.attn_scale,
            };
            let post = l.post_norms.as_ref();
            self.gpu
                .rms_norm_q8_1(&b.x, &l.attn_norm, &mut b.xq, n, hp.rms_eps)?;
            self.matmul(&l.q, &b.xq, &mut b.q, n)?;
            self.matmul(&l.k, &b.xq, &mut b.k, n)?;
            self.matmul(&l.v, &b.xq, &mut b.v, n)?;
            let (q, k) = match &l.qk_norm {
                Some((qn, kn)) => {
                    self.gpu
                        .rms_norm(&b.q, qn, &mut b.qn, n * hp.n_head, hp.rms_eps)?;
                    self.gpu
                        .rms_norm(&b.k, kn, &mut b.kn, n * hp.n_head_kv, hp.rms_eps)?;
                    (&mut b.qn, &b.kn)
                }
                None => (&mut b.q, &b.k),
            };
            self.gpu.rope(&l.rope, q, &d_pos, n, hp.n_head)?;
            let pools = (&mut self.k_pool[il], &mut self.v_pool[il]);
            self.gpu
                .rope_kv_write(&l.rope, k, &b.v, &d_pos, &d_slots, pools, n, hp.n_head_kv)?;
            let (kp, vp) = (&self.k_pool[il], &self.v_pool[il]);
            self.gpu
                .attention_decode(&shape, q, kp, vp, &d_table, &d_lens, &mut b.attn)?;
            self.gpu.quantize_q8_1(&b.attn, &mut b.attn_q, n * q_dim)?;
            self.matmul(&l.o, &b.attn_q, &mut b.out, n)?;
            self.add_residual(&mut b.x, &b.out, &mut b.normed, post.map(|p| &p.0), n)?;
            self.gpu
                .rms_norm_q8_1(&b.x, &l.ffn_norm, &mut b.xq, n, hp.rms_eps)?;
            self.matmul(&l.gate, &b.xq, &mut b.gate, n)?;
            self.matmul(&l.up, &b.xq, &mut b.up, n)?;
            self.gpu
                .gated_activation_q8_1(gemma, &b.gate, &b.up, &mut b.ff_q)?;
            self.matmul(&l.down, &b.ff_q, &mut b.out, n)?;
            self.add_residual(&mut b.x, &b.out, &mut b.normed, post.map(|p| &p.1), n)?;
        }
        // The output projection of the wanted tokens only, their rows of the residual stream
        // gathered first where some are not wanted (a prompt chunk wants at most its last).
        let wanted: Vec<usize> = (0..n).filter(|&i| wants_logits[i]).collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let rows = if wanted.len() == n {
            &b.x
        } else {
            for (to, &from) in wanted.iter().enumerate() {
                let row = b.x.slice(from * d..(from + 1) * d);
                s.memcpy_dtod(&row, &mut b.normed.slice_mut(to * d..(to + 1) * d))?;
            }
            &b.normed
        };
        let m = wanted.len();
        self.gpu
            .rms_norm_q8_1(rows, &self.out_norm, &mut b.xq, m, hp.rms_eps)?;
        let output = self.output.as_ref().unwrap_or(&self.embed);
        let mut out = s.alloc_zeros(m * vocab)?;
        self.matmul(output, &b.xq, &mut out, m)?;
        Ok(s.clone_dtoh(&out)?)
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
