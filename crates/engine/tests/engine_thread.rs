//! The engine thread on the real SmolLM2 model: what it streams equals a sequence generated
//! alone, whatever else runs beside it (batch invariance), through chunked prefill, the prefix
//! cache and preemption; a client that leaves frees its blocks within a step; full queues,
//! deadlines and bad requests are refused or ended cleanly.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ward_engine::{
    generate, ChatMessage, Engine, EngineConfig, EngineHandle, Event, EventStream, FinishReason,
    GenerateParams, GenerateRequest, Prompt, ResponseFormat, SamplingParams, SubmitError, Tenant,
    Usage,
};
use ward_models::LoadedModel;

fn smollm2() -> LoadedModel {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.is_file(), "run scripts/fetch-models.sh");
    LoadedModel::load(&p, None).unwrap()
}

fn sampling(seed: u64) -> SamplingParams {
    SamplingParams {
        temperature: 0.8,
        seed: Some(seed),
        ..Default::default()
    }
}

fn request(prompt: Prompt, max_tokens: Option<usize>) -> GenerateRequest {
    GenerateRequest {
        id: "test".into(),
        prompt,
        max_tokens,
        sampling: SamplingParams::greedy(),
        stop: vec![],
        stop_token_ids: vec![],
        ignore_eos: false,
        logprobs: None,
        response_format: None,
        tools: None,
        chat_template_kwargs: Default::default(),
        cache_salt: String::new(),
        tenant: Default::default(),
        timeout: None,
    }
}

/// The text and usage of a finished stream.
fn collect(mut events: EventStream) -> (String, Usage) {
    let mut text = String::new();
    loop {
        match events.next_blocking().expect("a last event") {
            Event::Text(t) => text.push_str(&t),
            Event::Finished(u) => {
                assert!(
                    events.next_blocking().is_none(),
                    "nothing after the last event"
                );
                return (text, u);
            }
            other => panic!("{other:?}"),
        }
    }
}

/// What `generate` gives for `prompt` alone, with a cache of its own.
fn alone(lm: &LoadedModel, prompt: &[u32], max_tokens: usize, seed: u64) -> (String, usize) {
    let params = GenerateParams {
        max_tokens,
        sampling: sampling(seed),
        ..Default::default()
    };
    let mut text = String::new();
    let stats = generate(lm, prompt, &params, |t| text.push_str(t)).unwrap();
    (text, stats.tokens.len())
}

