//! Every CUDA kernel against its CPU reference on random data, on the GPU machine:
//! `cargo test -p ward-kernels --features cuda --test cuda_kernels` (needs an NVIDIA GPU and
//! driver; without the `cuda` feature this file is empty). Shapes include odd sizes, tails and
//! GQA ratios 1, 3, 4 and 8.
#![cfg(feature = "cuda")]

mod common;

use common::{random_activations, random_weights, reference_matmul, Rng};
use half::f16;
use ward_kernels::activation::Activation;
use ward_kernels::cuda::{q8_1_bytes, AttentionShape, Gpu, ATTN_CHUNK};
use ward_kernels::norm::rms_norm_inplace;
use ward_kernels::quant::{
    dequantize_activations, dequantize_row, quantize_activations, ActivationType, WeightType,
};
use ward_kernels::rope::{Rope, RopeLayout};

fn gpu() -> Gpu {
    Gpu::new(0).expect("these tests need an NVIDIA GPU and its driver")
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: GPU {g}, CPU {w}"
        );
    }
}

#[test]
fn quantize_q8_1_matches_the_cpu_bytes() {
    let gpu = gpu();
    let mut rng = Rng(1);
    let x = rng.vec(32 * 37);
    let mut want = Vec::new();
    quantize_activations(ActivationType::Q8_1, &x, &mut want);
    let dx = gpu.stream.clone_htod(&x).unwrap();
    let mut out = gpu.stream.alloc_zeros::<u8>(want.len()).unwrap();
    gpu.quantize_q8_1(&dx, &mut out, x.len()).unwrap();
    assert_eq!(gpu.stream.clone_dtoh(&out).unwrap(), want);
}

/// `Gpu::matmul` of `tokens` tokens (either kernel, by the count), read back.
fn gpu_matmul(
    gpu: &Gpu,
    ty: WeightType,
    w: &[u8],
    rows: usize,
    cols: usize,
    xq: &[u8],
    tokens: usize,
) -> Vec<f32> {
    let dw = gpu.stream.clone_htod(w).unwrap();
    let dx = gpu.stream.clone_htod(xq).unwrap();
    let mut dy = gpu.stream.alloc_zeros::<f32>(tokens * rows).unwrap();
    gpu.matmul(ty, &dw, &dx, &mut dy, rows, cols, tokens)
        .unwrap();
    gpu.stream.clone_dtoh(&dy).unwrap()
}

#[test]
fn mmvq_matches_the_cpu_reference_for_every_type_and_token_count() {
    use WeightType::*;
    let gpu = gpu();
    let mut rng = Rng(2);
    for ty in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K] {
        for (rows, blocks) in [(1, 1), (7, 3), (33, 9)] {
            let cols = blocks * ty.block_len();
            let w = random_weights(ty, rows, cols, &mut rng);
            for tokens in [1, 3, 8] {
                let xq = random_activations(&mut rng, tokens, cols);
                assert_close(
                    &gpu_matmul(&gpu, ty, &w, rows, cols, &xq, tokens),
                    &reference_matmul(ty, &w, rows, cols, &xq, tokens).0,
                    1e-3,
                    &format!("{ty:?} {rows}×{cols} × {tokens} tokens"),
                );
            }
        }
    }
}

