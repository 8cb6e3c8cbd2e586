//! Ward's CUDA and Metal kernels checked without a GPU. The block decoding (`kernels/cuda/include/
//! vecdot.cuh`) compiles as plain C++, and `kernels/cuda/tests/emulate.h` runs whole kernels on
//! the host (a block's threads as fibers, barriers for the warp operations, mma.sync from the
//! PTX fragment layout; `kernels/metal/tests/metal_host.h` reads Metal's dialect as C++ over it):
//! these tests build the programs in `kernels/{cuda,metal}/tests/` with the
//! system's C++ compiler (`$CXX`, else `c++`) and run them, on cases they write (weights, Q8_1
//! activations, the CPU reference's results) or on their own random data.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{random_activations, random_weights, reference_matmul, Rng};

use ward_kernels::quant::{
    dequantize_activations, dequantize_row, quantize_activations, ActivationType, WeightType,
};

fn ggml_id(ty: WeightType) -> u32 {
    (0..64)
        .find(|&i| WeightType::from_ggml_id(i) == Some(ty))
        .unwrap()
}

#[test]
fn cuda_block_dot_products_match_the_cpu_reference() {
    use WeightType::*;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cases = Vec::new();
    for ty in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K] {
        // Odd block counts too: rows of 1 and 3 super-blocks, 5 and 9 legacy blocks.
        for blocks in [1usize, 3, 5, 9] {
            let cols = blocks * ty.block_len();
            let rows = 3;
            let row_bytes = ty.row_bytes(cols).unwrap();
            let w = random_weights(ty, rows, cols, &mut rng);
            let x = rng.vec(cols);
            let mut xq = Vec::new();
            quantize_activations(ActivationType::Q8_1, &x, &mut xq);
            let mut xd = vec![0f32; cols];
            dequantize_activations(ActivationType::Q8_1, &xq, &mut xd);
            let nsub = cols / 32;
            let (mut expected, mut magnitude, mut values) = (Vec::new(), Vec::new(), Vec::new());
            for r in 0..rows {
                let mut wd = vec![0f32; cols];
                dequantize_row(ty, &w[r * row_bytes..(r + 1) * row_bytes], &mut wd);
                values.extend_from_slice(&wd);
                for sb in 0..nsub {
                    let range = sb * 32..sb * 32 + 32;
                    let dot: f64 = range
                        .clone()
                        .map(|i| f64::from(wd[i]) * f64::from(xd[i]))
                        .sum();
                    let mag: f64 = range
                        .map(|i| (f64::from(wd[i]) * f64::from(xd[i])).abs())
                        .sum();
                    expected.push(dot as f32);
                    magnitude.push(mag as f32);
                }
            }
            for v in [ggml_id(ty), nsub as u32, rows as u32, row_bytes as u32] {
                cases.extend(v.to_le_bytes());
            }
            cases.extend(&w);
            cases.extend(&xq);
            expected
                .iter()
                .chain(&magnitude)
                .chain(&values)
                .for_each(|v| cases.extend(v.to_le_bytes()));
        }
    }
    cases.extend(u32::MAX.to_le_bytes());
    run_host_program("cuda/tests/host_vecdot.cpp", &cases);
}

/// Matmul cases for the host programs (`kernels/cuda/tests/cases.h` reads them): every type,
/// row and token tails of mmq's 64 × 64 tiles, rows whose sub-blocks end inside a chunk of 8,
/// with the CPU reference's outputs.
fn matmul_cases() -> Vec<u8> {
    use WeightType::*;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut cases = Vec::new();
    for ty in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K] {
        // Legacy types: 9 and 3 sub-blocks a row; K-quants: 72 and 24.
        for (rows, blocks, tokens) in [(1, 9, 9), (70, 3, 67)] {
            let cols = blocks * ty.block_len();
            let row_bytes = ty.row_bytes(cols).unwrap();
            let w = random_weights(ty, rows, cols, &mut rng);
            let xq = random_activations(&mut rng, tokens, cols);
            let (want, magnitude) = reference_matmul(ty, &w, rows, cols, &xq, tokens);
            for v in [
                ggml_id(ty),
                rows as u32,
                cols as u32,
                tokens as u32,
                row_bytes as u32,
            ] {
                cases.extend(v.to_le_bytes());
            }
            cases.extend(&w);
            cases.extend(&xq);
            want.iter()
                .chain(&magnitude)
                .for_each(|v| cases.extend(v.to_le_bytes()));
        }
    }
    cases.extend(u32::MAX.to_le_bytes());
    cases
}

/// The matmul kernels (`mmvq.cu`, `mmq.cu`) themselves, run on the host by `tests/emulate.h` on
/// [`matmul_cases`]: mmvq (8 tokens at a time) and mmq (all at once) must agree bit for bit,
/// and with the CPU.
#[test]
fn cuda_matmul_kernels_emulated_on_the_host_agree_bit_for_bit_and_with_the_cpu() {
    run_host_program("cuda/tests/host_matmul.cpp", &matmul_cases());
}

/// The forward pass's other kernels (Q8_1 quantization, RMSNorm fused and not, activations into
/// Q8_1, RoPE and RoPE + KV write, split-KV paged attention with GQA, windows and empty chunks)
/// run on the host by `tests/emulate.h`, against plain loops `host_kernels.cpp` computes itself.
#[test]
fn cuda_forward_kernels_emulated_on_the_host_match_plain_loops() {
    run_host_program("cuda/tests/host_kernels.cpp", &[]);
}

/// The Metal kernels (`kernels/metal`), run on the host by `kernels/metal/tests/metal_host.h`
/// over the same emulation beside their CUDA namesakes: the matmuls (on [`matmul_cases`]),
/// embedding rows, quantization and activations must give the CUDA kernels' bits, the norms,
/// RoPE and attention their values.
#[test]
fn metal_kernels_emulated_on_the_host_match_the_cuda_kernels() {
    run_host_program("metal/tests/host_metal.cpp", &matmul_cases());
}

/// Build `kernels/SOURCE` with the system's C++ compiler (`$CXX`, else `c++`) and run it on
/// `cases` (a file it is given the path of); it must exit 0.
fn run_host_program(source: &str, cases: &[u8]) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let name = source.rsplit('/').next().unwrap().trim_end_matches(".cpp");
    let dir = std::env::temp_dir().join(format!("ward-cuda-host-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (file, exe) = (dir.join("cases.bin"), dir.join(name));
    std::fs::write(&file, cases).unwrap();
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let built = Command::new(&cxx)
        .args(["-O1", "-std=c++20", "-ffp-contract=off", "-Wall", "-Werror"])
        .arg("-Wno-unknown-pragmas") // the kernels' #pragma unroll
        .arg("-Wno-attributes") // Metal's [[buffer(0)]] and the like
        .arg("-I")
        .arg(root.join("kernels/cuda/tests/host")) // cuda_fp16.h for the host
        .arg("-o")
        .arg(&exe)
        .arg(root.join("kernels").join(source))
        .status()
        .unwrap_or_else(|e| panic!("{cxx} (a C++ compiler) is needed for this test: {e}"));
    assert!(built.success(), "{source} did not compile");
    let ran = Command::new(&exe).arg(&file).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        ran.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    print!("{}", String::from_utf8_lossy(&ran.stdout));
}