fn wait_for(engine: &EngineHandle, what: &str, done: impl Fn(&EngineHandle) -> bool) {
    let t0 = Instant::now();
    while !done(engine) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Sixteen prompts of 3 to ~400 tokens; some share a long header (the prefix cache's case).
fn prompts(lm: &LoadedModel) -> Vec<Vec<u32>> {
    let header = "You are a careful clinical assistant. Answer briefly, cite guidelines, and \
                  say when a question needs a clinician. "
        .repeat(6);
    (0..16)
        .map(|i| {
            let text = match i % 4 {
                0 => format!("{header}Question {i}: what lowers blood pressure?"),
                1 => format!("Patient {i} reports"),
                2 => "The differential diagnosis of chest pain includes ".repeat(i / 2 + 1),
                _ => format!("{i}, {}, {},", i + 1, i + 2),
            };
            lm.tokenizer.encode(&text, true)
        })
        .collect()
}

#[test]
fn every_sequence_of_a_batch_equals_itself_alone_in_any_order() {
    let lm = smollm2();
    let prompts = prompts(&lm);
    let max_tokens = 24;
    let want: Vec<_> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| alone(&lm, p, max_tokens, 100 + i as u64))
        .collect();
    // Small steps so that long prompts are read in chunks between others' decode steps.
    let config = EngineConfig {
        max_batch_tokens: 64,
        max_running: 16,
        ..Default::default()
    };
    let engine = EngineHandle::start(lm, "smollm2", config).unwrap();
    let forwards: Vec<usize> = (0..16).collect();
    let backwards: Vec<usize> = (0..16).rev().collect();
    let shuffled: Vec<usize> = (0..16).map(|i| i * 7 % 16).collect();
    for order in [forwards, backwards, shuffled] {
        let streams: Vec<(usize, EventStream)> = order
            .iter()
            .map(|&i| {
                let mut r = request(Prompt::Tokens(prompts[i].clone()), Some(max_tokens));
                r.sampling = sampling(100 + i as u64);
                (i, engine.submit(r).unwrap())
            })
            .collect();
        for (i, events) in streams {
            let (text, usage) = collect(events);
            assert_eq!(text, want[i].0, "sequence {i} in order {order:?}");
            assert_eq!(usage.completion_tokens, want[i].1, "sequence {i}");
        }
    }
    // The load is published after each step: the last one may still be finishing.
    wait_for(&engine, "every block released", |e| {
        e.load().kv_blocks_used == 0
    });
    let load = engine.load();
    assert!(
        load.prefix_hits > 0,
        "the shared header was reused: {load:?}"
    );
}

/// A prompt chunk that is not the prompt's end wants no logits: the sequences after it in the
/// batch must still get their own rows.
#[test]
fn a_sequence_beside_a_prompt_being_read_gets_its_own_logits() {
    let lm = smollm2();
    let long: Vec<u32> = (0..1500).map(|i| 200 + (i * 7919) % 20000).collect();
    let short = vec![lm.tokenizer.encode("Sepsis", false)[0]];
    let want = alone(&lm, &short, 8, 3);
    let engine = EngineHandle::start(lm, "smollm2", EngineConfig::default()).unwrap();
    let mut reading = request(Prompt::Tokens(long), Some(1));
    reading.sampling = sampling(1);
    let reading = engine.submit(reading).unwrap();
    // A one-token prompt decodes from its first step, beside the long prompt's chunks.
    let mut r = request(Prompt::Tokens(short), Some(8));
    r.sampling = sampling(3);
    let (text, usage) = collect(engine.submit(r).unwrap());
    assert_eq!((text, usage.completion_tokens), want);
    let (_, usage) = collect(reading);
    assert_eq!(usage.completion_tokens, 1);
}

#[test]
fn preempted_sequences_are_recomputed_to_the_same_tokens() {
    let lm = smollm2();
    let block_bytes = lm.model.kv_block_bytes();
    let prompts: Vec<Vec<u32>> = (0..6)
        .map(|i| {
            lm.tokenizer
                .encode(&format!("{i}, {}, {}, {},", i + 1, i + 2, i + 3), true)
        })
        .collect();
    let max_tokens = 150;
    let want: Vec<_> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| alone(&lm, p, max_tokens, i as u64))
        .collect();
    // Ten blocks (640 positions) for six sequences that grow to ~160 positions (3 blocks) each.
    let config = EngineConfig {
        kv_cache_bytes: 10 * block_bytes,
        ..Default::default()
    };
    let engine = EngineHandle::start(lm, "smollm2", config).unwrap();
    assert_eq!(
        engine.info().context_length,
        640,
        "the pool bounds the context"
    );
    let streams: Vec<EventStream> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut r = request(Prompt::Tokens(p.clone()), Some(max_tokens));
            r.sampling = sampling(i as u64);
            engine.submit(r).unwrap()
        })
        .collect();
    for (i, events) in streams.into_iter().enumerate() {
        let (text, usage) = collect(events);
        assert_eq!(text, want[i].0, "sequence {i}");
        assert_eq!(usage.completion_tokens, want[i].1);
    }
    wait_for(&engine, "every block released", |e| {
        e.load().kv_blocks_used == 0
    });
    let load = engine.load();
    assert!(load.preemptions > 0, "the pool was never short: {load:?}");
}

#[test]
fn the_prefix_cache_reuses_blocks_within_a_tenant_only() {
    let lm = smollm2();
    let history = "Doctor: Tell me about the pain. Patient: It started in my chest. ".repeat(12);
    let first = lm
        .tokenizer
        .encode(&format!("{history}Doctor: When?"), true);
    let second = lm
        .tokenizer
        .encode(&format!("{history}Doctor: Where exactly?"), true);
    let want = alone(&lm, &second, 16, 9);
    let engine = EngineHandle::start(lm, "smollm2", EngineConfig::default()).unwrap();
    let run = |prompt: &[u32], salt: &str| {
        let mut r = request(Prompt::Tokens(prompt.to_vec()), Some(16));
        r.sampling = sampling(9);
        r.cache_salt = salt.into();
        collect(engine.submit(r).unwrap())
    };
    let (_, usage) = run(&first, "ward");
    assert_eq!(usage.cached_tokens, 0);
    let (text, usage) = run(&second, "ward");
    assert_eq!(text, want.0, "reused blocks give the same tokens");
    let shared = first
        .iter()
        .zip(&second)
        .take_while(|(a, b)| a == b)
        .count();
    assert_eq!(
        usage.cached_tokens,
        shared / 64 * 64,
        "every full block of the common prefix"
    );
    assert!(usage.cached_tokens >= 128);
    let (text, usage) = run(&second, "another service");
    assert_eq!(
        (usage.cached_tokens, text),
        (0, want.0),
        "nothing shared across tenants"
    );
}

