//! Chat templates: the Jinja template from `tokenizer.chat_template` (or a registry override)
//! rendered with minijinja the way Hugging Face's `apply_chat_template` renders it with
//! jinja2 (trim_blocks, lstrip_blocks, loop controls, Python string methods, transformers'
//! `tojson`, `raise_exception`, `strftime_now`), with a fuel limit so that a hostile template
//! cannot loop forever; and the prompt for generation as llama.cpp's server makes it (its
//! conversation adjustments, Llama 3.x's date, `enable_thinking`, thinking left open).
//! Checked byte for byte against jinja2 by tests/template_fixtures.rs.

mod apart;
pub mod hermes;
mod pyjson;
mod strftime;

use minijinja::value::Value as JValue;
use minijinja::{context, Environment, Error as JinjaError, ErrorKind};
use serde::Serialize;
use serde_json::{Map, Value};

pub use apart::run_worker as run_template_worker;
pub use pyjson::dumps as python_json_dumps;
pub use strftime::strftime;

/// Enough for conversations of thousands of turns with the usual templates; a template that
/// needs more is treated as hostile.
const FUEL: u64 = 2_000_000;
/// The longest rendering accepted: far more than any context holds (128k tokens of at most a
/// few hundred bytes each), so only a runaway template reaches it.
const MAX_RENDERED_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("this model has no chat template")]
    Missing,
    #[error("chat template does not compile: {0}")]
    Compile(String),
    #[error("chat template failed to render: {0}")]
    Render(String),
}

#[derive(Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: String,
    /// The text. An assistant turn that only calls tools has none: the template gets `null`
    /// then, as OpenAI's wire has it (DeepSeek-R1's template writes the calls only then), or
    /// `""` where the template cannot take `null` (Qwen3's).
    pub content: String,
    /// An assistant turn's calls of tools (OpenAI's `tool_calls`, `arguments` as JSON text
    /// the way clients send them; the template gets them parsed into objects where it
    /// renders only objects, as llama.cpp does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<serde_json::Value>,
    /// A tool turn's answer to this call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// A past assistant turn's thinking, given apart from its content (Qwen3's template
    /// writes it back into the turn; llama.cpp passes it the same way).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.to_string(),
            content: content.to_string(),
            tool_calls: None,
            tool_call_id: None,
            reasoning_content: None,
        }
    }
}

/// Redacted: message contents may hold patient data and must never reach logs.
impl std::fmt::Debug for ChatMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ChatMessage {{ role: {:?}, content: <{} bytes> }}",
            self.role,
            self.content.len()
        )
    }
}

/// How a reasoning model marks its thinking: both markers of each format, for the prompt
/// (which may leave the thinking open) and for the answer (split into `reasoning_content` and
/// `content` by the server). A model has one format or none: its template declares it, or its
/// registry entry (`reasoning`) or `ward serve --reasoning-format` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThinkingFormat {
    /// What the registry and `--reasoning-format` call it.
    pub name: &'static str,
    pub open: &'static str,
    pub close: &'static str,
}

/// DeepSeek-R1 / Qwen3 style and HuatuoGPT-o1 style.
pub const THINKING_FORMATS: [ThinkingFormat; 2] = [
    ThinkingFormat {
        name: "think-tags",
        open: "<think>",
        close: "</think>",
    },
    ThinkingFormat {
        name: "thinking-sections",
        open: "## Thinking",
        close: "## Final Response",
    },
];

impl ThinkingFormat {
    /// What a registry entry's `reasoning` or `--reasoning-format` names: a format of
    /// [`THINKING_FORMATS`], or `none` (answers are all content).
    pub fn parse_declaration(name: &str) -> Result<Option<ThinkingFormat>, String> {
        if name == "none" {
            return Ok(None);
        }
        THINKING_FORMATS
            .into_iter()
            .find(|f| f.name == name)
            .map(Some)
            .ok_or_else(|| {
                let names: Vec<&str> = THINKING_FORMATS.iter().map(|f| f.name).collect();
                format!(
                    "unknown reasoning format {name:?}: expected none or {}",
                    names.join(", ")
                )
            })
    }

