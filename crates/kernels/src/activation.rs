//! Gated activations of the feed-forward block: `act(gate) * up`, element by element, applied
//! by the gate/up matmul's threads to the outputs they computed (`quant::matmul_gated`), or
//! spread over the kernel pool on their own.

use std::sync::OnceLock;

use half::f16;

use crate::exp::exp;
use crate::pool;

/// Elements per pool chunk: large enough to amortise the hand-out.
const CHUNK: usize = 4096;

/// The gate's activation in a gated feed-forward block: `gate = act(gate) * up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SiLU (SwiGLU, Llama).
    Silu,
    /// tanh-approximated GELU (GeGLU, Gemma).
    Gelu,
}

impl Activation {
    /// `gate = act(gate) * up` on this thread (a matmul's threads apply it to the outputs they
    /// computed).
    pub fn apply(self, gate: &mut [f32], up: &[f32]) {
        assert_eq!(gate.len(), up.len(), "gated activation: shape mismatch");
        match self {
            Activation::Silu => silu(gate, up),
            Activation::Gelu => gelu(gate, up),
        }
    }

    /// The same spread over the kernel pool.
    pub fn apply_parallel(self, gate: &mut [f32], up: &[f32]) {
        assert_eq!(gate.len(), up.len(), "gated activation: shape mismatch");
        pool::global().for_each_chunk(gate, CHUNK, |offset, gate| {
            self.apply(gate, &up[offset..][..gate.len()])
        });
    }
}

/// SiLU-gated: `gate = silu(gate) * up`, with `crate::exp` (eight at a time where the CPU has
/// AVX2, the same bits either way).
fn silu(gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    let done = if crate::tier::avx2_floats() {
        // SAFETY: `avx2_floats` is true only where the CPU has AVX2, FMA and F16C.
        unsafe { avx2::silu(gate, up) }
    } else {
        0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (g, &u) in gate.iter_mut().zip(up).skip(done) {
        *g = *g / (1.0 + exp(-*g)) * u;
    }
}

/// tanh-approximated GELU.
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044_715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + COEF_A * x * x)).tanh())
}

/// GELU-gated: `gate = gelu(gate) * up`. Inside (-10, 10) the GELU is taken at the input
/// rounded to f16 and rounded to f16 again, like ggml's CPU lookup table, so that Ward's numbers
/// track llama.cpp's. The rounding makes it a function of 65536 inputs, tabulated once as f16
/// (128 KiB, of which the 37 K entries inside (-10, 10) are read: it stays in a core's L2 while
/// the weights stream past).
fn gelu(gate: &mut [f32], up: &[f32]) {
    gelu_times(gate, Some(up))
}

/// The plain (ungated) GELU of a BERT feed-forward block, `x = gelu(x)` in place, spread over
/// the kernel pool; the same function, table and rounding as the gated one.
pub fn gelu_parallel(x: &mut [f32]) {
    pool::global().for_each_chunk(x, CHUNK, |_, x| gelu_times(x, None));
}

/// `gate = gelu(gate) * up`, or `gelu(gate)` without `up`.
fn gelu_times(gate: &mut [f32], up: Option<&[f32]>) {
    static TABLE: OnceLock<Vec<u16>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| f16::from_f32(gelu_tanh(f16::from_bits(bits).to_f32())).to_bits())
            .collect()
    });
    let (mut bits, mut acts) = ([0u16; 8], [0.0f32; 8]);
    for (i, g) in gate.chunks_mut(8).enumerate() {
        let u = up.map(|up| &up[i * 8..][..g.len()]);
        f16_bits(g, &mut bits);
        for b in bits.iter_mut() {
            *b = table[usize::from(*b)];
        }
        f16_values(&bits, &mut acts);
        for (j, (x, &act)) in g.iter_mut().zip(&acts).enumerate() {
            let act = if *x <= -10.0 {
                0.0
            } else if *x >= 10.0 {
                *x
            } else {
                act
            };
            *x = match u {
                Some(u) => act * u[j],
                None => act,
            };
        }
    }
}

/// Up to eight values rounded to f16, as bit patterns (with F16C, eight in one instruction).
fn f16_bits(x: &[f32], out: &mut [u16; 8]) {
    #[cfg(target_arch = "x86_64")]
    if x.len() == 8 && crate::tier::avx2_floats() {
        // SAFETY: `avx2_floats` is true only where the CPU has F16C; eight values each way.
        unsafe { avx2::f16_bits(x, out) };
        return;
    }
    for (o, &x) in out.iter_mut().zip(x) {
        *o = f16::from_f32(x).to_bits();
    }
}

