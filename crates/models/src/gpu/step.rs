//! One forward step of [`GpuDecoder`]: its inputs uploaded into device buffers, then every
//! layer's kernels enqueued on the one stream. Decode steps (up to 8 tokens, every one wanting
//! logits) are captured once per shape as a CUDA graph and replayed: the buffers a graph was
//! captured with stay with it, so a replay only uploads the new tokens, positions and block
//! tables and launches the whole step at once, instead of ~15 kernel launches a layer.

use cudarc::driver::sys::{CUgraphInstantiate_flags, CUresult, CUstreamCaptureMode};
use cudarc::driver::{CudaGraph, CudaSlice, DriverError};
use ward_kernels::activation::Activation;
use ward_kernels::attention::KV_BLOCK;
use ward_kernels::cuda::{
    q8_1_bytes, AttentionPartials, AttentionShape, ATTN_CHUNK, MMVQ_MAX_TOKENS,
};

use super::{GpuDecoder, Matrix};
use crate::ModelError;

/// Most tokens one step takes (a prompt longer than this is read over several steps).
pub const STEP_TOKENS: usize = 512;

/// A step's inputs as the kernels read them: token ids, positions, lengths (position + 1), KV
/// slots (block · 64 + offset of each position) and block tables, `table_cols` columns each
/// (enough for every position; blocks past them are not read).
struct Inputs {
    ids: Vec<i32>,
    pos: Vec<i32>,
    lens: Vec<i32>,
    slots: Vec<i32>,
    table: Vec<i32>,
}

impl Inputs {
    fn new(tokens: &[u32], positions: &[usize], tables: &[&[u32]], table_cols: usize) -> Inputs {
        let n = tokens.len();
        let mut table = vec![0i32; n * table_cols];
        for (i, t) in tables.iter().enumerate() {
            for (j, &b) in t.iter().take(table_cols).enumerate() {
                table[i * table_cols + j] = b as i32;
            }
        }
        let slot = |i: usize| {
            let p = positions[i];
            (tables[i][p / KV_BLOCK] as usize * KV_BLOCK + p % KV_BLOCK) as i32
        };
        Inputs {
            ids: tokens.iter().map(|&t| t as i32).collect(),
            pos: positions.iter().map(|&p| p as i32).collect(),
            lens: positions.iter().map(|&p| p as i32 + 1).collect(),
            slots: (0..n).map(slot).collect(),
            table,
        }
    }
}

/// Every buffer one step's kernels read or write, sized for `n` tokens, `chunks` attention
/// chunks of 128 positions (and block tables of as many 64-position blocks) and `logit_rows`
/// rows of logits.
pub(super) struct Buffers {
    n: usize,
    chunks: usize,
    ids: CudaSlice<i32>,
    pos: CudaSlice<i32>,
    lens: CudaSlice<i32>,
    slots: CudaSlice<i32>,
    table: CudaSlice<i32>,
    x: CudaSlice<f32>,
    /// The post-norm output (Gemma 3), and the rows that want logits gathered.
    normed: CudaSlice<f32>,
    xq: CudaSlice<u8>,
    q: CudaSlice<f32>,
    k: CudaSlice<f32>,
    v: CudaSlice<f32>,
    /// Gemma's normed queries and keys.
    qn: CudaSlice<f32>,
    kn: CudaSlice<f32>,
    partials: AttentionPartials,
    attn: CudaSlice<f32>,
    attn_q: CudaSlice<u8>,
    out: CudaSlice<f32>,
    gate: CudaSlice<f32>,
    up: CudaSlice<f32>,
    ff_q: CudaSlice<u8>,
    logits: CudaSlice<f32>,
}

/// A captured decode step and the buffers it runs on.
pub(super) struct Graph {
    graph: CudaGraph,
    buffers: Buffers,
}

// SAFETY: CUDA graphs may be used from any thread as long as no two calls on one graph overlap
// (cudarc's CudaGraph is not Send only for that reason, and binds its context on each launch).
// A Graph is reached only through `&mut GpuDecoder`, so its calls never overlap.
unsafe impl Send for Graph {}