    /// The format a chat template declares by naming its closing marker: Qwen3's and the
    /// DeepSeek-R1 distills' templates cut past turns' thinking at `</think>`. A template
    /// that never mentions thinking declares none (HuatuoGPT-o1 reuses its base model's: its
    /// registry entry declares the format instead).
    pub fn declared_by(template_source: &str) -> Option<ThinkingFormat> {
        THINKING_FORMATS
            .into_iter()
            .find(|f| template_source.contains(f.close))
    }

    /// The prompt leaves this thinking open: it ends with the opening marker (and
    /// whitespace), as the DeepSeek-R1 distills' generation prompt `<｜Assistant｜><think>\n`
    /// does, so the answer starts inside the thinking, without the marker.
    pub fn left_open_by(self, prompt: &str) -> bool {
        prompt.trim_end().ends_with(self.open)
    }
}

/// What a rendering gets besides the conversation.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChatInputs<'a> {
    /// OpenAI's `tools` list, for templates that describe tools themselves.
    pub tools: Option<&'a Value>,
    /// More template variables (`chat_template_kwargs`: `enable_thinking`, `date_string`…);
    /// they cannot replace `messages`, `tools`, `add_generation_prompt` or the tokens.
    pub kwargs: Option<&'a Map<String, Value>>,
    /// Unix time `strftime_now` reads; `None`: now.
    pub now: Option<i64>,
}

/// A conversation ready for generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationPrompt {
    pub text: String,
    /// The prompt leaves the thinking of this format open: the answer starts inside it.
    pub thinking: Option<ThinkingFormat>,
}

/// What a template needs of the conversation, found as llama.cpp (minja's chat_template)
/// finds it: by rendering probes.
#[derive(Debug, Default, Clone, Copy)]
struct Needs {
    /// Fails on an assistant turn with `null` content, renders it with `""`.
    non_null_content: bool,
    /// Renders tool calls' arguments given as objects but not given as JSON text.
    object_arguments: bool,
}

pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    needs: Needs,
    /// A Llama 3.x template (it has the `ipython` role), which llama.cpp gives today's
    /// `date_string` and `tools_in_user_message = false`.
    llama3: bool,
    /// The template renders a `tools` list itself.
    pub takes_tools: bool,
    /// How the model marks its thinking, if it is a reasoning model.
    reasoning: Option<ThinkingFormat>,
    /// Generation prompts are rendered in worker processes ([`ChatTemplate::new_apart`]).
    apart: Option<apart::Apart>,
}

impl ChatTemplate {
    /// The template, rendered in this process (with fuel and an output limit): for templates
    /// the operator trusts, and for tests.
    pub fn new(
        source: &str,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<ChatTemplate, TemplateError> {
        let mut template = ChatTemplate::compile(source, bos_token, eos_token)?;
        template.needs = template.probe();
        Ok(template)
    }

    /// The template, with generation prompts rendered by `worker_exe template-worker`
    /// processes, under a memory limit and a deadline (see [`apart`]); nothing of it runs in
    /// this process.
    pub fn new_apart(
        source: &str,
        bos_token: &str,
        eos_token: &str,
        worker_exe: &std::path::Path,
    ) -> Result<ChatTemplate, TemplateError> {
        let mut template = ChatTemplate::compile(source, bos_token, eos_token)?;
        template.apart = Some(apart::Apart::new(worker_exe, source, bos_token, eos_token)?);
        Ok(template)
    }

    /// Compile `source` as [`ChatTemplate::new_apart`] does in the serving process, rendering
    /// nothing: a model file's template runs only in workers, and only its compilation in the
    /// server. (The fuzz target's way in for arbitrary template source.)
    #[doc(hidden)]
    pub fn compile_only(source: &str) -> Result<(), TemplateError> {
        ChatTemplate::compile(source, "", "").map(drop)
    }

    /// How the model marks its thinking (see [`ThinkingFormat`]); `None`: its answers are
    /// all content.
    pub fn reasoning(&self) -> Option<ThinkingFormat> {
        self.reasoning
    }

    /// The model's format, where its registry entry or the operator says what the template
    /// does not.
    pub fn set_reasoning(&mut self, format: Option<ThinkingFormat>) {
        self.reasoning = format;
    }

    fn compile(
        source: &str,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<ChatTemplate, TemplateError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_fuel(Some(FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, JinjaError> {
                Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_filter("tojson", pyjson::tojson);
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| TemplateError::Compile(e.to_string()))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            needs: Needs::default(),
            llama3: source.contains("<|start_header_id|>ipython<|end_header_id|>"),
            takes_tools: source.contains("tools"),
            reasoning: ThinkingFormat::declared_by(source),
            apart: None,
        })
    }

    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        self.render_with_tools(messages, None, add_generation_prompt)
    }

