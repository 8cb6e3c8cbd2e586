//! Splitting a reasoning model's thinking from its answer, for chat's `reasoning_content`:
//! DeepSeek-R1 / Qwen3-style `<think>…</think>` and HuatuoGPT-o1-style `## Thinking … ## Final
//! Response` sections (the formats of `ward_engine::THINKING_FORMATS`, whose markers the prompt
//! side reads too). Only a model that declares its format (its chat template, its registry entry
//! or `--reasoning-format`) has its answers split, and only by that format: another model's
//! answer that happens to start with "## Thinking" is content. The thinking is recognised at
//! the start of the answer, or known to be open from the start when the prompt opened it
//! (DeepSeek-R1 distills' generation prompt ends with `<think>\n`, so the answer is
//! `…</think>\n\nanswer`), as llama.cpp's `thinking_forced_open` does. Text streams through as
//! it comes; only what could still be the start of a marker is held back. Whitespace around
//! the thinking is dropped; thinking that never closes (cut by `max_tokens`) is all reasoning.

use ward_engine::api::EventStream;
use ward_engine::{partial_marker, ThinkingFormat};

#[derive(Debug)]
enum State {
    /// Not yet known whether the answer starts with `format`'s thinking; the text so far.
    Start { format: ThinkingFormat, buf: String },
    /// Inside the thinking, until the format's closing marker; text that may be the start of
    /// it. `lead` while the whitespace at the start of the thinking is being dropped.
    Thinking {
        format: ThinkingFormat,
        held: String,
        lead: bool,
    },
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
    /// For the answer `events` brings: `None` unless it answers a chat prompt of a model that
    /// declares a reasoning format (its answers are then all content).
    pub fn for_answer(events: &EventStream) -> Option<ReasoningSplitter> {
        let format = events.reasoning?;
        Some(ReasoningSplitter::after_prompt(
            format,
            events.thinking == Some(format),
        ))
    }

