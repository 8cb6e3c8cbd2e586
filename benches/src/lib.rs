//! What the model benches (`benches/models.rs`) share: the test models, and a batch of
//! sequences stepped together the way the engine steps them.
//!
//! Kept in a library so that `cargo test` compiles it (and its test checks a step against the
//! model's own one-sequence forward pass), while the benches themselves run only under
//! `cargo bench`.

use std::path::PathBuf;

use ward_engine::sampler::argmax;
use ward_models::arch::BatchItem;
use ward_models::cache::{KvPool, SeqKv};
use ward_models::workspace::Workspace;
use ward_models::LoadedModel;

/// The registry's test models (`scripts/fetch-models.sh` gets them): name and file.
pub const TEST_MODELS: [(&str, &str); 3] = [
    ("smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    ("gemma-3-270m", "gemma-3-270m-q4_k_m.gguf"),
    ("qwen2.5-0.5b", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
];

/// `models/FILE` of the repository, if it has been fetched.
pub fn model_path(file: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(file);
    path.exists().then_some(path)
}

/// `n` sequences, each holding the same `prompt` in one shared cache pool, ready for decode
/// steps at position `prompt.len()` (which `step` returns them to).
pub struct Batch {
    pool: KvPool,
    seqs: Vec<SeqKv>,
    ws: Workspace,
    prompt_len: usize,
}

impl Batch {
    /// Prefills `prompt` into `n` sequences, with room for `extra` more positions each.
    pub fn new(lm: &LoadedModel, prompt: &[u32], n: usize, extra: usize) -> Batch {
        let context = prompt.len() + extra;
        let mut pool = lm.model.new_pool(0);
        let seqs = (0..n)
            .map(|_| {
                let mut seq = SeqKv::new(context);
                pool.append_blocks(&mut seq, context);
                seq
            })
            .collect();
        let mut batch = Batch {
            pool,
            seqs,
            ws: Workspace::default(),
            prompt_len: prompt.len(),
        };
        batch.forward(lm, &vec![prompt; n]);
        batch
    }

    /// One decode step of every sequence, from the end of its prompt (so each call does the
    /// same work); the next token of each.
    pub fn step(&mut self, lm: &LoadedModel, tokens: &[u32]) -> Vec<u32> {
        for seq in &mut self.seqs {
            seq.truncate(self.prompt_len);
        }
        let tokens: Vec<&[u32]> = tokens.iter().map(std::slice::from_ref).collect();
        self.forward(lm, &tokens)
    }

    fn forward(&mut self, lm: &LoadedModel, tokens: &[&[u32]]) -> Vec<u32> {
        let mut items: Vec<BatchItem> = tokens
            .iter()
            .zip(self.seqs.iter_mut())
            .map(|(tokens, seq)| BatchItem {
                tokens,
                seq,
                n_logits: 1,
            })
            .collect();
        let logits = lm
            .model
            .forward_batch(&mut items, &mut self.pool, &mut self.ws)
            .expect("a forward pass of a test model");
        (0..tokens.len()).map(|i| argmax(logits.row(i))).collect()
    }
}

/// A prompt of `n` ordinary tokens (cycling through ids from 1000 on, within any test vocabulary).
pub fn prompt(n: usize) -> Vec<u32> {
    (0..n as u32).map(|i| 1000 + i % 5000).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_models::cache::KvCache;

    /// A batch's decode step, repeated from the same place, is the model's own next token.
    #[test]
    fn a_repeated_step_is_the_next_token_of_each_sequence() {
        let Some(path) = model_path(TEST_MODELS[0].1) else {
            panic!("run scripts/fetch-models.sh first");
        };
        let lm = LoadedModel::load(&path, None).unwrap();
        let prompt = prompt(24);
        let hp = lm.model.hparams();
        let mut cache = KvCache::new(hp.n_layer, hp.n_head_kv, hp.head_dim, 32);
        let mut ws = Workspace::default();
        let first = argmax(
            lm.model
                .forward(&prompt, &mut cache, 1, &mut ws)
                .unwrap()
                .row(0),
        );
        let second = argmax(
            lm.model
                .forward(&[first], &mut cache, 1, &mut ws)
                .unwrap()
                .row(0),
        );
        let mut batch = Batch::new(&lm, &prompt, 3, 1);
        for _ in 0..2 {
            assert_eq!(batch.step(&lm, &[first; 3]), vec![second; 3]);
        }
    }
}
