//! Ward's CUDA kernels (`kernels/cuda`, compiled to PTX by build.rs under the `cuda` feature),
//! loaded into a context and launched through cudarc. cudarc loads the driver (libcuda) when a
//! [`Gpu`] is made: building needs nvcc, running needs only the NVIDIA driver.
//!
//! Each launch mirrors a CPU kernel of this crate and is tested against it on the GPU machine
//! (`tests/cuda_kernels.rs`); the kernels also run on the host, emulated, in
//! `tests/cuda_on_host.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, DriverError, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use crate::quant::{ActivationType, WeightType};
use crate::rope::{Rope, RopeLayout};

include!(concat!(env!("OUT_DIR"), "/cuda_ptx.rs"));

/// Threads per block of the matrix-vector kernels (`MMVQ_THREADS` in mmvq.cu).
const MMVQ_THREADS: u32 = 128;
/// Positions per attention chunk (`CHUNK` in attention.cu), and the limits it was built for.
pub const ATTN_CHUNK: usize = 128;
const ATTN_MAX_GROUP: usize = 16;
const ATTN_MAX_HEAD_DIM: usize = 256;
/// Most tokens one matrix-vector launch takes (kernels mmvq_<type>_1 … _8).
pub const MMVQ_MAX_TOKENS: usize = 8;
/// Threads per block of the tensor-core matmul, and its tile's rows and tokens (mmq.cu).
const MMQ_THREADS: u32 = 128;
const MMQ_TILE: usize = 64;

/// One GPU with Ward's kernels loaded.
pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    functions: HashMap<String, CudaFunction>,
}

/// The shape of a decode-attention launch; the GPU's KV pool is paged as the CPU's
/// (`attention::PagedKv`), in blocks of 64 positions, but with keys and values both as rows:
/// `[kv_head][position][head_dim]`, f16.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub sequences: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    /// Columns of the block table (blocks per sequence, at most).
    pub max_blocks: usize,
    /// Longest sequence, in positions.
    pub max_len: usize,
    /// Sliding window (0: none).
    pub window: usize,
    pub scale: f32,
}

/// `rope_args` in rope.cu, passed by value.
#[repr(C)]
struct RopeArgs {
    tokens: i32,
    heads: i32,
    head_dim: i32,
    rope_dim: i32,
    base: f32,
    freq_scale: f32,
    halves: i32,
}

// SAFETY: a plain #[repr(C)] struct of 4-byte fields, laid out as the kernels' `rope_args`.
unsafe impl DeviceRepr for RopeArgs {}

impl RopeArgs {
    fn new(rope: &Rope, tokens: usize, heads: usize) -> RopeArgs {
        // The GPU decoder refuses models with frequency factors (see gpu::GpuDecoder::load).
        assert!(
            rope.freq_factors.is_none(),
            "rope: no frequency factors on the GPU"
        );
        RopeArgs {
            tokens: tokens as i32,
            heads: heads as i32,
            head_dim: rope.head_dim as i32,
            rope_dim: rope.rope_dim as i32,
            base: rope.base,
            freq_scale: rope.freq_scale,
            halves: i32::from(rope.layout == RopeLayout::Halves),
        }
    }
}

/// Scratch for the split-KV attention's per-chunk results ([`Gpu::attention_partials`]).
pub struct AttentionPartials {
    o: CudaSlice<f32>,
    ml: CudaSlice<f32>,
}

/// Bytes of Q8_1 activations for `values` values (a multiple of 32).
pub fn q8_1_bytes(values: usize) -> usize {
    values / ActivationType::Q8_1.block_len() * ActivationType::Q8_1.block_bytes()
}

fn grid(blocks: usize, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The kernels' name for a weight format (`mmvq_<name>_<tokens>`), if the GPU path has it.
pub fn type_name(ty: WeightType) -> Option<&'static str> {
    use WeightType::*;
    Some(match ty {
        Q4_0 => "q4_0",
        Q4_1 => "q4_1",
        Q5_0 => "q5_0",
        Q5_1 => "q5_1",
        Q8_0 => "q8_0",
        Q2_K => "q2_K",
        Q3_K => "q3_K",
        Q4_K => "q4_K",
        Q5_K => "q5_K",
        Q6_K => "q6_K",
        F32 | F16 | BF16 => return None,
    })
}

