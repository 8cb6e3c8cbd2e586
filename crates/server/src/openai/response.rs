//! OpenAI response bodies and stream chunks for chat completions and completions.

use serde_json::{json, Value};
use ward_engine::{FinishReason, TokenChoice, TokenLogprob, Usage};

use super::tools::{tool_calls_json, ToolCall};

/// One sequence's finished output, for a non-streaming response.
pub struct Choice {
    pub text: String,
    /// Chat: the model's thinking, split from `text` (empty if it did not think aloud).
    pub reasoning: String,
    /// `Some` when the request asked for log-probabilities.
    pub logprobs: Option<Vec<TokenLogprob>>,
    pub finish: Option<FinishReason>,
    /// Chat: the tools the answer calls (its finish reason is then `tool_calls`).
    pub tool_calls: Vec<ToolCall>,
}

/// Which of the two generation endpoints is answering; decides the object names and shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completion,
}

impl Endpoint {
    /// Where the prompt is in the request, for errors about it.
    pub fn prompt_param(self) -> &'static str {
        match self {
            Endpoint::Chat => "messages",
            Endpoint::Completion => "prompt",
        }
    }

    fn id_prefix(self) -> &'static str {
        match self {
            Endpoint::Chat => "chatcmpl-",
            Endpoint::Completion => "cmpl-",
        }
    }
}

/// The fields every body and chunk of one response repeats.
pub struct Meta {
    pub endpoint: Endpoint,
    pub id: String,
    pub created: u64,
    pub model: String,
    pub fingerprint: String,
    /// The request offered the older `functions`: a call is `function_call`, not `tool_calls`.
    pub legacy_functions: bool,
}

impl Meta {
    pub fn new(endpoint: Endpoint, request_id: &str, model: &str, fingerprint: &str) -> Meta {
        Meta {
            endpoint,
            id: format!("{}{request_id}", endpoint.id_prefix()),
            created: unix_now(),
            model: model.to_string(),
            fingerprint: fingerprint.to_string(),
            legacy_functions: false,
        }
    }

