//! RMSNorm.

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

#[cfg(test)]
mod tests {
    use super::*;

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
