//! Pre-tokenizers: how llama.cpp (`unicode_regex_split`) cuts text into words before byte-level
//! BPE, one family per `tokenizer.ggml.pre`. llama.cpp runs a list of regexes, each splitting
//! the pieces the previous one left (a match is a piece, and so is each gap between matches);
//! for the common regexes it uses hand-written matchers (`unicode_regex_split_custom_*`), which
//! these port, and for the rest C++ std::regex (ECMAScript: the first alternative that matches
//! wins, quantifiers backtrack) over a "collapsed" text, which the matchers below reproduce.

use std::ops::Range;

use super::unicode::{class, is_mark, is_punct, is_symbol, Class};
use super::TokenizerError;

/// A word, as a range of code point indices into the text.
pub type Span = Range<usize>;

/// Pre-tokenizer families from llama.cpp's `llm_tokenizer_bpe` that Ward implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
    Gpt2,
    /// Every digit on its own (`\p{N}`), then the GPT-2 rules (SmolLM, StarCoder, Refact, …).
    DigitsThenGpt2,
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    Llama3,
    /// Llama 3's rules with one digit per word (`\p{N}`): Qwen2, Qwen2.5, Qwen3, DeepSeek-R1-Qwen.
    Qwen2,
    /// Qwen2's rules with combining marks (\p{M}) inside letter runs.
    Qwen35,
    /// DeepSeek V3/R1: `\p{N}{1,3}`, then runs of Han and kana, then a GPT-4-like regex.
    DeepSeek3,
    /// No `tokenizer.ggml.pre` (old conversions): llama.cpp's "default" list, punctuation runs,
    /// then GPT-2, then number runs, then ASCII digit triples.
    Default,
}

/// What a `tokenizer.ggml.pre` name sets, as in llama.cpp's `llama_vocab::impl::load`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreConfig {
    pub pre: PreTokenizer,
    /// A word that is itself a token is emitted whole, without merging (Llama 3's tiktoken
    /// heritage: its merges cannot always rebuild such words).
    pub ignore_merges: bool,
    /// BOS is added when `tokenizer.ggml.add_bos_token` is absent.
    pub add_bos: bool,
    /// llama.cpp's `llama_detokenize` drops spaces before `?!.,` and some apostrophes. Ward's
    /// decode stays the concatenation of token pieces (what llama.cpp's server streams).
    pub clean_spaces: bool,
}

impl PreConfig {
    /// llama.cpp's name table, for the families above; other names are refused as llama.cpp
    /// refuses names it does not know (or would split differently from everything here).
    pub fn from_name(name: Option<&str>) -> Result<PreConfig, TokenizerError> {
        use PreTokenizer::*;
        let cfg = |pre, ignore_merges, add_bos, clean_spaces| {
            Ok(PreConfig {
                pre,
                ignore_merges,
                add_bos,
                clean_spaces,
            })
        };
        let Some(name) = name else {
            return cfg(Default, false, false, true);
        };
        match name {
            "default" => cfg(Default, false, false, true),
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "a.x-4.0" | "mellum"
            | "modern-bert" | "jina-v1-en" | "roberta-bpe" | "mpt" | "olmo" | "jais"
            | "exaone4" => cfg(Gpt2, false, false, true),
            "trillion" | "granite-docling" => cfg(Gpt2, false, false, false),
            "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
                cfg(DigitsThenGpt2, false, false, true)
            }
            "smollm" | "command-r" => cfg(DigitsThenGpt2, false, false, false),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" | "jina-v5-nano" => cfg(Llama3, true, true, true),
            "dbrx" | "smaug-bpe" => cfg(Llama3, false, false, true),
            // DeepSeek-R1-Distill-Qwen differs from Qwen2.5 only in its special tokens and in
            // `add_bos_token = true`, which its GGUF metadata states.
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open"
            | "grok-2" => cfg(Qwen2, false, false, false),
            "megrez" | "stablelm2" => cfg(Qwen2, false, false, true),
            "qwen35" => cfg(Qwen35, false, false, false),
            "deepseek-v3" => cfg(DeepSeek3, false, false, false),
            other => Err(TokenizerError::Unsupported(format!(
                "BPE pre-tokenizer tokenizer.ggml.pre = {other:?} (llama.cpp's rules for it are not implemented)"
            ))),
        }
    }
}