/// Eight f16 bit patterns as floats.
fn f16_values(bits: &[u16; 8], out: &mut [f32; 8]) {
    #[cfg(target_arch = "x86_64")]
    if crate::tier::avx2_floats() {
        // SAFETY: as above.
        unsafe { avx2::f16_values(bits, out) };
        return;
    }
    for (o, &b) in out.iter_mut().zip(bits) {
        *o = f16::from_bits(b).to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// The whole vectors of `silu`; returns how many values were done.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn silu(gate: &mut [f32], up: &[f32]) -> usize {
        let whole = gate.len() / 8 * 8;
        for i in (0..whole).step_by(8) {
            // SAFETY: i + 8 <= the length of both.
            unsafe {
                let g = _mm256_loadu_ps(gate.as_ptr().add(i));
                let e = crate::exp::avx2::exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
                let silu = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0), e));
                let out = _mm256_mul_ps(silu, _mm256_loadu_ps(up.as_ptr().add(i)));
                _mm256_storeu_ps(gate.as_mut_ptr().add(i), out);
            }
        }
        whole
    }

    /// # Safety
    /// The CPU must support F16C; `x` holds eight values.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn f16_bits(x: &[f32], out: &mut [u16; 8]) {
        // SAFETY: eight floats in, eight u16 out.
        unsafe {
            let h = _mm256_cvtps_ph(_mm256_loadu_ps(x.as_ptr()), _MM_FROUND_TO_NEAREST_INT);
            _mm_storeu_si128(out.as_mut_ptr().cast(), h);
        }
    }

    /// # Safety
    /// The CPU must support F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn f16_values(bits: &[u16; 8], out: &mut [f32; 8]) {
        // SAFETY: eight u16 in, eight floats out.
        unsafe {
            let v = _mm256_cvtph_ps(_mm_loadu_si128(bits.as_ptr().cast()));
            _mm256_storeu_ps(out.as_mut_ptr(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_matches_known_values() {
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-5);
        assert_eq!(gelu_tanh(0.0), 0.0);
        let mut g = [1.0f32, -20.0, 20.0];
        Activation::Gelu.apply_parallel(&mut g, &[2.0, 2.0, 2.0]);
        assert!((g[0] - 2.0 * 0.841_192).abs() < 2e-3);
        assert_eq!(g[1], 0.0);
        assert_eq!(g[2], 40.0);
    }

    #[test]
    fn plain_gelu_is_the_gated_one_times_one() {
        let x: Vec<f32> = (0..10_000).map(|i| (i as f32 - 5000.0) * 0.0031).collect();
        let mut plain = x.clone();
        gelu_parallel(&mut plain);
        let mut gated = x.clone();
        Activation::Gelu.apply_parallel(&mut gated, &vec![1.0; x.len()]);
        assert_eq!(plain, gated);
        assert!((plain[5000 + 323] - gelu_tanh(x[5000 + 323])).abs() < 2e-3);
    }

    #[test]
    fn silu_matches_definition() {
        let mut g = [0.0f32, 2.0];
        Activation::Silu.apply_parallel(&mut g, &[3.0, 1.0]);
        assert_eq!(g[0], 0.0);
        assert!((g[1] - 2.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6);
        // Far below zero the gate closes instead of overflowing.
        let mut g = [-200.0f32, 200.0];
        Activation::Silu.apply_parallel(&mut g, &[1.0, 1.0]);
        assert!(g[0].abs() < 1e-30 && g[1] == 200.0, "{g:?}");
    }

    #[test]
    fn long_inputs_equal_the_formula_element_by_element() {
        let n = 3 * CHUNK + 17;
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 2003) as f32 - 1001.0) / 80.0)
            .collect();
        let up: Vec<f32> = (0..n).map(|i| (i % 5) as f32 - 2.0).collect();
        let mut g = x.clone();
        Activation::Gelu.apply_parallel(&mut g, &up);
        for ((&g, &x), &u) in g.iter().zip(&x).zip(&up) {
            let act = if x <= -10.0 {
                0.0
            } else if x >= 10.0 {
                x
            } else {
                f16::from_f32(gelu_tanh(f16::from_f32(x).to_f32())).to_f32()
            };
            assert_eq!(g, act * u, "gelu at {x}");
        }
        let mut g = x.clone();
        Activation::Silu.apply_parallel(&mut g, &up);
        for ((&g, &x), &u) in g.iter().zip(&x).zip(&up) {
            assert_eq!(g, x / (1.0 + exp(-x)) * u, "silu at {x}");
            let libm = x / (1.0 + (-x).exp()) * u;
            assert!(
                (g - libm).abs() <= 1e-6 * libm.abs().max(1.0),
                "silu at {x}"
            );
        }
    }
}
