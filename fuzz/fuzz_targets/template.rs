//! Chat templates. Mostly: an arbitrary conversation (messages, tools and template variables
//! from arbitrary JSON) made into a prompt through a real template (models/templates/*.jinja and
//! the test models' own) exactly as a chat request's is: caller strings escaped, the generation
//! prompt rendered, the result tokenized with control tokens from the template's markup only
//! (`ward_models::prompt::chat_prompt`). Sometimes: arbitrary template source compiled. Errors
//! are fine; panics, hangs and blow-ups are not.
//!
//! Input: a byte choosing the template, whether the caller is trusted and the mode, four bytes
//! of Unix time for `strftime_now`, then JSON `{"messages": [...], "tools": ..., "kwargs": {...}}`
//! (or the template source).

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use ward_fuzz::{models_dir, vocab_for_template, vocabs, Input, Vocab};
use ward_models::{prompt, ChatInputs, ChatMessage, ChatTemplate};

/// Longest template source tried: longer than most chat templates.
const MAX_SOURCE: usize = 8192;

fuzz_target!(
    init: {
        templates();
        let_template_engine_panics_unwind();
    },
    |data: &[u8]| fuzz(data)
);

fn fuzz(data: &[u8]) {
    let mut input = Input(data);
    let head = input.byte();
    let now = i64::from(input.u32());
    if head & 0xc0 == 0xc0 {
        arbitrary_source(input.rest());
        return;
    }
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(input.rest()) else {
        return;
    };
    let Some(Ok(messages)) = request
        .get("messages")
        .map(|m| serde_json::from_value::<Vec<ChatMessage>>(m.clone()))
    else {
        return;
    };
    let kwargs = match request.get("kwargs") {
        Some(Value::Object(k)) => Some(k.clone()),
        _ => None,
    };
    let inputs = ChatInputs {
        tools: request.get("tools").filter(|t| !t.is_null()),
        kwargs: kwargs.as_ref(),
        now: Some(now),
    };
    let templates = templates();
    let (template, vocab) = &templates[usize::from(head & 0x1f) % templates.len()];
    let trusted = head & 0x20 != 0;
    // A context's worth of tokens at most, as the engine asks.
    let result = prompt::chat_prompt(
        &vocab.tokenizer,
        template,
        &messages,
        &inputs,
        trusted,
        8192,
    );
    // WARD_FUZZ_DEBUG=1: each conversation's outcome, to check that seeds reach the templates.
    if std::env::var_os("WARD_FUZZ_DEBUG").is_some() {
        eprintln!("{}: {:?}", vocab.file, result.map(|p| p.tokens.len()));
    }
}

/// A panic inside minijinja is Ward's to catch (crates/models/src/template.rs makes it that
/// rendering's error), but libfuzzer-sys's panic hook aborts on every panic, caught or not: let
/// those through. One that Ward does not catch still ends the run, at libfuzzer-sys's own
/// `catch_unwind`.
fn let_template_engine_panics_unwind() {
    let fuzzer_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info
            .location()
            .is_some_and(|at| at.file().contains("/minijinja-"))
        {
            fuzzer_hook(info);
        }
    }));
}

/// Every real template, with the vocabulary whose control tokens it writes.
fn templates() -> &'static [(ChatTemplate, &'static Vocab)] {
    static TEMPLATES: OnceLock<Vec<(ChatTemplate, &'static Vocab)>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let mut sources: Vec<(String, &'static Vocab)> = Vec::new();
        let dir = models_dir().join("templates");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "jinja"))
            .collect();
        files.sort();
        for path in files {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let source = std::fs::read_to_string(&path).expect("a template");
            sources.push((source, vocab_for_template(&name)));
        }
        for vocab in vocabs() {
            if let Some(source) = &vocab.chat_template {
                sources.push((source.clone(), vocab));
            }
        }
        sources
            .into_iter()
            .map(|(source, vocab)| {
                let bos = vocab.token_text(vocab.tokenizer.bos);
                let eos = vocab.token_text(vocab.tokenizer.eos);
                let template = ChatTemplate::new(&source, &bos, &eos).expect("a real template");
                (template, vocab)
            })
            .collect()
    })
}

/// Template source from a model file, compiled as `ward serve` compiles it in its own process.
/// Not rendered: rendering runs the template's code, and that code can grow a value
/// geometrically within the fuel (`{% set x = x ~ x %}` again and again, `join` on a joined
/// string, recursive macros), so in one process it would only rediscover why `ward serve`
/// renders model files' templates in worker processes under a memory limit
/// (crates/models/src/template/apart.rs). Real templates are rendered above, with any input.
fn arbitrary_source(source: &[u8]) {
    let source = String::from_utf8_lossy(&source[..source.len().min(MAX_SOURCE)]);
    let _ = ChatTemplate::compile_only(&source);
}
