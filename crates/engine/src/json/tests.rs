//! The constraint on a vocabulary of one token per byte, so each test says at which byte a
//! document is refused.

use std::sync::OnceLock;

use serde_json::{json, Value};

use super::{JsonConstraint, JsonSpec, Vocabulary};

const EOS: u32 = Vocabulary::BYTES_EOS;

fn bytes() -> &'static Vocabulary {
    static VOCABULARY: OnceLock<Vocabulary> = OnceLock::new();
    VOCABULARY.get_or_init(Vocabulary::of_bytes)
}

fn compile(schema: &Value) -> JsonSpec {
    JsonSpec::compile(bytes(), schema).unwrap_or_else(|e| panic!("{schema}: {e}"))
}

/// Which of the byte tokens and the end token the mask allows now.
fn allowed(c: &mut JsonConstraint) -> Vec<bool> {
    let mut logits = vec![0.0f32; EOS as usize + 1];
    c.mask(&mut logits, [EOS]);
    logits.iter().map(|l| l.is_finite()).collect()
}

/// Whether `doc` is a whole document for `spec`, and at which byte it was refused if not (its
/// length: it may not end there).
fn run(spec: &JsonSpec, doc: impl AsRef<[u8]>) -> Result<(), usize> {
    let doc = doc.as_ref();
    let mut c = JsonConstraint::new(spec.clone());
    for (i, &b) in doc.iter().enumerate() {
        if !allowed(&mut c)[b as usize] {
            return Err(i);
        }
        c.accept(b.into(), false);
    }
    if allowed(&mut c)[EOS as usize] {
        Ok(())
    } else {
        Err(doc.len())
    }
}

fn object() -> JsonSpec {
    JsonSpec::any_object(bytes())
}

