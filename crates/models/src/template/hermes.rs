//! The Hermes function-calling format, both halves: the system prompt that offers tools to a
//! model whose template has no place for them, and reading the calls back out of an answer
//! (`<tool_call>{"name": …, "arguments": {…}}</tool_call>` blocks; Qwen2.5's and Qwen3's own
//! templates offer tools in this format too). Which calls a request accepts is the server's
//! policy; what a call looks like is here.

use serde_json::{json, Value};

use crate::partial_marker;

/// The marker that opens a call.
pub const OPEN: &str = "<tool_call>";
/// The marker that closes a call.
pub const CLOSE: &str = "</tool_call>";

/// A call the model made.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub name: String,
    /// The arguments as a JSON text (OpenAI's wire form).
    pub arguments: String,
}

/// A system prompt offering `tools` (OpenAI's list) in the Hermes format.
pub fn system_prompt(tools: &Value) -> String {
    let list: Vec<String> = tools
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t.get("function").unwrap_or(t).to_string())
        .collect();
    format!(
        "You may call functions to help answer. The functions, as JSON schemas:\n<tools>\n{}\n\
         </tools>\nTo call one, answer with a JSON object naming it and its arguments inside \
         tags:\n{OPEN}\n{{\"name\": <function-name>, \"arguments\": <args-json-object>}}\n\
         {CLOSE}",
        list.join("\n")
    )
}

/// One call from its JSON (`{"name", "arguments"}`; `parameters` accepted too).
pub fn call_from(json_text: &str) -> Option<ToolCall> {
    let v: Value = serde_json::from_str(json_text.trim()).ok()?;
    let name = v.get("name")?.as_str()?.to_string();
    let args = v
        .get("arguments")
        .or_else(|| v.get("parameters"))
        .cloned()
        .unwrap_or(json!({}));
    let arguments = match args {
        Value::String(s) => s,
        other => other.to_string(),
    };
    Some(ToolCall { name, arguments })
}

/// What becomes of a call block found in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// One of the answer's calls.
    Take,
    /// Left out altogether.
    Drop,
    /// Left in the text, as written.
    Text,
}

/// The text outside the call blocks of `answer`, and the calls `judge` takes (it sees each
/// call and the calls taken before it). A block that is not a call stays in the text; a block
/// cut short (no closing marker) is read to the end.
pub fn split_calls(
    answer: &str,
    mut judge: impl FnMut(&ToolCall, &[ToolCall]) -> Verdict,
) -> (String, Vec<ToolCall>) {
    let (mut content, mut calls, mut rest) = (String::new(), Vec::new(), answer);
    while let Some(at) = rest.find(OPEN) {
        content.push_str(&rest[..at]);
        let after = &rest[at + OPEN.len()..];
        let (inside, next) = match after.find(CLOSE) {
            Some(end) => (&after[..end], &after[end + CLOSE.len()..]),
            None => (after, ""),
        };
        let call = call_from(inside);
        match call.as_ref().map_or(Verdict::Text, |c| judge(c, &calls)) {
            Verdict::Take => calls.extend(call),
            Verdict::Drop => {}
            Verdict::Text => content.push_str(&rest[at..rest.len() - next.len()]),
        }
        rest = next;
    }
    content.push_str(rest);
    (content, calls)
}

/// Where a call may start in `text`: at its first opening marker, else at the longest tail
/// that could begin one; `text.len()` if none can. Text before it can be streamed as content.
pub fn may_start_at(text: &str) -> usize {
    match text.find(OPEN) {
        Some(at) => at,
        None => text.len() - partial_marker(text, OPEN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the prompt asks for is what the reader reads.
    #[test]
    fn an_answer_written_as_the_prompt_asks_is_read_as_a_call() {
        let tools = json!([{"type": "function", "function": {"name": "get_vitals",
            "parameters": {"type": "object", "properties": {"bed": {"type": "integer"}}}}}]);
        let prompt = system_prompt(&tools);
        assert!(
            prompt.contains(r#"{"name":"get_vitals","parameters""#),
            "{prompt}"
        );
        let example = &prompt[prompt.find(OPEN).unwrap()..];
        let answer = example
            .replace("<function-name>", "\"get_vitals\"")
            .replace("<args-json-object>", "{\"bed\": 4}");
        let (content, calls) = split_calls(&format!("Checking.\n{answer}"), |_, _| Verdict::Take);
        assert_eq!(content, "Checking.\n");
        assert_eq!(
            calls,
            [ToolCall {
                name: "get_vitals".into(),
                arguments: r#"{"bed":4}"#.into()
            }]
        );
    }

    #[test]
    fn malformed_blocks_stay_text_and_judged_ones_go_where_they_are_told() {
        let judge = |c: &ToolCall, taken: &[ToolCall]| match c.name.as_str() {
            "rm" => Verdict::Text,
            _ if taken.is_empty() => Verdict::Take,
            _ => Verdict::Drop,
        };
        for text in [
            "a <tool_call>oops</tool_call> b",
            "a <tool_call>{\"name\": \"rm\", \"arguments\": {}}</tool_call> b",
        ] {
            let (content, calls) = split_calls(text, judge);
            assert_eq!((content.as_str(), calls.len()), (text, 0));
        }
        let twice =
            "<tool_call>{\"name\": \"f\"}</tool_call>, <tool_call>{\"name\": \"g\"}</tool_call>.";
        let (content, calls) = split_calls(twice, judge);
        assert_eq!((content.as_str(), calls.len()), (", .", 1));
        let cut = "x <tool_call>{\"name\": \"f\", \"parameters\": \"{}\"}";
        assert_eq!(
            split_calls(cut, |_, _| Verdict::Take),
            (
                "x ".to_string(),
                vec![ToolCall {
                    name: "f".into(),
                    arguments: "{}".into()
                }]
            )
        );
    }

    #[test]
    fn calls_may_start_at_a_marker_or_a_tail_that_begins_one() {
        assert_eq!(may_start_at("plain"), 5);
        assert_eq!(may_start_at("ab <tool_call>{"), 3);
        assert_eq!(may_start_at("ab <tool_c"), 3);
        assert_eq!(may_start_at("ab <"), 3);
        assert_eq!(may_start_at("ab <b>"), 6);
        assert_eq!(may_start_at("é"), 2);
    }
}
