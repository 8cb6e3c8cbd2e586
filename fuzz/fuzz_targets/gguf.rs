//! A GGUF file as the model loader reads it: parsed and validated, its metadata and tensor
//! directory walked, then its tokenizer, its hyper-parameters and its weights loaded, as
//! `LoadedModel::load` does (the chat template has the template target). Any input must give a
//! model or an error: never a panic, a hang or an allocation beyond the file's size.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ward_models::gguf::GgufFile;
use ward_models::{arch, StreamDecoder, Tokenizer};

fuzz_target!(|data: &[u8]| {
    let Ok(gguf) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    walk(&gguf);
    let tokenizer = Tokenizer::from_gguf(&gguf);
    if let Ok(tok) = &tokenizer {
        use_tokenizer(tok);
    }
    // The hyper-parameters, then every weight, read and repacked for the kernels.
    let _ = arch::load(&gguf);
    let _ = gguf.get_str("tokenizer.chat_template");
});

/// Every metadata value and tensor the header describes is there to read.
fn walk(gguf: &GgufFile) {
    for (key, value) in gguf.metadata() {
        let _ = (
            gguf.get(key),
            value.type_name(),
            value.as_u64(),
            value.as_f64(),
        );
    }
    for info in &gguf.header.tensors {
        assert_eq!(gguf.tensor_info(&info.name), Some(info));
        assert_eq!(gguf.tensor_bytes(info).len() as u64, info.n_bytes);
    }
}

/// A vocabulary from a hostile file must tokenize and detokenize without panicking too.
fn use_tokenizer(tok: &Tokenizer) {
    let text = "Hello wörld  <s></s><|im_end|> 123456 \u{10FFFD}7\u{10FFFD} 🩺\t\n";
    let ids = tok.encode(text, true);
    let _ = tok.encode_caller(text, true, false, 8);
    let escaped = tok.escape_controls(text);
    let _ = tok.encode_escaped(&escaped, usize::MAX);
    let n = (tok.vocab().len() as u32).min(300);
    let all: Vec<u32> = (0..n).chain(ids).collect();
    let _ = tok.decode(&all, true);
    let mut stream = StreamDecoder::new();
    for &id in &all {
        stream.push(tok, id);
    }
    stream.finish();
}
