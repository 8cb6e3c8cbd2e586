//! OpenAI request bodies for `/v1/chat/completions` and `/v1/completions`: parsed with the
//! failing parameter's path, then validated into the engine's `GenerateRequest`. One body type
//! serves both endpoints (they share almost every field); each endpoint checks its own.
//!
//! Parameters Ward does not implement yet are refused with a 400 naming them rather than
//! silently ignored, because ignoring them would change the answer the caller relies on.

use serde::Deserialize;
use serde_json::Value;
use ward_engine::{
    ChatMessage, GenerateRequest, Prompt, ResponseFormat, SamplingParams, MAX_TOP_LOGPROBS,
};

use super::tools::{self, ToolMode};
use crate::error::ApiError;

/// Most stop strings a request may give, and their longest length in bytes.
const MAX_STOPS: usize = 16;
const MAX_STOP_LEN: usize = 256;
/// Most tokens `logit_bias` may name (OpenAI's limit).
const MAX_LOGIT_BIAS: usize = 300;
/// Most choices a request may ask for (`n`); each is a sequence of its own.
const MAX_N: i64 = 16;
/// Most sequences one request may start: its prompts (a completions batch) times `n`. LangChain
/// sends batches of 20 prompts.
const MAX_SEQUENCES: usize = 32;
/// Most alternatives per token the completions API's `logprobs` may ask for (OpenAI's limit).
const MAX_COMPLETION_LOGPROBS: u64 = 5;

