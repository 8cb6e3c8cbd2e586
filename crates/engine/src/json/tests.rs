use std::sync::Arc;

use serde_json::json;

use super::{Matcher, Schema};

/// Whether `doc` is a complete document for `schema`, and how far it got if not.
fn run(schema: &Schema, doc: &str) -> Result<(), usize> {
    let mut m = Matcher::new(Arc::new(Schema {
        nodes: schema.nodes.clone(),
        ..*schema
    }));
    for (i, b) in doc.bytes().enumerate() {
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
    // Deep indentation is fine; endless blanks are not.
    let deep = "{\n\"a\": {\n  \"b\": {\n      \"c\": [\n          1\n      ]\n  }\n}\n}";
    assert_eq!(run(&s, deep), Ok(()));
    assert_eq!(run(&s, &format!("{{{}}}", " ".repeat(129))), Err(129));
    assert_eq!(run(&s, "{\n\n\n}"), Err(3));
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
