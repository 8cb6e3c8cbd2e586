use std::sync::Arc;

use serde_json::json;

use super::{Matcher, Schema};

/// Whether `doc` is a complete document for `schema`, and how far it got if not.
fn run(schema: &Schema, doc: impl AsRef<[u8]>) -> Result<(), usize> {
    let doc = doc.as_ref();
    let mut m = Matcher::new(Arc::new(Schema {
        nodes: schema.nodes.clone(),
        ..*schema
    }));
    for (i, &b) in doc.iter().enumerate() {
        if !m.feed(b) {
            return Err(i);
        }
    }
    if m.is_complete() {
        Ok(())
    } else {
        Err(doc.len())
    }
}

#[test]
fn any_object_accepts_json_objects_and_nothing_else() {
    let s = Schema::any_object();
    for ok in [
        r#"{}"#,
        r#"{"a": [1, -2.5e3, 0, "x\n\u00e9", true, false, null, {"b": {}}], "c": []}"#,
        "{\n  \"k\" : \"v\"\n}",
        r#"{"":1E+2}"#,
    ] {
        assert_eq!(run(&s, ok), Ok(()), "{ok}");
    }
    for (bad, at) in [
        (r#"[1]"#, 0),
        (r#"{a: 1}"#, 1),
        (r#"{"a": 01}"#, 7),
        (r#"{"a": 1,}"#, 8),
        (r#"{"a": tru}"#, 9),
        (r#"{"a": "x\q"}"#, 9),
        (r#"{"a": 1} x"#, 8),
        ("{\"a\": \"\u{1}\"}", 7),
        (r#"{"a": 1"#, 7),
    ] {
        assert_eq!(run(&s, bad), Err(at), "{bad}");
    }
    // Pretty-printing is fine (a line break and up to 4 blanks per level between tokens);
    // blank lines and runs of blanks past the indentation are not.
    let deep = "{\n\"a\": {\n  \"b\": {\n      \"c\": [\n          1\n      ]\n  }\n}\n}";
    assert_eq!(run(&s, deep), Ok(()));
    assert_eq!(run(&s, "{\r\n\t\"a\": [\r\n\t\t1\r\n\t]\r\n}"), Ok(()));
    assert_eq!(run(&s, format!("{{{}}}", " ".repeat(9))), Err(9));
    assert_eq!(
        run(&s, format!("{{\"a\":{{\"b\":{}1}}}}", " ".repeat(12))),
        Ok(())
    );
    assert_eq!(
        run(&s, format!("{{\"a\":{{\"b\":{}1}}}}", " ".repeat(13))),
        Err(22)
    );
    assert_eq!(run(&s, "{\n\n}"), Err(2));
    assert_eq!(run(&s, "{\n  \n}"), Err(4));
}

/// Objects that share a property of distinct constants (a call of one of several tools, a
/// discriminated union) are told apart by it, given first: the rest follows the object it
/// names.
#[test]
fn a_constant_property_tells_objects_apart() {
    let call = |name: &str, args: &serde_json::Value| {
        json!({"type": "object", "properties": {"name": {"const": name}, "arguments": args},
               "required": ["name", "arguments"]})
    };
    let temp = json!({"type": "object", "properties": {"celsius": {"type": "number"}},
                      "required": ["celsius"]});
    let drug = json!({"type": "object", "properties": {"drug": {"enum": ["aspirin", "heparin"]}},
                      "required": ["drug"]});
    let s = Schema::compile(&json!({"anyOf": [call("record_temp", &temp), call("order", &drug)]}))
        .unwrap();
    for ok in [
        r#"{"name": "record_temp", "arguments": {"celsius": 38.5}}"#,
        r#"{"name":"order","arguments":{"drug":"heparin"}}"#,
    ] {
        assert_eq!(run(&s, ok), Ok(()), "{ok}");
    }
    for (bad, at) in [
        // Another tool's arguments, an unknown tool, the tag not first, the tag twice.
        (r#"{"name": "order", "arguments": {"celsius": 38.5}}"#, 33),
        (r#"{"name": "orders""#, 15),
        (r#"{"arguments": {}, "name": "order"}"#, 2),
        (r#"{"name": "order", "name": "order"}"#, 19),
        (
            r#"{"name": "order", "arguments": {"drug": "ibuprofen"}}"#,
            41,
        ),
    ] {
        assert_eq!(run(&s, bad), Err(at), "{bad}");
    }
    // Constants shared between objects do not tell them apart.
    let same = json!({"anyOf": [call("a", &json!({"type": "object"})), call("a", &temp)]});
    assert!(Schema::compile(&same)
        .unwrap_err()
        .to_string()
        .contains("start differently"));
}

/// JSON text is UTF-8: a string (or free key) holds whole, valid characters only, as
/// serde_json reads them (found by fuzz/fuzz_targets/json_schema.rs: `{"\xff":{}}` passed).
#[test]
fn strings_are_valid_utf8() {
    let s = Schema::any_object();
    for ok in ["{\"é\": \"€ 🩺 \u{7f}\"}", "{\"\u{10ffff}\": 1}"] {
        assert_eq!(run(&s, ok), Ok(()), "{ok}");
    }
    for (bad, at) in [
        (&b"{\"\xff\":{}}"[..], 2),            // not UTF-8 at all
        (b"{\"\x80\":1}", 2),                  // a continuation byte alone
        (b"{\"a\": \"\xc3\"}", 8),             // a character cut short
        (b"{\"a\": \"\xc0\xaf\"}", 7),         // overlong
        (b"{\"a\": \"\xed\xa0\x80\"}", 8),     // a surrogate
        (b"{\"a\": \"\xf4\x90\x80\x80\"}", 8), // past U+10FFFF
    ] {
        assert_eq!(run(&s, bad), Err(at), "{}", String::from_utf8_lossy(bad));
        assert!(serde_json::from_slice::<serde_json::Value>(bad).is_err());
    }
}

/// `\u` escapes of surrogates come in pairs, high then low, as serde_json requires (found by
/// fuzz/fuzz_targets/json_schema.rs: `"\udd7a"`); a pair cut short is refused at the first
/// byte that cannot complete it.
#[test]
fn escaped_surrogates_come_in_pairs() {
    let s = Schema::any_object();
    for ok in [
        r#"{"a": "\ud83e\udd7a \u00e9 \uD7FF \uE000"}"#,
        r#"{"\uDBFF\uDFFF": 0}"#,
    ] {
        assert_eq!(run(&s, ok), Ok(()), "{ok}");
        serde_json::from_str::<serde_json::Value>(ok).unwrap();
    }
    for (bad, at) in [
        (r#"{"a": "\udd7a"}"#, 10),       // a low half alone
        (r#"{"a": "\ud83e"}"#, 13),       // a high half alone
        (r#"{"a": "\ud83ex"}"#, 13),      // not followed by an escape
        (r#"{"a": "\ud83e\n"}"#, 14),     // nor by a \u escape
        (r#"{"a": "\ud83e\u00e9"}"#, 15), // nor by a low half
        (r#"{"a": "\ud83e\ud83e"}"#, 16), // two high halves
    ] {
        assert_eq!(run(&s, bad), Err(at), "{bad}");
        assert!(serde_json::from_str::<serde_json::Value>(bad).is_err());
    }
}

/// Every number fits an f64, as serde_json (which reads forced tool calls back) requires:
/// exponents have at most two digits (found by fuzz/fuzz_targets/json_schema.rs: `1E772`).
#[test]
fn numbers_stay_within_f64() {
    let s = Schema::any_object();
    let biggest = format!(r#"{{"a": {}e+99}}"#, "9".repeat(26));
    for ok in [r#"{"a": 1e99}"#, r#"{"a": -2.5E-07}"#, biggest.as_str()] {
        assert_eq!(run(&s, ok), Ok(()), "{ok}");
        serde_json::from_str::<serde_json::Value>(ok).unwrap();
    }
    for (bad, at) in [(r#"{"a": 1e308}"#, 10), (r#"{"a": 24443E772}"#, 14)] {
        assert_eq!(run(&s, bad), Err(at), "{bad}");
    }
}

#[test]
fn a_schema_constrains_keys_types_and_counts() {
    let s = Schema::compile(&json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "tags": {"type": "array", "items": {"enum": ["x", "y"]}, "maxItems": 2},
            "note": {"type": ["string", "null"]},
            "ok": {"type": "boolean"},
        },
        "required": ["name", "age"],
    }))
    .unwrap();
    for ok in [
        r#"{"name": "Al", "age": 31}"#,
        r#"{"age":3,"name":"B","tags":["x","y"],"note":null,"ok":false}"#,
        r#"{"name": "C", "note": "n", "age": -4, "tags": []}"#,
    ] {
        assert_eq!(run(&s, ok), Ok(()), "{ok}");
    }
    for (bad, at) in [
        (r#"{"name": "A"}"#, 12),             // a required key missing at the end
        (r#"{"nam": 1}"#, 5),                 // not a property
        (r#"{"name": "A", "age": 3.5}"#, 22), // not an integer
        (r#"{"name": 5}"#, 9),                // not a string
        (r#"{"age": 1, "age": 2}"#, 12),      // twice
        (r#"{"name":"","age":1,"tags":["x","y","x"]}"#, 34),
        (r#"{"name":"","age":1,"tags":["z"]}"#, 28),
        (r#"{"name":"","age":1,"ok":1}"#, 24),
    ] {
        assert_eq!(run(&s, bad), Err(at), "{bad}");
    }
}

#[test]
fn refs_consts_and_nested_objects() {
    let s = Schema::compile(&json!({
        "$defs": {"dose": {"type": "object", "properties": {"mg": {"type": "number"}},
                           "required": ["mg"]}},
        "type": "object",
        "properties": {"kind": {"const": "dose"}, "dose": {"$ref": "#/$defs/dose"},
                       "level": {"enum": [1, 12, "high"]}},
        "required": ["kind", "dose"],
    }))
    .unwrap();
    assert_eq!(
        run(&s, r#"{"kind":"dose","dose":{"mg":2.5},"level":12}"#),
        Ok(())
    );
    assert_eq!(
        run(&s, r#"{"kind":"dose","dose":{"mg":2.5},"level":1}"#),
        Ok(())
    );
    assert_eq!(
        run(&s, r#"{"kind":"dose","dose":{"mg":2.5},"level":"high"}"#),
        Ok(())
    );
    assert_eq!(
        run(&s, r#"{"kind":"dose","dose":{"mg":2.5},"level":13}"#),
        Err(42)
    );
    assert_eq!(run(&s, r#"{"kind":"dosage"}"#), Err(12));
    assert_eq!(run(&s, r#"{"kind":"dose","dose":{}}"#), Err(23));
}

/// Five levels of 64 properties each referring to the next level: 64⁵ nodes if expanded.
fn exploding() -> serde_json::Value {
    let mut defs = serde_json::Map::new();
    for level in 0..5 {
        let next = json!({"$ref": format!("#/$defs/d{}", level + 1)});
        let props: serde_json::Map<_, _> =
            (0..64).map(|i| (format!("p{i}"), next.clone())).collect();
        defs.insert(
            format!("d{level}"),
            json!({"type": "object", "properties": props}),
        );
    }
    defs.insert("d5".into(), json!({"type": "integer"}));
    json!({"$defs": defs, "$ref": "#/$defs/d0"})
}

#[test]
fn unsupported_schemas_are_refused_with_a_reason() {
    for (schema, says) in [
        (json!({"type": "string"}), "root"),
        (
            json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}},
                "$defs": {"a": {"$ref": "#/$defs/a"}}}),
            "deeper",
        ),
        (
            json!({"anyOf": [{"type": "object"}, {"type": "object", "properties": {}}]}),
            "start differently",
        ),
        (
            json!({"type": "object", "properties": {"a": {"type": "tuple"}}}),
            "unknown type",
        ),
        (json!({"type": "object", "required": ["a"]}), "required"),
        (
            json!({"type": "object", "properties": {"a": {"$ref": "http://x/y"}}}),
            "local",
        ),
        (exploding(), "more than"),
    ] {
        let e = Schema::compile(&schema).unwrap_err().to_string();
        assert!(e.contains(says), "{schema}: {e}");
    }
}

/// The matcher counts its place in a `const` / `enum` text or a property name in 16 bits:
/// longer ones are refused when the schema compiles, not wrapped around mid-document.
#[test]
fn texts_longer_than_the_matcher_counts_are_refused() {
    let fits = "x".repeat(usize::from(u16::MAX) - 2); // 65 535 bytes with its quotes
    let s =
        Schema::compile(&json!({"type": "object", "properties": {"a": {"const": fits}}})).unwrap();
    assert_eq!(run(&s, format!(r#"{{"a":"{fits}"}}"#)), Ok(()));
    let long = "x".repeat(usize::from(u16::MAX) + 1);
    for schema in [
        json!({"type": "object", "properties": {"a": {"const": long}}}),
        json!({"type": "object", "properties": {"a": {"enum": ["x", long]}}}),
        json!({"type": "object", "properties": {long.clone(): {}}}),
    ] {
        let e = Schema::compile(&schema).unwrap_err().to_string();
        assert!(e.contains("at most 65535 bytes"), "{e}");
    }
}
