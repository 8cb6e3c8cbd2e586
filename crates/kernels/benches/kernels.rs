//! Kernel throughput: each weight format's matmul on every kernel tier this machine has (bytes
//! of weights per second; the decode shape is one token, the prefill shape 64) and attention at
//! growing contexts.
//!
//!   cargo bench -p ward-kernels [-- FILTER]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::f16;
use ward_kernels::attention::{attention, kv_block_len, kv_blocks_for, AttnShape, PagedKv};
use ward_kernels::quant::{matmul, QuantMatrix, WeightType};
use ward_kernels::tier::{tier, Tier};

/// Random bytes with sane f16 scales: enough for timing (the values do not change the work).
fn weights(ty: WeightType, rows: usize, cols: usize) -> QuantMatrix {
    weights_on(ty, rows, cols, tier())
}

fn weights_on(ty: WeightType, rows: usize, cols: usize, tier: Tier) -> QuantMatrix {
    let n = ty.row_bytes(cols).unwrap() * rows;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut bytes: Vec<u8> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    // A small positive f16 (0x1400 ≈ 0.001) in every pair of bytes that could be a scale keeps
    // the arithmetic finite; the kernels do the same work whatever the values.
    if ty.block_len() == 1 || matches!(ty, WeightType::F32) {
        bytes
            .chunks_exact_mut(2)
            .for_each(|c| c.copy_from_slice(&[0x00, 0x14]));
    }
    QuantMatrix::on_tier(ty, &bytes, rows, cols, tier).unwrap()
}

fn matmuls(c: &mut Criterion) {
    // A Llama-7B-sized projection row count would take minutes; 2048 × 2048 reads 2–16 MB,
    // beyond the caches of a small server, as decode does.
    let (rows, cols) = (2048, 2048);
    for tokens in [1, 64] {
        let mut g = c.benchmark_group(format!("matmul/{tokens}-token"));
        let x: Vec<f32> = (0..tokens * cols)
            .map(|i| ((i % 17) as f32 - 8.0) * 0.1)
            .collect();
        for ty in WeightType::ALL {
            g.throughput(Throughput::Bytes(
                ty.row_bytes(cols).unwrap() as u64 * rows as u64,
            ));
            // Every tier this machine has, the scalar reference included.
            let runs: Vec<_> = Tier::ALL
                .into_iter()
                .filter(|t| t.is_supported())
                .map(|t| weights_on(ty, rows, cols, t))
                .collect();
            for w in &runs {
                let id = format!("{ty:?}/{}", w.tier());
                g.bench_function(BenchmarkId::from_parameter(id), |b| {
                    b.iter(|| matmul(w, &x))
                });
            }
        }
        g.finish();
    }
}

/// Decode's matrices streamed from memory, against `ward bench`'s bandwidth probe: Gemma 3's tied
/// output projection (262144 × 640 Q8_0, 178 MB), and from the Llama-3-8B shape the gate and up
/// projections as Ward pairs them (28672 × 4096 Q4_K, 66 MB) and the output projection (128256 ×
/// 4096 Q6_K, 431 MB), each on every SIMD tier this machine has: one decode token, so these are
/// the rates a decode step reads its weights at.
fn from_memory(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul/from-memory");
    g.sample_size(10);
    for (name, ty, rows, cols) in [
        ("gemma-output", WeightType::Q8_0, 262_144, 640),
        ("llama3-8b-gate-up", WeightType::Q4_K, 28_672, 4096),
        ("llama3-8b-output", WeightType::Q6_K, 128_256, 4096),
    ] {
        let x: Vec<f32> = (0..cols).map(|i| ((i % 17) as f32 - 8.0) * 0.1).collect();
        g.throughput(Throughput::Bytes(
            ty.row_bytes(cols).unwrap() as u64 * rows as u64,
        ));
        let simd = Tier::ALL
            .into_iter()
            .filter(|&t| t != Tier::Scalar && t.is_supported());
        for tier in simd {
            let w = weights_on(ty, rows, cols, tier);
            g.bench_function(BenchmarkId::new(name, tier), |b| b.iter(|| matmul(&w, &x)));
        }
    }
    g.finish();
    println!(
        "read bandwidth probe: {:.1} GB/s",
        ward_kernels::probe::read_bandwidth_gb_s(1 << 30, 3)
    );
}

/// A pool holding `ctx` positions of SmolLM2's KV heads (3 of 64) and a table that visits its
/// blocks out of order, as a pool shared by many sequences would hand them out.
fn paged_cache(ctx: usize) -> (Vec<f16>, Vec<u32>) {
    let n = kv_blocks_for(ctx) as u32;
    let pool = (0..n as usize * kv_block_len(3, 64))
        .map(|i| f16::from_f32(((i % 13) as f32 - 6.0) * 0.05))
        .collect();
    let table = (0..n).rev().collect();
    (pool, table)
}

fn attentions(c: &mut Criterion) {
    // SmolLM2's heads: 9 query heads over 3 KV heads of 64.
    let shape = AttnShape {
        n_head: 9,
        n_kv_head: 3,
        head_dim: 64,
        scale: 0.125,
        window: None,
    };
    let mut g = c.benchmark_group("attention/decode");
    for ctx in [512usize, 4096, 16384] {
        let (kv, table) = paged_cache(ctx);
        let kv = PagedKv {
            k: &kv,
            v: &kv,
            table: &table,
        };
        let q: Vec<f32> = (0..9 * 64).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
        let mut out = vec![0.0f32; q.len()];
        g.throughput(Throughput::Bytes((2 * ctx * 3 * 64 * 2) as u64));
        g.bench_function(BenchmarkId::from_parameter(ctx), |b| {
            b.iter(|| attention(&q, kv, ctx - 1, &shape, &mut out))
        });
    }
    g.finish();

    // The same from memory, as in a real decode step, where the weights have pushed the KV
    // cache out of the caches since the layer's last step: a 64 MB matmul between calls
    // (untimed; on the pool, which it leaves awake as a decode step's matmuls do).
    let mut g = c.benchmark_group("attention/decode-from-memory");
    let flush = weights(WeightType::Q8_0, 32768, 1920);
    let flush_x = vec![0.5f32; 1920];
    for ctx in [640usize, 4096] {
        let (k, table) = paged_cache(ctx);
        let v = k.clone();
        let kv = PagedKv {
            k: &k,
            v: &v,
            table: &table,
        };
        let q: Vec<f32> = (0..9 * 64).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
        let mut out = vec![0.0f32; q.len()];
        g.throughput(Throughput::Bytes((2 * ctx * 3 * 64 * 2) as u64));
        g.bench_function(BenchmarkId::from_parameter(ctx), |b| {
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    std::hint::black_box(matmul(&flush, &flush_x));
                    let t = std::time::Instant::now();
                    attention(&q, kv, ctx - 1, &shape, &mut out);
                    total += t.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = matmuls, from_memory, attentions
}
criterion_main!(benches);
