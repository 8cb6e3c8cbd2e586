//! Chat templates render exactly as Python jinja2 renders them (the reference rendering).

mod common;

use common::{fixture, model_path, root, SMOLLM2};
use ward_models::gguf::GgufFile;
use ward_models::registry::Registry;
use ward_models::{ChatMessage, ChatTemplate, TemplateError};

fn messages(v: &serde_json::Value) -> Vec<ChatMessage> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect()
}

#[test]
fn renderings_equal_jinja2() {
    let fx = fixture("templates.json");
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let name = case["template"].as_str().unwrap();
        let source = fx["templates"][name].as_str().unwrap();
        let t = ChatTemplate::new(
            source,
            case["bos_token"].as_str().unwrap(),
            case["eos_token"].as_str().unwrap(),
        )
        .unwrap();
        let got = t
            .render(
                &messages(&case["messages"]),
                case["add_generation_prompt"].as_bool().unwrap(),
            )
            .unwrap();
        assert_eq!(got, case["rendered"].as_str().unwrap(), "template {name}");
    }
}

#[test]
fn fixture_template_is_the_one_in_the_gguf_and_the_registry_file() {
    let fx = fixture("templates.json");
    let gguf = GgufFile::open(&model_path(SMOLLM2)).unwrap();
    assert_eq!(
        gguf.get_str("tokenizer.chat_template").unwrap(),
        fx["templates"]["smollm2"].as_str()
    );
    let file = std::fs::read_to_string(root().join("models/templates/gemma3-it.jinja")).unwrap();
    assert_eq!(Some(file.as_str()), fx["templates"]["gemma3-it"].as_str());
}

#[test]
fn raise_exception_and_fuel_limit_give_errors() {
    let file = std::fs::read_to_string(root().join("models/templates/gemma3-it.jinja")).unwrap();
    let t = ChatTemplate::new(&file, "<bos>", "<eos>").unwrap();
    let bad = [
        ChatMessage::new("assistant", "first"),
        ChatMessage::new("assistant", "second"),
    ];
    let err = t.render(&bad, true).unwrap_err();
    assert!(
        matches!(&err, TemplateError::Render(m) if m.contains("must alternate")),
        "{err}"
    );
    let looping = ChatTemplate::new(
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        "",
        "",
    )
    .unwrap();
    assert!(matches!(
        looping.render(&[], true),
        Err(TemplateError::Render(_))
    ));
    assert!(matches!(
        ChatTemplate::new("{% for %}", "", ""),
        Err(TemplateError::Compile(_))
    ));
}

#[test]
fn registry_entry_can_override_the_template() {
    let dir = std::env::temp_dir().join(format!("ward-registry-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("templates/t.jinja"),
        "{{ messages[0]['content'] }}!",
    )
    .unwrap();
    std::fs::write(dir.join("m.gguf"), b"not used").unwrap();
    std::fs::write(
        dir.join("registry.toml"),
        "default = \"m\"\n[[model]]\nname = \"m\"\nfile = \"m.gguf\"\nsha256 = \"00\"\narchitecture = \"llama\"\nlicense = \"x\"\nchat_template = \"templates/t.jinja\"\n",
    )
    .unwrap();
    let reg = Registry::load(&dir).unwrap();
    let r = reg.resolve(None).unwrap();
    assert_eq!(r.path, dir.join("m.gguf"));
    assert_eq!(
        r.template_override.as_deref(),
        Some("{{ messages[0]['content'] }}!")
    );
    assert!(reg.resolve(Some("nope")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_real_registry_resolves_the_default_model() {
    let reg = Registry::load(&root().join("models")).unwrap();
    let r = reg.resolve(None).unwrap();
    assert_eq!(r.name, "smollm2-135m-instruct");
    assert!(r.path.ends_with(SMOLLM2));
}