/// Deliberately without `Debug`: it holds the prompt, which must never reach a log.
#[derive(Deserialize)]
pub struct RequestBody {
    pub model: Option<String>,
    messages: Option<Vec<WireMessage>>,
    prompt: Option<WirePrompt>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<i64>,
    min_p: Option<f64>,
    repetition_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    seed: Option<i64>,
    stop: Option<Stop>,
    n: Option<i64>,
    /// Chat: a boolean (with `top_logprobs`); completions: the number of alternatives.
    logprobs: Option<Value>,
    top_logprobs: Option<Value>,
    /// Token ids (as strings) to biases. Read as any JSON and checked by hand: a map typed for
    /// serde would name a key that holds a wrong value in the error, and keys are caller text.
    logit_bias: Option<Value>,
    /// vLLM's extensions: more tokens that end the answer; generating past end-of-turn.
    stop_token_ids: Option<Vec<u32>>,
    ignore_eos: Option<bool>,
    response_format: Option<Value>,
    tools: Option<Value>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    /// The older form of `tools` and `tool_choice`, answered in its own shape
    /// (`message.function_call`).
    functions: Option<Value>,
    function_call: Option<Value>,
    /// llama.cpp's and vLLM's extension: more variables for the chat template
    /// (`{"enable_thinking": false}`).
    chat_template_kwargs: Option<Value>,
    echo: Option<bool>,
    suffix: Option<String>,
    best_of: Option<i64>,
    /// vLLM's extension: prefix-cache entries are shared only between requests with the same
    /// salt.
    cache_salt: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct WireMessage {
    role: String,
    content: Option<Content>,
    /// An assistant turn's calls (`[{"id", "type", "function": {"name", "arguments"}}]`).
    tool_calls: Option<Vec<Value>>,
    /// A tool turn: the call it answers.
    tool_call_id: Option<String>,
    /// The older form of both: an assistant turn's one call (`{"name", "arguments"}`), and a
    /// `function` turn's result, named by the function.
    function_call: Option<Value>,
    name: Option<String>,
    /// A past assistant turn's thinking, apart from its content (as this server answers it).
    reasoning_content: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WirePrompt {
    Text(String),
    Tokens(Vec<u32>),
    TextBatch(Vec<String>),
    TokenBatch(Vec<Vec<u32>>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// What a route needs beyond the engine request.
pub struct Validated {
    pub request: GenerateRequest,
    pub stream: bool,
    pub include_usage: bool,
    /// Choices to generate per prompt.
    pub n: usize,
    /// A completions batch's prompts after the first (which is `request.prompt`): each gets
    /// `n` choices, numbered after the previous prompt's, as OpenAI does.
    pub more_prompts: Vec<Prompt>,
    /// How the answer is read back as tool calls.
    pub tool_mode: ToolMode,
    /// The request offered `functions` (not `tools`): a call is answered as `function_call`.
    pub legacy_functions: bool,
}

/// What `/tokenize` renders, as a generation request would.
pub struct Tokenize {
    pub prompt: Prompt,
    pub tools: Option<Value>,
    pub kwargs: serde_json::Map<String, Value>,
    /// Where the prompt is in the request, for errors about it.
    pub param: &'static str,
}

/// Parse a completions or chat body; see [`parse_json`].
pub fn parse_body(bytes: &[u8]) -> Result<RequestBody, ApiError> {
    parse_json(bytes)
}

/// Parse a JSON object body, naming the parameter that does not fit. Error messages describe
/// the expected type but never quote the value sent.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would also read a struct from an array, positionally: only objects are requests.
    if bytes.trim_ascii_start().first() == Some(&b'[') {
        return Err(ApiError::malformed("the body must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let body: T = match serde_path_to_error::deserialize(&mut de) {
        Ok(body) => body,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            return Err(if inner.is_data() {
                data_error(&path, &inner)
            } else {
                not_json(&inner)
            });
        }
    };
    de.end().map_err(|e| not_json(&e))?;
    Ok(body)
}

fn not_json(e: &serde_json::Error) -> ApiError {
    // Syntax errors carry no input text, only what was expected and where.
    ApiError::malformed(format!("the body is not valid JSON: {e}"))
}

fn data_error(path: &str, e: &serde_json::Error) -> ApiError {
    let text = e.to_string();
    let text = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(t, _)| t);
    // serde names the field in backquotes: "missing field `model`", "duplicate field `n`".
    let param_after = |prefix: &str| {
        let field = text.strip_prefix(prefix)?.split('`').next()?;
        Some(if path == "." {
            field.to_string()
        } else {
            format!("{path}.{field}")
        })
    };
    if let Some(param) = param_after("missing field `") {
        return ApiError::invalid_param(param.clone(), format!("'{param}' is required"));
    }
    if let Some(param) = param_after("duplicate field `") {
        return ApiError::invalid_param(
            param.clone(),
            format!("'{param}' is given more than once"),
        );
    }
    if path == "." {
        return ApiError::malformed("the body must be a JSON object");
    }
    // serde says "invalid type: string \"<value>\", expected f64"; keep only what was expected.
    let expected = match text.rsplit_once(", expected ") {
        Some((_, exp)) if !exp.contains("untagged enum") => exp.to_string(),
        _ => describe_untagged(path),
    };
    ApiError::invalid_param(
        path,
        format!("'{path}' has the wrong type: expected {expected}"),
    )
}

fn describe_untagged(path: &str) -> String {
    let last = path.rsplit('.').next().unwrap_or(path);
    match last {
        "prompt" => "a string, an array of token ids, or an array of either".into(),
        "stop" => "a string or an array of strings".into(),
        _ if last.starts_with("content") => "a string or an array of content parts".into(),
        _ => "a value of another type".into(),
    }
}

impl RequestBody {
    /// Check a chat request and turn it into an engine request.
    pub fn into_chat(self) -> Result<Validated, ApiError> {
        let messages = self
            .messages
            .as_deref()
            .ok_or_else(|| ApiError::invalid_param("messages", "'messages' is required"))?;
        if self.prompt.is_some() {
            return Err(ApiError::invalid_param(
                "prompt",
                "chat completions take 'messages', not 'prompt'",
            ));
        }
        let messages = chat_messages(messages)?;
        // The newer name wins; without either, the reply may fill the context.
        let max_tokens = match (self.max_completion_tokens, self.max_tokens) {
            (Some(v), _) => Some(("max_completion_tokens", v)),
            (None, Some(v)) => Some(("max_tokens", v)),
            (None, None) => None,
        };
        let logprobs = self.chat_logprobs()?;
        let legacy_functions = self.functions.as_ref().is_some_and(|f| !f.is_null());
        let (tools, tool_mode, call_schema) = if legacy_functions {
            let (tools, choice) = self.functions_as_tools()?;
            tools::validate(Some(&tools), choice.as_ref(), true)?
        } else {
            let one_call = self.parallel_tool_calls == Some(false);
            tools::validate(self.tools.as_ref(), self.tool_choice.as_ref(), one_call)?
        };
        let mut v = self.validate(Prompt::Chat(messages), max_tokens, logprobs)?;
        if let Some(schema) = call_schema {
            if v.request.response_format.is_some() {
                return Err(ApiError::invalid_param(
                    "response_format",
                    "'response_format' cannot be combined with a required tool call",
                ));
            }
            v.request.response_format = Some(ResponseFormat::JsonSchema(schema));
        }
        v.request.tools = tools;
        v.tool_mode = tool_mode;
        v.legacy_functions = legacy_functions;
        v.request.chat_template_kwargs = self.chat_template_kwargs()?;
        Ok(v)
    }

    /// What `/tokenize` counts: the prompt (a string), or the conversation with the tools and
    /// template variables a chat request would render with.
    pub fn into_tokenize(self) -> Result<Tokenize, ApiError> {
        match (&self.prompt, &self.messages) {
            (Some(WirePrompt::Text(p)), None) => Ok(Tokenize {
                prompt: Prompt::Text(p.clone()),
                tools: None,
                kwargs: Default::default(),
                param: "prompt",
            }),
            (None, Some(_)) => {
                let r = self.into_chat()?.request;
                Ok(Tokenize {
                    prompt: r.prompt,
                    tools: r.tools,
                    kwargs: r.chat_template_kwargs,
                    param: "messages",
                })
            }
            _ => Err(ApiError::invalid_param(
                "prompt",
                "give either 'prompt' (a string) or 'messages'",
            )),
        }
    }

    /// The older `functions` and `function_call` as `tools` and `tool_choice`.
    fn functions_as_tools(&self) -> Result<(Value, Option<Value>), ApiError> {
        if self.tools.as_ref().is_some_and(|t| !t.is_null()) {
            return Err(ApiError::invalid_param(
                "functions",
                "give 'tools' or the older 'functions', not both",
            ));
        }
        let Some(Value::Array(functions)) = &self.functions else {
            return Err(ApiError::invalid_param(
                "functions",
                "'functions' must be a list of functions",
            ));
        };
        let tools = functions
            .iter()
            .map(|f| serde_json::json!({"type": "function", "function": f}))
            .collect();
        let choice = match &self.function_call {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s == "none" || s == "auto" => Some(Value::String(s.clone())),
            Some(Value::Object(o)) if o.get("name").is_some_and(Value::is_string) => {
                Some(serde_json::json!({"type": "function", "function": {"name": o["name"]}}))
            }
            Some(_) => {
                return Err(ApiError::invalid_param(
                    "function_call",
                    "'function_call' must be 'none', 'auto' or {\"name\": …}",
                ))
            }
        };
        Ok((Value::Array(tools), choice))
    }

    /// `chat_template_kwargs`: an object of template variables; `enable_thinking`, which
    /// also decides whether a prompt that opens the thinking closes it at once, must be a
    /// boolean (as llama.cpp's server requires).
    fn chat_template_kwargs(&self) -> Result<serde_json::Map<String, Value>, ApiError> {
        let param = "chat_template_kwargs";
        match &self.chat_template_kwargs {
            None | Some(Value::Null) => Ok(Default::default()),
            Some(Value::Object(kwargs)) => {
                match kwargs.get("enable_thinking") {
                    None | Some(Value::Bool(_)) => {}
                    Some(_) => {
                        return Err(ApiError::invalid_param(
                            "chat_template_kwargs.enable_thinking",
                            "'enable_thinking' must be a boolean",
                        ))
                    }
                }
                Ok(kwargs.clone())
            }
            Some(_) => Err(ApiError::invalid_param(
                param,
                "'chat_template_kwargs' must be an object",
            )),
        }
    }

    /// Chat's `logprobs: true` with `top_logprobs` (0 to 20) alternatives.
    fn chat_logprobs(&self) -> Result<Option<usize>, ApiError> {
        let on = match &self.logprobs {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(ApiError::invalid_param(
                    "logprobs",
                    "'logprobs' must be true or false",
                ))
            }
        };
        let top = match &self.top_logprobs {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(k) if k as usize <= MAX_TOP_LOGPROBS => Some(k as usize),
                _ => {
                    return Err(ApiError::invalid_param(
                        "top_logprobs",
                        format!("'top_logprobs' must be an integer from 0 to {MAX_TOP_LOGPROBS}"),
                    ))
                }
            },
        };
        match (on, top) {
            (false, Some(_)) => Err(ApiError::invalid_param(
                "top_logprobs",
                "'top_logprobs' needs 'logprobs': true",
            )),
            (true, top) => Ok(Some(top.unwrap_or(0))),
            (false, None) => Ok(None),
        }
    }

    /// The completions API's `logprobs`: the number of alternatives (0 to 5), or off.
    fn completion_logprobs(&self) -> Result<Option<usize>, ApiError> {
        if self.top_logprobs.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ApiError::invalid_param(
                "top_logprobs",
                "completions take the number of alternatives in 'logprobs'",
            ));
        }
        match &self.logprobs {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(k) if k <= MAX_COMPLETION_LOGPROBS => Ok(Some(k as usize)),
                _ => Err(ApiError::invalid_param(
                    "logprobs",
                    format!("'logprobs' must be an integer from 0 to {MAX_COMPLETION_LOGPROBS}"),
                )),
            },
        }
    }

    /// Check a completions request and turn it into an engine request.
    pub fn into_completion(mut self) -> Result<Validated, ApiError> {
        if self.messages.is_some() {
            return Err(ApiError::invalid_param(
                "messages",
                "completions take 'prompt', not 'messages'",
            ));
        }
        let mut prompts: Vec<Prompt> = match self.prompt.take() {
            None => return Err(ApiError::invalid_param("prompt", "'prompt' is required")),
            Some(WirePrompt::Text(t)) => vec![Prompt::Text(t)],
            Some(WirePrompt::Tokens(t)) => vec![Prompt::Tokens(t)],
            Some(WirePrompt::TextBatch(v)) => v.into_iter().map(Prompt::Text).collect(),
            Some(WirePrompt::TokenBatch(v)) => v.into_iter().map(Prompt::Tokens).collect(),
        };
        if prompts.is_empty() {
            return Err(ApiError::invalid_param(
                "prompt",
                "'prompt' must hold at least one prompt",
            ));
        }
        let first = prompts.remove(0);
        if self.echo == Some(true) {
            return Err(unsupported("echo"));
        }
        for (param, given) in [("tools", &self.tools), ("functions", &self.functions)] {
            if given.as_ref().is_some_and(|t| !t.is_null()) {
                return Err(ApiError::invalid_param(
                    param,
                    "tools are offered through /v1/chat/completions",
                ));
            }
        }
        if self
            .chat_template_kwargs
            .as_ref()
            .is_some_and(|k| !k.is_null())
        {
            return Err(ApiError::invalid_param(
                "chat_template_kwargs",
                "chat template variables apply to /v1/chat/completions",
            ));
        }
        if self.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(unsupported("suffix"));
        }
        if self.best_of.is_some_and(|b| b != 1) {
            return Err(ApiError::invalid_param(
                "best_of",
                "'best_of' must be 1 (or left out)",
            ));
        }
        // 16 is OpenAI's default for completions.
        let logprobs = self.completion_logprobs()?;
        let mut v = self.validate(
            first,
            Some(("max_tokens", self.max_tokens.unwrap_or(16))),
            logprobs,
        )?;
        if (1 + prompts.len()) * v.n > MAX_SEQUENCES {
            return Err(ApiError::invalid_param(
                "prompt",
                format!(
                    "too many choices: the prompts times 'n' may be at most {MAX_SEQUENCES} \
                     per request"
                ),
            ));
        }
        v.more_prompts = prompts;
        Ok(v)
    }

    fn validate(
        &self,
        prompt: Prompt,
        max_tokens: Option<(&str, i64)>,
        logprobs: Option<usize>,
    ) -> Result<Validated, ApiError> {
        let max_tokens = max_tokens
            .map(|(param, v)| positive(param, v))
            .transpose()?;
        let stream = self.stream.unwrap_or(false);
        if self.stream_options.is_some() && !stream {
            return Err(ApiError::invalid_param(
                "stream_options",
                "'stream_options' is only allowed when 'stream' is true",
            ));
        }
        let include_usage = self
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let n = match self.n {
            None => 1,
            Some(n) if n < 1 => {
                return Err(ApiError::invalid_param("n", "'n' must be at least 1"));
            }
            Some(n) if n > MAX_N => {
                return Err(ApiError::invalid_param(
                    "n",
                    format!(
                        "'n' is too large: this server returns at most {MAX_N} choices per request"
                    ),
                ));
            }
            Some(n) => n as usize,
        };
        Ok(Validated {
            request: GenerateRequest {
                // Set by the route, which knows the request id.
                id: String::new(),
                prompt,
                max_tokens,
                sampling: self.sampling()?,
                stop: self.stops()?,
                stop_token_ids: self.stop_token_ids.clone().unwrap_or_default(),
                ignore_eos: self.ignore_eos.unwrap_or(false),
                logprobs,
                response_format: self.response_format()?,
                tools: None,
                chat_template_kwargs: Default::default(),
                cache_salt: self.cache_salt.clone().unwrap_or_default(),
                tenant: Default::default(),
                // Set by the route, from the server's configuration.
                timeout: None,
            },
            stream,
            include_usage,
            n,
            more_prompts: Vec::new(),
            tool_mode: ToolMode::Off,
            legacy_functions: false,
        })
    }

    fn sampling(&self) -> Result<SamplingParams, ApiError> {
        let d = SamplingParams::default();
        let temperature = in_range("temperature", self.temperature, 0.0, 2.0)?;
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::invalid_param(
                "top_p",
                "'top_p' must be greater than 0 and at most 1",
            ));
        }
        let top_k = match self.top_k {
            None | Some(-1) => 0,
            Some(k) if k >= 0 => k as usize,
            Some(_) => {
                return Err(ApiError::invalid_param(
                    "top_k",
                    "'top_k' must be -1 or 0 (off) or a positive count",
                ))
            }
        };
        let repetition_penalty = self.repetition_penalty.unwrap_or(1.0);
        if !(repetition_penalty > 0.0 && repetition_penalty <= 10.0) {
            return Err(ApiError::invalid_param(
                "repetition_penalty",
                "'repetition_penalty' must be greater than 0 and at most 10",
            ));
        }
        Ok(SamplingParams {
            temperature: temperature.unwrap_or(1.0) as f32,
            top_k,
            top_p: top_p as f32,
            min_p: in_range("min_p", self.min_p, 0.0, 1.0)?.unwrap_or(0.0) as f32,
            repetition_penalty: repetition_penalty as f32,
            frequency_penalty: in_range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)?
                .unwrap_or(0.0) as f32,
            presence_penalty: in_range("presence_penalty", self.presence_penalty, -2.0, 2.0)?
                .unwrap_or(0.0) as f32,
            // Any integer is a valid seed; negative ones keep their bits.
            seed: self.seed.map(|s| s as u64),
            logit_bias: self.logit_bias()?,
            ..d
        })
    }

    /// `{"type": "text"}`, `{"type": "json_object"}` or `{"type": "json_schema", "json_schema":
    /// {"name": …, "schema": {…}, "strict": …}}` (the schema is compiled, and refused with a
    /// reason, by the engine).
    fn response_format(&self) -> Result<Option<ResponseFormat>, ApiError> {
        let Some(format) = &self.response_format else {
            return Ok(None);
        };
        let bad = |m: &str| ApiError::invalid_param("response_format", m);
        match format.get("type").and_then(Value::as_str) {
            Some("text") => Ok(None),
            Some("json_object") => Ok(Some(ResponseFormat::JsonObject)),
            Some("json_schema") => {
                let schema = format
                    .get("json_schema")
                    .and_then(|j| j.get("schema"))
                    .ok_or_else(|| bad("'json_schema' needs a 'schema'"))?;
                Ok(Some(ResponseFormat::JsonSchema(schema.clone())))
            }
            _ => Err(bad(
                "'response_format.type' must be 'text', 'json_object' or 'json_schema'",
            )),
        }
    }

    /// OpenAI's `logit_bias`: token ids (as strings) to a bias between -100 and 100.
    fn logit_bias(&self) -> Result<Vec<(u32, f32)>, ApiError> {
        let map = match &self.logit_bias {
            None => return Ok(Vec::new()),
            Some(Value::Object(map)) => map,
            Some(_) => {
                return Err(ApiError::invalid_param(
                    "logit_bias",
                    "'logit_bias' must be an object of token ids to biases",
                ))
            }
        };
        if map.len() > MAX_LOGIT_BIAS {
            return Err(ApiError::invalid_param(
                "logit_bias",
                format!("'logit_bias' takes at most {MAX_LOGIT_BIAS} tokens"),
            ));
        }
        let mut bias: Vec<(u32, f32)> = map
            .iter()
            .map(|(id, b)| {
                let id = id.parse::<u32>().map_err(|_| {
                    ApiError::invalid_param("logit_bias", "'logit_bias' keys must be token ids")
                })?;
                let b = b.as_f64().unwrap_or(f64::NAN);
                if !(-100.0..=100.0).contains(&b) {
                    return Err(ApiError::invalid_param(
                        "logit_bias",
                        "'logit_bias' values must be numbers between -100 and 100",
                    ));
                }
                Ok((id, b as f32))
            })
            .collect::<Result<_, _>>()?;
        // A map has no order; the sampler's sums should not depend on the hash seed.
        bias.sort_unstable_by_key(|b| b.0);
        Ok(bias)
    }

    fn stops(&self) -> Result<Vec<String>, ApiError> {
        let stops = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        if stops.len() > MAX_STOPS {
            return Err(ApiError::invalid_param(
                "stop",
                format!("'stop' takes at most {MAX_STOPS} strings"),
            ));
        }
        if stops.iter().any(|s| s.len() > MAX_STOP_LEN) {
            return Err(ApiError::invalid_param(
                "stop",
                format!("each 'stop' string must be at most {MAX_STOP_LEN} bytes"),
            ));
        }
        Ok(stops)
    }
}