    /// For an answer in `format` that may start with thinking, or, when the prompt left it
    /// `open`, starts inside it.
    pub fn after_prompt(format: ThinkingFormat, open: bool) -> ReasoningSplitter {
        ReasoningSplitter(match open {
            true => State::Thinking {
                format,
                held: String::new(),
                lead: true,
            },
            false => State::Start {
                format,
                buf: String::new(),
            },
        })
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
            State::Start { buf, .. } => out.content = buf,
            State::Thinking { held, .. } => out.reasoning = held.trim_end().to_string(),
            State::Answer { .. } => {}
        }
        out
    }

    fn feed(&mut self, text: &str, out: &mut Split) {
        match &mut self.0 {
            State::Start { format, buf } => {
                buf.push_str(text);
                let lead = buf.trim_start();
                if let Some(rest) = lead.strip_prefix(format.open) {
                    let rest = rest.to_string();
                    self.0 = ReasoningSplitter::after_prompt(*format, true).0;
                    return self.feed(&rest, out);
                }
                if format.open.starts_with(lead) {
                    return; // could still become the start marker
                }
                let all = std::mem::take(buf);
                self.0 = State::Answer { trim: false };
                out.content.push_str(&all);
            }
            State::Thinking { format, held, lead } => {
                let text = if *lead { text.trim_start() } else { text };
                if !text.is_empty() {
                    *lead = false;
                }
                held.push_str(text);
                let end = format.close;
                if let Some(at) = held.find(end) {
                    out.reasoning.push_str(held[..at].trim_end());
                    let rest = held[at + end.len()..].to_string();
                    self.0 = State::Answer { trim: true };
                    return self.feed(&rest, out);
                }
                // Keep back the longest tail that could begin the end marker, and the whitespace
                // before it (dropped if the marker follows).
                let keep = partial_marker(held, end);
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

    use ward_engine::THINKING_FORMATS;

    const THINK: ThinkingFormat = THINKING_FORMATS[0];
    const SECTIONS: ThinkingFormat = THINKING_FORMATS[1];

    /// Feed `pieces` one by one to `s` and join what comes out.
    fn run(mut s: ReasoningSplitter, pieces: &[&str]) -> Split {
        let mut all = Split::default();
        let mut outs: Vec<Split> = pieces.iter().map(|p| s.push(p)).collect();
        outs.push(s.finish());
        for p in outs {
            all.reasoning += &p.reasoning;
            all.content += &p.content;
        }
        all
    }

    /// An answer in `<think>` format, the prompt leaving it closed.
    fn split(pieces: &[&str]) -> Split {
        run(ReasoningSplitter::after_prompt(THINK, false), pieces)
    }

    fn want(reasoning: &str, content: &str) -> Split {
        Split {
            reasoning: reasoning.into(),
            content: content.into(),
        }
    }

    /// `text` split the same however it is cut into pieces: at every place in two, character
    /// by character, and in 200 random chunkings (pieces of 1 to 12 characters).
    fn same_in_any_chunking(format: ThinkingFormat, open: bool, text: &str, expected: &Split) {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let bounds: Vec<usize> = chars.iter().map(|c| c.0).skip(1).collect();
        let whole = run(ReasoningSplitter::after_prompt(format, open), &[text]);
        assert_eq!(&whole, expected, "in one piece");
        for &cut in &bounds {
            let (a, b) = text.split_at(cut);
            let got = run(ReasoningSplitter::after_prompt(format, open), &[a, b]);
            assert_eq!(&got, expected, "cut at {cut}");
        }
        let singles: Vec<String> = text.chars().map(String::from).collect();
        let pieces: Vec<&str> = singles.iter().map(String::as_str).collect();
        let got = run(ReasoningSplitter::after_prompt(format, open), &pieces);
        assert_eq!(&got, expected, "character by character");
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..200 {
            let mut pieces = Vec::new();
            let mut at = 0;
            while at < chars.len() {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let n = 1 + (seed >> 33) as usize % 12;
                let end = (at + n).min(chars.len());
                let from = chars[at].0;
                let to = chars.get(end).map_or(text.len(), |c| c.0);
                pieces.push(&text[from..to]);
                at = end;
            }
            let got = run(ReasoningSplitter::after_prompt(format, open), &pieces);
            assert_eq!(&got, expected, "round {round}: {pieces:?}");
        }
    }

    #[test]
    fn think_tags_split_wherever_the_pieces_break() {
        same_in_any_chunking(
            THINK,
            false,
            "<think>Fever and stiff neck: meningitis?</think>\n\nSeek care now.",
            &want("Fever and stiff neck: meningitis?", "Seek care now."),
        );
    }

    /// DeepSeek-R1 distills: the prompt ends with `<think>\n`, the answer has only the end.
    #[test]
    fn r1_distill_answers_start_inside_the_thinking() {
        let text = "Okay, K+ 5.6 mmol/L is above 5.0.\nCheck for haemolysis first.\n</think>\n\n\
                    Repeat the test before treating. 复查血钾。";
        same_in_any_chunking(
            THINK,
            true,
            text,
            &want(
                "Okay, K+ 5.6 mmol/L is above 5.0.\nCheck for haemolysis first.",
                "Repeat the test before treating. 复查血钾。",
            ),
        );
        // Whitespace before the thinking is dropped too, however it arrives.
        same_in_any_chunking(
            THINK,
            true,
            "\n\n  嗯，血钾偏高。</think>结论：复查。",
            &want("嗯，血钾偏高。", "结论：复查。"),
        );
        // Cut short by max_tokens: all of it is thinking.
        same_in_any_chunking(
            THINK,
            true,
            "Weighing the dose: 15 mg/kg × 72.5 kg = </thi",
            &want("Weighing the dose: 15 mg/kg × 72.5 kg = </thi", ""),
        );
        // Without the prompt's knowledge the same answer would be all content.
        assert_eq!(
            split(&["Okay.</think>\n\nAnswer."]),
            want("", "Okay.</think>\n\nAnswer.")
        );
        assert_eq!(
            run(
                ReasoningSplitter::after_prompt(THINK, true),
                &["", "</think>", "Answer."]
            ),
            want("", "Answer.")
        );
    }

    /// Qwen3: thinking on writes `<think>…</think>`; `/no_think` (or thinking off in the
    /// prompt, which then ends with an empty `<think>\n\n</think>\n\n`) gives the answer only.
    #[test]
    fn qwen3_thinking_on_and_off() {
        same_in_any_chunking(
            THINK,
            false,
            "<think>\nThe user asks about newborns: 100-160 bpm.\n</think>\n\n100-160 bpm.",
            &want("The user asks about newborns: 100-160 bpm.", "100-160 bpm."),
        );
        same_in_any_chunking(
            THINK,
            false,
            "<think>\n\n</think>\n\n60-100 bpm.",
            &want("", "60-100 bpm."),
        );
        same_in_any_chunking(THINK, false, "60-100 bpm.", &want("", "60-100 bpm."));
    }

    #[test]
    fn thinking_sections_and_plain_answers() {
        let huatuo = "## Thinking\n\nCheck the dose.\n\n## Final Response\n\n5 mg.";
        same_in_any_chunking(SECTIONS, false, huatuo, &want("Check the dose.", "5 mg."));
        // Only the model's own format is read: to a <think> model this is an answer.
        assert_eq!(split(&[huatuo]), want("", huatuo));
        assert_eq!(
            run(
                ReasoningSplitter::after_prompt(SECTIONS, false),
                &["<think>a</think>b"]
            ),
            want("", "<think>a</think>b")
        );
        assert_eq!(split(&["Just ", "an answer."]), want("", "Just an answer."));
        assert_eq!(split(&["<", "b>bold</b>"]), want("", "<b>bold</b>"));
        // Thinking cut short by max_tokens is still thinking.
        assert_eq!(
            split(&["<think>Hmm, the dose is </th"]),
            want("Hmm, the dose is </th", "")
        );
        assert_eq!(split(&["<think>Hmm.\n\n"]), want("Hmm.", ""));
        assert_eq!(split(&["#"]), want("", "#"));
        assert_eq!(split(&["  <think>a</think>b"]), want("a", "b"));
    }
}
