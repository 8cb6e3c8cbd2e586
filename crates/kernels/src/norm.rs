//! RMSNorm, and the LayerNorm of BERT-style encoders.

use crate::pool;

/// An RMSNorm: `x / sqrt(mean(x²) + eps) * weight`, the sum of squares accumulated in f64 as
/// ggml does.
#[derive(Debug, Clone, Copy)]
pub struct RmsNorm<'a> {
    pub weight: &'a [f32],
    pub eps: f32,
}

impl RmsNorm<'_> {
    /// One row of `weight.len()` values, in place.
    pub fn apply(&self, row: &mut [f32]) {
        let n = row.len();
        let sum: f64 = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let mean = (sum / n as f64) as f32;
        let scale = 1.0 / (mean + self.eps).sqrt();
        for (v, &w) in row.iter_mut().zip(self.weight) {
            *v = *v * scale * w;
        }
    }
}

/// `RmsNorm { weight, eps }` on each row of `x` (rows of `weight.len()`), in place.
pub fn rms_norm_inplace(x: &mut [f32], weight: &[f32], eps: f32) {
    let n = weight.len();
    assert!(
        n > 0 && x.len().is_multiple_of(n),
        "rms_norm: shape mismatch"
    );
    let norm = RmsNorm { weight, eps };
    // Rows spread over the pool (a prefill normalises hundreds; one row runs inline).
    let rows = x.len() / n;
    let per_chunk = rows.div_ceil(4 * pool::global().threads()).max(8);
    pool::global().for_each_chunk(x, per_chunk * n, |_, rows| {
        rows.chunks_exact_mut(n).for_each(|row| norm.apply(row));
    });
}

/// LayerNorm of each row of `x` (rows of `weight.len()`), in place:
/// `(x - mean) / sqrt(var + eps) * weight + bias`, mean and variance accumulated in f64 as
/// ggml's `ggml_norm` does.
pub fn layer_norm_inplace(x: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    let n = weight.len();
    assert!(
        n > 0 && bias.len() == n && x.len().is_multiple_of(n),
        "layer_norm: shape mismatch"
    );
    let rows = x.len() / n;
    let per_chunk = rows.div_ceil(4 * pool::global().threads()).max(8);
    pool::global().for_each_chunk(x, per_chunk * n, |_, rows| {
        for row in rows.chunks_exact_mut(n) {
            let mean = (row.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64) as f32;
            let mut sum2 = 0.0f64;
            for v in row.iter_mut() {
                *v -= mean;
                sum2 += f64::from(*v) * f64::from(*v);
            }
            let scale = 1.0 / ((sum2 / n as f64) as f32 + eps).sqrt();
            for ((v, &w), &b) in row.iter_mut().zip(weight).zip(bias) {
                *v = *v * scale * w + b;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_matches_its_definition() {
        let n = 37;
        let mut x: Vec<f32> = (0..n * 5)
            .map(|i| ((i * 7919) % 101) as f32 * 0.37 - 11.0)
            .collect();
        let weight: Vec<f32> = (0..n).map(|i| 0.5 + i as f32 * 0.01).collect();
        let bias: Vec<f32> = (0..n).map(|i| i as f32 * -0.02).collect();
        let want: Vec<f32> = x
            .chunks(n)
            .flat_map(|row| {
                let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
                let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
                row.iter()
                    .zip(&weight)
                    .zip(&bias)
                    .map(move |((&v, &w), &b)| {
                        ((v as f64 - mean) / (var + 1e-12).sqrt() * w as f64 + b as f64) as f32
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        layer_norm_inplace(&mut x, &weight, &bias, 1e-12);
        for (g, w) in x.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }

    #[test]
    fn unit_rows_stay_unit_and_weights_scale() {
        let mut x = [1.0f32, -1.0, 1.0, -1.0, 2.0, 2.0, 2.0, 2.0];
        rms_norm_inplace(&mut x, &[1.0; 4], 0.0);
        assert_eq!(x, [1.0, -1.0, 1.0, -1.0, 1.0, 1.0, 1.0, 1.0]);
        let mut y = [3.0f32, 4.0];
        rms_norm_inplace(&mut y, &[2.0, 0.5], 0.0);
        // rms = sqrt((9 + 16) / 2)
        let rms = 12.5f32.sqrt();
        assert_eq!(y, [3.0 / rms * 2.0, 4.0 / rms * 0.5]);
    }
}