#[test]
fn any_object_accepts_json_objects_and_nothing_else() {
    let s = object();
    for ok in [
        r#"{}"#,
        r#"{"a": [1, -2.5e3, 0, "x\n\u001f", true, false, null, {"b": {}}], "c": []}"#,
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
}

/// Pretty-printing is fine (a line break and up to 32 blanks of indentation between tokens,
/// or one blank); blank lines and runs of blanks are not, so an answer cannot run on in
/// whitespace.
#[test]
fn whitespace_between_tokens_is_bounded() {
    let s = object();
    let deep = "{\n\"a\": {\n  \"b\": {\n      \"c\": [\n          1\n      ]\n  }\n}\n}";
    assert_eq!(run(&s, deep), Ok(()));
    assert_eq!(run(&s, "{\r\n\t\"a\": [\r\n\t\t1\r\n\t]\r\n}"), Ok(()));
    let indented = |n| format!("{{\"a\":\n{}1}}", " ".repeat(n));
    assert_eq!(run(&s, indented(32)), Ok(()));
    assert_eq!(run(&s, indented(33)), Err(38));
    assert_eq!(run(&s, "{  }"), Err(2));
    assert_eq!(run(&s, "{\n\n}"), Err(2));
    assert_eq!(run(&s, "{\n  \n}"), Err(4));
}

/// A call of one of several tools (an `anyOf` of objects): the name is one of the tools, and
/// the arguments are that tool's.
#[test]
fn a_call_of_one_of_several_tools() {
    let call = |name: &str, args: &Value| {
        json!({"type": "object", "properties": {"name": {"const": name}, "arguments": args},
               "required": ["name", "arguments"]})
    };
    let temp = json!({"type": "object", "properties": {"celsius": {"type": "number"}},
                      "required": ["celsius"]});
    let drug = json!({"type": "object", "properties": {"drug": {"enum": ["aspirin", "heparin"]}},
                      "required": ["drug"]});
    let s = compile(&json!({"anyOf": [call("record_temp", &temp), call("order", &drug)]}));
    for ok in [
        r#"{"name": "record_temp", "arguments": {"celsius": 38.5}}"#,
        r#"{"name":"order","arguments":{"drug":"heparin"}}"#,
    ] {
        assert_eq!(run(&s, ok), Ok(()), "{ok}");
    }
    for (bad, at) in [
        // Another tool's arguments, an unknown tool, the properties out of the schema's
        // order, the name twice, a value outside the enum.
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
    // Alternatives that start alike are told apart as they go.
    let alike =
        compile(&json!({"anyOf": [call("a", &json!({"type": "object"})), call("a", &temp)]}));
    assert_eq!(run(&alike, r#"{"name":"a","arguments":{"x":[1]}}"#), Ok(()));
    assert_eq!(
        run(&alike, r#"{"name":"a","arguments":{"celsius":1}}"#),
        Ok(())
    );
}

/// JSON text is UTF-8: a string (or free key) holds whole, valid characters only, as
/// serde_json reads them.
#[test]
fn strings_are_valid_utf8() {
    let s = object();
    for ok in ["{\"é\": \"€ 🩺 \"}", "{\"\u{10ffff}\": 1}"] {
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
        assert!(serde_json::from_slice::<Value>(bad).is_err());
    }
}

/// A `\u` escape writes a control character; every other character is written as itself, so
/// no escaped surrogate (which serde_json refuses unpaired) can appear.
#[test]
fn only_control_characters_are_escaped() {
    let s = object();
    for ok in [r#"{"a": "\u001f\u0000 é 🩺"}"#, r#"{"\u0007": 0}"#] {
        assert_eq!(run(&s, ok), Ok(()), "{ok}");
        serde_json::from_str::<Value>(ok).unwrap();
    }
    for (bad, at) in [
        (r#"{"a": "\u00e9"}"#, 11),
        (r#"{"a": "\udd7a"}"#, 9),
        (r#"{"a": "\ud83e\udd7a"}"#, 9),
    ] {
        assert_eq!(run(&s, bad), Err(at), "{bad}");
    }
}

#[test]
fn a_schema_constrains_keys_types_and_counts() {
    let s = compile(&json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "tags": {"type": "array", "items": {"enum": ["x", "y"]}, "maxItems": 2},
            "note": {"type": ["string", "null"]},
            "ok": {"type": "boolean"},
        },
        "required": ["name", "age"],
    }));
    for ok in [
        r#"{"name": "Al", "age": 31}"#,
        r#"{"name":"B","age":3,"tags":["x","y"],"note":null,"ok":false}"#,
        r#"{"name": "C", "age": -4, "tags": [], "note": "n"}"#,
    ] {
        assert_eq!(run(&s, ok), Ok(()), "{ok}");
    }
    for (bad, at) in [
        (r#"{"name": "A"}"#, 12),             // a required key missing at the end
        (r#"{"nam": 1}"#, 5),                 // not a property
        (r#"{"name": "A", "age": 3.5}"#, 22), // not an integer
        (r#"{"name": 5}"#, 9),                // not a string
        (r#"{"name":"","age":1,"tags":["x","y","x"]}"#, 34),
        (r#"{"name":"","age":1,"tags":["z"]}"#, 28),
        (r#"{"name":"","age":1,"ok":1}"#, 24),
    ] {
        assert_eq!(run(&s, bad), Err(at), "{bad}");
    }
}

/// What Ward's own matcher accepted and did not check, llguidance enforces: patterns, formats,
/// string lengths, numeric bounds.
#[test]
fn patterns_formats_lengths_and_bounds_are_enforced() {
    let s = compile(&json!({
        "type": "object",
        "properties": {
            "mrn": {"type": "string", "pattern": "^[0-9]{7}$"},
            "born": {"type": "string", "format": "date"},
            "name": {"type": "string", "minLength": 1, "maxLength": 5},
            "dose_mg": {"type": "number", "minimum": 0, "maximum": 5000},
            "days": {"type": "integer", "exclusiveMinimum": 0, "maximum": 30},
        },
        "required": ["mrn", "born", "name", "dose_mg", "days"],
    }));
    let doc = |mrn: &str, born: &str, name: &str, dose: &str, days: &str| {
        format!(
            r#"{{"mrn":"{mrn}","born":"{born}","name":"{name}","dose_mg":{dose},"days":{days}}}"#
        )
    };
    assert_eq!(
        run(&s, doc("4711023", "1958-03-14", "Ann", "2.5", "14")),
        Ok(())
    );
    for (bad, at) in [
        (doc("471102", "1958-03-14", "Ann", "1", "1"), 14),
        (doc("47110234", "1958-03-14", "Ann", "1", "1"), 15),
        (doc("4711023", "1958-13-14", "Ann", "1", "1"), 31),
        (doc("4711023", "1958-03-14", "", "1", "1"), 45),
        (doc("4711023", "1958-03-14", "Annabel", "1", "1"), 50),
        (doc("4711023", "1958-03-14", "Ann", "-1", "1"), 60),
        (doc("4711023", "1958-03-14", "Ann", "5001", "1"), 63),
        (doc("4711023", "1958-03-14", "Ann", "1", "0"), 69),
        (doc("4711023", "1958-03-14", "Ann", "1", "31"), 70),
    ] {
        assert_eq!(run(&s, &bad), Err(at), "{bad}");
    }
}

/// An object with `properties` takes only those unless `additionalProperties` opens it;
/// `oneOf` is read as `anyOf`.
#[test]
fn objects_are_closed_and_one_of_is_any_of() {
    let props = json!({"a": {"type": "integer"}});
    let closed = compile(&json!({"type": "object", "properties": props}));
    assert_eq!(run(&closed, r#"{"a":1}"#), Ok(()));
    assert_eq!(run(&closed, r#"{"a":1,"b":2}"#), Err(6));
    let open =
        compile(&json!({"type": "object", "properties": props, "additionalProperties": true}));
    assert_eq!(run(&open, r#"{"a":1,"b":2}"#), Ok(()));
    let one_of = compile(&json!({"type": "object", "properties": {"v": {"oneOf": [
        {"type": "integer"}, {"type": "string"}]}}}));
    assert_eq!(run(&one_of, r#"{"v":"x"}"#), Ok(()));
    assert_eq!(run(&one_of, r#"{"v":7}"#), Ok(()));
    // An object combined with others is left open for the properties they add.
    let combined = compile(
        &json!({"type": "object", "properties": {"a": {"type": "integer"}},
        "allOf": [{"type": "object", "properties": {"b": {"type": "integer"}}}]}),
    );
    assert_eq!(run(&combined, r#"{"a":1,"b":2}"#), Ok(()));
    // allOf's members add properties to each other's.
    let all_of = compile(&json!({"allOf": [
        {"type": "object", "properties": {"a": {"type": "integer"}}},
        {"type": "object", "properties": {"b": {"type": "integer"}}}]}));
    assert_eq!(run(&all_of, r#"{"a":1,"b":2}"#), Ok(()));
}

#[test]
fn refs_consts_and_nested_objects() {
    let s = compile(&json!({
        "$defs": {"dose": {"type": "object", "properties": {"mg": {"type": "number"}},
                           "required": ["mg"]}},
        "type": "object",
        "properties": {"kind": {"const": "dose"}, "dose": {"$ref": "#/$defs/dose"},
                       "level": {"enum": [1, 12, "high"]}},
        "required": ["kind", "dose"],
    }));
    for ok in [
        r#"{"kind":"dose","dose":{"mg":2.5},"level":12}"#,
        r#"{"kind":"dose","dose":{"mg":2.5},"level":1}"#,
        r#"{"kind":"dose","dose":{"mg":2.5},"level":"high"}"#,
    ] {
        assert_eq!(run(&s, ok), Ok(()), "{ok}");
    }
    assert_eq!(
        run(&s, r#"{"kind":"dose","dose":{"mg":2.5},"level":13}"#),
        Err(42)
    );
    assert_eq!(run(&s, r#"{"kind":"dosage"}"#), Err(12));
    assert_eq!(run(&s, r#"{"kind":"dose","dose":{}}"#), Err(23));
    // A recursive definition is a grammar rule, not an expansion.
    let tree = compile(&json!({"$defs": {"node": {"type": "object", "properties": {
        "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
        "$ref": "#/$defs/node"}));
    assert_eq!(run(&tree, r#"{"children":[{"children":[{}]},{}]}"#), Ok(()));
}

#[test]
fn unsupported_schemas_are_refused_with_a_reason_that_never_quotes_them() {
    for (schema, says) in [
        (json!("SECRET"), "JSON Schema object"),
        (json!({"type": "SECRET"}), "not supported"),
        (
            json!({"type": "object", "properties": {"SECRET": {"$ref": "#/$defs/SECRET"}}}),
            "not supported",
        ),
        (
            json!({"type": "object", "properties": {"a": {"$ref": "http://SECRET/y"}}}),
            "not supported",
        ),
        (
            json!({"type": "object", "properties": {"SECRET": {"not": {"const": "SECRET"}}}}),
            "not",
        ),
        (
            json!({"type": "string", "pattern": "SECRET(["}),
            "not supported",
        ),
        (
            json!({"type": "string", "format": "SECRET"}),
            "not supported",
        ),
        (
            json!({"type": "integer", "minimum": 5, "maximum": 1, "title": "SECRET"}),
            "not supported",
        ),
        // Long values, which llguidance shortens or the message's length cuts.
        (
            json!({"type": "string", "format": "SECRET".repeat(80)}),
            "not supported",
        ),
        (
            json!({"type": "integer", "minimum": "SECRET".repeat(40)}),
            "not supported",
        ),
    ] {
        let e = JsonSpec::compile(bytes(), &schema).unwrap_err().to_string();
        assert!(e.contains(says), "{schema}: {e}");
        assert!(!e.contains("SECRET"), "{schema}: {e}");
    }
}

/// Any JSON value may be the document, and a number at the end may end or go on.
#[test]
fn roots_other_than_objects() {
    let list = compile(&json!({"type": "array", "items": {"type": "integer"}, "maxItems": 2}));
    assert_eq!(run(&list, "[1, 2]"), Ok(()));
    assert_eq!(run(&list, "[1, 2, 3]"), Err(5));
    let number = compile(&json!({"type": "integer"}));
    let mut c = JsonConstraint::new(number);
    c.accept(b'4'.into(), false);
    let now = allowed(&mut c);
    assert!(now[EOS as usize] && now[b'2' as usize] && !now[b'x' as usize]);
    assert!(!c.is_complete());
}

/// Once a document is complete, only the end remains and the constraint says so.
#[test]
fn a_complete_document_ends_the_answer() {
    let mut c = JsonConstraint::new(object());
    for &b in br#"{"a":1}"# {
        assert!(!c.is_complete());
        c.accept(b.into(), false);
    }
    assert!(c.is_complete());
    let now = allowed(&mut c);
    assert_eq!(now.iter().filter(|&&ok| ok).count(), 1);
    assert!(now[EOS as usize]);
    // A stop id with text (here '"') only ends: allowed at the end, never as text.
    let mut logits = vec![0.0f32; EOS as usize + 1];
    assert!(c.mask(&mut logits, [EOS, b'"'.into()]));
    assert!(logits[usize::from(b'"')].is_finite());
    let mut fresh = JsonConstraint::new(object());
    fresh.accept(b'{'.into(), false);
    logits.fill(0.0);
    assert!(fresh.mask(&mut logits, [EOS, b'"'.into()]));
    assert!(!logits[usize::from(b'"')].is_finite() && logits[usize::from(b'}')].is_finite());
}
