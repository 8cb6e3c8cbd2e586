//! Gated activations of the feed-forward block: `act(gate) * up`, element by element, spread
//! over the kernel pool (a prefill's gate is hundreds of thousands of values).

use std::sync::OnceLock;

use half::f16;

use crate::pool;

/// Elements per pool chunk: large enough to amortise the hand-out.
const CHUNK: usize = 4096;

/// `f(gate[i], up[i])` into `gate[i]`, in parallel.
fn gated(gate: &mut [f32], up: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    assert_eq!(gate.len(), up.len(), "gated activation: shape mismatch");
    pool::global().for_each_chunk(gate, CHUNK, |offset, g| {
        for (g, &u) in g.iter_mut().zip(&up[offset..]) {
            *g = f(*g, u);
        }
    });
}

/// SiLU-gated (SwiGLU, Llama): `gate = silu(gate) * up`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    gated(gate, up, |g, u| g / (1.0 + (-g).exp()) * u);
}

/// tanh-approximated GELU.
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044_715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + COEF_A * x * x)).tanh())
}

/// GELU-gated (GeGLU, Gemma): `gate = gelu(gate) * up`. Inside (-10, 10) the GELU is taken at
/// the input rounded to f16 and rounded to f16 again, like ggml's CPU lookup table, so that
/// Ward's numbers track llama.cpp's.
/// The rounding makes it a function of 65536 inputs, tabulated once.
pub fn gelu_mul(gate: &mut [f32], up: &[f32]) {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| f16::from_f32(gelu_tanh(f16::from_bits(bits).to_f32())).to_f32())
            .collect()
    });
    gated(gate, up, |x, u| {
        let act = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x
        } else {
            table[usize::from(f16::from_f32(x).to_bits())]
        };
        act * u
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_matches_known_values() {
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-5);
        assert_eq!(gelu_tanh(0.0), 0.0);
        let mut g = [1.0f32, -20.0, 20.0];
        gelu_mul(&mut g, &[2.0, 2.0, 2.0]);
        assert!((g[0] - 2.0 * 0.841_192).abs() < 2e-3);
        assert_eq!(g[1], 0.0);
        assert_eq!(g[2], 40.0);
    }

    #[test]
    fn silu_matches_definition() {
        let mut g = [0.0f32, 2.0];
        silu_mul(&mut g, &[3.0, 1.0]);
        assert_eq!(g[0], 0.0);
        assert!((g[1] - 2.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6);
    }

    #[test]
    fn long_inputs_equal_the_formula_element_by_element() {
        let n = 3 * CHUNK + 17;
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 2003) as f32 - 1001.0) / 80.0)
            .collect();
        let up: Vec<f32> = (0..n).map(|i| (i % 5) as f32 - 2.0).collect();
        let mut g = x.clone();
        gelu_mul(&mut g, &up);
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
        silu_mul(&mut g, &up);
        for ((&g, &x), &u) in g.iter().zip(&x).zip(&up) {
            assert_eq!(g, x / (1.0 + (-x).exp()) * u, "silu at {x}");
        }
    }
}
