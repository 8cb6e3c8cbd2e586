//! A warm draw of the sampler allocates nothing, whatever its settings, on a vocabulary of
//! Gemma 3's size (262 144 tokens): run under a global allocator that counts. (One test in this
//! binary, so nothing else allocates while counting.) (With penalties on it used to build a map of the recent tokens per draw.)

use ward_engine::rng::Rng;
use ward_engine::{Sampler, SamplingParams};
use ward_testkit::{allocations_in, CountingAllocator};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn a_warm_draw_allocates_nothing() {
    // The counter sees an allocation.
    assert!(allocations_in(|| drop(std::hint::black_box(vec![1u8; 100]))) >= 1);

    let mut rng = Rng::seed(1);
    let logits: Vec<f32> = (0..262_144).map(|_| rng.next_f64() as f32 * 20.0).collect();
    let history: Vec<u32> = (0..2_000u32).map(|i| i * 7_919 % 262_144).collect();
    let penalties = SamplingParams {
        repetition_penalty: 1.1,
        frequency_penalty: 0.3,
        presence_penalty: 0.2,
        penalty_last_n: 1_000,
        ..SamplingParams::default()
    };
    let cases = [
        SamplingParams::greedy(),
        SamplingParams {
            temperature: 0.7,
            top_p: 0.9,
            ..SamplingParams::default()
        },
        SamplingParams {
            top_k: 40,
            min_p: 0.05,
            logit_bias: vec![(5, 3.0), (9, -100.0)],
            ..SamplingParams::default()
        },
        SamplingParams {
            top_p: 0.95,
            ..penalties.clone()
        },
        SamplingParams {
            temperature: 0.0,
            ..penalties
        },
    ];
    let mut row = logits.clone();
    for params in cases {
        let what = format!("{params:?}");
        let mut sampler = Sampler::new(SamplingParams {
            seed: Some(3),
            ..params
        });
        // The first draw sizes the sampler's buffers.
        sampler.sample(&mut row, &history);
        let warm = allocations_in(|| {
            for _ in 0..5 {
                row.copy_from_slice(&logits);
                std::hint::black_box(sampler.sample(&mut row, &history));
            }
        });
        assert_eq!(warm, 0, "{what}");
    }
}
