//! A caller's JSON Schema as Ward hands it to llguidance: the defaults Ward chooses, and errors
//! in words that never quote the caller's text.
//!
//! - An object with `properties` and no `additionalProperties` takes only those properties (as
//!   OpenAI's strict mode requires and llama.cpp's grammars do), so a model cannot pad the
//!   answer with keys of its own. `additionalProperties: true` opens it again.
//! - `oneOf` is read as `anyOf` (a document valid against several alternatives is not
//!   refused), as llama.cpp, vLLM and SGLang read it: Pydantic writes `oneOf` for
//!   discriminated unions.
//! - Between two tokens of the document come at most one blank (or tab), or one line break
//!   and 32 blanks of indentation, so a model cannot run on in whitespace.

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

/// The whitespace allowed between two tokens of a document (llguidance's `whitespace_pattern`).
const WHITESPACE: &str = r"[\x20\x09]|\x0D?\x0A[\x20\x09]{0,32}";

/// Longest error text kept from llguidance.
const MAX_MESSAGE: usize = 300;

/// The caller's schema with Ward's defaults, ready for llguidance.
pub fn prepare(schema: &Value) -> Result<Value, SchemaError> {
    if !schema.is_object() {
        return Err(SchemaError(
            "the schema must be a JSON Schema object".into(),
        ));
    }
    let mut schema = schema.clone();
    close_objects(&mut schema, true);
    let options = llguidance::JsonCompileOptions {
        whitespace_pattern: Some(WHITESPACE.into()),
        coerce_one_of: true,
        ..Default::default()
    };
    // Replaces any `x-guidance` of the caller's: the options are Ward's to choose.
    options.apply_to(&mut schema);
    Ok(schema)
}

/// Give every object schema with `properties` and no `additionalProperties` an
/// `additionalProperties: false`, down through every keyword that holds schemas. `close` is
/// false for the members of an `allOf`: there each adds properties to the others'.
fn close_objects(schema: &mut Value, close: bool) {
    let Value::Object(obj) = schema else {
        return;
    };
    // An object combined with others (`allOf`/`anyOf`/`oneOf`/`$ref` beside its `properties`)
    // may be given more properties by them: left open.
    let combined = ["allOf", "anyOf", "oneOf", "$ref"]
        .iter()
        .any(|k| obj.contains_key(*k));
    if close
        && !combined
        && obj.contains_key("properties")
        && !obj.contains_key("additionalProperties")
    {
        obj.insert("additionalProperties".into(), Value::Bool(false));
    }
    for (key, value) in obj.iter_mut() {
        match (key.as_str(), value) {
            (
                "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas",
                Value::Object(named),
            ) => named.values_mut().for_each(|s| close_objects(s, true)),
            ("anyOf" | "oneOf" | "prefixItems" | "items", Value::Array(list)) => {
                list.iter_mut().for_each(|s| close_objects(s, true))
            }
            ("allOf", Value::Array(list)) => list.iter_mut().for_each(|s| close_objects(s, false)),
            (
                "items"
                | "additionalItems"
                | "additionalProperties"
                | "not"
                | "contains"
                | "if"
                | "then"
                | "else"
                | "propertyNames"
                | "unevaluatedItems"
                | "unevaluatedProperties",
                s,
            ) => close_objects(s, true),
            _ => {}
        }
    }
}

impl SchemaError {
    /// llguidance's reason for refusing `schema`, with every text of the caller's it quotes
    /// (a property name, a `const`, a pattern) cut out: errors reach logs and the audit log.
    /// Fail-closed: if any 8 bytes of a caller's text are still there (llguidance shortens
    /// values and quotes them its own way), the reason is withheld.
    pub(super) fn from_llguidance(message: &str, schema: &Value) -> SchemaError {
        let mut text = message.lines().next().unwrap_or_default().to_string();
        let mut callers = Vec::new();
        callers_text(schema, &mut callers);
        callers.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for s in &callers {
            text = redact(&text, s);
        }
        if callers.iter().any(|s| quotes_part_of(&text, s)) {
            text = "the reason quotes the schema, so it is withheld".into();
        }
        let text: String = text.chars().take(MAX_MESSAGE).collect();
        SchemaError(format!("the schema is not supported: {text}"))
    }
}

/// JSON Schema's own words, which are not the caller's text.
const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "patternProperties",
    "items",
    "prefixItems",
    "additionalItems",
    "minItems",
    "maxItems",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "$ref",
    "$defs",
    "definitions",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minProperties",
    "maxProperties",
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "object",
    "array",
    "string",
    "number",
    "integer",
    "boolean",
    "null",
];

/// Every string and key in `value` that the caller wrote (not a keyword), as it is and as JSON
/// writes it (an error may quote either).
fn callers_text(value: &Value, into: &mut Vec<String>) {
    let mut add = |s: &str| {
        if !KEYWORDS.contains(&s) {
            into.push(s.to_string());
            let quoted = Value::String(s.to_string()).to_string();
            into.push(quoted[1..quoted.len() - 1].to_string());
        }
    };
    match value {
        Value::String(s) => add(s),
        Value::Object(obj) => {
            let obj: &Map<String, Value> = obj;
            obj.keys().for_each(|k| add(k));
            obj.values().for_each(|v| callers_text(v, into));
        }
        Value::Array(list) => list.iter().for_each(|v| callers_text(v, into)),
        _ => {}
    }
}

/// Whether `text` holds any 8 bytes in a row of `secret`.
fn quotes_part_of(text: &str, secret: &str) -> bool {
    const WINDOW: usize = 8;
    let bytes = secret.as_bytes();
    bytes.len() >= WINDOW
        && bytes
            .windows(WINDOW)
            .any(|w| text.as_bytes().windows(WINDOW).any(|t| t == w))
}

/// `text` with `secret` replaced by "…": everywhere if it is 4 bytes or longer, else where it
/// stands as a word of its own (a one-letter property name must not blank every "a").
fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    if secret.len() >= 4 {
        return text.replace(secret, "…");
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(secret) {
        let (before, after) = (&rest[..at], &rest[at + secret.len()..]);
        out.push_str(before);
        let alone = !word(before.chars().next_back()) && !word(after.chars().next());
        out.push_str(if alone { "…" } else { secret });
        rest = after;
    }
    out.push_str(rest);
    out
}