impl PreTokenizer {
    /// Split `chars` into words, in order and covering every code point.
    pub fn split(self, chars: &[char]) -> Vec<Span> {
        let all: Vec<Span> = std::iter::once(0..chars.len()).collect();
        match self {
            PreTokenizer::Gpt2 => stage(chars, all, split_gpt2),
            PreTokenizer::DigitsThenGpt2 => {
                let s = stage(chars, all, |c, s, o| runs(c, s, o, is_num, 1));
                stage(chars, s, split_gpt2)
            }
            PreTokenizer::Llama3 => stage(chars, all, |c, s, o| split_llama3(c, s, o, 3, false)),
            PreTokenizer::Qwen2 => stage(chars, all, |c, s, o| split_llama3(c, s, o, 1, false)),
            PreTokenizer::Qwen35 => stage(chars, all, |c, s, o| split_llama3(c, s, o, 1, true)),
            PreTokenizer::DeepSeek3 => {
                let s = stage(chars, all, |c, s, o| runs(c, s, o, is_num, 3));
                let s = stage(chars, s, |c, s, o| {
                    runs(c, s, o, is_han_or_kana, usize::MAX)
                });
                stage(chars, s, split_deepseek3)
            }
            PreTokenizer::Default => {
                // [\p{P}\$\+<=>\^~\|]+ , GPT-2 , \p{N}+ , [0-9][0-9][0-9]
                let s = stage(chars, all, |c, s, o| {
                    runs(c, s, o, is_default_punct, usize::MAX)
                });
                let s = stage(chars, s, split_gpt2);
                let s = stage(chars, s, |c, s, o| runs(c, s, o, is_num, usize::MAX));
                stage(chars, s, split_ascii_digit_triples)
            }
        }
    }
}

/// One regex of llama.cpp's list: split every piece of `spans` again.
fn stage(
    chars: &[char],
    spans: Vec<Span>,
    split: impl Fn(&[char], Span, &mut Vec<Span>),
) -> Vec<Span> {
    let mut out = Vec::with_capacity(spans.len());
    for s in spans {
        split(chars, s, &mut out);
    }
    out
}

fn is_num(c: char) -> bool {
    class(c) == Class::Number
}

/// `[\p{P}\$\+<=>\^~\|]`
fn is_default_punct(c: char) -> bool {
    is_punct(c) || matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '~' | '|')
}

/// `[一-龥぀-ゟ゠-ヿ]`: CJK ideographs up to U+9FA5, hiragana and katakana.
fn is_han_or_kana(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FA5}' | '\u{3040}'..='\u{30FF}')
}

/// A regex `[class]{1,max}` (or `+` when `max` is `usize::MAX`): each run of matching code
/// points becomes words of at most `max`, and each gap between runs one word.
fn runs(chars: &[char], span: Span, out: &mut Vec<Span>, matches: fn(char) -> bool, max: usize) {
    let mut gap = span.start;
    let mut pos = span.start;
    while pos < span.end {
        if !matches(chars[pos]) {
            pos += 1;
            continue;
        }
        if gap < pos {
            out.push(gap..pos);
        }
        let start = pos;
        while pos < span.end && pos - start < max && matches(chars[pos]) {
            pos += 1;
        }
        out.push(start..pos);
        gap = pos;
    }
    if gap < span.end {
        out.push(gap..span.end);
    }
}

/// `[0-9][0-9][0-9]`: triples of ASCII digits, left to right; everything between is a word.
fn split_ascii_digit_triples(chars: &[char], span: Span, out: &mut Vec<Span>) {
    let digit = |p: usize| p < span.end && chars[p].is_ascii_digit();
    let mut gap = span.start;
    let mut pos = span.start;
    while pos < span.end {
        if digit(pos) && digit(pos + 1) && digit(pos + 2) {
            if gap < pos {
                out.push(gap..pos);
            }
            out.push(pos..pos + 3);
            pos += 3;
            gap = pos;
        } else {
            pos += 1;
        }
    }
    if gap < span.end {
        out.push(gap..span.end);
    }
}

/// Where one matcher is in its span, and the words it has cut so far.
struct Cursor<'a> {
    chars: &'a [char],
    end: usize,
    prev: usize,
    out: &'a mut Vec<Span>,
}