#[test]
fn a_client_that_leaves_frees_its_blocks_within_a_step() {
    let engine = EngineHandle::start(smollm2(), "smollm2", EngineConfig::default()).unwrap();
    // The pool's size is known from the start, before any request has run a step.
    assert!(engine.load().kv_blocks_total > 0);
    assert_eq!(engine.load().steps, 0);
    let mut events = engine
        .submit(request(Prompt::Text("1, 2, 3, 4, 5,".into()), Some(1000)))
        .unwrap();
    for _ in 0..3 {
        assert!(matches!(events.next_blocking(), Some(Event::Text(_))));
    }
    assert!(engine.load().kv_blocks_used > 0);
    let steps = engine.load().steps;
    drop(events);
    wait_for(&engine, "the sequence to go", |e| e.load().running == 0);
    let load = engine.load();
    assert_eq!(load.kv_blocks_used, 0);
    assert!(
        load.steps <= steps + 2,
        "{} steps after leaving",
        load.steps - steps
    );
}

#[test]
fn a_full_queue_refuses_and_a_deadline_ends_a_request() {
    let config = EngineConfig {
        max_queue: 1,
        max_running: 1,
        ..Default::default()
    };
    let engine = EngineHandle::start(smollm2(), "smollm2", config).unwrap();
    let long = || request(Prompt::Text("1, 2, 3, 4, 5,".into()), Some(2000));
    let mut running = engine.submit(long()).unwrap();
    assert!(matches!(running.next_blocking(), Some(Event::Text(_))));
    let mut waiting = engine.submit(long()).unwrap();
    wait_for(&engine, "the second to wait", |e| e.load().waiting == 1);
    assert!(matches!(
        engine.submit(long()),
        Err(SubmitError::QueueFull { capacity: 1 })
    ));
    drop(running);
    assert!(matches!(waiting.next_blocking(), Some(Event::Text(_))));
    drop(waiting);
    wait_for(&engine, "the queue to empty", |e| {
        e.load().running == 0 && e.queue_depth() == 0
    });

    let mut r = long();
    r.timeout = Some(Duration::from_millis(300));
    let t0 = Instant::now();
    let mut events = engine.submit(r).unwrap();
    let last = std::iter::from_fn(|| events.next_blocking()).last();
    assert_eq!(last, Some(Event::TimedOut));
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_engine_thread_streams_what_generate_returns_and_refuses_bad_requests() {
    let lm = smollm2();
    let messages = vec![ChatMessage::new("user", "Name one symptom of flu.")];
    let prompt = lm.chat_prompt(&messages).unwrap();
    let want = alone(&lm, &prompt, 16, 5);
    let context = lm.model.hparams().context_length;
    let engine = EngineHandle::start(lm, "smollm2", EngineConfig::default()).unwrap();
    assert_eq!(engine.info().id, "smollm2");
    assert!(engine.info().has_chat_template);

    let mut req = request(Prompt::Chat(messages), Some(16));
    req.sampling = sampling(5);
    let events = engine.submit(req).unwrap();
    assert_eq!(events.prompt_tokens, prompt.len());
    let (text, usage) = collect(events);
    assert_eq!(text, want.0);
    assert_eq!(usage.completion_tokens, want.1);
    assert_eq!(usage.prompt_tokens, prompt.len());
    assert_ne!(usage.finish, FinishReason::Cancelled);

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
fn json_answers_parse_and_follow_their_schema_when_sampled() {
    let lm = smollm2();
    let engine = EngineHandle::start(lm, "smollm2", EngineConfig::default()).unwrap();
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "diagnosis": {"type": "string"},
            "severity": {"enum": ["mild", "moderate", "severe"]},
            "heart_rate": {"type": "integer"},
            "admit": {"type": "boolean"},
        },
        "required": ["diagnosis", "severity", "heart_rate", "admit"],
    });
    let messages = vec![ChatMessage::new(
        "user",
        "Summarise as JSON: 70-year-old with pneumonia, pulse 112, needs admission.",
    )];
    let submit = |seed: u64| {
        let mut r = request(Prompt::Chat(messages.clone()), Some(200));
        r.sampling = SamplingParams {
            temperature: 0.7,
            seed: Some(seed),
            ..Default::default()
        };
        r.response_format = Some(if seed % 4 == 3 {
            ResponseFormat::JsonObject
        } else {
            ResponseFormat::JsonSchema(schema.clone())
        });
        engine.submit(r).unwrap()
    };
    // Eight constrained sequences in one batch: their masks are computed side by side.
    let answers: Vec<(String, Usage)> = (0..8)
        .map(submit)
        .collect::<Vec<_>>()
        .into_iter()
        .map(collect)
        .collect();
    // The same seed alone gives the same answer.
    assert_eq!(collect(submit(2)).0, answers[2].0);
    let mut whole = 0;
    for (seed, (text, usage)) in answers.into_iter().enumerate() {
        if usage.finish == FinishReason::Length {
            continue; // cut short by max_tokens: not a whole document, as for any server
        }
        whole += 1;
        let doc: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("seed {seed}: {e}: {text}"));
        let obj = doc.as_object().expect("an object");
        if seed % 4 == 3 {
            continue;
        }
        assert!(obj["diagnosis"].is_string(), "{text}");
        assert!(["mild", "moderate", "severe"].contains(&obj["severity"].as_str().unwrap()));
        assert!(
            obj["heart_rate"].is_i64() && obj["admit"].is_boolean(),
            "{text}"
        );
        assert_eq!(obj.len(), 4, "{text}");
    }
    assert!(
        whole >= 6,
        "only {whole} of 8 answers finished within 200 tokens"
    );
    let mut bad = request(Prompt::Text("x".into()), Some(4));
    bad.response_format = Some(ResponseFormat::JsonSchema(
        serde_json::json!({"type": "tuple"}),
    ));
    assert!(matches!(
        engine.submit(bad),
        Err(SubmitError::InvalidPrompt {
            param: "response_format",
            ..
        })
    ));
}

