//! Hostile chat templates, rendered as `ward serve` renders them (in `ward template-worker`
//! processes): a template that doubles a list or a string until memory runs out, or that
//! copies huge values for ever, fails the one request with an error, and the next request is
//! served as usual. In this process the output limit still holds.

use std::path::Path;
use std::time::Instant;

use ward_models::{ChatInputs, ChatMessage, ChatTemplate, TemplateError};

/// Renders the conversation normally, except when a message says "attack".
fn hostile(attack: &str) -> String {
    format!(
        "{{% if messages[0].content == 'attack' %}}{attack}{{% endif %}}\
         {{% for m in messages %}}<|{{{{ m.role }}}}|>{{{{ m.content }}}}{{% endfor %}}\
         {{% if add_generation_prompt %}}<|assistant|>{{% endif %}}"
    )
}

const DOUBLE_A_LIST: &str = "{% set ns = namespace(x=[1, 2]) %}\
    {% for i in range(60) %}{% set ns.x = ns.x + ns.x %}{% endfor %}{{ ns.x | length }}";
const DOUBLE_A_STRING: &str = "{% set ns = namespace(x='ab') %}\
    {% for i in range(60) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x | length }}";
const COPY_FOR_EVER: &str = "{% set big = 'x' * 90000000 %}\
    {% for i in range(10000) %}{% set y = big ~ i %}{% endfor %}";
const HUGE_OUTPUT: &str = "{% for i in range(100) %}{{ 'x' * 90000000 }}{% endfor %}";

fn prompt(t: &ChatTemplate, content: &str) -> Result<String, TemplateError> {
    let messages = [ChatMessage::new("user", content)];
    t.generation_prompt(&messages, &ChatInputs::default())
        .map(|p| p.text)
}

#[test]
fn a_runaway_template_fails_its_request_and_the_next_one_is_served() {
    let exe = Path::new(env!("CARGO_BIN_EXE_ward"));
    for attack in [DOUBLE_A_LIST, DOUBLE_A_STRING, COPY_FOR_EVER, HUGE_OUTPUT] {
        let t = ChatTemplate::new_apart(&hostile(attack), "", "", exe).unwrap();
        assert_eq!(prompt(&t, "hi").unwrap(), "<|user|>hi<|assistant|>");
        let start = Instant::now();
        let e = prompt(&t, "attack").unwrap_err();
        assert!(matches!(e, TemplateError::Render(_)), "{e}");
        assert!(
            start.elapsed().as_secs() < 30,
            "{attack}: {:?}",
            start.elapsed()
        );
        // A fresh worker takes over.
        assert_eq!(prompt(&t, "hello").unwrap(), "<|user|>hello<|assistant|>");
    }
}

#[test]
fn a_template_that_does_not_compile_is_refused_at_load() {
    let exe = Path::new(env!("CARGO_BIN_EXE_ward"));
    match ChatTemplate::new_apart("{% for %}", "", "", exe) {
        Err(TemplateError::Compile(_)) => {}
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn in_process_the_output_is_bounded_too() {
    let t = ChatTemplate::new(&hostile(HUGE_OUTPUT), "", "").unwrap();
    let e = prompt(&t, "attack").unwrap_err();
    assert!(e.to_string().contains("MiB"), "{e}");
}