impl Cursor<'_> {
    fn at(&self, pos: usize) -> Option<char> {
        (pos < self.end).then(|| self.chars[pos])
    }

    fn cls(&self, pos: usize) -> Option<Class> {
        self.at(pos).map(class)
    }

    /// End the current word at `to` (an empty word is no word).
    fn cut(&mut self, to: usize) {
        if to > self.prev {
            self.out.push(self.prev..to);
        }
        self.prev = to;
    }

    fn whitespace_run(&self, pos: usize) -> usize {
        let mut n = 0;
        while self.cls(pos + n) == Some(Class::Whitespace) {
            n += 1;
        }
        n
    }
}

/// The length of the English contraction (`'s|'t|'re|'ve|'m|'ll|'d`) at `pos`, if one starts
/// there; `ignore_case` as Llama 3's `(?i:…)`, which only ASCII letters lower-case to.
fn contraction(chars: &[char], pos: usize, end: usize, ignore_case: bool) -> Option<usize> {
    let at = |i: usize| {
        let c = chars[i];
        if ignore_case {
            c.to_ascii_lowercase()
        } else {
            c
        }
    };
    if chars[pos] != '\'' || pos + 1 >= end {
        return None;
    }
    let n1 = at(pos + 1);
    if matches!(n1, 's' | 't' | 'm' | 'd') {
        return Some(2);
    }
    let long = pos + 2 < end && matches!((n1, at(pos + 2)), ('r', 'e') | ('v', 'e') | ('l', 'l'));
    long.then_some(3)
}

/// A port of llama.cpp's hand-written matcher for the GPT-2 regex (`unicode_regex_split_custom_gpt2`).
fn split_gpt2(chars: &[char], span: Span, out: &mut Vec<Span>) {
    let mut cur = Cursor {
        chars,
        end: span.end,
        prev: span.start,
        out,
    };
    let end = span.end;
    let mut pos = span.start;
    while pos < end {
        let c = chars[pos];
        // 's|'t|'re|'ve|'m|'ll|'d
        if let Some(n) = contraction(chars, pos, end, false) {
            pos += n;
            cur.cut(pos);
            continue;
        }
        let lead = if c == ' ' {
            cur.cls(pos + 1)
        } else {
            cur.cls(pos)
        };
        // ' ?\p{L}+', ' ?\p{N}+' and ' ?[^\s\p{L}\p{N}]+'
        if let Some(k @ (Class::Letter | Class::Number | Class::Other)) = lead {
            pos += usize::from(c == ' ');
            while cur.cls(pos) == Some(k) {
                pos += 1;
            }
            cur.cut(pos);
            continue;
        }
        let n_ws = cur.whitespace_run(pos);
        if n_ws > 1 && pos + n_ws < end {
            // '\s+(?!\S)': leave the last space to lead the next word
            pos += n_ws - 1;
        } else if n_ws > 0 {
            pos += n_ws;
        } else {
            pos += 1;
        }
        cur.cut(pos);
    }
}

