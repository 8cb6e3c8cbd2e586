//! Splitting a reasoning model's thinking from its answer, for chat's `reasoning_content`:
//! DeepSeek-R1-style `<think>…</think>` and HuatuoGPT-o1-style `## Thinking … ## Final
//! Response` sections, recognised at the start of the answer. Text streams through as it
//! comes; only what could still be the start of a marker is held back.

/// Where the thinking starts and ends.
const FORMATS: [(&str, &str); 2] = [
    ("<think>", "</think>"),
    ("## Thinking", "## Final Response"),
];

#[derive(Debug)]
enum State {
    /// Not yet known whether the answer starts with thinking; the text so far.
    Start(String),
    /// Inside the thinking, until `end`; text that may be the start of `end`.
    Thinking { end: &'static str, held: String },
    /// After the thinking, or an answer without any: everything is content. `trim` while the
    /// whitespace after the end marker is being dropped.
    Answer { trim: bool },
}

pub struct ReasoningSplitter(State);

/// Text split into thinking and answer.
#[derive(Debug, Default, PartialEq)]
pub struct Split {
    pub reasoning: String,
    pub content: String,
}

impl ReasoningSplitter {
    pub fn new() -> ReasoningSplitter {
        ReasoningSplitter(State::Start(String::new()))
    }

    pub fn push(&mut self, text: &str) -> Split {
        let mut out = Split::default();
        self.feed(text, &mut out);
        out
    }

    /// The end of the answer: whatever was held back.
    pub fn finish(&mut self) -> Split {
        let mut out = Split::default();
        match std::mem::replace(&mut self.0, State::Answer { trim: false }) {
            State::Start(text) => out.content = text,
            State::Thinking { held, .. } => out.reasoning = held,
            State::Answer { .. } => {}
        }
        out
    }

    fn feed(&mut self, text: &str, out: &mut Split) {
        match &mut self.0 {
            State::Start(buf) => {
                buf.push_str(text);
                let lead = buf.trim_start();
                for (start, end) in FORMATS {
                    if let Some(rest) = lead.strip_prefix(start) {
                        let rest = rest.trim_start().to_string();
                        self.0 = State::Thinking {
                            end,
                            held: String::new(),
                        };
                        return self.feed(&rest, out);
                    }
                    if start.starts_with(lead) {
                        return; // could still become this start marker
                    }
                }
                let all = std::mem::take(buf);
                self.0 = State::Answer { trim: false };
                out.content.push_str(&all);
            }
            State::Thinking { end, held } => {
                held.push_str(text);
                if let Some(at) = held.find(*end) {
                    out.reasoning.push_str(held[..at].trim_end());
                    let rest = held[at + end.len()..].to_string();
                    self.0 = State::Answer { trim: true };
                    return self.feed(&rest, out);
                }
                // Keep back the longest tail that could begin the end marker, and the whitespace
                // before it (dropped if the marker follows).
                let keep = (1..end.len().min(held.len() + 1))
                    .rev()
                    .find(|&n| {
                        held.is_char_boundary(held.len() - n)
                            && end.starts_with(&held[held.len() - n..])
                    })
                    .unwrap_or(0);
                let cut = held[..held.len() - keep].trim_end().len();
                out.reasoning.push_str(&held[..cut]);
                held.drain(..cut);
            }
            State::Answer { trim } => {
                let text = if *trim { text.trim_start() } else { text };
                if !text.is_empty() {
                    *trim = false;
                }
                out.content.push_str(text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `pieces` one by one and join what comes out.
    fn split(pieces: &[&str]) -> Split {
        let mut s = ReasoningSplitter::new();
        let mut all = Split::default();
        let mut outs: Vec<Split> = pieces.iter().map(|p| s.push(p)).collect();
        outs.push(s.finish());
        for p in outs {
            all.reasoning += &p.reasoning;
            all.content += &p.content;
        }
        all
    }

    fn want(reasoning: &str, content: &str) -> Split {
        Split {
            reasoning: reasoning.into(),
            content: content.into(),
        }
    }

    #[test]
    fn think_tags_split_wherever_the_pieces_break() {
        let text = "<think>Fever and stiff neck: meningitis?</think>\n\nSeek care now.";
        for cut in 1..text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(
                split(&[a, b]),
                want("Fever and stiff neck: meningitis?", "Seek care now."),
                "cut at {cut}"
            );
        }
        let bytes: Vec<String> = text.chars().map(String::from).collect();
        let pieces: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(
            split(&pieces),
            want("Fever and stiff neck: meningitis?", "Seek care now.")
        );
    }

    #[test]
    fn thinking_sections_and_plain_answers() {
        assert_eq!(
            split(&[
                "## Thinking\n\nCheck the dose.\n\n## Final",
                " Response\n\n5 mg."
            ]),
            want("Check the dose.", "5 mg.")
        );
        assert_eq!(split(&["Just ", "an answer."]), want("", "Just an answer."));
        assert_eq!(split(&["<", "b>bold</b>"]), want("", "<b>bold</b>"));
        // Thinking cut short by max_tokens is still thinking.
        assert_eq!(
            split(&["<think>Hmm, the dose is </th"]),
            want("Hmm, the dose is </th", "")
        );
        assert_eq!(split(&["#"]), want("", "#"));
    }
}
