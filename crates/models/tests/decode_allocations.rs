//! A decode step with a warm workspace allocates nothing, on any thread: the real models, run
//! under a global allocator that counts. (The KV cache grows by 256 positions at a time and the
//! attention split's buffer by 128, so the counted steps stay inside one such stretch.)

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{model_path, GEMMA3, SMOLLM2};
use ward_models::{LoadedModel, Workspace};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn count(&self) {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.count();
        // SAFETY: the caller's guarantees, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.count();
        // SAFETY: the caller's guarantees, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.count();
        // SAFETY: the caller's guarantees, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's guarantees, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

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
    for step in 0..warm + counted {
        COUNTING.store(step >= warm, Ordering::SeqCst);
        let logits = lm.model.forward(&[next], &mut cache, 1, &mut ws).unwrap();
        next = greedy(logits.last());
    }
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCATIONS.swap(0, Ordering::SeqCst)
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
    COUNTING.store(true, Ordering::SeqCst);
    drop(std::hint::black_box(vec![1u8; 1000]));
    COUNTING.store(false, Ordering::SeqCst);
    assert!(ALLOCATIONS.swap(0, Ordering::SeqCst) >= 1);

    for file in [SMOLLM2, GEMMA3] {
        assert_eq!(decode_allocations(file, 8, 16), 0, "{file}");
    }
}
