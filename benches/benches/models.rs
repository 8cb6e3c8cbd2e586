//! Whole models in tokens per second, on the test models and this process's kernel tier:
//! prefill of a 512-token prompt, one decode step after it, and a batched decode step of 4 and
//! of 16 sequences (each after its own 128-token prompt). Criterion's throughput is in tokens
//! (elements) per second.
//!
//!   cargo bench -p ward-benches [-- FILTER]
//!   WARD_KERNEL_TIER=avx2 cargo bench -p ward-benches     # another tier this CPU has
//!   scripts/bench-tiers.sh                                # every tier, one after another
//!
//! The ids name the tier (`decode/smollm2-135m/avx512`), so runs on different tiers sit side
//! by side in `target/criterion`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ward_benches::{model_path, prompt, Batch, TEST_MODELS};
use ward_models::LoadedModel;

fn models(c: &mut Criterion) {
    let tier = ward_kernels::tier::tier();
    for (name, file) in TEST_MODELS {
        let Some(path) = model_path(file) else {
            eprintln!("{name}: models/{file} is missing (scripts/fetch-models.sh), skipped");
            continue;
        };
        let lm = LoadedModel::load(&path, None).expect("a test model loads");
        let id = BenchmarkId::from_parameter(format!("{name}/{tier}"));

        let long = prompt(512);
        let mut g = c.benchmark_group("prefill-512");
        g.throughput(Throughput::Elements(long.len() as u64));
        g.sample_size(10);
        g.bench_function(id.clone(), |b| {
            b.iter(|| Batch::new(&lm, &long, 1, 0));
        });
        g.finish();

        let mut g = c.benchmark_group("decode");
        g.measurement_time(Duration::from_secs(5));
        let mut one = Batch::new(&lm, &long, 1, 1);
        g.throughput(Throughput::Elements(1));
        g.bench_function(id.clone(), |b| b.iter(|| one.step(&lm, &[1000])));
        g.finish();
        drop(one);
        let short = prompt(128);
        for n in [4, 16] {
            let mut g = c.benchmark_group(format!("decode-batch-{n}"));
            g.measurement_time(Duration::from_secs(5));
            let mut many = Batch::new(&lm, &short, n, 1);
            let tokens = vec![1000; n];
            g.throughput(Throughput::Elements(n as u64));
            g.bench_function(id.clone(), |b| b.iter(|| many.step(&lm, &tokens)));
            g.finish();
        }
    }
}

criterion_group!(benches, models);
criterion_main!(benches);