impl Gpu {
    /// Open GPU `ordinal` and load every kernel.
    pub fn new(ordinal: usize) -> Result<Gpu, DriverError> {
        let ctx = CudaContext::new(ordinal)?;
        // SAFETY: all of Ward's work on a GPU goes through this one stream, in order, so no
        // buffer needs cudarc's cross-stream events (which a captured CUDA graph cannot wait
        // on). A stream of its own, since the legacy default stream cannot be captured.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream()?;
        let mut functions = HashMap::new();
        for (_, ptx) in MODULES {
            let module = ctx.load_module(Ptx::from_src(*ptx))?;
            for name in entry_points(ptx) {
                functions.insert(name.to_string(), module.load_function(name)?);
            }
        }
        Ok(Gpu {
            ctx,
            stream,
            functions,
        })
    }

    fn function(&self, name: &str) -> &CudaFunction {
        self.functions
            .get(name)
            .unwrap_or_else(|| panic!("kernel {name} is not in the embedded PTX"))
    }

    /// `x` (f32, a multiple of 32 values) into Q8_1 blocks (36 bytes per 32 values).
    pub fn quantize_q8_1(
        &self,
        x: &CudaSlice<f32>,
        out: &mut CudaSlice<u8>,
        values: usize,
    ) -> Result<(), DriverError> {
        assert!(values.is_multiple_of(32) && x.len() >= values && out.len() >= q8_1_bytes(values));
        let blocks = (values / 32) as i32;
        // 8 warps per CUDA block, a warp per 32 values.
        let cfg = grid((values / 32).div_ceil(8), 256);
        let f = self.function("quantize_q8_1");
        // SAFETY: the kernel reads `values` floats and writes `values / 32` blocks, both in bounds.
        unsafe {
            self.stream
                .launch_builder(f)
                .arg(x)
                .arg(out)
                .arg(&blocks)
                .launch(cfg)
        }?;
        Ok(())
    }

