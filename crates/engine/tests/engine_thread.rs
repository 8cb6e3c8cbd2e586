//! The engine thread and its session on the real SmolLM2 model: reusing the previous request's
//! cache gives exactly a fresh run's tokens, cancellation stops generation, and `submit`
//! refuses what cannot run before anything is queued.

use std::ops::ControlFlow;
use std::path::PathBuf;

use ward_engine::{
    generate, generate_in, ChatMessage, Engine, EngineHandle, Event, FinishReason, GenerateParams,
    GenerateRequest, Prompt, SamplingParams, Session, SubmitError,
};
use ward_models::LoadedModel;

fn smollm2() -> LoadedModel {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.is_file(), "run scripts/fetch-models.sh");
    LoadedModel::load(&p, None).unwrap()
}

fn params(max_tokens: usize, seed: u64) -> GenerateParams {
    GenerateParams {
        max_tokens,
        sampling: SamplingParams {
            temperature: 0.8,
            seed: Some(seed),
            ..Default::default()
        },
        stop: vec![],
    }
}

#[test]
fn a_reused_session_gives_the_tokens_of_a_fresh_one() {
    let lm = smollm2();
    let a = lm
        .tokenizer
        .encode("The patient was admitted because of chest pain and", true);
    let mut b = a.clone();
    b.truncate(a.len() - 3);
    b.extend(lm.tokenizer.encode(" shortness of breath, so", false));
    let mut session = Session::new(&lm);
    for (prompt, seed, expect_cached) in [(&a, 1, 0), (&b, 2, a.len() - 3), (&b, 3, b.len() - 1)] {
        let fresh = generate(&lm, prompt, &params(12, seed), |_| {}).unwrap();
        let reused = generate_in(&lm, &mut session, prompt, &params(12, seed), |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(reused.tokens, fresh.tokens, "seed {seed}");
        assert!(
            reused.cached_tokens >= expect_cached,
            "{} cached",
            reused.cached_tokens
        );
        assert!(reused.cached_tokens < prompt.len());
    }
}

#[test]
fn breaking_out_of_the_callback_cancels() {
    let lm = smollm2();
    let prompt = lm.tokenizer.encode("1, 2, 3, 4, 5,", true);
    let mut calls = 0;
    let stats = generate_in(&lm, &mut Session::new(&lm), &prompt, &params(50, 0), |_| {
        calls += 1;
        if calls == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(stats.finish, FinishReason::Cancelled);
    assert_eq!(stats.tokens.len(), 3);
}

fn request(prompt: Prompt, max_tokens: Option<usize>) -> GenerateRequest {
    GenerateRequest {
        id: "test".into(),
        prompt,
        max_tokens,
        sampling: SamplingParams::greedy(),
        stop: vec![],
    }
}

#[test]
fn the_engine_thread_streams_what_generate_returns_and_refuses_bad_requests() {
    let lm = smollm2();
    let messages = vec![ChatMessage::new("user", "Name one symptom of flu.")];
    let prompt = lm.chat_prompt(&messages).unwrap();
    let mut expected = String::new();
    let direct = generate(&lm, &prompt, &params(16, 5), |t| expected.push_str(t)).unwrap();
    let context = lm.model.hparams().context_length;
    let engine = EngineHandle::start(lm, "smollm2", 4).unwrap();
    assert_eq!(engine.info().id, "smollm2");
    assert!(engine.info().has_chat_template);

    let mut req = request(Prompt::Chat(messages), Some(16));
    req.sampling = params(16, 5).sampling;
    let mut events = engine.submit(req).unwrap();
    assert_eq!(events.prompt_tokens, prompt.len());
    let mut text = String::new();
    let usage = loop {
        match events.next_blocking().unwrap() {
            Event::Text(t) => text.push_str(&t),
            Event::Finished(u) => break u,
            Event::Failed(e) => panic!("{e}"),
        }
    };
    assert_eq!(text, expected);
    assert_eq!(usage.completion_tokens, direct.tokens.len());
    assert_eq!(usage.prompt_tokens, prompt.len());
    assert!(
        events.next_blocking().is_none(),
        "nothing after the last event"
    );

    let refused = |r| engine.submit(r).err().expect("refused");
    assert!(matches!(
        refused(request(Prompt::Text("hi".into()), Some(context))),
        SubmitError::ContextLengthExceeded { .. }
    ));
    assert!(matches!(
        refused(request(Prompt::Tokens(vec![1; context]), None)),
        SubmitError::ContextLengthExceeded { .. }
    ));
    assert!(matches!(
        refused(request(Prompt::Tokens(vec![u32::MAX]), Some(1))),
        SubmitError::InvalidPrompt {
            param: "prompt",
            ..
        }
    ));
    assert!(matches!(
        refused(request(Prompt::Tokens(vec![]), Some(1))),
        SubmitError::InvalidPrompt { .. }
    ));
}

#[test]
fn a_full_queue_refuses_and_dropped_requests_are_skipped() {
    let engine = EngineHandle::start(smollm2(), "smollm2", 1).unwrap();
    let long = || request(Prompt::Text("1, 2, 3, 4, 5,".into()), Some(500));
    // One may be running, one waiting: of three quick submissions at least one is refused.
    let results: Vec<_> = (0..3).map(|_| engine.submit(long())).collect();
    assert!(results
        .iter()
        .any(|r| matches!(r, Err(SubmitError::QueueFull { capacity: 1 }))));
    drop(results); // every client leaves: the running request stops, the waiting one never runs
                   // The queue may hold a dropped request until the engine reaches it (within a step).
    let mut events = (0..40)
        .find_map(|_| {
            let r = engine.submit(request(Prompt::Text("Hello".into()), Some(2)));
            if r.is_err() {
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            r.ok()
        })
        .expect("the queue never drained");
    while let Some(e) = events.next_blocking() {
        if let Event::Finished(u) = e {
            assert_eq!(u.completion_tokens, 2);
            assert_eq!(engine.queue_depth(), 0);
            return;
        }
    }
    panic!("no Finished event");
}
