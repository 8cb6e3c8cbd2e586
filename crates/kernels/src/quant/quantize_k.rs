//! The K-quants' reference quantizers: ggml's `quantize_row_q{2..6}_K_ref` (`ggml-quants.c`),
//! which is also what `quantize_q*_K` — llama-quantize's call — runs without an importance
//! matrix. Ported operation for operation in f32 (no fused multiply-adds, the same summation
//! order, the same integer conversions), so the bytes equal ggml's; the test against
//! `scripts/reference/ggml_quants_oracle.c` (in `quantize.rs`) holds them to it.

use super::dequant::{q3_k_scales, scale_min_k4};
use super::QK_K;

/// ggml's `GROUP_MAX_EPS`: a group whose largest magnitude is below this is all zero.
const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: adding 1.5·2²³ leaves the integer, rounded half to even, in the low
/// mantissa bits. Exact for |v| < 2²²; beyond that it is ggml's garbage, reproduced.
pub(super) fn nearest_int(v: f32) -> i32 {
    let bits = (v + 12_582_912.0).to_bits() as i32;
    (bits & 0x007f_ffff) - 0x0040_0000
}

/// `v` stored as f16, and the f32 ggml reads back from it for the second pass.
fn f16_round_trip(v: f32) -> ([u8; 2], f32) {
    let h = half::f16::from_f32(v);
    (h.to_le_bytes(), h.to_f32())
}