impl GpuDecoder {
    fn buffers(&self, n: usize, chunks: usize, logit_rows: usize) -> Result<Buffers, DriverError> {
        let s = &self.gpu.stream;
        let hp = &self.hp;
        let (d, q_dim, kv) = (
            hp.n_embd,
            hp.n_head * hp.head_dim,
            hp.n_head_kv * hp.head_dim,
        );
        Ok(Buffers {
            n,
            chunks,
            ids: s.alloc_zeros(n)?,
            pos: s.alloc_zeros(n)?,
            lens: s.alloc_zeros(n)?,
            slots: s.alloc_zeros(n)?,
            table: s.alloc_zeros(n * table_cols(chunks))?,
            x: s.alloc_zeros(n * d)?,
            normed: s.alloc_zeros(n * d)?,
            xq: s.alloc_zeros(q8_1_bytes(n * d))?,
            q: s.alloc_zeros(n * q_dim)?,
            k: s.alloc_zeros(n * kv)?,
            v: s.alloc_zeros(n * kv)?,
            qn: s.alloc_zeros(n * q_dim)?,
            kn: s.alloc_zeros(n * kv)?,
            partials: self
                .gpu
                .attention_partials(n, hp.n_head, hp.head_dim, chunks)?,
            attn: s.alloc_zeros(n * q_dim)?,
            attn_q: s.alloc_zeros(q8_1_bytes(n * q_dim))?,
            out: s.alloc_zeros(n * d)?,
            gate: s.alloc_zeros(n * hp.n_ff)?,
            up: s.alloc_zeros(n * hp.n_ff)?,
            ff_q: s.alloc_zeros(q8_1_bytes(n * hp.n_ff))?,
            logits: s.alloc_zeros(logit_rows.max(1) * self.n_vocab())?,
        })
    }

