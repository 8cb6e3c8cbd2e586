//! Chat templates render exactly as Python jinja2 renders them (the reference rendering).

mod common;

use common::{fixture, model_path, root, wire_message, SMOLLM2};
use ward_models::gguf::GgufFile;
use ward_models::registry::Registry;
use ward_models::{
    ChatInputs, ChatMessage, ChatTemplate, TemplateError, ThinkingFormat, THINKING_FORMATS,
};

const QWEN25: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

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

/// Qwen2.5, Llama 3.1/3.2/3.3, the DeepSeek-R1 distills (today's template and the one in
/// the first GGUF files) and Qwen3, with tools, tool calls and results, thinking in past
/// turns and Qwen3's enable_thinking, each rendering equal to jinja2's byte for byte (and
/// failing where jinja2 fails: Llama's raise_exception on parallel calls).
#[test]
fn family_renderings_equal_jinja2() {
    let fx = fixture("templates-families.json");
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 250, "{} cases", cases.len());
    let now = fx["now"].as_i64().unwrap();
    let mut templates = std::collections::HashMap::new();
    let (mut rendered, mut failed) = (0, 0);
    for case in cases {
        let name = case["template"].as_str().unwrap();
        let t = templates.entry(name).or_insert_with(|| {
            ChatTemplate::new(
                fx["templates"][name].as_str().unwrap(),
                case["bos_token"].as_str().unwrap(),
                case["eos_token"].as_str().unwrap(),
            )
            .unwrap()
        });
        let messages: Vec<ChatMessage> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(wire_message)
            .collect();
        let inputs = ChatInputs {
            tools: case.get("tools").filter(|t| !t.is_null()),
            kwargs: case["kwargs"].as_object(),
            now: Some(now),
        };
        let agp = case["add_generation_prompt"].as_bool().unwrap();
        let got = t.render_chat(&messages, &inputs, agp);
        let what = format!(
            "template {name}, conversation {}, kwargs {}, add_generation_prompt {agp}",
            case["conversation"], case["kwargs"]
        );
        match (&got, case["rendered"].as_str(), case["error"].as_str()) {
            (Ok(text), Some(want), _) => {
                assert_eq!(text, want, "{what}");
                rendered += 1;
            }
            (Err(TemplateError::Render(e)), None, Some(want)) => {
                let message = want.split_once(": ").map_or(want, |p| p.1);
                assert!(e.contains(message), "{what}: {e} (jinja2: {want})");
                failed += 1;
            }
            _ => panic!(
                "{what}: got {got:?}, jinja2 {} {}",
                case["rendered"], case["error"]
            ),
        }
    }
    assert_eq!(rendered + failed, cases.len());
    assert!(failed <= 10, "{failed} renderings failed");
}

/// The fixtures' templates are the files in models/templates/, and Qwen2.5's is the test
/// model's own.
#[test]
fn family_templates_are_the_committed_files() {
    let fx = fixture("templates-families.json");
    let files = [
        ("qwen2.5-instruct", "qwen2.5-instruct.jinja"),
        ("llama3.1-instruct", "llama3.1-instruct.jinja"),
        ("llama3.2-instruct", "llama3.2-instruct.jinja"),
        ("deepseek-r1-distill", "deepseek-r1-distill.jinja"),
        (
            "deepseek-r1-distill-qwen-7b-gguf",
            "deepseek-r1-distill-qwen-7b-gguf.jinja",
        ),
        ("qwen3", "qwen3.jinja"),
    ];
    assert_eq!(fx["templates"].as_object().unwrap().len(), files.len());
    for (name, file) in files {
        let path = root().join("models/templates").join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            Some(text.as_str()),
            fx["templates"][name].as_str(),
            "{file}"
        );
    }
    let gguf = GgufFile::open(&model_path(QWEN25)).unwrap();
    assert_eq!(
        gguf.get_str("tokenizer.chat_template").unwrap(),
        fx["templates"]["qwen2.5-instruct"].as_str()
    );
}