/// The tensor-core kernel (more than 8 tokens) against the CPU, and bit for bit against the
/// matrix-vector kernel run 8 tokens at a time: tiles with row and token tails, rows whose
/// sub-blocks end inside a chunk of 8.
#[test]
fn mmq_matches_the_cpu_and_gives_the_bits_of_mmvq_for_every_type() {
    use WeightType::*;
    let gpu = gpu();
    let mut rng = Rng(8);
    for ty in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K] {
        for (rows, blocks) in [(1, 1), (65, 9), (130, 3), (64, 20)] {
            let cols = blocks * ty.block_len();
            let w = random_weights(ty, rows, cols, &mut rng);
            for tokens in [9, 64, 67, 130] {
                let what = format!("{ty:?} {rows}×{cols} × {tokens} tokens");
                let xq = random_activations(&mut rng, tokens, cols);
                let got = gpu_matmul(&gpu, ty, &w, rows, cols, &xq, tokens);
                assert_close(
                    &got,
                    &reference_matmul(ty, &w, rows, cols, &xq, tokens).0,
                    1e-3,
                    &what,
                );
                let block = q8_1_bytes(cols);
                for (g, group) in xq.chunks(8 * block).enumerate() {
                    let n = group.len() / block;
                    let small = gpu_matmul(&gpu, ty, &w, rows, cols, group, n);
                    let big = &got[g * 8 * rows..][..n * rows];
                    let same = small
                        .iter()
                        .zip(big)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(
                        same,
                        "{what}: tokens {}.. differ between mmvq and mmq",
                        8 * g
                    );
                }
            }
        }
    }
}

#[test]
fn a_tokens_result_does_not_depend_on_the_batch() {
    let gpu = gpu();
    let mut rng = Rng(3);
    let (ty, rows, cols) = (WeightType::Q4_K, 64, 512);
    let w = gpu
        .stream
        .clone_htod(&random_weights(ty, rows, cols, &mut rng))
        .unwrap();
    let x = rng.vec(8 * cols);
    let mut xq = Vec::new();
    quantize_activations(ActivationType::Q8_1, &x, &mut xq);
    let dx = gpu.stream.clone_htod(&xq).unwrap();
    let mut alone = gpu.stream.alloc_zeros::<f32>(rows).unwrap();
    gpu.matmul(ty, &w, &dx, &mut alone, rows, cols, 1).unwrap();
    let mut batch = gpu.stream.alloc_zeros::<f32>(8 * rows).unwrap();
    gpu.matmul(ty, &w, &dx, &mut batch, rows, cols, 8).unwrap();
    let (alone, batch) = (
        gpu.stream.clone_dtoh(&alone).unwrap(),
        gpu.stream.clone_dtoh(&batch).unwrap(),
    );
    assert_eq!(alone, batch[..rows], "token 0 alone and in a batch of 8");
}

#[test]
fn rms_norm_rope_and_activations_match_the_cpu() {
    let gpu = gpu();
    let mut rng = Rng(4);
    for n in [64, 576, 1000] {
        let (x, w) = (rng.vec(3 * n), rng.vec(n));
        let mut want = x.clone();
        rms_norm_inplace(&mut want, &w, 1e-6);
        let (dx, dw) = (
            gpu.stream.clone_htod(&x).unwrap(),
            gpu.stream.clone_htod(&w).unwrap(),
        );
        let mut dy = gpu.stream.alloc_zeros::<f32>(3 * n).unwrap();
        gpu.rms_norm(&dx, &dw, &mut dy, 3, 1e-6).unwrap();
        assert_close(
            &gpu.stream.clone_dtoh(&dy).unwrap(),
            &want,
            1e-5,
            "rms_norm",
        );
    }
    for layout in [RopeLayout::Interleaved, RopeLayout::Halves] {
        let rope = Rope {
            head_dim: 64,
            rope_dim: 64,
            base: 10000.0,
            freq_scale: 1.0,
            freq_factors: None,
            layout,
        };
        let (tokens, heads, start) = (5, 3, 1021);
        let x = rng.vec(tokens * heads * 64);
        let mut want = x.clone();
        rope.rotate(&mut want, heads, start);
        let pos: Vec<i32> = (0..tokens as i32).map(|t| start as i32 + t).collect();
        let mut dx = gpu.stream.clone_htod(&x).unwrap();
        let dpos = gpu.stream.clone_htod(&pos).unwrap();
        gpu.rope(&rope, &mut dx, &dpos, tokens, heads).unwrap();
        assert_close(
            &gpu.stream.clone_dtoh(&dx).unwrap(),
            &want,
            1e-4,
            &format!("rope {layout:?}"),
        );
    }
    for (act, gelu) in [(Activation::Silu, false), (Activation::Gelu, true)] {
        let (g, u) = (rng.vec(32 * 49), rng.vec(32 * 49));
        let mut want = g.clone();
        act.apply(&mut want, &u);
        let (dg, du) = (
            gpu.stream.clone_htod(&g).unwrap(),
            gpu.stream.clone_htod(&u).unwrap(),
        );
        let mut out = gpu.stream.alloc_zeros::<u8>(q8_1_bytes(32 * 49)).unwrap();
        gpu.gated_activation_q8_1(gelu, &dg, &du, &mut out).unwrap();
        assert_q8_1_close(
            &gpu.stream.clone_dtoh(&out).unwrap(),
            &want,
            &format!("{act:?}"),
        );
    }
}

