//! OpenAI response bodies and stream chunks for chat completions and completions.

use serde_json::{json, Value};
use ward_engine::{FinishReason, Usage};

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
}

impl Meta {
    pub fn new(endpoint: Endpoint, request_id: &str, model: &str, fingerprint: &str) -> Meta {
        Meta {
            endpoint,
            id: format!("{}{request_id}", endpoint.id_prefix()),
            created: unix_now(),
            model: model.to_string(),
            fingerprint: fingerprint.to_string(),
        }
    }

    /// The complete (non-streaming) response.
    pub fn response(&self, text: &str, usage: &Usage) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => json!({
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": null,
                "finish_reason": finish_reason(usage.finish),
            }),
            Endpoint::Completion => json!({
                "index": 0,
                "text": text,
                "logprobs": null,
                "finish_reason": finish_reason(usage.finish),
            }),
        };
        let object = match self.endpoint {
            Endpoint::Chat => "chat.completion",
            Endpoint::Completion => "text_completion",
        };
        self.body(object, vec![choice], Some(usage_json(usage)))
    }

    /// A stream chunk carrying `text` (chat: as `delta.content`), or the finishing chunk.
    pub fn chunk(&self, text: &str, finish: Option<FinishReason>, with_usage_key: bool) -> Value {
        let finish = finish.map(finish_reason);
        let choice = match self.endpoint {
            Endpoint::Chat => {
                let delta = if finish.is_some() {
                    json!({})
                } else {
                    json!({"content": text})
                };
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
            }
            Endpoint::Completion => {
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish})
            }
        };
        // With `include_usage`, OpenAI puts `"usage": null` on every chunk but the last.
        let usage = with_usage_key.then_some(Value::Null);
        self.body(self.chunk_object(), vec![choice], usage)
    }

    /// Chat's first chunk: the assistant role, no text yet.
    pub fn role_chunk(&self, with_usage_key: bool) -> Value {
        let choice = json!({
            "index": 0,
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

fn finish_reason(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        // Nobody is left to read it, or it is sent as an error; named for completeness.
        FinishReason::Cancelled => "cancelled",
        FinishReason::TimedOut => "timeout",
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