    /// `render` with OpenAI's `tools` list for templates that describe tools themselves.
    pub fn render_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let inputs = ChatInputs {
            tools,
            ..ChatInputs::default()
        };
        self.render_chat(messages, &inputs, add_generation_prompt)
    }

    /// The template's text for `messages` with exactly these variables, as jinja2 renders it
    /// (after the conversation adjustments the template needs, see [`ChatMessage`]).
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        inputs: &ChatInputs,
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let messages: Vec<Value> = messages.iter().map(|m| self.message_json(m)).collect();
        self.render_json(&messages, inputs, add_generation_prompt)
    }

    /// The prompt to generate from, as llama.cpp's server makes it: the generation prompt,
    /// Llama 3.x templates given today's `date_string` and `tools_in_user_message = false`
    /// (the request's kwargs may say otherwise), and a prompt that leaves the thinking open
    /// (DeepSeek-R1 distills) either marked so (the answer starts inside the thinking) or,
    /// with `enable_thinking: false`, closed at once.
    pub fn generation_prompt(
        &self,
        messages: &[ChatMessage],
        inputs: &ChatInputs,
    ) -> Result<GenerationPrompt, TemplateError> {
        if let Some(apart) = &self.apart {
            let mut prompt = apart.generation_prompt(messages, inputs)?;
            // The worker knows only the template's own format; the model's may be another.
            prompt.thinking = prompt.thinking.filter(|&f| Some(f) == self.reasoning);
            return Ok(prompt);
        }
        let now = inputs.now.unwrap_or_else(unix_now);
        let mut kwargs = Map::new();
        if self.llama3 {
            kwargs.insert("date_string".into(), strftime("%d %b %Y", now).into());
            kwargs.insert("tools_in_user_message".into(), false.into());
        }
        for (k, v) in inputs.kwargs.into_iter().flatten() {
            kwargs.insert(k.clone(), v.clone());
        }
        let inputs = ChatInputs {
            tools: inputs.tools,
            kwargs: Some(&kwargs),
            now: Some(now),
        };
        let mut text = self.render_chat(messages, &inputs, true)?;
        let mut thinking = self.reasoning.filter(|f| f.left_open_by(&text));
        if let Some(format) = thinking {
            if kwargs.get("enable_thinking") == Some(&Value::Bool(false)) {
                text.push_str(format.close);
                thinking = None;
            }
        }
        Ok(GenerationPrompt { text, thinking })
    }

    fn render_json(
        &self,
        messages: &[Value],
        inputs: &ChatInputs,
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| TemplateError::Compile(e.to_string()))?;
        let now = inputs.now.unwrap_or_else(unix_now);
        let strftime_now = JValue::from_function(move |format: String| strftime(&format, now));
        let kwargs = JValue::from_serialize(inputs.kwargs.unwrap_or(&Map::new()));
        // Variables named first win over the same names in `kwargs`.
        let context = context! {
            messages => JValue::from_serialize(messages),
            tools => inputs.tools.map(JValue::from_serialize),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
            strftime_now => strftime_now,
            ..kwargs
        };
        let mut out = Bounded(Vec::new());
        // minijinja 2 panics on a few inputs (reversing an empty string or list with
        // `x[::-1]`; fixed in minijinja 3.1): a template fails its own rendering, never the
        // process. Nothing is shared with the next rendering but the environment, which
        // rendering does not change.
        let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tmpl.render_captured_to(context, &mut out)
        }))
        .map_err(|_| TemplateError::Render("the template engine failed (a panic)".into()))?;
        rendered.map_err(|e| TemplateError::Render(render_error(&e)))?;
        String::from_utf8(out.0).map_err(|e| TemplateError::Render(e.to_string()))
    }

    /// A message as the template sees it (llama.cpp's JSON of it, adjusted to the template).
    fn message_json(&self, m: &ChatMessage) -> Value {
        let mut o = Map::new();
        o.insert("role".into(), m.role.clone().into());
        let null = m.content.is_empty() && m.tool_calls.is_some() && !self.needs.non_null_content;
        let content = if null {
            Value::Null
        } else {
            m.content.clone().into()
        };
        o.insert("content".into(), content);
        if let Some(r) = m.reasoning_content.as_ref().filter(|r| !r.is_empty()) {
            o.insert("reasoning_content".into(), r.clone().into());
        }
        if let Some(calls) = &m.tool_calls {
            let mut calls = calls.clone();
            if self.needs.object_arguments {
                for call in calls.as_array_mut().into_iter().flatten() {
                    if call["type"] != "function" {
                        continue;
                    }
                    let parsed = call["function"]["arguments"]
                        .as_str()
                        .and_then(|a| serde_json::from_str::<Value>(a).ok());
                    if let Some(args) = parsed {
                        call["function"]["arguments"] = args;
                    }
                }
            }
            o.insert("tool_calls".into(), calls);
        }
        if let Some(id) = &m.tool_call_id {
            o.insert("tool_call_id".into(), id.clone().into());
        }
        Value::Object(o)
    }

    /// minja's probes (the same conversations, needles and tests).
    fn probe(&self) -> Needs {
        let render = |messages: Value| {
            let messages = messages.as_array().cloned().unwrap_or_default();
            let inputs = ChatInputs {
                now: Some(0),
                ..ChatInputs::default()
            };
            self.render_json(&messages, &inputs, false)
                .unwrap_or_default()
        };
        let user = serde_json::json!({"role": "user", "content": "<User Needle>"});
        let with_content = |content: Value| {
            let assistant = serde_json::json!({"role": "assistant", "content": content});
            render(serde_json::json!([user, assistant, user, assistant]))
        };
        let non_null_content = with_content("".into()).contains("<User Needle>")
            && !with_content(Value::Null).contains("<User Needle>");
        let args = serde_json::json!({"argument_needle": "print('Hello, World!')"});
        let with_args = |arguments: Value| {
            let call = serde_json::json!({
                "id": "call_1___",
                "type": "function",
                "function": {"arguments": arguments, "name": "ipython"},
            });
            let content = if non_null_content {
                "".into()
            } else {
                Value::Null
            };
            let out = render(serde_json::json!([
                user,
                {"role": "assistant", "content": content, "tool_calls": [call]},
            ]));
            [
                "<parameter=argument_needle>",
                "\"argument_needle\":",
                "'argument_needle':",
            ]
            .iter()
            .any(|needle| out.contains(needle))
        };
        let renders_text = with_args(args.to_string().into());
        let renders_objects = with_args(args);
        Needs {
            non_null_content,
            object_arguments: renders_objects && !renders_text,
        }
    }
}

/// Rendered output, refused past [`MAX_RENDERED_BYTES`].
struct Bounded(Vec<u8>);

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_RENDERED_BYTES {
            return Err(std::io::Error::other(format!(
                "the rendering passed {} MiB",
                MAX_RENDERED_BYTES >> 20
            )));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The error and what caused it (`raise_exception`'s message is the cause's).
fn render_error(e: &JinjaError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
