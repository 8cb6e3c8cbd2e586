//! How fast this machine can stream memory: the bound on decode speed, which must read every
//! weight once per token. `ward bench` reports decode as a fraction of it.

use std::time::Instant;

use crate::pool;

/// Read bandwidth in GB/s with the kernel pool's threads: each thread sums its share of a
/// buffer far larger than the caches; the best of `rounds` passes counts.
pub fn read_bandwidth_gb_s(bytes: usize, rounds: usize) -> f64 {
    let words = (bytes / 8).max(1 << 10);
    let mut buf = vec![0u64; words];
    // Touch every page so the passes below read memory, not fresh zero pages.
    for (i, w) in buf.iter_mut().enumerate().step_by(512) {
        *w = i as u64;
    }
    let pool = pool::global();
    let threads = pool.threads();
    let share = words.div_ceil(threads);
    let mut best = f64::INFINITY;
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        pool.run(&|t| {
            let part = &buf[(t * share).min(words)..((t + 1) * share).min(words)];
            // Four independent sums keep several loads in flight.
            let mut s = [0u64; 4];
            for c in part.chunks_exact(4) {
                for (s, &v) in s.iter_mut().zip(c) {
                    *s = s.wrapping_add(v);
                }
            }
            std::hint::black_box(s);
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    (words * 8) as f64 / best / 1e9
}

#[cfg(test)]
mod tests {
    #[test]
    fn reports_a_positive_rate() {
        assert!(super::read_bandwidth_gb_s(1 << 20, 2) > 0.0);
    }
}