/// ggml's `make_qx_quants` for `rmse_type` 1 without importance weights (the only use on the
/// reference path, Q6_K): levels in `l` (0..2·nmax), the scale returned. Tries 18 scales
/// around nmax/max and keeps the best weighted (x²) least-squares fit.
fn make_qx_quants(nmax: i32, x: &[f32], l: &mut [u8]) -> f32 {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let level = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let mut iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (li, &v) in l.iter_mut().zip(x) {
        let q = level(iscale, v);
        *li = (q + nmax) as u8;
        let w = v * v;
        sumlx += w * v * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        (sumlx, suml2) = (0.0, 0.0);
        for &v in x {
            let q = level(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * q;
            suml2 += w * q * q;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (li, &v) in l.iter_mut().zip(x) {
                *li = (level(iscale, v) + nmax) as u8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_q3_quants` with `do_rmse` (Q3_K): levels in `l` (0..2·nmax), the scale
/// returned. Starts from nmax/max, then moves single levels while the x²-weighted fit improves.
fn make_q3_quants(nmax: i32, x: &[f32], l: &mut [i8]) -> f32 {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (li, &v) in l.iter_mut().zip(x) {
        let q = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *li = q as i8;
        let w = v * v;
        sumlx += w * v * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    for _ in 0..5 {
        let mut changed = false;
        for (li, &v) in l.iter_mut().zip(x) {
            let w = v * v;
            let old = f32::from(*li);
            let mut slx = sumlx - w * v * old;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * old * old;
                let new = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new != i32::from(*li) {
                    slx += w * v * new as f32;
                    sl2 += w * new as f32 * new as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *li = new as i8;
                        (sumlx, suml2) = (slx, sl2);
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    for li in l.iter_mut() {
        *li += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// ggml's `make_qkx2_quants`: x ≈ scale·l − min with l in 0..=nmax, fitted by weighted least
/// squares over nstep+1 trial scales (error |·| with `use_mad`, else squared). Levels in `l`;
/// returns (scale, min), min ≥ 0.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for (&v, &w) in x.iter().zip(weights).skip(1) {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
        sum_w += w;
        sum_x += w * v;
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    let err = |d: f32| if use_mad { d.abs() } else { d * d };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for ((li, &v), &w) in l.iter_mut().zip(x).zip(weights) {
        *li = nearest_int(iscale * (v - min)).clamp(0, nmax) as u8;
        best_error += w * err(scale * f32::from(*li) + min - v);
    }
    let mut laux = [0u8; 32];
    let laux = &mut laux[..x.len()];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for ((la, &v), &w) in laux.iter_mut().zip(x).zip(weights) {
            let q = nearest_int(iscale * (v - min)).clamp(0, nmax);
            *la = q as u8;
            let q = q as f32;
            sum_l += w * q;
            sum_l2 += w * q * q;
            sum_xl += w * q * v;
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for ((&la, &v), &w) in laux.iter().zip(x).zip(weights) {
                cur_error += w * err(this_scale * f32::from(la) + this_min - v);
            }
            if cur_error < best_error {
                l.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Packs 2-bit levels as Q2_K/Q3_K store them: byte l of each 32-byte group holds values
/// l, l+32, l+64, l+96 of its 128.
fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8]) {
    for (j, qs) in (0..QK_K).step_by(128).zip(qs.chunks_exact_mut(32)) {
        for (i, q) in qs.iter_mut().enumerate() {
            *q = l[j + i] | (l[j + i + 32] << 2) | (l[j + i + 64] << 4) | (l[j + i + 96] << 6);
        }
    }
}

/// `quantize_row_q2_K_ref`: 16 sub-blocks of 16 fitted with |x|-weighted absolute error, their
/// scales and minimums quantized to 4 bits against the block's largest.
pub(super) fn q2_k_block(x: &[f32], out: &mut Vec<u8>) {
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins) = ([0.0f32; 16], [0.0f32; 16]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        let weights: [f32; 16] = std::array::from_fn(|i| xs[i].abs());
        let ls = &mut l[16 * j..16 * j + 16];
        (scales[j], mins[j]) = make_qkx2_quants(3, xs, &weights, ls, -0.5, 0.1, 15, true);
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let mut sc = [0u8; 16];
    let (d, d_f) = if max_scale > 0.0 {
        let iscale = 15.0 / max_scale;
        for (s, &v) in sc.iter_mut().zip(&scales) {
            *s = nearest_int(iscale * v) as u8;
        }
        f16_round_trip(max_scale / 15.0)
    } else {
        f16_round_trip(0.0)
    };
    let (dmin, dmin_f) = if max_min > 0.0 {
        let iscale = 15.0 / max_min;
        for (s, &v) in sc.iter_mut().zip(&mins) {
            *s |= (nearest_int(iscale * v) << 4) as u8;
        }
        f16_round_trip(max_min / 15.0)
    } else {
        f16_round_trip(0.0)
    };
    // Levels again against the scales as stored; a sub-block whose scale rounded to 0 keeps
    // the fit's.
    for (j, &s) in sc.iter().enumerate() {
        let d = d_f * f32::from(s & 0x0f);
        if d == 0.0 {
            continue;
        }
        let dm = dmin_f * f32::from(s >> 4);
        for i in 16 * j..16 * j + 16 {
            l[i] = nearest_int((x[i] + dm) / d).clamp(0, 3) as u8;
        }
    }
    let mut qs = [0u8; 64];
    pack_2bit(&l, &mut qs);
    out.extend(sc);
    out.extend(qs);
    out.extend(d);
    out.extend(dmin);
}

/// `quantize_row_q3_K_ref`: 16 signed sub-block scales from `make_q3_quants`, quantized to
/// 6 bits against the largest in magnitude; the third bit of each level goes to `hmask`.
pub(super) fn q3_k_block(x: &[f32], out: &mut Vec<u8>) {
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
    for j in 0..16 {
        scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
        if scales[j].abs() > amax {
            amax = scales[j].abs();
            max_scale = scales[j];
        }
    }
    let mut sc = [0u8; 12];
    let (d, d_f) = if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for (j, &v) in scales.iter().enumerate() {
            // ggml narrows to int8_t before clamping.
            let q = ((nearest_int(iscale * v) as i8).clamp(-32, 31) + 32) as u8;
            if j < 8 {
                sc[j] = q & 0x0f;
            } else {
                sc[j - 8] |= (q & 0x0f) << 4;
            }
            sc[j % 4 + 8] |= (q >> 4) << (2 * (j / 4));
        }
        f16_round_trip(1.0 / iscale)
    } else {
        f16_round_trip(0.0)
    };
    for (j, &s) in q3_k_scales(&sc).iter().enumerate() {
        let d = d_f * f32::from(s);
        if d == 0.0 {
            continue;
        }
        for i in 16 * j..16 * j + 16 {
            l[i] = nearest_int(x[i] / d).clamp(-4, 3) as i8 + 4;
        }
    }
    // Levels are 0..8 here; bit 2 of value j goes to bit j/32 of hmask[j % 32].
    let mut hmask = [0u8; 32];
    let mut low = [0u8; QK_K];
    for (j, (&q, lo)) in l.iter().zip(&mut low).enumerate() {
        let mut q = q as u8;
        if q > 3 {
            hmask[j % 32] |= 1 << (j / 32);
            q -= 4;
        }
        *lo = q;
    }
    let mut qs = [0u8; 64];
    pack_2bit(&low, &mut qs);
    out.extend(hmask);
    out.extend(qs);
    out.extend(sc);
    out.extend(d);
}

/// The shared first half of Q4_K and Q5_K: 8 sub-blocks of 32 fitted by `make_qkx2_quants`
/// (weights mean-square + |x|), scales and minimums to 6 bits, then the levels (0..=nmax)
/// against the stored scales. Returns (d, dmin, packed scales).
fn k4_scales_and_levels(
    x: &[f32],
    nmax: i32,
    rmin: f32,
    nstep: i32,
    l: &mut [u8; QK_K],
) -> ([u8; 2], [u8; 2], [u8; 12]) {
    let (mut scales, mut mins) = ([0.0f32; 8], [0.0f32; 8]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let sum_x2 = xs.iter().fold(0.0f32, |s, &v| s + v * v);
        let av_x = (sum_x2 / 32.0).sqrt();
        let weights: [f32; 32] = std::array::from_fn(|i| av_x + xs[i].abs());
        let ls = &mut l[32 * j..32 * j + 32];
        (scales[j], mins[j]) = make_qkx2_quants(nmax, xs, &weights, ls, rmin, 0.1, nstep, false);
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut sc = [0u8; 12];
    for j in 0..8 {
        // ggml narrows to uint8_t before taking the minimum.
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
            sc[j - 4] |= (ls >> 4) << 6;
            sc[j] |= (lm >> 4) << 6;
        }
    }
    let (d, d_f) = f16_round_trip(max_scale / 63.0);
    let (dmin, dmin_f) = f16_round_trip(max_min / 63.0);
    for j in 0..8 {
        let (s, m) = scale_min_k4(j, &sc);
        let d = d_f * f32::from(s);
        if d == 0.0 {
            continue;
        }
        let dm = dmin_f * f32::from(m);
        for i in 32 * j..32 * j + 32 {
            l[i] = nearest_int((x[i] + dm) / d).clamp(0, nmax) as u8;
        }
    }
    (d, dmin, sc)
}

/// `quantize_row_q4_K_ref`.
pub(super) fn q4_k_block(x: &[f32], out: &mut Vec<u8>) {
    let mut l = [0u8; QK_K];
    let (d, dmin, sc) = k4_scales_and_levels(x, 15, -1.0, 20, &mut l);
    out.extend(d);
    out.extend(dmin);
    out.extend(sc);
    for j in (0..QK_K).step_by(64) {
        out.extend((0..32).map(|i| l[j + i] | (l[j + i + 32] << 4)));
    }
}

/// `quantize_row_q5_K_ref`: Q4_K's fit at 5 bits; bit 4 of value i of sub-block s is bit s of
/// qh[i].
pub(super) fn q5_k_block(x: &[f32], out: &mut Vec<u8>) {
    let mut l = [0u8; QK_K];
    let (d, dmin, sc) = k4_scales_and_levels(x, 31, -0.5, 15, &mut l);
    let mut qh = [0u8; 32];
    let mut qs = [0u8; 128];
    for (n, ql) in qs.chunks_exact_mut(32).enumerate() {
        for (i, q) in ql.iter_mut().enumerate() {
            let (lo, hi) = (l[64 * n + i], l[64 * n + i + 32]);
            qh[i] |= ((lo >> 4) << (2 * n)) | ((hi >> 4) << (2 * n + 1));
            *q = (lo & 0x0f) | ((hi & 0x0f) << 4);
        }
    }
    out.extend(d);
    out.extend(dmin);
    out.extend(sc);
    out.extend(qh);
    out.extend(qs);
}

/// `quantize_row_q6_K_ref`: 16 sub-blocks of 16 from `make_qx_quants`, their scales to int8
/// against the largest in magnitude (which becomes −128, clamped to 127 if positive).
pub(super) fn q6_k_block(x: &[f32], out: &mut Vec<u8>) {
    let mut l = [0u8; QK_K];
    let mut scales = [0.0f32; 16];
    let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
    for j in 0..16 {
        scales[j] = make_qx_quants(32, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
        if scales[j].abs() > max_abs_scale {
            max_abs_scale = scales[j].abs();
            max_scale = scales[j];
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        out.extend([0u8; 210]);
        return;
    }
    let iscale = -128.0 / max_scale;
    let (d, d_f) = f16_round_trip(1.0 / iscale);
    let sc: [i8; 16] = std::array::from_fn(|j| nearest_int(iscale * scales[j]).min(127) as i8);
    for (j, &s) in sc.iter().enumerate() {
        let d = d_f * f32::from(s);
        if d == 0.0 {
            continue;
        }
        for i in 16 * j..16 * j + 16 {
            l[i] = (nearest_int(x[i] / d).clamp(-32, 31) + 32) as u8;
        }
    }
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    for (h, (ql, qh)) in ql
        .chunks_exact_mut(64)
        .zip(qh.chunks_exact_mut(32))
        .enumerate()
    {
        let l = &l[128 * h..128 * h + 128];
        for i in 0..32 {
            ql[i] = (l[i] & 0x0f) | ((l[i + 64] & 0x0f) << 4);
            ql[i + 32] = (l[i + 32] & 0x0f) | ((l[i + 96] & 0x0f) << 4);
            qh[i] = (l[i] >> 4)
                | ((l[i + 32] >> 4) << 2)
                | ((l[i + 64] >> 4) << 4)
                | ((l[i + 96] >> 4) << 6);
        }
    }
    out.extend(ql);
    out.extend(qh);
    out.extend(sc.map(|s| s as u8));
    out.extend(d);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        let cases = [
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (-2.5, -2),
        ];
        for (v, want) in cases {
            assert_eq!(nearest_int(v), want, "{v}");
        }
        assert_eq!(nearest_int(0.49999997), 0);
        assert_eq!(nearest_int(-7.6), -8);
        assert_eq!(nearest_int(4_194_303.0), 4_194_303);
    }

    #[test]
    fn make_qkx2_quants_fits_a_grid_exactly() {
        // x = 0.5·l − 1 for l = 0..15 repeated: the fit finds scale 0.5, min 1, the levels.
        let x: Vec<f32> = (0..32).map(|i| 0.5 * (i % 16) as f32 - 1.0).collect();
        let w = [1.0f32; 32];
        let mut l = [0u8; 32];
        let (scale, min) = make_qkx2_quants(15, &x, &w, &mut l, -1.0, 0.1, 20, false);
        assert_eq!((scale, min), (0.5, 1.0));
        assert!(l.iter().enumerate().all(|(i, &q)| q as usize == i % 16));
    }
}
