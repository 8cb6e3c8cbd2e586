//! Text a caller sends never becomes a control token. A chat prompt is rendered from the
//! template's markup and the caller's strings together, so the two cannot be told apart in the
//! rendered text; instead each caller string is escaped before rendering: every control
//! token's text in it (as the tokenizer would find it) becomes a marker that matches no token.
//! Tokenizing the rendered text then finds special tokens only in the template's markup; the
//! markers are turned back into their text and read with control tokens off, as llama.cpp
//! reads text with `parse_special = false`. A conversation without control-token texts renders
//! and tokenizes exactly as before.
//!
//! A marker is SENTINEL, the token id in decimal, SENTINEL; a SENTINEL the caller sent is
//! escaped as SENTINEL SENTINEL. SENTINEL is U+10FFFD, the last private-use code point, which
//! no tokenizer or template gives a meaning to.

use std::borrow::Cow;
use std::fmt::Write;

use serde_json::Value;

use super::{Fragment, Tokenizer, Vocab};

const SENTINEL: char = '\u{10FFFD}';

impl Tokenizer {
    /// `text` with every control or unknown token's text, and every SENTINEL, replaced by a
    /// marker (borrowed when there is none).
    pub fn escape_controls<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let fragments = self.specials.split(text, true);
        let is_control = |f: &Fragment| match f {
            Fragment::Token(id) => !self.is_user_defined(*id),
            Fragment::Text(t) => t.contains(SENTINEL),
        };
        if !fragments.iter().any(is_control) {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len() + 16);
        for fragment in fragments {
            match fragment {
                Fragment::Token(id) if self.is_user_defined(id) => {
                    out.push_str(self.vocab.text(id).unwrap_or_default())
                }
                Fragment::Token(id) => {
                    let _ = write!(out, "{SENTINEL}{id}{SENTINEL}");
                }
                Fragment::Text(t) => {
                    for c in t.chars() {
                        out.push(c);
                        if c == SENTINEL {
                            out.push(SENTINEL);
                        }
                    }
                }
            }
        }
        Cow::Owned(out)
    }

    /// `value` with every string in it (object keys too) escaped by [`Self::escape_controls`].
    pub fn escape_controls_json(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.escape_controls(s).into_owned()),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.escape_controls_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        (
                            self.escape_controls(k).into_owned(),
                            self.escape_controls_json(v),
                        )
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Token ids of a text rendered from escaped caller strings: special tokens are found in
    /// the rest (the template's markup) only. `None` past `limit` tokens.
    pub fn encode_escaped(&self, rendered: &str, limit: usize) -> Option<Vec<u32>> {
        self.encode_with(rendered, false, super::Parse::Escaped, limit)
    }

    fn is_user_defined(&self, id: u32) -> bool {
        self.vocab.token_type(id) == Some(super::TokenType::UserDefined)
    }
}

/// Whether a piece of rendered text holds a marker.
pub(super) fn is_escaped(text: &str) -> bool {
    text.contains(SENTINEL)
}

/// The caller's text back from its markers. A marker the template broke apart stays as it is,
/// harmless text.
pub(super) fn restore(vocab: &Vocab, text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(SENTINEL) {
        out.push_str(&rest[..at]);
        let after = &rest[at + SENTINEL.len_utf8()..];
        let digits = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        let (number, tail) = after.split_at(digits);
        let Some(tail) = tail.strip_prefix(SENTINEL) else {
            out.push(SENTINEL);
            rest = after;
            continue;
        };
        match number.parse().ok().and_then(|id| vocab.text(id)) {
            _ if number.is_empty() => out.push(SENTINEL),
            Some(token) => out.push_str(token),
            None => {
                out.push(SENTINEL);
                out.push_str(number);
                out.push(SENTINEL);
            }
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}
