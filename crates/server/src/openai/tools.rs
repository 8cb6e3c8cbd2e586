//! Tool calling (`tools`, `tool_choice`): which tools a request offers, how the answer is
//! read back as `tool_calls`.
//!
//! With `tool_choice` `"required"` or a named function, the answer is constrained to the JSON
//! of one call (`{"name": …, "arguments": {…}}`: the name one of the tools, given first, and
//! the arguments valid against that function's parameters), so it always parses. With `"auto"` the model chooses: calls
//! are read from `<tool_call>{…}</tool_call>` blocks (the Hermes format the tools are offered
//! in, written and read in `ward_models::template::hermes`), and the text outside them is the
//! content. A block that is not a valid call, or names a tool not offered, stays in the content.

use std::sync::Arc;

use serde_json::{json, Value};
pub use ward_engine::hermes::ToolCall;
use ward_engine::hermes::{self, Verdict, OPEN};

use crate::error::ApiError;
/// Most tools one request may offer.
const MAX_TOOLS: usize = 64;

/// How the answer relates to the tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolMode {
    /// No tools: the answer is content.
    Off,
    /// The model may call these tools in `<tool_call>` blocks (a block naming another stays
    /// content); `one_call`: only the first call counts (`parallel_tool_calls: false`, or the
    /// older `functions`).
    Auto {
        names: Arc<[String]>,
        one_call: bool,
    },
    /// The whole answer is one call's JSON.
    Forced,
}

/// The request's `tools` and `tool_choice`, checked: the tools to offer the model, the mode,
/// and for a forced call the schema its JSON must follow.
pub fn validate(
    tools: Option<&Value>,
    choice: Option<&Value>,
    one_call: bool,
) -> Result<(Option<Value>, ToolMode, Option<Value>), ApiError> {
    let bad = |param: &str, m: &str| ApiError::invalid_param(param, m);
    let tools = match tools {
        None | Some(Value::Null) => None,
        Some(Value::Array(t)) if t.is_empty() => None,
        Some(Value::Array(t)) if t.len() <= MAX_TOOLS => Some(t),
        Some(_) => {
            return Err(bad(
                "tools",
                "'tools' must be a list of at most 64 functions",
            ))
        }
    };
    let mut functions = Vec::new();
    for (i, t) in tools.into_iter().flatten().enumerate() {
        let f = t
            .get("function")
            .filter(|_| t.get("type").and_then(Value::as_str) == Some("function"))
            .ok_or_else(|| {
                bad(
                    &format!("tools[{i}]"),
                    "each tool must be {\"type\": \"function\", \"function\": {…}}",
                )
            })?;
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| {
                !n.is_empty()
                    && n.len() <= 64
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })
            .ok_or_else(|| {
                bad(
                    &format!("tools[{i}].function.name"),
                    "a function name is 1 to 64 letters, digits, '_' or '-'",
                )
            })?;
        let params = f
            .get("parameters")
            .cloned()
            .unwrap_or(json!({"type": "object"}));
        if !params.is_object() {
            return Err(bad(
                &format!("tools[{i}].function.parameters"),
                "'parameters' must be a JSON Schema object",
            ));
        }
        functions.push((name.to_string(), params));
    }
    let names: Vec<&str> = functions.iter().map(|(n, _)| n.as_str()).collect();
    let mode = match choice {
        None | Some(Value::Null) => "auto",
        Some(Value::String(s)) if ["none", "auto", "required"].contains(&s.as_str()) => s.as_str(),
        Some(Value::Object(o)) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .filter(|n| names.contains(n))
                .ok_or_else(|| bad("tool_choice", "'tool_choice' must name one of the 'tools'"))?;
            let (name, params) = &functions[names.iter().position(|n| n == &name).expect("found")];
            let schema = calls_schema(std::slice::from_ref(&(name.clone(), params.clone())));
            return Ok((
                tools.map(|t| Value::Array(t.clone())),
                ToolMode::Forced,
                Some(schema),
            ));
        }
        Some(_) => {
            return Err(bad(
                "tool_choice",
                "'tool_choice' must be 'none', 'auto', 'required' or a named function",
            ))
        }
    };
    Ok(match (mode, tools) {
        ("required", None) => return Err(bad("tool_choice", "'required' needs 'tools'")),
        ("required", Some(t)) => {
            let schema = calls_schema(&functions);
            (
                Some(Value::Array(t.clone())),
                ToolMode::Forced,
                Some(schema),
            )
        }
        ("auto", Some(t)) => {
            let names = names.iter().map(|n| n.to_string()).collect();
            let mode = ToolMode::Auto { names, one_call };
            (Some(Value::Array(t.clone())), mode, None)
        }
        _ => (None, ToolMode::Off, None),
    })
}