/// Q8_1 blocks within one quantization step (max|x| / 127 of their block) of `want`.
fn assert_q8_1_close(blocks: &[u8], want: &[f32], what: &str) {
    let mut got = vec![0f32; want.len()];
    dequantize_activations(ActivationType::Q8_1, blocks, &mut got);
    for (b, (g, w)) in got.chunks(32).zip(want.chunks(32)).enumerate() {
        let step = w.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        for (i, (g, w)) in g.iter().zip(w).enumerate() {
            assert!(
                (g - w).abs() <= step + 1e-4,
                "{what}[{}]: GPU {g}, CPU {w}",
                32 * b + i
            );
        }
    }
}

#[test]
fn fused_rms_norm_q8_1_gives_the_bytes_of_norm_then_quantize() {
    let gpu = gpu();
    let mut rng = Rng(9);
    for n in [64, 576, 2048] {
        let (x, w) = (rng.vec(5 * n), rng.vec(n));
        let (dx, dw) = (
            gpu.stream.clone_htod(&x).unwrap(),
            gpu.stream.clone_htod(&w).unwrap(),
        );
        let mut normed = gpu.stream.alloc_zeros::<f32>(5 * n).unwrap();
        gpu.rms_norm(&dx, &dw, &mut normed, 5, 1e-6).unwrap();
        let mut want = gpu.stream.alloc_zeros::<u8>(q8_1_bytes(5 * n)).unwrap();
        gpu.quantize_q8_1(&normed, &mut want, 5 * n).unwrap();
        let mut got = gpu.stream.alloc_zeros::<u8>(q8_1_bytes(5 * n)).unwrap();
        gpu.rms_norm_q8_1(&dx, &dw, &mut got, 5, 1e-6).unwrap();
        assert_eq!(
            gpu.stream.clone_dtoh(&got).unwrap(),
            gpu.stream.clone_dtoh(&want).unwrap(),
            "rms_norm_q8_1, rows of {n}"
        );
    }
}

