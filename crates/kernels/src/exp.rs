//! `e^x` as a polynomial evaluated with the same fused multiply-adds in the scalar and the AVX2
//! code, so both give the same bits and a result never depends on which path ran (the softmax
//! of attention, SiLU).

/// The arguments are clamped to this range, where `2^n` stays a normal float: below it the
/// result is under 2^-125 (0 for every use here), above it would overflow.
const MIN_EXPONENT: f32 = -87.0;
const MAX_EXPONENT: f32 = 88.0;
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that `n * LN2_HI` is exact for the `n` that occur.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes' minimax polynomial for `(e^r - 1 - r) / r²` on `[-ln2/2, ln2/2]`.
const POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// `e^x` within 2 ulp for `x` in [-87, 88] (clamped to that range).
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(MIN_EXPONENT, MAX_EXPONENT);
    let n = (x * LOG2_E).round_ties_even();
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    let p = POLY[1..].iter().fold(POLY[0], |p, &c| p.mul_add(r, c));
    let e = p.mul_add(r * r, r) + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    use super::*;

    /// `exp` eight at a time, the same operations in the same order.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn exp8(x: __m256) -> __m256 {
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(MIN_EXPONENT)),
            _mm256_set1_ps(MAX_EXPONENT),
        );
        let n = _mm256_round_ps(
            _mm256_mul_ps(x, _mm256_set1_ps(LOG2_E)),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
        );
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), x);
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), r);
        let p = POLY[1..].iter().fold(_mm256_set1_ps(POLY[0]), |p, &c| {
            _mm256_fmadd_ps(p, r, _mm256_set1_ps(c))
        });
        let e = _mm256_add_ps(
            _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r),
            _mm256_set1_ps(1.0),
        );
        let pow2 = _mm256_slli_epi32(
            _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
            23,
        );
        _mm256_mul_ps(e, _mm256_castsi256_ps(pow2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_close_to_libm_over_its_range() {
        let mut x = 88.0f32;
        while x > -100.0 {
            let (got, want) = (exp(x), f64::from(x).exp());
            let tolerance = 3.0 * f64::from(f32::EPSILON) * want + 1e-37;
            assert!(
                (f64::from(got) - want).abs() <= tolerance,
                "exp({x}) = {got}, want {want}"
            );
            x -= 0.013;
        }
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(1000.0).is_finite() && exp(-1000.0) >= 0.0);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn eight_at_a_time_equals_one_at_a_time() {
        use std::arch::x86_64::*;
        if let Err(why) = crate::tier::Tier::Avx2.supported() {
            return ward_testkit::skip("", &why);
        }
        let xs: Vec<f32> = (0..800).map(|i| (i as f32 - 400.0) * 0.37).collect();
        for x in xs.chunks_exact(8) {
            let mut got = [0.0f32; 8];
            // SAFETY: checked above that the CPU has AVX2, FMA and F16C; eight floats each way.
            unsafe { _mm256_storeu_ps(got.as_mut_ptr(), avx2::exp8(_mm256_loadu_ps(x.as_ptr()))) };
            for (g, &x) in got.iter().zip(x) {
                assert_eq!(g.to_bits(), exp(x).to_bits(), "exp({x})");
            }
        }
    }
}