    /// `y[t][row] = W[row] · x[t]` for any number of tokens: `w` holds `rows` rows of `cols`
    /// values in format `ty`, `x` the tokens' Q8_1 activations one after the other. Up to 8
    /// tokens run on the dp4a matrix-vector kernel (`mmvq`, a CUDA block per row), more on the
    /// int8 tensor-core kernel (`mmq`, sm_80 and later, tiles of 64 rows × 64 tokens). Both add
    /// in the same order and give the same bits, so a token's result does not depend on how
    /// many tokens share the launch.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &self,
        ty: WeightType,
        w: &CudaSlice<u8>,
        x: &CudaSlice<u8>,
        y: &mut CudaSlice<f32>,
        rows: usize,
        cols: usize,
        tokens: usize,
    ) -> Result<(), DriverError> {
        let name = type_name(ty).unwrap_or_else(|| panic!("no GPU matmul for {ty:?}"));
        assert!(tokens > 0 && cols.is_multiple_of(ty.block_len()));
        let row_bytes = ty.row_bytes(cols).expect("whole blocks") as i64;
        assert!(w.len() as i64 >= rows as i64 * row_bytes);
        assert!(x.len() >= q8_1_bytes(tokens * cols) && y.len() >= tokens * rows);
        let (kernel, cfg) = if tokens <= MMVQ_MAX_TOKENS {
            (format!("mmvq_{name}_{tokens}"), grid(rows, MMVQ_THREADS))
        } else {
            let tiles = (rows.div_ceil(MMQ_TILE), tokens.div_ceil(MMQ_TILE));
            let cfg = LaunchConfig {
                grid_dim: (tiles.0 as u32, tiles.1 as u32, 1),
                block_dim: (MMQ_THREADS, 1, 1),
                shared_mem_bytes: 0,
            };
            (format!("mmq_{name}"), cfg)
        };
        let ints = [cols / 32, rows, tokens].map(|v| v as i32);
        // SAFETY: the asserts above bound every read of `w` and `x`; the kernels write only
        // outputs of rows below `rows` and tokens below `tokens`.
        unsafe {
            self.stream
                .launch_builder(self.function(&kernel))
                .arg(w)
                .arg(x)
                .arg(y)
                .arg(&ints[0])
                .arg(&row_bytes)
                .arg(&ints[1])
                .arg(&ints[2])
                .launch(cfg)
        }?;
        Ok(())
    }

    /// Rows `ids` of a `cols`-wide matrix in format `ty`, as f32 (the embedding lookup).
    pub fn get_rows(
        &self,
        ty: WeightType,
        w: &CudaSlice<u8>,
        ids: &CudaSlice<i32>,
        out: &mut CudaSlice<f32>,
        n: usize,
        cols: usize,
    ) -> Result<(), DriverError> {
        let name = type_name(ty).unwrap_or_else(|| panic!("no GPU dequantizer for {ty:?}"));
        let row_bytes = ty.row_bytes(cols).expect("whole blocks") as i64;
        assert!(ids.len() >= n && out.len() >= n * cols);
        let (n_i, sub_blocks) = (n as i32, (cols / 32) as i32);
        let f = self.function(&format!("get_rows_{name}"));
        // SAFETY: the ids index rows of `w` (the caller's tokens, checked against the
        // vocabulary before upload); `out` holds `n` rows.
        unsafe {
            self.stream
                .launch_builder(f)
                .arg(w)
                .arg(ids)
                .arg(out)
                .arg(&n_i)
                .arg(&sub_blocks)
                .arg(&row_bytes)
                .launch(grid((n * cols / 32).div_ceil(256), 256))
        }?;
        Ok(())
    }

    /// `a += b`, element by element.
    pub fn add(&self, a: &mut CudaSlice<f32>, b: &CudaSlice<f32>) -> Result<(), DriverError> {
        assert!(b.len() >= a.len());
        let (len, n) = (a.len(), a.len() as i64);
        let f = self.function("add_f32");
        // SAFETY: one thread per element of `a`, which `b` covers.
        unsafe {
            self.stream
                .launch_builder(f)
                .arg(a)
                .arg(b)
                .arg(&n)
                .launch(grid(len.div_ceil(256), 256))
        }?;
        Ok(())
    }

    /// `x *= s`, element by element.
    pub fn scale(&self, x: &mut CudaSlice<f32>, s: f32) -> Result<(), DriverError> {
        let (len, n) = (x.len(), x.len() as i64);
        let f = self.function("scale_f32");
        // SAFETY: one thread per element of `x`.
        unsafe {
            self.stream
                .launch_builder(f)
                .arg(x)
                .arg(&s)
                .arg(&n)
                .launch(grid(len.div_ceil(256), 256))
        }?;
        Ok(())
    }

    /// RMSNorm of each of `rows` rows of `n` values: `y = x / sqrt(mean(x²) + eps) · w`.
    pub fn rms_norm(
        &self,
        x: &CudaSlice<f32>,
        w: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
        rows: usize,
        eps: f32,
    ) -> Result<(), DriverError> {
        let n = w.len();
        assert!(x.len() >= rows * n && y.len() >= rows * n);
        let n_i = n as i32;
        let f = self.function("rms_norm_f32");
        // SAFETY: `rows` rows of `n` values in `x` and `y`, `n` weights.
        unsafe {
            self.stream
                .launch_builder(f)
                .arg(x)
                .arg(w)
                .arg(y)
                .arg(&n_i)
                .arg(&eps)
                .launch(grid(rows, 256))
        }?;
        Ok(())
    }

    /// [`Gpu::rms_norm`] written as Q8_1 blocks for the next matmul (`n`, the weights'
    /// length, a multiple of 32): the bytes [`Gpu::quantize_q8_1`] would make of it.
    pub fn rms_norm_q8_1(
        &self,
        x: &CudaSlice<f32>,
        w: &CudaSlice<f32>,
        out: &mut CudaSlice<u8>,
        rows: usize,
        eps: f32,
    ) -> Result<(), DriverError> {
        let n = w.len();
        assert!(n.is_multiple_of(32) && x.len() >= rows * n && out.len() >= q8_1_bytes(rows * n));
        let n_i = n as i32;
        let f = self.function("rms_norm_q8_1");
        // SAFETY: `rows` rows of `n` values in `x`, their blocks in `out`, `n` weights.
        unsafe {
            self.stream
                .launch_builder(f)
                .arg(x)
                .arg(w)
                .arg(out)
                .arg(&n_i)
                .arg(&eps)
                .launch(grid(rows, 256))
        }?;
        Ok(())
    }

    /// Rotate `x` (`[token][head][head_dim]`) in place; token `t` is at position `pos[t]`.
    pub fn rope(
        &self,
        rope: &Rope,
        x: &mut CudaSlice<f32>,
        pos: &CudaSlice<i32>,
        tokens: usize,
        heads: usize,
    ) -> Result<(), DriverError> {
        assert!(x.len() >= tokens * heads * rope.head_dim && pos.len() >= tokens);
        let pairs = tokens * heads * rope.rope_dim / 2;
        let args = RopeArgs::new(rope, tokens, heads);
        let f = self.function("rope_f32");
        // SAFETY: one thread per rotated pair, all inside `x`; `pos` has a position per token.
        unsafe {
            self.stream
                .launch_builder(f)
                .arg(x)
                .arg(pos)
                .arg(&args)
                .launch(grid(pairs.div_ceil(256), 256))
        }?;
        Ok(())
    }

    /// Rotate keys `k` and write them, and values `v` (both `[token][n_kv_head][head_dim]`,
    /// f32), into the f16 pools at `slots` (block · 64 + offset of each token's position `pos`).
    #[allow(clippy::too_many_arguments)]
    pub fn rope_kv_write(
        &self,
        rope: &Rope,
        k: &CudaSlice<f32>,
        v: &CudaSlice<f32>,
        pos: &CudaSlice<i32>,
        slots: &CudaSlice<i32>,
        pools: (&mut CudaSlice<half::f16>, &mut CudaSlice<half::f16>),
        tokens: usize,
        n_kv_head: usize,
    ) -> Result<(), DriverError> {
        let n = tokens * n_kv_head * rope.head_dim;
        assert!(k.len() >= n && v.len() >= n && pos.len() >= tokens && slots.len() >= tokens);
        let args = RopeArgs::new(rope, tokens, n_kv_head);
        let f = self.function("rope_kv_write");
        // SAFETY: the slots name blocks of the pools (the block manager's, never past their
        // end); one thread per element pair of the `n` values.
        unsafe {
            self.stream
                .launch_builder(f)
                .arg(k)
                .arg(v)
                .arg(pos)
                .arg(slots)
                .arg(pools.0)
                .arg(pools.1)
                .arg(&args)
                .launch(grid((n / 2).div_ceil(256), 256))
        }?;
        Ok(())
    }

    /// `act(gate) · up` (SiLU when `gelu` is false, tanh-GELU when true) as Q8_1 blocks for
    /// the down projection (`gate.len()` a multiple of 32).
    pub fn gated_activation_q8_1(
        &self,
        gelu: bool,
        gate: &CudaSlice<f32>,
        up: &CudaSlice<f32>,
        out: &mut CudaSlice<u8>,
    ) -> Result<(), DriverError> {
        let values = gate.len();
        assert!(values.is_multiple_of(32) && up.len() >= values && out.len() >= q8_1_bytes(values));
        let blocks = (values / 32) as i32;
        let f = self.function(if gelu {
            "gelu_mul_q8_1"
        } else {
            "silu_mul_q8_1"
        });
        // SAFETY: a warp per 32 values of `gate` (which `up` covers) and per block of `out`.
        unsafe {
            self.stream
                .launch_builder(f)
                .arg(gate)
                .arg(up)
                .arg(out)
                .arg(&blocks)
                .launch(grid((values / 32).div_ceil(8), 256))
        }?;
        Ok(())
    }

    /// Room for the partial results of [`Gpu::attention_decode`] launches of up to `sequences`
    /// query tokens over up to `chunks` chunks of 128 positions.
    pub fn attention_partials(
        &self,
        sequences: usize,
        n_head: usize,
        head_dim: usize,
        chunks: usize,
    ) -> Result<AttentionPartials, DriverError> {
        let heads = sequences * n_head * chunks;
        Ok(AttentionPartials {
            o: self.stream.alloc_zeros(heads * head_dim)?,
            ml: self.stream.alloc_zeros(heads * 2)?,
        })
    }

    /// One query token per sequence attending over its paged KV cache: `q` and `out` are
    /// `[sequence][n_head][head_dim]`, `tables` `[sequence][max_blocks]` block ids, `lens` each
    /// sequence's positions (this token's included). `partials` is scratch from
    /// [`Gpu::attention_partials`] for at least this shape. Chunks of positions past a
    /// sequence's length add nothing, so `max_len` may be rounded up (a captured decode step
    /// keeps one launch shape for many lengths).
    #[allow(clippy::too_many_arguments)]
    pub fn attention_decode(
        &self,
        s: &AttentionShape,
        q: &CudaSlice<f32>,
        k_pool: &CudaSlice<half::f16>,
        v_pool: &CudaSlice<half::f16>,
        tables: &CudaSlice<i32>,
        lens: &CudaSlice<i32>,
        partials: &mut AttentionPartials,
        out: &mut CudaSlice<f32>,
    ) -> Result<(), DriverError> {
        let group = s.n_head / s.n_kv_head;
        assert!(s.n_head.is_multiple_of(s.n_kv_head) && group <= ATTN_MAX_GROUP);
        assert!(s.head_dim <= ATTN_MAX_HEAD_DIM && s.max_len <= s.max_blocks * 64);
        let values = s.sequences * s.n_head * s.head_dim;
        assert!(q.len() >= values && out.len() >= values);
        assert!(tables.len() >= s.sequences * s.max_blocks && lens.len() >= s.sequences);
        let chunks = s.max_len.div_ceil(ATTN_CHUNK).max(1);
        let heads = s.sequences * s.n_head;
        assert!(partials.ml.len() >= heads * chunks * 2);
        assert!(partials.o.len() >= heads * chunks * s.head_dim);
        let ints = [
            s.n_head,
            s.n_kv_head,
            s.head_dim,
            s.max_blocks,
            chunks,
            s.window,
        ]
        .map(|v| v as i32);
        let partial = LaunchConfig {
            grid_dim: (chunks as u32, s.n_kv_head as u32, s.sequences as u32),
            block_dim: (ATTN_CHUNK as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let f = self.function("attn_decode_partial");
        // SAFETY: the kernel reads the KV rows the tables name for positions below each
        // sequence's length, and writes `chunks` partials per head, within `partials`.
        unsafe {
            let mut b = self.stream.launch_builder(f);
            b.arg(q)
                .arg(k_pool)
                .arg(v_pool)
                .arg(tables)
                .arg(lens)
                .arg(&mut partials.o)
                .arg(&mut partials.ml);
            for v in &ints {
                b.arg(v);
            }
            b.arg(&s.scale).launch(partial)
        }?;
        let merge = LaunchConfig {
            grid_dim: (s.n_head as u32, s.sequences as u32, 1),
            block_dim: (s.head_dim.next_multiple_of(32).min(256) as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let (n_head, head_dim, chunks_i) = (ints[0], ints[2], ints[4]);
        let f = self.function("attn_decode_merge");
        // SAFETY: reads the partials written above, writes `sequences · n_head · head_dim` floats.
        unsafe {
            self.stream
                .launch_builder(f)
                .arg(&partials.o)
                .arg(&partials.ml)
                .arg(out)
                .arg(&n_head)
                .arg(&head_dim)
                .arg(&chunks_i)
                .launch(merge)
        }?;
        Ok(())
    }
}

/// The kernel names a PTX module defines (`.visible .entry NAME(`).
fn entry_points(ptx: &str) -> impl Iterator<Item = &str> {
    ptx.lines().filter_map(|l| {
        l.trim_start()
            .strip_prefix(".visible .entry ")
            .map(|rest| rest.split('(').next().unwrap_or(rest).trim())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_kernel_file_is_embedded_with_its_entry_points() {
        let names: Vec<&str> = super::MODULES
            .iter()
            .flat_map(|(_, p)| super::entry_points(p))
            .collect();
        for kernel in [
            "quantize_q8_1",
            "mmvq_q4_K_8",
            "mmvq_q6_K_1",
            "mmq_q4_0",
            "mmq_q6_K",
            "rms_norm_f32",
            "rope_f32",
            "rms_norm_q8_1",
            "rope_kv_write",
            "silu_mul_q8_1",
            "gelu_mul_q8_1",
            "attn_decode_partial",
            "attn_decode_merge",
        ] {
            assert!(names.contains(&kernel), "{kernel} missing from {names:?}");
        }
    }
}
