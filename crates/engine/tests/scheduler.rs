//! The scheduler's bounds, stepped by hand on the real SmolLM2 model: no forward pass runs more
//! tokens than the configured bound, whatever mix of decoding sequences and prompts is running,
//! and a request is not admitted into the blocks a running sequence needs for its next token
//! (where it would be preempted in the same step).

use std::path::PathBuf;

use ward_engine::scheduler::{Job, Scheduler, SchedulerConfig};
use ward_engine::{Event, EventStream, GenerateParams, SamplingParams};
use ward_models::cache::KV_BLOCK;
use ward_models::LoadedModel;

fn smollm2() -> LoadedModel {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.is_file(), "run scripts/fetch-models.sh");
    LoadedModel::load(&p, None).unwrap()
}

/// A job of `prompt_len` tokens that generates exactly `max_tokens` greedy tokens. Prompts of
/// different lengths share no prefix (so no prefix-cache block).
fn job(prompt_len: usize, max_tokens: usize) -> (Job, EventStream) {
    let prompt = (0..prompt_len as u32)
        .map(|i| 300 + (i * 37 + prompt_len as u32 * 101) % 9000)
        .collect();
    let (events, stream) = EventStream::channel(prompt_len);
    let job = Job {
        id: format!("job-{prompt_len}"),
        prompt,
        params: GenerateParams {
            max_tokens,
            sampling: SamplingParams::greedy(),
            ignore_eos: true,
            ..Default::default()
        },
        salt: String::new(),
        tenant: Default::default(),
        deadline: None,
        events,
    };
    (job, stream)
}

/// The completion tokens the stream reports, once it has finished.
fn completion_tokens(mut stream: EventStream) -> usize {
    loop {
        match stream.next_blocking().expect("a last event") {
            Event::Finished(usage) => return usage.completion_tokens,
            Event::Failed(e) => panic!("failed: {e}"),
            _ => {}
        }
    }
}

fn run_until_idle(s: &mut Scheduler) {
    let mut steps = 0;
    while !s.is_idle() {
        s.step(|_| {});
        steps += 1;
        assert!(steps < 10_000, "the scheduler does not finish");
    }
}

#[test]
fn no_step_runs_more_tokens_than_the_bound() {
    let lm = smollm2();
    // More decoding sequences than half the bound, beside two long prompts: the decoders
    // must take turns, and the prompts still get their half.
    for (max_batch_tokens, max_prefill_tokens) in [(12, 12), (12, 40), (7, 7)] {
        let mut s = Scheduler::new(
            &lm,
            SchedulerConfig {
                kv_blocks: 64,
                max_batch_tokens,
                max_prefill_tokens,
                max_running: 16,
            },
        );
        let mut streams = Vec::new();
        for i in 0..10 {
            let (j, st) = job(3 + i, 8);
            s.add(j);
            streams.push((st, 8));
        }
        s.step(|_| {});
        for _ in 0..2 {
            let (j, st) = job(150, 2);
            s.add(j);
            streams.push((st, 2));
        }
        run_until_idle(&mut s);
        let load = s.load();
        // Before any sequence decodes, prompts may take max_prefill_tokens.
        let bound = max_batch_tokens.max(max_prefill_tokens);
        assert!(
            load.max_step_tokens <= bound,
            "{max_batch_tokens}/{max_prefill_tokens}: a step ran {} tokens",
            load.max_step_tokens
        );
        for (st, want) in streams {
            assert_eq!(completion_tokens(st), want);
        }
    }
}

#[test]
fn decoding_sequences_beside_a_prompt_keep_to_max_batch_tokens() {
    let lm = smollm2();
    let config = SchedulerConfig {
        kv_blocks: 64,
        max_batch_tokens: 10,
        max_prefill_tokens: 512,
        max_running: 16,
    };
    let mut s = Scheduler::new(&lm, config);
    let mut streams = Vec::new();
    for _ in 0..8 {
        let (j, st) = job(1, 40);
        s.add(j);
        streams.push(st);
    }
    // Read the eight one-token prompts; every sequence is decoding from here on.
    s.step(|_| {});
    let (j, long) = job(400, 1);
    s.add(j);
    // While the long prompt is read, every step keeps to max_batch_tokens: the prompt takes
    // half, and the eight decoders share the other half in turns.
    for _ in 0..30 {
        s.step(|_| {});
    }
    let load = s.load();
    assert_eq!(
        load.max_step_tokens, config.max_batch_tokens,
        "the most tokens a step ran beside decoding sequences"
    );
    run_until_idle(&mut s);
    assert_eq!(completion_tokens(long), 1);
    for st in streams {
        assert_eq!(completion_tokens(st), 40);
    }
}

#[test]
fn a_running_sequences_next_block_is_not_given_to_a_new_request() {
    let lm = smollm2();
    let kv_blocks = 6;
    let mut s = Scheduler::new(
        &lm,
        SchedulerConfig {
            kv_blocks,
            max_batch_tokens: 512,
            max_prefill_tokens: 512,
            max_running: 16,
        },
    );
    // A prompt of exactly one block: its first sampled token needs a second block.
    let (first, first_stream) = job(KV_BLOCK, 4);
    s.add(first);
    s.step(|_| {});
    assert_eq!(s.load().kv_blocks_used, 1);
    // A prompt that needs every other block: admitting it now would leave the first sequence
    // no block for its next token, and the newest (this one) would be preempted at once.
    let (second, second_stream) = job((kv_blocks - 1) * KV_BLOCK, 2);
    s.add(second);
    run_until_idle(&mut s);
    assert_eq!(s.load().preemptions, 0);
    assert_eq!(completion_tokens(first_stream), 4);
    assert_eq!(completion_tokens(second_stream), 2);
}
