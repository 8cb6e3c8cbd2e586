//! Chat templates: the Jinja template from `tokenizer.chat_template` (or a registry override)
//! rendered with minijinja the way Hugging Face's `apply_chat_template` renders it
//! (trim_blocks, lstrip_blocks, Python string methods, `raise_exception`), with a fuel limit
//! so that a hostile template cannot loop forever.

use minijinja::{context, Environment, Error as JinjaError, ErrorKind};
use serde::Serialize;

/// Enough for conversations of thousands of turns with the usual templates; a template that
/// needs more is treated as hostile.
const FUEL: u64 = 2_000_000;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("this model has no chat template")]
    Missing,
    #[error("chat template does not compile: {0}")]
    Compile(String),
    #[error("chat template failed to render: {0}")]
    Render(String),
}

#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
    /// An assistant turn's calls of tools (OpenAI's `tool_calls`, with `arguments` parsed
    /// where they are JSON, as templates expect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<serde_json::Value>,
    /// A tool turn's answer to this call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.to_string(),
            content: content.to_string(),
            tool_calls: None,
            tool_call_id: None,
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

/// A system prompt offering `tools` (OpenAI's list) to a model whose template has no place
/// for them, in the Hermes function-calling format.
pub fn tools_system_prompt(tools: &serde_json::Value) -> String {
    let list: Vec<String> = tools
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t.get("function").unwrap_or(t).to_string())
        .collect();
    format!(
        "You may call functions to help answer. The functions, as JSON schemas:\n<tools>\n{}\n\
         </tools>\nTo call one, answer with a JSON object naming it and its arguments inside \
         tags:\n<tool_call>\n{{\"name\": <function-name>, \"arguments\": <args-json-object>}}\n\
         </tool_call>",
        list.join("\n")
    )
}

pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    /// The template renders a `tools` list itself.
    pub takes_tools: bool,
}

impl ChatTemplate {
    pub fn new(
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
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| TemplateError::Compile(e.to_string()))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            takes_tools: source.contains("tools"),
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
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| TemplateError::Compile(e.to_string()))?;
        tmpl.render(context! {
            messages => messages,
            tools => tools,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        })
        .map_err(|e| TemplateError::Render(e.to_string()))
    }
}