    /// The finish reason of an answer that calls tools.
    pub fn calls_finish(&self) -> &'static str {
        if self.legacy_functions {
            "function_call"
        } else {
            "tool_calls"
        }
    }

    /// A message's (or a delta's) calls, under the key the request's form uses.
    fn calls_json(&self, calls: &[ToolCall], index: usize, delta: bool) -> (&'static str, Value) {
        if self.legacy_functions {
            // The older form makes one call at most.
            let c = &calls[0];
            let call = json!({"name": c.name, "arguments": c.arguments});
            return ("function_call", call);
        }
        let id = format!("{}_{index}", self.id);
        ("tool_calls", tool_calls_json(calls, &id, delta))
    }

    /// The complete (non-streaming) response, with one choice per sequence.
    pub fn response(&self, choices: &[Choice], usage: &Usage) -> Value {
        let choices = choices
            .iter()
            .enumerate()
            .map(|(index, c)| {
                let logprobs = c.logprobs.as_ref().map(|lps| self.logprobs(lps, &mut 0));
                let finish = if c.tool_calls.is_empty() {
                    c.finish.map(FinishReason::as_str)
                } else {
                    Some(self.calls_finish())
                };
                match self.endpoint {
                    Endpoint::Chat => {
                        let mut message = json!({"role": "assistant", "content": c.text});
                        if !c.reasoning.is_empty() {
                            message["reasoning_content"] = json!(c.reasoning);
                        }
                        if !c.tool_calls.is_empty() {
                            let (key, calls) = self.calls_json(&c.tool_calls, index, false);
                            message[key] = calls;
                            if c.text.is_empty() {
                                message["content"] = Value::Null;
                            }
                        }
                        json!({
                            "index": index,
                            "message": message,
                            "logprobs": logprobs,
                            "finish_reason": finish,
                        })
                    }
                    Endpoint::Completion => json!({
                        "index": index,
                        "text": c.text,
                        "logprobs": logprobs,
                        "finish_reason": finish,
                    }),
                }
            })
            .collect();
        let object = match self.endpoint {
            Endpoint::Chat => "chat.completion",
            Endpoint::Completion => "text_completion",
        };
        self.body(object, choices, Some(usage_json(usage)))
    }

    /// A stream chunk for choice `index` carrying `text` (chat: as `delta.content`, and the
    /// thinking as `delta.reasoning_content`) and the log-probabilities of the tokens since the
    /// last chunk, or its finishing chunk. `offset` is the choice's text length so far, which
    /// the completions format reports.
    pub fn chunk(
        &self,
        index: usize,
        text: &str,
        reasoning: &str,
        logprobs: Option<(&[TokenLogprob], &mut usize)>,
        finish: Option<&str>,
        with_usage_key: bool,
    ) -> Value {
        let logprobs = logprobs.map(|(lps, offset)| self.logprobs(lps, offset));
        let choice = match self.endpoint {
            Endpoint::Chat => {
                let mut delta = json!({});
                if !reasoning.is_empty() {
                    delta["reasoning_content"] = json!(reasoning);
                }
                if !text.is_empty() || (finish.is_none() && reasoning.is_empty()) {
                    delta["content"] = json!(text);
                }
                json!({"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish})
            }
            Endpoint::Completion => {
                json!({"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish})
            }
        };
        // With `include_usage`, OpenAI puts `"usage": null` on every chunk but the last.
        let usage = with_usage_key.then_some(Value::Null);
        self.body(self.chunk_object(), vec![choice], usage)
    }

    /// A chat chunk carrying choice `index`'s tool calls, whole (they are sent once the
    /// answer is complete).
    pub fn tool_calls_chunk(
        &self,
        index: usize,
        calls: &[ToolCall],
        with_usage_key: bool,
    ) -> Value {
        let (key, calls) = self.calls_json(calls, index, true);
        let choice = json!({
            "index": index,
            "delta": {key: calls},
            "logprobs": null,
            "finish_reason": null,
        });
        self.body(
            self.chunk_object(),
            vec![choice],
            with_usage_key.then_some(Value::Null),
        )
    }

    /// Chat's first chunk of a choice: the assistant role, no text yet.
    pub fn role_chunk(&self, index: usize, with_usage_key: bool) -> Value {
        let choice = json!({
            "index": index,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": null,
            "finish_reason": null,
        });
        self.body(
            self.chunk_object(),
            vec![choice],
            with_usage_key.then_some(Value::Null),
        )
    }

    /// Log-probabilities in the endpoint's format: chat's list of tokens, each with its
    /// alternatives; the completions API's parallel lists, with each token's offset in the
    /// text (`offset` is where this run of tokens starts, and is moved past it).
    fn logprobs(&self, lps: &[TokenLogprob], offset: &mut usize) -> Value {
        let text = |c: &TokenChoice| String::from_utf8_lossy(&c.bytes).into_owned();
        match self.endpoint {
            Endpoint::Chat => {
                let entry = |c: &TokenChoice| json!({"token": text(c), "logprob": c.logprob, "bytes": c.bytes});
                let content: Vec<Value> = lps
                    .iter()
                    .map(|lp| {
                        let mut e = entry(&lp.token);
                        e["top_logprobs"] = lp.top.iter().map(entry).collect();
                        e
                    })
                    .collect();
                json!({"content": content})
            }
            Endpoint::Completion => {
                let mut offsets = Vec::with_capacity(lps.len());
                for lp in lps {
                    offsets.push(*offset);
                    *offset += text(&lp.token).chars().count();
                }
                let top: Vec<Value> = lps
                    .iter()
                    .map(|lp| {
                        lp.top
                            .iter()
                            .map(|c| (text(c), json!(c.logprob)))
                            .collect::<serde_json::Map<_, _>>()
                            .into()
                    })
                    .collect();
                json!({
                    "tokens": lps.iter().map(|lp| text(&lp.token)).collect::<Vec<_>>(),
                    "token_logprobs": lps.iter().map(|lp| lp.token.logprob).collect::<Vec<_>>(),
                    "top_logprobs": top,
                    "text_offset": offsets,
                })
            }
        }
    }

    /// The extra last chunk `stream_options.include_usage` asks for: no choices, the usage.
    pub fn usage_chunk(&self, usage: &Usage) -> Value {
        self.body(self.chunk_object(), vec![], Some(usage_json(usage)))
    }

    fn chunk_object(&self) -> &'static str {
        match self.endpoint {
            Endpoint::Chat => "chat.completion.chunk",
            Endpoint::Completion => "text_completion",
        }
    }

    fn body(&self, object: &str, choices: Vec<Value>, usage: Option<Value>) -> Value {
        let mut body = json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
            "choices": choices,
        });
        if let Some(usage) = usage {
            body["usage"] = usage;
        }
        body
    }
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    })
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