fn family_template(name: &str) -> ChatTemplate {
    let fx = fixture("templates-families.json");
    let case = fx["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["template"] == name)
        .unwrap();
    ChatTemplate::new(
        fx["templates"][name].as_str().unwrap(),
        case["bos_token"].as_str().unwrap(),
        case["eos_token"].as_str().unwrap(),
    )
    .unwrap()
}

/// The generation prompt as llama.cpp's server makes it: R1 distills leave the thinking open
/// (or closed at once with enable_thinking false), Qwen3 closes it itself with
/// enable_thinking false, Llama 3.x gets today's date and its tools in the system turn.
#[test]
fn generation_prompts_say_whether_thinking_is_open() {
    let think = THINKING_FORMATS[0];
    let ask = [ChatMessage::new("user", "Dose? /no_think")];
    let off: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"enable_thinking": false}"#).unwrap();
    let off = ChatInputs {
        kwargs: Some(&off),
        ..ChatInputs::default()
    };
    let r1 = family_template("deepseek-r1-distill");
    let p = r1.generation_prompt(&ask, &ChatInputs::default()).unwrap();
    assert!(p.text.ends_with("<｜Assistant｜><think>\n"), "{:?}", p.text);
    assert_eq!(p.thinking, Some(think));
    let p = r1.generation_prompt(&ask, &off).unwrap();
    assert!(p.text.ends_with("<think>\n</think>"), "{:?}", p.text);
    assert_eq!(p.thinking, None);
    // The first R1 GGUFs' template lets the model write <think> itself.
    let early = family_template("deepseek-r1-distill-qwen-7b-gguf");
    let p = early
        .generation_prompt(&ask, &ChatInputs::default())
        .unwrap();
    assert!(p.text.ends_with("<｜Assistant｜>") && p.thinking.is_none());

    let qwen3 = family_template("qwen3");
    let p = qwen3
        .generation_prompt(&ask, &ChatInputs::default())
        .unwrap();
    assert!(p.text.ends_with("<|im_start|>assistant\n") && p.thinking.is_none());
    let p = qwen3.generation_prompt(&ask, &off).unwrap();
    assert!(p
        .text
        .ends_with("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
    assert_eq!(p.thinking, None);

    let llama = family_template("llama3.1-instruct");
    let tools: serde_json::Value =
        serde_json::from_str(r#"[{"type": "function", "function": {"name": "f"}}]"#).unwrap();
    let inputs = ChatInputs {
        tools: Some(&tools),
        now: Some(1_764_145_800),
        ..ChatInputs::default()
    };
    let p = llama.generation_prompt(&ask, &inputs).unwrap();
    let system = p.text.split("<|eot_id|>").next().unwrap();
    assert!(system.contains("Today Date: 26 Nov 2025\n"), "{system}");
    assert!(
        system.contains("\"name\": \"f\""),
        "tools in the system turn: {system}"
    );
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

/// Whitespace control as transformers sets up jinja2 (trim_blocks, lstrip_blocks): the real
/// templates strip their own whitespace with `{%-`, so only a template written without it, as a
/// hospital's own may be, shows the settings. The expected text is jinja2 3.1's rendering with
/// `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)`; without trim_blocks it
/// is "\n\n<u>hi</u>\n\n\n\n<a>yo</a>…", without lstrip_blocks "    <u>hi</u>\n        <a>yo</a>…".
#[test]
fn block_tags_trim_as_transformers_jinja2_does() {
    let source =
        "{% for m in messages %}\n    {% if m.role == 'user' %}\n<u>{{ m.content }}</u>\n    \
                  {% else %}\n<a>{{ m.content }}</a>\n    {% endif %}\n{% endfor %}\n\
                  {% if add_generation_prompt %}\n<a>\n{% endif %}";
    let t = ChatTemplate::new(source, "", "").unwrap();
    let chat = [
        ChatMessage::new("user", "hi"),
        ChatMessage::new("assistant", "yo"),
    ];
    assert_eq!(
        t.render(&chat, true).unwrap(),
        "<u>hi</u>\n<a>yo</a>\n<a>\n"
    );
}

/// minijinja 2 panics reversing an empty string or list (`x[::-1]`): the rendering fails, the
/// process goes on (found by fuzz/fuzz_targets/template.rs).
#[test]
fn a_panic_in_the_template_engine_is_a_render_error() {
    let t = ChatTemplate::new("{{ messages[0].content[::-1] }}", "", "").unwrap();
    assert_eq!(
        t.render(&[ChatMessage::new("user", "abc")], true).unwrap(),
        "cba"
    );
    let r = t.render(&[ChatMessage::new("user", "")], true);
    assert!(
        matches!(&r, Err(TemplateError::Render(m)) if m.contains("panic")),
        "{r:?}"
    );
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

/// A model's reasoning format is declared, never guessed from its answers: by its template
/// (Qwen3's and the R1 distills' name `</think>`), by its registry entry (HuatuoGPT-o1 reuses
/// Qwen2.5's and Llama 3.1's templates), or by the operator; a prompt counts as leaving the
/// thinking open only in the model's own format.
#[test]
fn reasoning_formats_are_declared_by_the_template_or_the_registry() {
    let [think, sections] = THINKING_FORMATS;
    for (name, declared) in [
        ("qwen3", Some(think)),
        ("deepseek-r1-distill", Some(think)),
        ("deepseek-r1-distill-qwen-7b-gguf", Some(think)),
        ("qwen2.5-instruct", None),
        ("llama3.1-instruct", None),
        ("llama3.2-instruct", None),
    ] {
        assert_eq!(family_template(name).reasoning(), declared, "{name}");
    }
    let gemma = std::fs::read_to_string(root().join("models/templates/gemma3-it.jinja")).unwrap();
    assert_eq!(ThinkingFormat::declared_by(&gemma), None);
    let ask = [ChatMessage::new("user", "Dose?")];
    let mut r1 = family_template("deepseek-r1-distill");
    r1.set_reasoning(None);
    let p = r1.generation_prompt(&ask, &ChatInputs::default()).unwrap();
    assert!(p.text.ends_with("<think>\n") && p.thinking.is_none());

    let reg = Registry::load(&root().join("models")).unwrap();
    let declared = |name: &str| reg.entry(name).unwrap().reasoning().unwrap();
    assert_eq!(declared("huatuogpt-o1-7b"), Some(Some(sections)));
    assert_eq!(declared("huatuogpt-o1-8b"), Some(Some(sections)));
    assert_eq!(declared("deepseek-r1-distill-qwen-7b"), Some(Some(think)));
    assert_eq!(declared("smollm2-135m-instruct"), None);
    assert_eq!(ThinkingFormat::parse_declaration("none"), Ok(None));
    let unknown = ThinkingFormat::parse_declaration("deepseek").unwrap_err();
    assert!(
        unknown.contains("think-tags, thinking-sections"),
        "{unknown}"
    );

    // A registry naming an unknown format is refused when it is read, naming the model.
    let dir = std::env::temp_dir().join(format!("ward-reasoning-registry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("registry.toml"),
        "default = \"m\"\n[[model]]\nname = \"m\"\nfile = \"m.gguf\"\narchitecture = \"llama\"\nlicense = \"x\"\nreasoning = \"thoughts\"\n",
    )
    .unwrap();
    let err = Registry::load(&dir).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        err.contains("\"m\"") && err.contains("\"thoughts\""),
        "{err}"
    );
}
