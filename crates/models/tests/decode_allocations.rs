//! A decode step with a warm workspace allocates nothing, on any thread: the real models, run
//! under a global allocator that counts. (The KV cache grows by 256 positions at a time and the
//! attention split's buffer by 128, so the counted steps stay inside one such stretch.)

mod common;

use common::{model_path, GEMMA3, SMOLLM2};
use ward_models::{LoadedModel, Workspace};
use ward_testkit::{allocations_in, CountingAllocator};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations made while decoding `counted` tokens after a prompt and `warm` decode steps.
fn decode_allocations(file: &str, warm: usize, counted: usize) -> usize {
    let lm = LoadedModel::load(&model_path(file), None).unwrap();
    let mut cache = lm.model.new_cache(128);
    let mut ws = Workspace::default();
    let prompt: Vec<u32> = (0..20).map(|i| 100 + i * 7).collect();
    let mut next = greedy(
        lm.model
            .forward(&prompt, &mut cache, 1, &mut ws)
            .unwrap()
            .last(),
    );
    let mut step = || {
        let logits = lm.model.forward(&[next], &mut cache, 1, &mut ws).unwrap();
        next = greedy(logits.last());
    };
    (0..warm).for_each(|_| step());
    allocations_in(|| (0..counted).for_each(|_| step()))
}

fn greedy(logits: &[f32]) -> u32 {
    (0..logits.len())
        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
        .unwrap() as u32
}

#[test]
fn a_warm_decode_step_allocates_nothing() {
    // One test in this binary, so nothing else allocates while counting. First, the counter
    // itself sees an allocation.
    assert!(allocations_in(|| drop(std::hint::black_box(vec![1u8; 1000]))) >= 1);

    for file in [SMOLLM2, GEMMA3] {
        assert_eq!(decode_allocations(file, 8, 16), 0, "{file}");
    }
}
