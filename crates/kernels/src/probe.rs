//! How fast this machine can stream memory: the bound on decode speed, which must read every
//! weight once per token. `ward bench` reports decode as a fraction of it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::pool;

/// Read bandwidth in GB/s with the kernel pool's threads: each thread sums its share of a
/// buffer far larger than the caches; the best of `rounds` passes counts.
pub fn read_bandwidth_gb_s(bytes: usize, rounds: usize) -> f64 {
    let buf = numbered_words(bytes);
    let mut best = f64::INFINITY;
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        std::hint::black_box(sum_in_parallel(&buf));
        best = best.min(start.elapsed().as_secs_f64());
    }
    (buf.len() * 8) as f64 / best / 1e9
}

/// At least `bytes` of words numbered 0, 1, 2…: every page written, so the passes read memory,
/// not fresh zero pages, and a pass that skipped or repeated a word would get the wrong sum.
fn numbered_words(bytes: usize) -> Vec<u64> {
    (0..(bytes / 8).max(1 << 10) as u64).collect()
}

/// The wrapping sum of `buf`, each of the pool's threads reading its share once.
fn sum_in_parallel(buf: &[u64]) -> u64 {
    let pool = pool::global();
    let share = buf.len().div_ceil(pool.threads());
    let total = AtomicU64::new(0);
    pool.run(&|t| {
        let part = &buf[(t * share).min(buf.len())..((t + 1) * share).min(buf.len())];
        // Four independent sums keep several loads in flight.
        let mut s = [0u64; 4];
        let quads = part.chunks_exact(4);
        let tail: u64 = quads.remainder().iter().fold(0, |a, &v| a.wrapping_add(v));
        for c in quads {
            for (s, &v) in s.iter_mut().zip(c) {
                *s = s.wrapping_add(v);
            }
        }
        let sum = s.iter().fold(tail, |a, &v| a.wrapping_add(v));
        total.fetch_add(sum, Ordering::Relaxed);
    });
    total.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_reads_every_word_once() {
        // Sizes that split unevenly over the threads and leave tails of one to three words.
        for words in [1027usize, 4096, 100_003] {
            let buf = numbered_words(words * 8);
            let n = buf.len() as u64;
            assert_eq!(sum_in_parallel(&buf), n * (n - 1) / 2, "{n} words");
        }
    }

    #[test]
    fn the_rate_is_the_bytes_over_the_time() {
        // 8 MiB in well under a second and over a microsecond: any real machine.
        let rate = read_bandwidth_gb_s(8 << 20, 2);
        assert!((0.008..8_000.0).contains(&rate), "{rate} GB/s");
    }
}
