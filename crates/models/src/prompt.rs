//! A conversation's token ids for generation: rendered through the chat template as
//! llama.cpp's server renders it (see [`ChatTemplate::generation_prompt`]), tools offered in a
//! system message where the template has no place for them, and the caller's strings kept from
//! ever becoming control tokens (see [`crate::tokenizer::caller_text`]).

use serde_json::{Map, Value};

use crate::template::{self, GenerationPrompt};
use crate::{ChatInputs, ChatMessage, ChatTemplate, ModelError, ThinkingFormat, Tokenizer};

/// A conversation ready for generation.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatPrompt {
    pub tokens: Vec<u32>,
    /// The prompt leaves the thinking of this format open: the answer starts inside it.
    pub thinking: Option<ThinkingFormat>,
}

/// `messages` with `inputs` as the prompt to generate from, of at most `limit` tokens. With
/// `trust_control_tokens` (trusted callers only) control-token texts anywhere in them become
/// those tokens, as in llama.cpp's server; without it only the template's own markup makes
/// control tokens.
pub fn chat_prompt(
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    messages: &[ChatMessage],
    inputs: &ChatInputs,
    trust_control_tokens: bool,
    limit: usize,
) -> Result<ChatPrompt, ModelError> {
    let too_long = ModelError::PromptTooLong { limit };
    // Templates write BOS themselves where the model wants it; llama.cpp's server likewise
    // tokenizes the rendered prompt without adding special tokens again.
    if trust_control_tokens {
        let prompt = render(template, messages, inputs)?;
        return Ok(ChatPrompt {
            tokens: tokenizer
                .encode_caller(&prompt.text, false, true, limit)
                .ok_or(too_long)?,
            thinking: prompt.thinking,
        });
    }
    // Every string the caller sent is escaped before rendering.
    let escape = |s: &str| tokenizer.escape_controls(s).into_owned();
    let messages: Vec<ChatMessage> = messages
        .iter()
        .map(|m| ChatMessage {
            role: escape(&m.role),
            content: escape(&m.content),
            tool_calls: m
                .tool_calls
                .as_ref()
                .map(|v| tokenizer.escape_controls_json(v)),
            tool_call_id: m.tool_call_id.as_deref().map(escape),
            reasoning_content: m.reasoning_content.as_deref().map(escape),
        })
        .collect();
    let tools = inputs.tools.map(|t| tokenizer.escape_controls_json(t));
    let kwargs: Option<Map<String, Value>> = inputs.kwargs.map(|k| {
        k.iter()
            .map(|(name, v)| (name.clone(), tokenizer.escape_controls_json(v)))
            .collect()
    });
    let escaped = ChatInputs {
        tools: tools.as_ref(),
        kwargs: kwargs.as_ref(),
        ..*inputs
    };
    let prompt = render(template, &messages, &escaped)?;
    Ok(ChatPrompt {
        tokens: tokenizer
            .encode_escaped(&prompt.text, limit)
            .ok_or(too_long)?,
        thinking: prompt.thinking,
    })
}

/// The template's generation prompt, with `tools` offered in a system message where the
/// template has no place for them (the Hermes format, which Qwen, SmolLM and many fine-tunes
/// were trained on).
fn render(
    template: &ChatTemplate,
    messages: &[ChatMessage],
    inputs: &ChatInputs,
) -> Result<GenerationPrompt, ModelError> {
    Ok(match inputs.tools {
        Some(tools) if !template.takes_tools => {
            let mut with = messages.to_vec();
            let offer = template::hermes::system_prompt(tools);
            match with.first_mut() {
                Some(m) if m.role == "system" => m.content = format!("{}\n\n{offer}", m.content),
                _ => with.insert(0, ChatMessage::new("system", &offer)),
            }
            let inputs = ChatInputs {
                tools: None,
                ..*inputs
            };
            template.generation_prompt(&with, &inputs)?
        }
        _ => template.generation_prompt(messages, inputs)?,
    })
}