/// A chat prompt that leaves the thinking open (a DeepSeek-R1 distill's template) says so on
/// its stream, so the server splits an answer that has only `</think>`; with
/// `enable_thinking: false` in the template kwargs the prompt closes the thinking at once.
/// Chat streams carry the format the template declares; completions and a model whose
/// template declares none carry none.
#[test]
fn streams_say_when_the_prompt_left_the_thinking_open() {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let r1 = std::fs::read_to_string(p.join("templates/deepseek-r1-distill.jinja")).unwrap();
    let lm = LoadedModel::load(&p.join("SmolLM2-135M-Instruct.Q4_1.gguf"), Some(&r1)).unwrap();
    let engine = EngineHandle::start(lm, "smollm2-r1", EngineConfig::default()).unwrap();
    let ask = || Prompt::Chat(vec![ChatMessage::new("user", "Is K+ 5.6 high?")]);
    let open = engine.submit(request(ask(), Some(2))).unwrap();
    assert_eq!(open.thinking, Some(ward_engine::THINKING_FORMATS[0]));
    assert_eq!(open.reasoning, Some(ward_engine::THINKING_FORMATS[0]));
    let mut off = request(ask(), Some(2));
    off.chat_template_kwargs
        .insert("enable_thinking".into(), false.into());
    let closed = engine.submit(off).unwrap();
    assert_eq!(closed.thinking, None);
    assert!(
        closed.prompt_tokens > open.prompt_tokens,
        "</think> was added"
    );
    collect(open);
    collect(closed);
    // Completions never start inside thinking.
    let text = engine
        .submit(request(Prompt::Text("<think>\n".into()), Some(2)))
        .unwrap();
    assert_eq!((text.thinking, text.reasoning), (None, None));
    collect(text);
    let plain = EngineHandle::start(smollm2(), "smollm2", EngineConfig::default()).unwrap();
    let chat = plain.submit(request(ask(), Some(2))).unwrap();
    assert_eq!((chat.thinking, chat.reasoning), (None, None));
    collect(chat);
}

/// Waiting sequences start in turns weighted per tenant: one tenant with many waiting does
/// not keep another's waiting behind them, and a tenant of weight 3 gets three turns to
/// another's one.
#[test]
fn waiting_tenants_take_weighted_turns() {
    let config = EngineConfig {
        max_queue: 32,
        max_running: 1,
        ..Default::default()
    };
    let engine = EngineHandle::start(smollm2(), "smollm2", config).unwrap();
    let from = |name: &str, weight: u32, max_tokens| {
        let mut r = request(Prompt::Text("Hello".into()), Some(max_tokens));
        r.tenant = Tenant {
            name: name.into(),
            weight,
        };
        r
    };
    // A's long request runs while the others queue up behind it.
    let mut blocker = engine.submit(from("a", 1, 2000)).unwrap();
    assert!(matches!(blocker.next_blocking(), Some(Event::Text(_))));
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for (name, weight) in [("a", 1), ("a", 1), ("a", 1), ("a", 1), ("a", 1), ("a", 1)]
        .into_iter()
        .chain([("b", 3); 6])
    {
        let events = engine.submit(from(name, weight, 2)).unwrap();
        let order = order.clone();
        waiters.push(std::thread::spawn(move || {
            collect(events);
            order.lock().unwrap().push(name);
        }));
    }
    wait_for(&engine, "all to queue", |e| e.load().waiting == 12);
    drop(blocker);
    waiters.into_iter().for_each(|w| w.join().unwrap());
    let order = order.lock().unwrap().concat();
    assert_eq!(order, "bbbabbbaaaaa", "{order}");
}
