//! A byte-at-a-time JSON recogniser for a compiled [`Schema`]: `feed` says whether a byte can
//! come next in some document the schema accepts. The state is a small stack of `Copy`
//! frames, so a mask computation can clone it cheaply at every byte of every token.

use std::sync::Arc;

use super::schema::{first_bytes, Node, NodeId, Schema};

/// Between two tokens of the document: at most one line break, and on each side of it at most
/// `INDENT_PER_LEVEL` spaces or tabs per level of nesting (plus one level), as llguidance and
/// XGrammar allow: room for any pretty-printing, none for a model to fill its answer with
/// blanks.
const INDENT_PER_LEVEL: usize = 4;
const MAX_NEWLINES: u8 = 1;
/// Most nested objects and arrays.
const MAX_NESTING: usize = 32;
/// Longest number, in bytes. With at most two exponent digits, every number fits an f64
/// (below 10^(28 + 99)): serde_json, and so the server reading a tool call back, refuses
/// numbers past f64's range such as `1e400`.
const MAX_NUMBER: u8 = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Obj {
    /// After `{`: a key or `}`.
    Start,
    /// Reading a key (a `Key` frame is above).
    InKey,
    /// After the key of property `.0` (`u8::MAX`: a free key): `:`.
    AfterKey(u8),
    /// Reading the value.
    InValue,
    /// After a value: `,` or `}`.
    AfterValue,
    /// After `,`: a key.
    AfterComma,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Arr {
    Start,
    InValue,
    AfterValue,
    AfterComma,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Str {
    Text,
    Escape,
    /// In a `\u` escape: hex digits read, their value so far, and whether it must be the low
    /// half of a surrogate pair (serde_json refuses a lone surrogate).
    Unicode {
        read: u8,
        value: u16,
        low: bool,
    },
    /// After a high surrogate's escape: the low one's `\` (false) or `u` (true) comes next.
    LowNext(bool),
    /// Inside a multi-byte UTF-8 character: bytes still to come, and the range the next one
    /// must be in (JSON text is UTF-8, and a token may end inside a character).
    Utf8 {
        left: u8,
        lo: u8,
        hi: u8,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Num {
    Start,
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    /// One exponent digit read.
    ExpDigits,
    /// Two: the exponent is complete.
    ExpDigits2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Frame {
    /// The whole document; `true` once its value is complete.
    Root(bool),
    /// A value of this node is next (whitespace may come first).
    Value(NodeId),
    Object {
        node: NodeId,
        phase: Obj,
        seen: u64,
    },
    /// A key of the object below: the properties it can still be, and bytes read (free keys
    /// are read by a `String` frame instead).
    Key {
        cands: u64,
        pos: u16,
    },
    Array {
        node: NodeId,
        phase: Arr,
        count: u32,
    },
    String(Str),
    /// One of a node's literal JSON texts (enum, const, true/false, null): those still
    /// possible, and bytes read.
    Literal {
        node: NodeId,
        cands: u64,
        pos: u16,
    },
    Number {
        integer: bool,
        phase: Num,
        len: u8,
    },
}

/// A matcher's state, as a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct State(Vec<Frame>, u8, u8);

/// Where a document is, for the schema it must satisfy.
#[derive(Debug, Clone)]
pub struct Matcher {
    schema: Arc<Schema>,
    stack: Vec<Frame>,
    /// Spaces and tabs, and line breaks, in the current run of whitespace.
    indent: u8,
    newlines: u8,
}

impl Matcher {
    pub fn new(schema: Arc<Schema>) -> Matcher {
        let root = schema.root;
        Matcher {
            schema,
            stack: vec![Frame::Root(false), Frame::Value(root)],
            indent: 0,
            newlines: 0,
        }
    }

    /// What decides which bytes may come next: two matchers of one schema with the same state
    /// accept the same continuations.
    pub fn state(&self) -> State {
        State(self.stack.clone(), self.indent, self.newlines)
    }

    /// Become a copy of `other`, reusing this one's memory.
    pub fn copy_from(&mut self, other: &Matcher) {
        self.stack.clone_from(&other.stack);
        (self.indent, self.newlines) = (other.indent, other.newlines);
    }

    /// The document is complete: only the end of the answer may follow.
    pub fn is_complete(&self) -> bool {
        self.stack == [Frame::Root(true)]
    }

    /// Take `byte` if it can come next; false (and the state is then unusable) if not.
    pub fn feed(&mut self, byte: u8) -> bool {
        let ws = matches!(byte, b' ' | b'\t' | b'\n' | b'\r');
        loop {
            let Some(&top) = self.stack.last() else {
                return false;
            };
            match self.step(top, byte, ws) {
                Step::Took => {
                    (self.indent, self.newlines) = (0, 0);
                    return true;
                }
                Step::Whitespace if byte == b'\n' => {
                    // A new line starts a new indent.
                    (self.indent, self.newlines) = (0, self.newlines + 1);
                    return self.newlines <= MAX_NEWLINES;
                }
                Step::Whitespace => {
                    self.indent += 1;
                    return self.indent as usize <= INDENT_PER_LEVEL * (self.depth() + 1);
                }
                Step::Again => continue,
                Step::Reject => return false,
            }
        }
    }

    /// Literal `i` was read: if it was a tagged object's tag, the object goes on as the
    /// alternative it names, with the tag's property seen.
    fn tag_read(&mut self, i: usize) {
        let Frame::Object { node, phase, .. } = *self.top() else {
            return;
        };
        let Node::Tagged { tag, cases } = self.schema.node(node) else {
            return;
        };
        let case = cases[i];
        let (Some(props), _) = self.properties(case) else {
            unreachable!("a tagged object's alternatives are objects with properties")
        };
        let key = props
            .iter()
            .position(|(name, _)| *name == tag[0].0)
            .expect("each alternative has the tag");
        *self.top() = Frame::Object {
            node: case,
            phase,
            seen: 1 << key,
        };
    }

    fn top(&mut self) -> &mut Frame {
        self.stack.last_mut().expect("a frame")
    }

    /// Objects and arrays open.
    fn depth(&self) -> usize {
        self.stack
            .iter()
            .filter(|f| matches!(f, Frame::Object { .. } | Frame::Array { .. }))
            .count()
    }

    /// The frame on top has finished its value: tell the one below.
    fn value_done(&mut self) {
        self.stack.pop();
        match self.top() {
            Frame::Root(done) => *done = true,
            // A free key is read as a string: the colon comes next.
            Frame::Object { phase, .. } if *phase == Obj::InKey => *phase = Obj::AfterKey(u8::MAX),
            Frame::Object { phase, .. } => *phase = Obj::AfterValue,
            Frame::Array { phase, count, .. } => {
                *phase = Arr::AfterValue;
                *count += 1;
            }
            other => unreachable!("a value inside {other:?}"),
        }
    }

    fn step(&mut self, top: Frame, b: u8, ws: bool) -> Step {
        match top {
            Frame::Root(_) => Step::Reject,
            Frame::Value(node) => {
                if ws {
                    return Step::Whitespace;
                }
                self.start_value(node, b)
            }
            Frame::Object { node, phase, seen } => self.object(node, phase, seen, b, ws),
            Frame::Key { cands, pos } => self.key(cands, pos, b),
            Frame::Array { node, phase, count } => self.array(node, phase, count, b, ws),
            Frame::String(phase) => {
                let next = match (phase, b) {
                    (Str::Text, b'"') => {
                        self.value_done();
                        return Step::Took;
                    }
                    (Str::Text, b'\\') => Str::Escape,
                    (Str::Text, 0..=0x1f) => return Step::Reject,
                    (Str::Text, 0x20..=0x7f) => Str::Text,
                    (Str::Text, lead) => match utf8_lead(lead) {
                        Some(next) => next,
                        None => return Step::Reject,
                    },
                    (Str::Utf8 { left, lo, hi }, _) if (lo..=hi).contains(&b) => match left {
                        1 => Str::Text,
                        _ => Str::Utf8 {
                            left: left - 1,
                            lo: 0x80,
                            hi: 0xbf,
                        },
                    },
                    (Str::Escape, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                        Str::Text
                    }
                    (Str::Escape, b'u') => Str::Unicode {
                        read: 0,
                        value: 0,
                        low: false,
                    },
                    (Str::LowNext(false), b'\\') => Str::LowNext(true),
                    (Str::LowNext(true), b'u') => Str::Unicode {
                        read: 0,
                        value: 0,
                        low: true,
                    },
                    (Str::Unicode { read, value, low }, _) if b.is_ascii_hexdigit() => {
                        match unicode_escape(read + 1, value << 4 | hex(b), low) {
                            Some(next) => next,
                            None => return Step::Reject,
                        }
                    }
                    _ => return Step::Reject,
                };
                *self.top() = Frame::String(next);
                Step::Took
            }
            Frame::Literal { node, cands, pos } => {
                let Node::Literals(lits) = self.schema.node(node) else {
                    unreachable!("literal frames read literal nodes")
                };
                let p = pos as usize;
                let mut next = 0u64;
                let mut complete = None;
                for (i, lit) in lits.iter().enumerate().filter(|(i, _)| cands >> i & 1 == 1) {
                    if lit.len() == p {
                        complete = Some(i);
                    }
                    if lit.as_bytes().get(p) == Some(&b) {
                        next |= 1 << i;
                    }
                }
                if next != 0 {
                    *self.top() = Frame::Literal {
                        node,
                        cands: next,
                        pos: pos + 1,
                    };
                    Step::Took
                } else if let Some(i) = complete {
                    self.value_done();
                    self.tag_read(i);
                    Step::Again
                } else {
                    Step::Reject
                }
            }
            Frame::Number {
                integer,
                phase,
                len,
            } => {
                let digit = b.is_ascii_digit();
                let next = match (phase, b) {
                    (Num::Start, b'-') => Some(Num::Minus),
                    (Num::Start | Num::Minus, b'0') => Some(Num::Zero),
                    (Num::Start | Num::Minus, _) if digit => Some(Num::Int),
                    (Num::Int, _) if digit => Some(Num::Int),
                    (Num::Zero | Num::Int, b'.') if !integer => Some(Num::Dot),
                    (Num::Dot | Num::Frac, _) if digit => Some(Num::Frac),
                    (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') if !integer => Some(Num::Exp),
                    (Num::Exp, b'+' | b'-') => Some(Num::ExpSign),
                    (Num::Exp | Num::ExpSign, _) if digit => Some(Num::ExpDigits),
                    (Num::ExpDigits, _) if digit => Some(Num::ExpDigits2),
                    _ => None,
                };
                match next {
                    Some(phase) if len < MAX_NUMBER => {
                        *self.top() = Frame::Number {
                            integer,
                            phase,
                            len: len + 1,
                        };
                        Step::Took
                    }
                    Some(_) => Step::Reject,
                    None if matches!(
                        phase,
                        Num::Zero | Num::Int | Num::Frac | Num::ExpDigits | Num::ExpDigits2
                    ) =>
                    {
                        self.value_done();
                        Step::Again
                    }
                    None => Step::Reject,
                }
            }
        }
    }

    /// The first byte of a value of `node`: replace the `Value` frame with the frame that
    /// reads it.
    fn start_value(&mut self, node: NodeId, b: u8) -> Step {
        let frame = match self.schema.node(node).clone() {
            Node::AnyOf(alts) => {
                return match alts
                    .iter()
                    .find(|&&a| first_bytes(&self.schema.nodes, a).contains(&b))
                {
                    Some(&a) => self.start_value(a, b),
                    None => Step::Reject,
                };
            }
            Node::Any => match b {
                b'{' | b'[' | b'"' => return self.open(node, b),
                b't' | b'f' => self.literal(self.schema.booleans),
                b'n' => self.literal(self.schema.null),
                b'-' | b'0'..=b'9' => self.number(false),
                _ => return Step::Reject,
            },
            Node::Object { .. } | Node::Tagged { .. } | Node::Array { .. } | Node::String => {
                return self.open(node, b)
            }
            Node::Number { integer } => self.number(integer),
            Node::Boolean => self.literal(self.schema.booleans),
            Node::Null => self.literal(self.schema.null),
            Node::Literals(_) => self.literal(node),
        };
        *self.top() = frame;
        Step::Again
    }

    /// `{`, `[` or `"` opening a value of `node`.
    fn open(&mut self, node: NodeId, b: u8) -> Step {
        let frame = match (self.schema.node(node), b) {
            (Node::Object { .. } | Node::Tagged { .. } | Node::Any, b'{') => Frame::Object {
                node,
                phase: Obj::Start,
                seen: 0,
            },
            (Node::Array { .. } | Node::Any, b'[') => Frame::Array {
                node,
                phase: Arr::Start,
                count: 0,
            },
            (Node::String | Node::Any, b'"') => Frame::String(Str::Text),
            _ => return Step::Reject,
        };
        if b != b'"' && self.stack.len() > MAX_NESTING {
            return Step::Reject;
        }
        *self.top() = frame;
        Step::Took
    }

    fn literal(&self, node: NodeId) -> Frame {
        Frame::Literal {
            node,
            cands: u64::MAX,
            pos: 0,
        }
    }

    fn number(&self, integer: bool) -> Frame {
        Frame::Number {
            integer,
            phase: Num::Start,
            len: 0,
        }
    }

    /// The object's properties (`None`: any key) and which must be present (a tagged object:
    /// its tag, until the tag is read).
    fn properties(&self, node: NodeId) -> (Option<&[(String, NodeId)]>, u64) {
        match self.schema.node(node) {
            Node::Object {
                properties,
                required,
            } => (properties.as_deref(), *required),
            Node::Tagged { tag, .. } => (Some(tag), 1),
            _ => (None, 0),
        }
    }

    fn object(&mut self, node: NodeId, phase: Obj, seen: u64, b: u8, ws: bool) -> Step {
        let (props, required) = self.properties(node);
        let set = |m: &mut Matcher, phase| {
            *m.top() = Frame::Object { node, phase, seen };
        };
        match (phase, b) {
            (Obj::Start | Obj::AfterKey(_) | Obj::AfterValue | Obj::AfterComma, _) if ws => {
                Step::Whitespace
            }
            (Obj::Start | Obj::AfterValue, b'}') if required & !seen == 0 => {
                self.value_done();
                Step::Took
            }
            (Obj::Start | Obj::AfterComma, b'"') => {
                let free = props.is_none();
                let remaining = props.map_or(0, |p| {
                    let all = if p.len() == 64 {
                        u64::MAX
                    } else {
                        (1u64 << p.len()) - 1
                    };
                    all & !seen
                });
                if !free && remaining == 0 {
                    return Step::Reject;
                }
                set(self, Obj::InKey);
                self.stack.push(if free {
                    Frame::String(Str::Text)
                } else {
                    Frame::Key {
                        cands: remaining,
                        pos: 0,
                    }
                });
                Step::Took
            }
            (Obj::AfterKey(prop), b':') => {
                let value = match props {
                    Some(p) => p[prop as usize].1,
                    None => self.schema.any,
                };
                set(self, Obj::InValue);
                self.stack.push(Frame::Value(value));
                Step::Took
            }
            (Obj::AfterValue, b',') => {
                let full = props.is_some_and(|p| seen.count_ones() as usize == p.len());
                if full {
                    return Step::Reject;
                }
                set(self, Obj::AfterComma);
                Step::Took
            }
            _ => Step::Reject,
        }
    }

    fn key(&mut self, cands: u64, pos: u16, b: u8) -> Step {
        let below = self.stack.len() - 2;
        let Frame::Object { node, seen, .. } = self.stack[below] else {
            unreachable!("keys belong to objects")
        };
        let (Some(props), _) = self.properties(node) else {
            unreachable!("restricted keys belong to objects with properties")
        };
        let p = pos as usize;
        if b == b'"' {
            let Some(i) = (0..props.len()).find(|&i| cands >> i & 1 == 1 && props[i].0.len() == p)
            else {
                return Step::Reject;
            };
            self.stack.pop();
            self.stack[below] = Frame::Object {
                node,
                phase: Obj::AfterKey(i as u8),
                seen: seen | 1 << i,
            };
            return Step::Took;
        }
        let mut next = 0u64;
        for (i, (name, _)) in props.iter().enumerate() {
            if cands >> i & 1 == 1 && name.as_bytes().get(p) == Some(&b) {
                next |= 1 << i;
            }
        }
        if next == 0 {
            return Step::Reject;
        }
        *self.top() = Frame::Key {
            cands: next,
            pos: pos + 1,
        };
        Step::Took
    }

    fn array(&mut self, node: NodeId, phase: Arr, count: u32, b: u8, ws: bool) -> Step {
        let (items, min, max) = match self.schema.node(node) {
            Node::Array { items, min, max } => (*items, *min, *max),
            _ => (self.schema.any, 0, None),
        };
        let count_us = count as usize;
        let set = |m: &mut Matcher, phase| {
            *m.top() = Frame::Array { node, phase, count };
        };
        match (phase, b) {
            (Arr::Start | Arr::AfterValue | Arr::AfterComma, _) if ws => Step::Whitespace,
            (Arr::Start | Arr::AfterValue, b']') if count_us >= min => {
                self.value_done();
                Step::Took
            }
            (Arr::AfterValue, b',') if max.is_none_or(|m| count_us < m) => {
                set(self, Arr::AfterComma);
                Step::Took
            }
            (Arr::Start | Arr::AfterComma, _) if max.is_none_or(|m| count_us < m) => {
                set(self, Arr::InValue);
                self.stack.push(Frame::Value(items));
                Step::Again
            }
            _ => Step::Reject,
        }
    }
}

/// The state after `read` hex digits of a `\u` escape whose value so far is `value`, or
/// `None` if no surrogate rule can hold any more: the first two digits tell a surrogate half.
fn unicode_escape(read: u8, value: u16, low: bool) -> Option<Str> {
    let is_low = (0xdc..=0xdf).contains(&value);
    match read {
        1 if low && value != 0xd => None,
        2 if low != is_low => None,
        4 if !low && (0xd800..=0xdbff).contains(&value) => Some(Str::LowNext(false)),
        4 => Some(Str::Text),
        _ => Some(Str::Unicode { read, value, low }),
    }
}

fn hex(b: u8) -> u16 {
    (b as char).to_digit(16).expect("a hex digit") as u16
}

/// What may follow a UTF-8 lead byte (`None`: not a lead byte), as `str::from_utf8` (and so
/// serde_json) checks it: no overlong forms, no surrogates, nothing past U+10FFFF.
fn utf8_lead(b: u8) -> Option<Str> {
    let (left, lo, hi) = match b {
        0xc2..=0xdf => (1, 0x80, 0xbf),
        0xe0 => (2, 0xa0, 0xbf),
        0xed => (2, 0x80, 0x9f),
        0xe1..=0xef => (2, 0x80, 0xbf),
        0xf0 => (3, 0x90, 0xbf),
        0xf1..=0xf3 => (3, 0x80, 0xbf),
        0xf4 => (3, 0x80, 0x8f),
        _ => return None,
    };
    Some(Str::Utf8 { left, lo, hi })
}

enum Step {
    /// The byte was taken.
    Took,
    /// A structural whitespace byte was taken.
    Whitespace,
    /// The stack changed without taking the byte: offer it again.
    Again,
    Reject,
}
