//! Incremental detokenization: a token may end in the middle of a UTF-8 character, so bytes are
//! held back until they form whole characters; and text that may begin a marker (a stop string,
//! a thinking or tool-call tag) is held back until the next piece says.

use super::Tokenizer;

/// The length of the longest tail of `text` that is the start of `marker` (and not all of
/// it), at a character boundary: what a stream holds back until it knows whether `marker`
/// follows. 0 if no tail can begin it.
pub fn partial_marker(text: &str, marker: &str) -> usize {
    (1..marker.len().min(text.len() + 1))
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && marker.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

#[derive(Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// Add one token; returns the text that is now complete (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> String {
        self.pending.extend(tokenizer.token_bytes(id, false));
        self.take_complete()
    }

    /// Whatever is left at the end of the stream; an unfinished character becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }

    fn take_complete(&mut self) -> String {
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(
                        std::str::from_utf8(&self.pending[..valid]).expect("checked prefix"),
                    );
                    match e.error_len() {
                        // An unfinished character at the end: wait for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Bytes that can never become valid: replace them, as a lossy decode would.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::partial_marker;

    #[test]
    fn partial_markers_are_proper_prefixes_at_character_boundaries() {
        assert_eq!(partial_marker("ab <tool_c", "<tool_call>"), 7);
        assert_eq!(partial_marker("ab <", "<tool_call>"), 1);
        assert_eq!(partial_marker("ab <b>", "<tool_call>"), 0);
        // The whole marker is not partial: the caller has found it.
        assert_eq!(partial_marker("x</think>", "</think>"), 0);
        assert_eq!(partial_marker("", "</think>"), 0);
        assert_eq!(partial_marker("dose é", "é!"), 2);
        assert_eq!(partial_marker("dose \u{e9}", "\u{301}"), 0);
        // The longest tail wins: "aa" for "aab" after "xaa".
        assert_eq!(partial_marker("xaa", "aab"), 2);
    }
}