fn unsupported(param: &str) -> ApiError {
    ApiError::invalid_param(
        param,
        format!("'{param}' is not supported by this server yet; leave it out"),
    )
    .with_code("unsupported_parameter")
}

fn positive(param: &str, v: i64) -> Result<usize, ApiError> {
    if v <= 0 {
        return Err(ApiError::invalid_param(
            param,
            format!("'{param}' must be at least 1"),
        ));
    }
    Ok(usize::try_from(v).unwrap_or(usize::MAX))
}

fn in_range(param: &str, v: Option<f64>, lo: f64, hi: f64) -> Result<Option<f64>, ApiError> {
    match v {
        Some(x) if !(lo..=hi).contains(&x) => Err(ApiError::invalid_param(
            param,
            format!("'{param}' must be between {lo} and {hi}"),
        )),
        _ => Ok(v),
    }
}

pub(crate) fn chat_messages(messages: &[WireMessage]) -> Result<Vec<ChatMessage>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            "'messages' must hold at least one message",
        ));
    }
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role =
                match m.role.as_str() {
                    // Newer OpenAI models call the system role "developer"; templates know "system".
                    "developer" => "system",
                    r @ ("system" | "user" | "assistant" | "tool") => r,
                    // The older form of a tool's result.
                    "function" => "tool",
                    _ => return Err(ApiError::invalid_param(
                        format!("messages[{i}].role"),
                        "role must be one of system, developer, user, assistant, tool, function",
                    )),
                };
            let content = match &m.content {
                None => String::new(),
                Some(Content::Text(t)) => t.clone(),
                Some(Content::Parts(parts)) => text_parts(parts, i)?,
            };
            let mut message = ChatMessage::new(role, &content);
            message.tool_call_id = m.tool_call_id.clone();
            message.reasoning_content = m.reasoning_content.clone();
            // Arguments stay as sent (JSON text); the template layer gives them to templates
            // that render only objects parsed, as llama.cpp does. The older `function_call` is
            // one call of the same shape; a `function` turn's result is named by its function.
            message.tool_calls = match (&m.tool_calls, &m.function_call) {
                (Some(calls), _) => Some(Value::Array(calls.clone())),
                (None, Some(call)) => Some(serde_json::json!([
                    {"id": format!("call_{i}"), "type": "function", "function": call}
                ])),
                (None, None) => None,
            };
            if m.role == "function" {
                message.tool_call_id = m.name.clone();
            }
            Ok(message)
        })
        .collect()
}

fn text_parts(parts: &[ContentPart], i: usize) -> Result<String, ApiError> {
    let mut text = String::new();
    for (j, part) in parts.iter().enumerate() {
        match (part.kind.as_str(), &part.text) {
            ("text", Some(t)) => text.push_str(t),
            ("text", None) => {
                return Err(ApiError::invalid_param(
                    format!("messages[{i}].content[{j}].text"),
                    "a text part needs 'text'",
                ))
            }
            _ => {
                return Err(ApiError::invalid_param(
                    format!("messages[{i}].content[{j}].type"),
                    "only text content parts are supported by this model",
                ))
            }
        }
    }
    Ok(text)
}
