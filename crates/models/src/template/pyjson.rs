//! `tojson` as chat templates know it: transformers replaces jinja2's filter with
//! `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`, and
//! templates rely on its exact text (`", "` and `": "` between items, keys in their order,
//! `tojson(indent=4)` in Llama 3.1, non-ASCII written as it is, floats as Python prints them).
//! minijinja's own `tojson` writes compact JSON with HTML escapes, so it is replaced.

use minijinja::value::{Kwargs, Rest, Value as JValue};
use minijinja::{Error, ErrorKind};
use serde_json::Value;

struct Style {
    ensure_ascii: bool,
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

/// The filter: `value | tojson`, `tojson(indent=4)`, and json.dumps' other keywords
/// (`ensure_ascii`, `separators`, `sort_keys`), by keyword or in transformers' order.
pub fn tojson(value: JValue, args: Rest<JValue>, kwargs: Kwargs) -> Result<JValue, Error> {
    let bad = |what: &str| Error::new(ErrorKind::InvalidOperation, format!("tojson: {what}"));
    let names = ["ensure_ascii", "indent", "separators", "sort_keys"];
    if args.len() > names.len() {
        return Err(bad("too many arguments"));
    }
    let arg = |i: usize| -> Result<Option<JValue>, Error> {
        let kw: Option<JValue> = kwargs.get(names[i])?;
        Ok(kw.or_else(|| args.get(i).cloned()).filter(|v| !v.is_none()))
    };
    let ensure_ascii = arg(0)?.is_some_and(|v| v.is_true());
    let indent = match arg(1)? {
        None => None,
        Some(v) => match (v.as_str(), i64::try_from(v.clone())) {
            (Some(s), _) => Some(s.to_string()),
            (None, Ok(n)) => Some(" ".repeat(n.max(0) as usize)),
            _ => return Err(bad("indent must be a number or a string")),
        },
    };
    let (mut item_sep, mut key_sep) = match indent {
        Some(_) => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    if let Some(seps) = arg(2)? {
        let pair: Vec<JValue> = seps
            .try_iter()
            .map_err(|_| bad("separators must be a pair of strings"))?
            .collect();
        match pair.as_slice() {
            [a, b] if a.as_str().is_some() && b.as_str().is_some() => {
                item_sep = a.as_str().unwrap_or_default().to_string();
                key_sep = b.as_str().unwrap_or_default().to_string();
            }
            _ => return Err(bad("separators must be a pair of strings")),
        }
    }
    let sort_keys = arg(3)?.is_some_and(|v| v.is_true());
    kwargs.assert_all_used()?;
    let value = serde_json::to_value(&value)
        .map_err(|e| bad(&format!("value is not JSON serializable: {e}")))?;
    let style = Style {
        ensure_ascii,
        indent,
        item_sep,
        key_sep,
        sort_keys,
    };
    let mut out = String::new();
    write(&value, &style, 0, &mut out);
    Ok(JValue::from_safe_string(out))
}

/// Python's `json.dumps(value)` with transformers' defaults (what `tojson` writes with no
/// arguments).
pub fn dumps(value: &Value) -> String {
    let style = Style {
        ensure_ascii: false,
        indent: None,
        item_sep: ", ".into(),
        key_sep: ": ".into(),
        sort_keys: false,
    };
    let mut out = String::new();
    write(value, &style, 0, &mut out);
    out
}

fn write(value: &Value, style: &Style, level: usize, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_f64().filter(|_| n.is_f64()) {
            Some(f) => out.push_str(&float_repr(f)),
            None => out.push_str(&n.to_string()),
        },
        Value::String(s) => string(s, style.ensure_ascii, out),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                separate(style, level + 1, i == 0, out);
                write(item, style, level + 1, out);
            }
            close(style, level, out);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if style.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                separate(style, level + 1, i == 0, out);
                string(k, style.ensure_ascii, out);
                out.push_str(&style.key_sep);
                write(v, style, level + 1, out);
            }
            close(style, level, out);
            out.push('}');
        }
    }
}

/// Before an item of a list or object at `level`.
fn separate(style: &Style, level: usize, first: bool, out: &mut String) {
    if !first {
        out.push_str(&style.item_sep);
    }
    if let Some(indent) = &style.indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(indent);
        }
    }
}

/// Before the closing bracket of a list or object at `level`.
fn close(style: &Style, level: usize, out: &mut String) {
    if let Some(indent) = &style.indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(indent);
        }
    }
}

/// A JSON string as Python writes it: `\n`-style escapes for the usual controls, `\u00XX`
/// for the other controls, and with `ensure_ascii` every character outside space..`~` as
/// `\uXXXX` (UTF-16, so characters past U+FFFF become surrogate pairs).
fn string(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && !(' '..='~').contains(&c)) => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `repr(f)` of a Python float: the shortest digits that read back as `f`, in positional
/// notation for exponents -4..16 (with `.0` on whole numbers), else as `1.5e-07` / `1e+16`.
fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // Rust's `{:e}` also gives the shortest round-trip digits: "-7.25e1", "1e-9".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let body = if (-4..16).contains(&exp) {
        if exp < 0 {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                format!("{digits}{}.0", "0".repeat(int_len - digits.len()))
            } else {
                format!("{}.{}", &digits[..int_len], &digits[int_len..])
            }
        }
    } else {
        let frac = if digits.len() > 1 {
            format!(".{}", &digits[1..])
        } else {
            String::new()
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{}{frac}e{esign}{:02}", &digits[..1], exp.abs())
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_print_as_python_repr() {
        for (f, want) in [
            (72.5, "72.5"),
            (15.0, "15.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (123456789012345.6, "123456789012345.6"),
            (1.2345678901234567e17, "1.2345678901234566e+17"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-2.5e-300, "-2.5e-300"),
        ] {
            assert_eq!(float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn strings_and_nesting_as_json_dumps() {
        let v = json!({"b": [1, 2.0, {"x": null}], "a": "é\n\"\u{1}😀", "e": [], "o": {}});
        assert_eq!(
            dumps(&v),
            r#"{"b": [1, 2.0, {"x": null}], "a": "é\n\"\u0001😀", "e": [], "o": {}}"#
        );
        let style = Style {
            ensure_ascii: true,
            indent: Some("  ".into()),
            item_sep: ",".into(),
            key_sep: ": ".into(),
            sort_keys: true,
        };
        let mut out = String::new();
        write(&v, &style, 0, &mut out);
        assert_eq!(
            out,
            "{\n  \"a\": \"\\u00e9\\n\\\"\\u0001\\ud83d\\ude00\",\n  \"b\": [\n    1,\n    2.0,\n    \
             {\n      \"x\": null\n    }\n  ],\n  \"e\": [],\n  \"o\": {}\n}"
        );
    }
}