/// The JSON of a call of one of `functions` (name, parameters): `{"name": …, "arguments":
/// …}`, the arguments valid against the named function's parameters (the matcher tells the
/// calls apart by their names). Definitions the parameters' `$ref`s point at move to the top,
/// where `#/$defs/…` finds them, each function's renamed apart from the others'.
fn calls_schema(functions: &[(String, Value)]) -> Value {
    let mut defs = serde_json::Map::new();
    let calls: Vec<Value> = functions
        .iter()
        .enumerate()
        .map(|(i, (name, params))| {
            let mut arguments = params.clone();
            let prefix = if functions.len() == 1 {
                String::new()
            } else {
                format!("f{i}.")
            };
            hoist_definitions(&mut arguments, &prefix, &mut defs);
            json!({
                "type": "object",
                "properties": {"name": {"const": name}, "arguments": arguments},
                "required": ["name", "arguments"],
            })
        })
        .collect();
    let mut schema = match <[Value; 1]>::try_from(calls) {
        Ok([call]) => call,
        Err(calls) => json!({"anyOf": calls}),
    };
    if !defs.is_empty() {
        schema["$defs"] = Value::Object(defs);
    }
    schema
}

/// Move `schema`'s own `$defs` / `definitions` into `defs`, each name given `prefix`, and
/// point its `$ref`s (and theirs) at the new places.
fn hoist_definitions(schema: &mut Value, prefix: &str, defs: &mut serde_json::Map<String, Value>) {
    let mut own = serde_json::Map::new();
    for key in ["$defs", "definitions"] {
        if let Some(Value::Object(d)) = schema.as_object_mut().and_then(|s| s.remove(key)) {
            own.extend(d);
        }
    }
    fn repoint(v: &mut Value, prefix: &str) {
        match v {
            Value::Object(o) => {
                for (k, item) in o.iter_mut() {
                    match (k.as_str(), item) {
                        ("$ref", Value::String(r)) => {
                            let name = r
                                .strip_prefix("#/$defs/")
                                .or_else(|| r.strip_prefix("#/definitions/"));
                            if let Some(name) = name {
                                *r = format!("#/$defs/{prefix}{name}");
                            }
                        }
                        (_, item) => repoint(item, prefix),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|item| repoint(item, prefix)),
            _ => {}
        }
    }
    repoint(schema, prefix);
    for (name, mut def) in own {
        repoint(&mut def, prefix);
        defs.insert(format!("{prefix}{name}"), def);
    }
}

/// The content and the calls of a whole answer.
fn parse(mode: &ToolMode, text: &str) -> (String, Vec<ToolCall>) {
    match mode {
        ToolMode::Off => (text.to_string(), Vec::new()),
        ToolMode::Forced => match hermes::call_from(text) {
            Some(call) => (String::new(), vec![call]),
            None => (text.to_string(), Vec::new()),
        },
        ToolMode::Auto { names, one_call } => {
            let (content, calls) = hermes::split_calls(text, |call, taken| {
                match call {
                    // Calls past the first are dropped where only one may be made.
                    _ if *one_call && !taken.is_empty() => Verdict::Drop,
                    c if names.contains(&c.name) => Verdict::Take,
                    _ => Verdict::Text,
                }
            });
            let content = if calls.is_empty() {
                content
            } else {
                content.trim().to_string()
            };
            (content, calls)
        }
    }
}

/// Streaming: passes content through until a call may be starting, then holds the rest for
/// [`ToolStream::finish`].
pub struct ToolStream {
    mode: ToolMode,
    /// Everything from the first possible `<tool_call>` on (all of it when forced).
    held: String,
}

impl ToolStream {
    pub fn new(mode: ToolMode) -> ToolStream {
        ToolStream {
            mode,
            held: String::new(),
        }
    }

    /// The content of `text` that can be sent now.
    pub fn push(&mut self, text: &str) -> String {
        match self.mode {
            ToolMode::Off => text.to_string(),
            ToolMode::Forced => {
                self.held.push_str(text);
                String::new()
            }
            ToolMode::Auto { .. } => {
                let calling = self.held.starts_with(OPEN);
                self.held.push_str(text);
                if calling {
                    return String::new();
                }
                // Send what comes before a tag (or before what may be the start of one).
                let send = hermes::may_start_at(&self.held);
                self.held.drain(..send).collect()
            }
        }
    }

    /// The rest of the content and the calls.
    pub fn finish(&mut self) -> (String, Vec<ToolCall>) {
        parse(&self.mode, &std::mem::take(&mut self.held))
    }
}

/// OpenAI's `tool_calls` list; `delta`: with each call's `index`, as stream chunks carry it.
pub fn tool_calls_json(calls: &[ToolCall], id_prefix: &str, delta: bool) -> Value {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut v = json!({
                "id": format!("call_{id_prefix}_{i}"),
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            });
            if delta {
                v["index"] = json!(i);
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_answers_give_calls_and_the_content_around_them() {
        let text = "Let me check.\n<tool_call>\n{\"name\": \"get_vitals\", \"arguments\": {\"bed\": 4}}\n</tool_call>";
        let auto = ToolMode::Auto {
            names: ["get_vitals".to_string()].into(),
            one_call: false,
        };
        let (content, calls) = parse(&auto, text);
        assert_eq!(content, "Let me check.");
        assert_eq!(
            calls,
            [ToolCall {
                name: "get_vitals".into(),
                arguments: r#"{"bed":4}"#.into()
            }]
        );
        // Not a call, or a call of a tool not offered: stays content.
        for text in [
            "a <tool_call>oops</tool_call> b",
            "a <tool_call>{\"name\": \"rm\", \"arguments\": {}}</tool_call> b",
        ] {
            let (content, calls) = parse(&auto, text);
            assert_eq!((content.as_str(), calls.len()), (text, 0));
        }
        // Where one call may be made, the first counts and the others are dropped.
        let twice = format!("{text}\n{}", &text[text.find(OPEN).unwrap()..]);
        let one = ToolMode::Auto {
            names: ["get_vitals".to_string()].into(),
            one_call: true,
        };
        assert_eq!(parse(&auto, &twice).1.len(), 2);
        assert_eq!(parse(&one, &twice), (content.clone(), calls.clone()));
        // Streamed in pieces that split the tag: the same.
        for cut in 1..text.len() {
            if !text.is_char_boundary(cut) {
                continue;
            }
            let mut s = ToolStream::new(auto.clone());
            let mut sent = s.push(&text[..cut]);
            sent += &s.push(&text[cut..]);
            let (rest, calls) = s.finish();
            assert_eq!((sent + &rest).trim(), "Let me check.", "cut {cut}");
            assert_eq!(calls.len(), 1);
        }
    }

    #[test]
    fn tool_choice_decides_the_mode_and_the_schema() {
        let tools = json!([{"type": "function", "function": {"name": "dose", "parameters":
            {"type": "object", "properties": {"mg": {"type": "number"}}, "required": ["mg"]}}}]);
        let (offered, mode, schema) = validate(Some(&tools), None, false).unwrap();
        let auto = ToolMode::Auto {
            names: ["dose".to_string()].into(),
            one_call: false,
        };
        assert_eq!((offered.is_some(), mode, schema), (true, auto, None));
        let (offered, mode, _) = validate(Some(&tools), Some(&json!("none")), false).unwrap();
        assert_eq!((offered, mode), (None, ToolMode::Off));
        let named = json!({"type": "function", "function": {"name": "dose"}});
        let (_, mode, schema) = validate(Some(&tools), Some(&named), false).unwrap();
        assert_eq!(mode, ToolMode::Forced);
        assert_eq!(
            schema.unwrap()["properties"]["arguments"]["required"],
            json!(["mg"])
        );
        for (t, c) in [
            (
                json!([{"type": "function", "function": {"name": "a b"}}]),
                None,
            ),
            (
                tools.clone(),
                Some(json!({"type": "function", "function": {"name": "other"}})),
            ),
            (json!([]), Some(json!("required"))),
        ] {
            assert!(validate(Some(&t), c.as_ref(), false).is_err(), "{t} {c:?}");
        }
        let (_, calls) = parse(
            &ToolMode::Forced,
            r#"{"name": "dose", "arguments": {"mg": 5}}"#,
        );
        assert_eq!(calls[0].arguments, r#"{"mg":5}"#);
    }
}