    fn upload(&self, inputs: &Inputs, b: &mut Buffers) -> Result<(), DriverError> {
        let s = &self.gpu.stream;
        s.memcpy_htod(&inputs.ids, &mut b.ids)?;
        s.memcpy_htod(&inputs.pos, &mut b.pos)?;
        s.memcpy_htod(&inputs.lens, &mut b.lens)?;
        s.memcpy_htod(&inputs.slots, &mut b.slots)?;
        s.memcpy_htod(&inputs.table, &mut b.table)
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

    /// Enqueue the whole step on `b` (inputs uploaded): the layers, then the output
    /// projection of the tokens `wanted` names (ascending) into `b.logits`. Allocates nothing
    /// and waits for nothing, so it can be captured.
    fn enqueue(&mut self, b: &mut Buffers, wanted: &[usize]) -> Result<(), DriverError> {
        let hp = self.hp.clone();
        let n = b.n;
        let (d, q_dim) = (hp.n_embd, hp.n_head * hp.head_dim);
        self.gpu
            .get_rows(self.embed.ty, &self.embed.bytes, &b.ids, &mut b.x, n, d)?;
        if let Some(scale) = hp.embed_scale {
            self.gpu.scale(&mut b.x, scale)?;
        }
        let gelu = hp.activation == Activation::Gelu;
        for (il, l) in self.layers.iter().enumerate() {
            let shape = AttentionShape {
                sequences: n,
                n_head: hp.n_head,
                n_kv_head: hp.n_head_kv,
                head_dim: hp.head_dim,
                max_blocks: table_cols(b.chunks),
                max_len: b.chunks * ATTN_CHUNK,
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
            self.gpu.rope(&l.rope, q, &b.pos, n, hp.n_head)?;
            let pools = (&mut self.k_pool[il], &mut self.v_pool[il]);
            self.gpu
                .rope_kv_write(&l.rope, k, &b.v, &b.pos, &b.slots, pools, n, hp.n_head_kv)?;
            let (kp, vp) = (&self.k_pool[il], &self.v_pool[il]);
            let parts = &mut b.partials;
            self.gpu
                .attention_decode(&shape, q, kp, vp, &b.table, &b.lens, parts, &mut b.attn)?;
            self.gpu.quantize_q8_1(&b.attn, &mut b.attn_q, n * q_dim)?;
            self.matmul(&l.o, &b.attn_q, &mut b.out, n)?;
            self.add_residual(&mut b.x, &b.out, &mut b.normed, post.map(|p| &p.0), n)?;
            self.gpu
                .rms_norm_q8_1(&b.x, &l.ffn_norm, &mut b.xq, n, hp.rms_eps)?;
            self.matmul(&l.gate, &b.xq, &mut b.gate, n)?;
            self.matmul(&l.up, &b.xq, &mut b.up, n)?;
            self.gpu
                .gated_activation_q8_1(gelu, &b.gate, &b.up, &mut b.ff_q)?;
            self.matmul(&l.down, &b.ff_q, &mut b.out, n)?;
            self.add_residual(&mut b.x, &b.out, &mut b.normed, post.map(|p| &p.1), n)?;
        }
        if wanted.is_empty() {
            return Ok(());
        }
        // The wanted tokens' rows of the residual stream, gathered where some are not wanted.
        let rows = if wanted.len() == n {
            &b.x
        } else {
            let s = &self.gpu.stream;
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
        self.matmul(output, &b.xq, &mut b.logits, m)
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
        for (i, t) in tables.iter().enumerate() {
            if t.len() <= positions[i] / KV_BLOCK || t.iter().any(|&b| b as usize >= self.kv_blocks)
            {
                return Err(ModelError::KvBlocks {
                    positions: positions[i] + 1,
                    blocks: t.len(),
                    pool: self.kv_blocks,
                });
            }
        }
        let wanted: Vec<usize> = (0..n).filter(|&i| wants_logits[i]).collect();
        let max_len = positions.iter().max().map_or(1, |p| p + 1);
        let graph = self.use_graphs && n <= MMVQ_MAX_TOKENS && wanted.len() == n;
        // A graph per token count and power-of-two attention chunks, so a sequence growing by a
        // token replays the same graph until it crosses a power of two.
        let chunks = match max_len.div_ceil(ATTN_CHUNK) {
            c if graph => c.next_power_of_two(),
            c => c,
        };
        let inputs = Inputs::new(tokens, positions, tables, table_cols(chunks));
        if graph {
            return Ok(self.replay(n, chunks, &inputs)?);
        }
        let mut b = self.buffers(n, chunks, wanted.len())?;
        self.upload(&inputs, &mut b)?;
        self.enqueue(&mut b, &wanted)?;
        if wanted.is_empty() {
            self.gpu.stream.synchronize()?; // errors of the step's kernels surface here
            return Ok(Vec::new());
        }
        Ok(self
            .gpu
            .stream
            .clone_dtoh(&b.logits.slice(..wanted.len() * vocab))?)
    }

    /// A decode step through its captured graph: capture it the first time this shape is
    /// seen (with its own buffers), then upload the inputs and launch it.
    fn replay(
        &mut self,
        n: usize,
        chunks: usize,
        inputs: &Inputs,
    ) -> Result<Vec<f32>, DriverError> {
        let mut g = match self.graphs.remove(&(n, chunks)) {
            Some(g) => g,
            None => self.capture(n, chunks)?,
        };
        let logits = self
            .upload(inputs, &mut g.buffers)
            .and_then(|()| g.graph.launch())
            .and_then(|()| self.gpu.stream.clone_dtoh(&g.buffers.logits));
        self.graphs.insert((n, chunks), g);
        logits
    }

    fn capture(&mut self, n: usize, chunks: usize) -> Result<Graph, DriverError> {
        let mut buffers = self.buffers(n, chunks, n)?;
        let all: Vec<usize> = (0..n).collect();
        let s = self.gpu.stream.clone();
        s.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)?;
        let enqueued = self.enqueue(&mut buffers, &all);
        // End the capture whatever happened, so the stream is usable again.
        let graph = s.end_capture(CUgraphInstantiate_flags(0));
        enqueued?;
        let graph = graph?.ok_or(DriverError(CUresult::CUDA_ERROR_STREAM_CAPTURE_INVALIDATED))?;
        Ok(Graph { graph, buffers })
    }
}

/// Block-table columns for `chunks` attention chunks: 128 positions are two 64-position blocks.
fn table_cols(chunks: usize) -> usize {
    chunks * ATTN_CHUNK / KV_BLOCK
}
