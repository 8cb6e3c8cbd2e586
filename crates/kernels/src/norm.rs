//! RMSNorm.

/// `out = x / sqrt(mean(x²) + eps) * weight` for each row of `x` (rows of `weight.len()`).
/// The sum of squares is accumulated in f64, as ggml does.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let n = weight.len();
    assert!(
        n > 0 && x.len().is_multiple_of(n) && out.len() == x.len(),
        "rms_norm: shape mismatch"
    );
    for (row, out_row) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let sum: f64 = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let mean = (sum / n as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((o, &v), &w) in out_row.iter_mut().zip(row).zip(weight) {
            *o = v * scale * w;
        }
    }
}

/// In-place variant.
pub fn rms_norm_inplace(x: &mut [f32], weight: &[f32], eps: f32) {
    let n = weight.len();
    assert!(
        n > 0 && x.len().is_multiple_of(n),
        "rms_norm: shape mismatch"
    );
    for row in x.chunks_exact_mut(n) {
        let sum: f64 = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let mean = (sum / n as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for (v, &w) in row.iter_mut().zip(weight) {
            *v = *v * scale * w;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_rows_stay_unit() {
        let x = [1.0f32, -1.0, 1.0, -1.0, 2.0, 2.0, 2.0, 2.0];
        let w = [1.0f32; 4];
        let mut out = [0.0f32; 8];
        rms_norm(&x, &w, 0.0, &mut out);
        assert_eq!(&out[..4], &[1.0, -1.0, 1.0, -1.0]);
        assert_eq!(&out[4..], &[1.0, 1.0, 1.0, 1.0]);
        let mut y = x;
        rms_norm_inplace(&mut y, &w, 0.0);
        assert_eq!(y, out);
    }
}