#[test]
fn paged_decode_attention_matches_plain_softmax_attention() {
    let gpu = gpu();
    let mut rng = Rng(5);
    // (query heads, KV heads, head_dim, lengths, window): GQA 1, 3 (SmolLM2), 4 (MQA, Gemma), 8.
    let cases = [
        (4, 4, 64, vec![1usize, 64, 65], 0usize),
        (9, 3, 64, vec![300, 7], 0),
        (4, 1, 256, vec![700], 512),
        (32, 4, 128, vec![129, 1000], 0),
    ];
    for (n_head, n_kv_head, head_dim, lens, window) in cases {
        let sequences = lens.len();
        let max_len = *lens.iter().max().unwrap();
        // Three spare table columns, so the rounded-up launch below has more chunks.
        let max_blocks = max_len.div_ceil(64) + 3;
        // Blocks handed out in reverse, so tables are not the identity.
        let total_blocks = sequences * max_blocks;
        let mut tables = vec![0i32; sequences * max_blocks];
        for (i, t) in tables.iter_mut().enumerate() {
            *t = (total_blocks - 1 - i) as i32;
        }
        let pool_len = total_blocks * n_kv_head * 64 * head_dim;
        let k: Vec<f16> = (0..pool_len)
            .map(|_| f16::from_f32(rng.normal_ish()))
            .collect();
        let v: Vec<f16> = (0..pool_len)
            .map(|_| f16::from_f32(rng.normal_ish()))
            .collect();
        let q = rng.vec(sequences * n_head * head_dim);
        let scale = 1.0 / (head_dim as f32).sqrt();
        let row = |s: usize, p: usize, kvh: usize| {
            let block = tables[s * max_blocks + p / 64] as usize;
            ((block * n_kv_head + kvh) * 64 + p % 64) * head_dim
        };
        let mut want = vec![0f32; q.len()];
        for (s, &len) in lens.iter().enumerate() {
            let first = if window > 0 && len > window {
                len - window
            } else {
                0
            };
            for h in 0..n_head {
                let kvh = h / (n_head / n_kv_head);
                let qh = &q[(s * n_head + h) * head_dim..][..head_dim];
                let scores: Vec<f64> = (first..len)
                    .map(|p| {
                        let kr = &k[row(s, p, kvh)..][..head_dim];
                        kr.iter()
                            .zip(qh)
                            .map(|(a, b)| f64::from(a.to_f32()) * f64::from(*b))
                            .sum::<f64>()
                            * f64::from(scale)
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let l: f64 = e.iter().sum();
                for d in 0..head_dim {
                    let acc: f64 = (first..len)
                        .zip(&e)
                        .map(|(p, e)| e * f64::from(v[row(s, p, kvh) + d].to_f32()))
                        .sum();
                    want[(s * n_head + h) * head_dim + d] = (acc / l) as f32;
                }
            }
        }
        let shape = AttentionShape {
            sequences,
            n_head,
            n_kv_head,
            head_dim,
            max_blocks,
            max_len,
            window,
            scale,
        };
        let lens_i: Vec<i32> = lens.iter().map(|&l| l as i32).collect();
        let (dq, dk, dv) = (
            gpu.stream.clone_htod(&q).unwrap(),
            gpu.stream.clone_htod(&k).unwrap(),
            gpu.stream.clone_htod(&v).unwrap(),
        );
        let (dt, dl) = (
            gpu.stream.clone_htod(&tables).unwrap(),
            gpu.stream.clone_htod(&lens_i).unwrap(),
        );
        let what =
            format!("attention {n_head}/{n_kv_head}×{head_dim} lens {lens:?} window {window}");
        // As asked, and with the length rounded up to the whole table (more, empty chunks, as
        // a captured decode step launches): the same bits.
        let mut outs = Vec::new();
        for max_len in [max_len, max_blocks * 64] {
            let shape = AttentionShape { max_len, ..shape };
            let chunks = max_len.div_ceil(ATTN_CHUNK);
            let mut partials = gpu
                .attention_partials(sequences, n_head, head_dim, chunks)
                .unwrap();
            let mut out = gpu.stream.alloc_zeros::<f32>(q.len()).unwrap();
            gpu.attention_decode(&shape, &dq, &dk, &dv, &dt, &dl, &mut partials, &mut out)
                .unwrap();
            outs.push(gpu.stream.clone_dtoh(&out).unwrap());
        }
        assert_close(&outs[0], &want, 1e-4, &what);
        let same = outs[0]
            .iter()
            .zip(&outs[1])
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{what}: empty chunks changed the result");
    }
}

#[test]
fn get_rows_matches_the_cpu_for_every_type() {
    use WeightType::*;
    let gpu = gpu();
    let mut rng = Rng(6);
    for ty in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K] {
        let (rows, cols) = (5, 3 * ty.block_len());
        let w = random_weights(ty, rows, cols, &mut rng);
        let mut want = vec![0f32; rows * cols];
        dequantize_row(ty, &w, &mut want);
        let dw = gpu.stream.clone_htod(&w).unwrap();
        let ids = [4i32, 0, 4, 2];
        let dids = gpu.stream.clone_htod(&ids).unwrap();
        let mut rows_out = gpu.stream.alloc_zeros::<f32>(ids.len() * cols).unwrap();
        gpu.get_rows(ty, &dw, &dids, &mut rows_out, ids.len(), cols)
            .unwrap();
        let got = gpu.stream.clone_dtoh(&rows_out).unwrap();
        let want_rows: Vec<f32> = ids
            .iter()
            .flat_map(|&r| want[r as usize * cols..][..cols].to_vec())
            .collect();
        assert_close(&got, &want_rows, 1e-6, &format!("get_rows {ty:?}"));
    }
}

/// Keys rotated on their way into the pool and values beside them, where the CPU layout has
/// them: both RoPE layouts, and a rotary part shorter than the head (the rest copied).
#[test]
fn rope_kv_write_add_and_scale_match_the_cpu() {
    let gpu = gpu();
    let mut rng = Rng(7);
    let (tokens, n_kv_head, head_dim) = (3, 2, 64);
    let slots = [5 * 64 + 63, 2 * 64, 7];
    let pos = [1000i32, 3, 70];
    for (layout, rope_dim) in [(RopeLayout::Interleaved, 64), (RopeLayout::Halves, 32)] {
        let rope = Rope {
            head_dim,
            rope_dim,
            base: 10000.0,
            freq_scale: 0.5,
            freq_factors: None,
            layout,
        };
        let (k, v) = (
            rng.vec(tokens * n_kv_head * head_dim),
            rng.vec(tokens * n_kv_head * head_dim),
        );
        let pool_len = 8 * n_kv_head * 64 * head_dim;
        let mut k_pool = gpu.stream.alloc_zeros::<f16>(pool_len).unwrap();
        let mut v_pool = gpu.stream.alloc_zeros::<f16>(pool_len).unwrap();
        let up = |x: &[i32]| gpu.stream.clone_htod(x).unwrap();
        let (dk, dv) = (
            gpu.stream.clone_htod(&k).unwrap(),
            gpu.stream.clone_htod(&v).unwrap(),
        );
        gpu.rope_kv_write(
            &rope,
            &dk,
            &dv,
            &up(&pos),
            &up(&slots),
            (&mut k_pool, &mut v_pool),
            tokens,
            n_kv_head,
        )
        .unwrap();
        let (k_pool, v_pool) = (
            gpu.stream.clone_dtoh(&k_pool).unwrap(),
            gpu.stream.clone_dtoh(&v_pool).unwrap(),
        );
        let row = n_kv_head * head_dim;
        for (t, &slot) in slots.iter().enumerate() {
            let mut want_k = k[t * row..][..row].to_vec();
            rope.rotate(&mut want_k, n_kv_head, pos[t] as usize);
            let (block, offset) = (slot as usize / 64, slot as usize % 64);
            for h in 0..n_kv_head {
                for d in 0..head_dim {
                    let at = ((block * n_kv_head + h) * 64 + offset) * head_dim + d;
                    let (gk, wk) = (k_pool[at].to_f32(), want_k[h * head_dim + d]);
                    assert!(
                        (gk - wk).abs() <= 2e-3 * (1.0 + wk.abs()),
                        "{layout:?} key t{t} h{h} d{d}: {gk} vs {wk}"
                    );
                    assert_eq!(v_pool[at], f16::from_f32(v[t * row + h * head_dim + d]));
                }
            }
        }
    }
    let (a, b) = (rng.vec(1001), rng.vec(1001));
    let mut da = gpu.stream.clone_htod(&a).unwrap();
    gpu.add(&mut da, &gpu.stream.clone_htod(&b).unwrap())
        .unwrap();
    let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    assert_close(&gpu.stream.clone_dtoh(&da).unwrap(), &want, 0.0, "add");
    gpu.scale(&mut da, 2.5).unwrap();
    let want: Vec<f32> = want.iter().map(|v| v * 2.5).collect();
    assert_close(&gpu.stream.clone_dtoh(&da).unwrap(), &want, 0.0, "scale");
}
