//! The token-type fix-ups llama.cpp applies after loading a vocabulary (`llama_vocab::impl::load`),
//! and the end-of-generation set it derives. They matter for token ids: a control token is cut
//! out of the input before BPE, a normal one is spelled out by BPE.

use super::{TokenType, TokenizerError, Vocab};

/// Token texts llama.cpp always treats as end of generation (and hence as control tokens).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Fill-in-the-middle tokens llama.cpp recognises by text when the metadata does not name them:
/// (metadata keys, texts, whether the token also ends generation).
const FIM: &[(&[&str], &[&str], bool)] = &[
    (
        &["fim_pre_token_id", "prefix_token_id"],
        &[
            "<|fim_prefix|>",
            "<fim-prefix>",
            "<fim_prefix>",
            "<｜fim▁begin｜>",
            "<PRE>",
            "▁<PRE>",
            "<|code_prefix|>",
            "<|prefix|>",
        ],
        false,
    ),
    (
        &["fim_suf_token_id", "suffix_token_id"],
        &[
            "<|fim_suffix|>",
            "<fim-suffix>",
            "<fim_suffix>",
            "<｜fim▁hole｜>",
            "<SUF>",
            "▁<SUF>",
            "<|code_suffix|>",
            "<|suffix|>",
        ],
        false,
    ),
    (
        &["fim_mid_token_id", "middle_token_id"],
        &[
            "<|fim_middle|>",
            "<fim-middle>",
            "<fim_middle>",
            "<｜fim▁end｜>",
            "<MID>",
            "▁<MID>",
            "<|code_middle|>",
            "<|middle|>",
        ],
        false,
    ),
    (
        &["fim_pad_token_id"],
        &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
        true,
    ),
    (
        &["fim_rep_token_id"],
        &[
            "<|fim_repo|>",
            "<|repo_name|>",
            "<fim-repo>",
            "<REPO>",
            "<reponame>",
        ],
        true,
    ),
    (&["fim_sep_token_id"], &["<|file_sep|>"], true),
];

/// Re-type tokens as llama.cpp does and return the end-of-generation ids, sorted.
/// `special_id` reads a `tokenizer.ggml.*_token_id` key, checked against the vocabulary.
///
/// Where a vocabulary holds several texts for one FIM role and the metadata names none, llama.cpp
/// keeps whichever its hash map yields first; Ward marks them all (they are all control-like).
pub(super) fn apply_llama_cpp_rules(
    vocab: &mut Vocab,
    special_id: &dyn Fn(&str) -> Result<Option<u32>, TokenizerError>,
    eos: Option<u32>,
) -> Result<Vec<u32>, TokenizerError> {
    let mut eog: Vec<u32> = Vec::new();
    for &(keys, texts, ends) in FIM {
        let mut named = None;
        for key in keys {
            named = named.or(special_id(&format!("tokenizer.ggml.{key}"))?);
        }
        match named {
            Some(id) => eog.extend(ends.then_some(id)),
            None => {
                let found: Vec<u32> = texts.iter().filter_map(|t| vocab.id(t)).collect();
                for id in found {
                    vocab.types[id as usize] = TokenType::Control;
                    eog.extend(ends.then_some(id));
                }
            }
        }
    }
    let found: Vec<u32> = EOG_TEXTS.iter().filter_map(|t| vocab.id(t)).collect();
    for id in found {
        vocab.types[id as usize] = TokenType::Control;
        eog.push(id);
    }
    // gpt-oss: these render as text, always.
    for text in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
        if let Some(id) = vocab.id(text) {
            vocab.types[id as usize] = TokenType::UserDefined;
        }
    }
    eog.extend(eos);
    eog.extend(special_id("tokenizer.ggml.eot_token_id")?);
    eog.extend(special_id("tokenizer.ggml.eom_token_id")?);
    eog.sort_unstable();
    eog.dedup();
    let in_eog =
        |vocab: &Vocab, eog: &[u32], text: &str| vocab.id(text).filter(|id| eog.contains(id));
    // o200k_harmony and solar-open: "<|end|>" ends a message, not the generation.
    if let Some(end) = in_eog(vocab, &eog, "<|end|>") {
        let has = |text| in_eog(vocab, &eog, text).is_some();
        if (has("<|call|>") || has("<|calls|>")) && (has("<|return|>") || has("<|flush|>")) {
            eog.retain(|&id| id != end);
            vocab.types[end as usize] = TokenType::UserDefined;
        }
    }
    // Gemma 4 and PaddleOCR: "</s>" is text there.
    if let Some(s) = in_eog(vocab, &eog, "</s>") {
        if in_eog(vocab, &eog, "<|tool_response>").is_some() {
            eog.retain(|&id| id != s);
            vocab.types[s as usize] = TokenType::Normal;
        }
    }
    Ok(eog)
}
