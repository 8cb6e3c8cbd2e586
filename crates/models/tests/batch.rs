//! A batched forward pass gives each sequence exactly the logits it gets alone, bit for bit,
//! whatever else is in the batch and wherever it sits: the real models, with sequences at
//! different positions (a fresh prompt, a decode step deep in a cache, a chunk past Gemma's
//! sliding window), and with a refused item leaving every cache as it was.

mod common;

use common::{model_path, GEMMA3, SMOLLM2};
use ward_models::{BatchItem, KvCache, LoadedModel, ModelError, Workspace};

fn tokens(n: usize, seed: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| 100 + (i * 37 + seed * 101) % 5000)
        .collect()
}

/// A cache already holding `n` tokens.
fn cache_with(lm: &LoadedModel, n: usize, seed: u32) -> KvCache {
    let mut cache = lm.model.new_cache(2048);
    if n > 0 {
        let mut ws = Workspace::default();
        lm.model
            .forward(&tokens(n, seed), &mut cache, 1, &mut ws)
            .unwrap();
    }
    cache
}

fn check(file: &str) {
    let lm = LoadedModel::load(&model_path(file), None).unwrap();
    // (tokens already cached, new tokens, logits wanted): a decode step past 512 positions
    // (beyond Gemma's window), a fresh 9-token prompt, a 5-token chunk after 30 tokens.
    let cases = [(600, 1, 1), (0, 9, 3), (30, 5, 5)];
    let news: Vec<Vec<u32>> = (0..cases.len())
        .map(|i| tokens(cases[i].1, 7 + i as u32))
        .collect();
    let mut alone = Vec::new();
    for (i, &(cached, _, n_logits)) in cases.iter().enumerate() {
        let mut cache = cache_with(&lm, cached, i as u32);
        let mut ws = Workspace::default();
        let logits = lm
            .model
            .forward(&news[i], &mut cache, n_logits, &mut ws)
            .unwrap();
        alone.push(logits.data.to_vec());
    }
    // Every order of the three in one batch.
    for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
        let mut caches: Vec<KvCache> = order
            .iter()
            .map(|&i| cache_with(&lm, cases[i].0, i as u32))
            .collect();
        let mut batch: Vec<BatchItem> = order
            .iter()
            .zip(caches.iter_mut())
            .map(|(&i, cache)| BatchItem {
                tokens: &news[i],
                cache,
                n_logits: cases[i].2,
            })
            .collect();
        let mut ws = Workspace::default();
        let logits = lm.model.forward_batch(&mut batch, &mut ws).unwrap();
        let mut at = 0;
        for &i in &order {
            let want = &alone[i];
            assert_eq!(
                &logits.data[at..at + want.len()],
                &want[..],
                "{file}: sequence {i} in order {order:?}"
            );
            at += want.len();
        }
        assert_eq!(at, logits.data.len());
        for (&i, cache) in order.iter().zip(&caches) {
            assert_eq!(cache.len(), cases[i].0 + cases[i].1);
        }
    }
}

#[test]
fn smollm2_batch_equals_each_sequence_alone() {
    check(SMOLLM2);
}

#[test]
fn gemma3_batch_equals_each_sequence_alone() {
    check(GEMMA3);
}

#[test]
fn a_refused_item_changes_no_cache() {
    let lm = LoadedModel::load(&model_path(SMOLLM2), None).unwrap();
    let (mut a, mut b) = (cache_with(&lm, 3, 0), cache_with(&lm, 0, 1));
    let n_vocab = lm.model.n_vocab() as u32;
    let (good, bad) = (tokens(4, 2), vec![5, n_vocab]);
    let mut batch = [
        BatchItem {
            tokens: &good,
            cache: &mut a,
            n_logits: 1,
        },
        BatchItem {
            tokens: &bad,
            cache: &mut b,
            n_logits: 1,
        },
    ];
    let err = lm
        .model
        .forward_batch(&mut batch, &mut Workspace::default())
        .err();
    assert!(matches!(err, Some(ModelError::TokenOutOfRange { .. })));
    assert_eq!((a.len(), b.len()), (3, 0));
}
