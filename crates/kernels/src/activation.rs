//! Gated activations of the feed-forward block: `act(gate) * up`.

use half::f16;

/// SiLU-gated (SwiGLU, Llama): `gate = silu(gate) * up`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "silu_mul: shape mismatch");
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
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
pub fn gelu_mul(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "gelu_mul: shape mismatch");
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        let act = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x
        } else {
            f16::from_f32(gelu_tanh(f16::from_f32(x).to_f32())).to_f32()
        };
        *g = act * u;
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
}