/// A port of llama.cpp's matchers for Llama 3's regex (`unicode_regex_split_custom_llama3`) and
/// its variants: Qwen2 takes digits one at a time (`max_digits` 1, `..._qwen2`), Qwen3.5 also
/// counts combining marks as letters (`..._qwen35`).
fn split_llama3(chars: &[char], span: Span, out: &mut Vec<Span>, max_digits: usize, marks: bool) {
    let mut cur = Cursor {
        chars,
        end: span.end,
        prev: span.start,
        out,
    };
    let end = span.end;
    let letter = |cur: &Cursor, p: usize| {
        cur.at(p)
            .is_some_and(|c| class(c) == Class::Letter || (marks && is_mark(c)))
    };
    let mut pos = span.start;
    while pos < end {
        let c = chars[pos];
        let k = class(c);
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if let Some(n) = contraction(chars, pos, end, true) {
            pos += n;
            cur.cut(pos);
            continue;
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+ : one leading non-letter is taken only before a letter.
        if !(c == '\r' || c == '\n' || k == Class::Number)
            && (letter(&cur, pos) || letter(&cur, pos + 1))
        {
            pos += 1;
            while letter(&cur, pos) {
                pos += 1;
            }
            cur.cut(pos);
            continue;
        }
        // \p{N}{1,3} (Llama 3) or \p{N} (Qwen)
        if k == Class::Number {
            let mut ini = pos;
            while cur.cls(pos) == Some(Class::Number) {
                pos += 1;
                if pos - ini >= max_digits {
                    cur.cut(pos);
                    ini = pos;
                }
            }
            cur.cut(pos);
            continue;
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*' (a lone space at the end of the span also lands here)
        let other = |cur: &Cursor, p: usize| {
            cur.at(p)
                .is_some_and(|c| class(c) == Class::Other && !(marks && is_mark(c)))
        };
        let next_is_other_or_end = if c == ' ' {
            pos + 1 >= end || other(&cur, pos + 1)
        } else {
            other(&cur, pos)
        };
        if next_is_other_or_end {
            pos += usize::from(c == ' ');
            while other(&cur, pos) {
                pos += 1;
            }
            while matches!(cur.at(pos), Some('\r' | '\n')) {
                pos += 1;
            }
            cur.cut(pos);
            continue;
        }
        // \s*[\r\n]+ takes the whitespace up to its last newline; then \s+(?!\S) and \s+.
        let n_ws = cur.whitespace_run(pos);
        let last_newline = (pos..pos + n_ws)
            .rev()
            .find(|&p| matches!(chars[p], '\r' | '\n'));
        if let Some(p) = last_newline {
            pos = p + 1;
        } else if n_ws > 1 && pos + n_ws < end {
            pos += n_ws - 1;
        } else if n_ws > 0 {
            pos += n_ws;
        } else {
            pos += 1;
        }
        cur.cut(pos);
    }
}

/// DeepSeek V3's last regex, which llama.cpp runs with std::regex:
/// `[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// Code points no alternative matches stay together as one word, as regex_iterator's gaps do.
fn split_deepseek3(chars: &[char], span: Span, out: &mut Vec<Span>) {
    let end = span.end;
    let at = |p: usize| (p < end).then(|| chars[p]);
    let is = |p: usize, f: fn(char) -> bool| at(p).is_some_and(f);
    fn lm(c: char) -> bool {
        class(c) == Class::Letter || is_mark(c)
    }
    fn ps(c: char) -> bool {
        is_punct(c) || is_symbol(c)
    }
    let ws = |p: usize| at(p).is_some_and(|c| class(c) == Class::Whitespace);
    let run = |mut p: usize, f: &dyn Fn(usize) -> bool| {
        while f(p) {
            p += 1;
        }
        p
    };
    // The end of the match starting at `p`, if any alternative matches there.
    let match_at = |p: usize| -> Option<usize> {
        let c = chars[p];
        if c.is_ascii_punctuation() && is(p + 1, |c| c.is_ascii_alphabetic()) {
            return Some(run(p + 1, &|q| is(q, |c| c.is_ascii_alphabetic())));
        }
        let prefix = !matches!(c, '\r' | '\n') && class(c) != Class::Letter && !ps(c);
        if prefix && is(p + 1, lm) {
            return Some(run(p + 1, &|q| is(q, lm)));
        }
        if lm(c) {
            return Some(run(p, &|q| is(q, lm)));
        }
        let start = if c == ' ' && is(p + 1, ps) { p + 1 } else { p };
        if is(start, ps) {
            let q = run(start, &|q| is(q, ps));
            return Some(run(q, &|q| matches!(at(q), Some('\r' | '\n'))));
        }
        let n = run(p, &ws) - p;
        if let Some(q) = (p..p + n).rev().find(|&q| matches!(chars[q], '\r' | '\n')) {
            return Some(q + 1);
        }
        match n {
            0 => None,
            1 => Some(p + 1),
            _ if p + n < end => Some(p + n - 1),
            _ => Some(p + n),
        }
    };
    let mut gap = span.start;
    let mut pos = span.start;
    while pos < end {
        match match_at(pos) {
            Some(to) => {
                if gap < pos {
                    out.push(gap..pos);
                }
                out.push(pos..to);
                pos = to;
                gap = to;
            }
            None => pos += 1,
        }
    }
    if gap < end {
        out.push(gap..end);
    }
}
