//! A batched forward pass gives each sequence exactly the logits it gets alone, bit for bit,
//! whatever else is in the batch and wherever it sits: the real models, with sequences at
//! different positions (a fresh prompt, a decode step deep in a cache, a chunk past Gemma's
//! sliding window), and with a refused item leaving every cache as it was.

mod common;

use common::{model_path, GEMMA3, SMOLLM2};
use ward_models::{BatchItem, KvCache, KvPool, LoadedModel, ModelError, SeqKv, Workspace};

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

/// A sequence in the shared `pool` already holding `n` tokens, with blocks for `more`.
fn seq_with(lm: &LoadedModel, pool: &mut KvPool, n: usize, more: usize, seed: u32) -> SeqKv {
    let mut seq = SeqKv::new(2048);
    pool.append_blocks(&mut seq, n + more);
    if n > 0 {
        let item = BatchItem {
            tokens: &tokens(n, seed),
            seq: &mut seq,
            n_logits: 1,
        };
        let mut ws = Workspace::default();
        lm.model.forward_batch(&mut [item], pool, &mut ws).unwrap();
    }
    seq
}

fn check(file: &str) {
    let lm = LoadedModel::load(&model_path(file), None).unwrap();
    // (tokens already cached, new tokens, logits wanted): a decode step past 512 positions
    // (beyond Gemma's window), a fresh 9-token prompt, a 5-token chunk after 30 tokens, and a
    // chunk of a prompt that wants no logits (it adds no rows).
    let cases = [(600, 1, 1), (0, 9, 3), (30, 5, 5), (10, 7, 0)];
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
    // Every order of the three in one batch, their caches in one pool.
    for order in [[0, 1, 2, 3], [3, 2, 0, 1], [1, 3, 2, 0]] {
        let mut pool = lm.model.new_pool(0);
        let mut seqs: Vec<SeqKv> = order
            .iter()
            .map(|&i| seq_with(&lm, &mut pool, cases[i].0, cases[i].1, i as u32))
            .collect();
        let mut batch: Vec<BatchItem> = order
            .iter()
            .zip(seqs.iter_mut())
            .map(|(&i, seq)| BatchItem {
                tokens: &news[i],
                seq,
                n_logits: cases[i].2,
            })
            .collect();
        let mut ws = Workspace::default();
        let logits = lm
            .model
            .forward_batch(&mut batch, &mut pool, &mut ws)
            .unwrap();
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
        for (&i, seq) in order.iter().zip(&seqs) {
            assert_eq!(seq.len(), cases[i].0 + cases[i].1);
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
    let mut pool = lm.model.new_pool(0);
    let mut a = seq_with(&lm, &mut pool, 3, 4, 0);
    let n_vocab = lm.model.n_vocab() as u32;
    let good = tokens(4, 2);
    for (bad, want_blocks) in [(vec![5, n_vocab], false), (tokens(2000, 3), true)] {
        // The second item has blocks for 64 positions; the last case needs 2000.
        let mut b = seq_with(&lm, &mut pool, 0, 64, 1);
        let mut batch = [
            BatchItem {
                tokens: &good,
                seq: &mut a,
                n_logits: 1,
            },
            BatchItem {
                tokens: &bad,
                seq: &mut b,
                n_logits: 1,
            },
        ];
        let err = lm
            .model
            .forward_batch(&mut batch, &mut pool, &mut Workspace::default())
            .err();
        match err {
            Some(ModelError::TokenOutOfRange { .. }) => assert!(!want_blocks),
            Some(ModelError::KvBlocks {
                positions: 2000, ..
            }) => assert!(want_blocks),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!((a.len(), b.len()), (3, 0));
    }
}
