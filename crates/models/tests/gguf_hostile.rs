//! Malformed and hostile GGUF files give errors naming the problem: never a panic, never a huge
//! allocation.

mod common;

use ward_models::gguf::writer::{write_gguf, TensorToWrite};
use ward_models::gguf::{parse, Array, GgmlType, GgufError, GgufFile, Value};
use ward_models::HParams;

fn f32_tensor(name: &str, dims: &[u64]) -> TensorToWrite {
    let n: u64 = dims.iter().product();
    TensorToWrite::f32(name, dims, (0..n).map(|i| i as f32 * 0.01))
}

fn valid_file() -> Vec<u8> {
    write_gguf(
        &[
            ("general.architecture", Value::String("llama".into())),
            ("general.alignment", Value::U32(32)),
            (
                "tokenizer.ggml.tokens",
                Value::Array(Array::String(vec!["a".into(), "b".into(), "c".into()])),
            ),
            ("llama.block_count", Value::U32(1)),
        ],
        &[f32_tensor("first", &[8, 2]), f32_tensor("second", &[4])],
    )
}

/// Byte offset of the first occurrence of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

#[test]
fn valid_file_parses() {
    let bytes = valid_file();
    let h = parse(&bytes).unwrap();
    assert_eq!(h.tensors.len(), 2);
    assert_eq!(h.tensors[0].n_bytes, 64);
    assert_eq!(h.data_offset % 32, 0);
    let f = GgufFile::from_bytes(bytes).unwrap();
    assert_eq!(f.get_str("general.architecture").unwrap(), Some("llama"));
    let t = f.tensor_info("second").unwrap();
    assert_eq!(f.tensor_bytes(t).len(), 16);
}

#[test]
fn truncation_at_every_offset_is_an_error() {
    let bytes = valid_file();
    let h = parse(&bytes).unwrap();
    // Past the end of the last tensor only alignment padding is cut, which is harmless.
    let data_end = h
        .tensors
        .iter()
        .map(|t| h.data_offset + t.offset + t.n_bytes)
        .max()
        .unwrap() as usize;
    assert!(parse(&bytes[..data_end]).is_ok());
    for len in 0..data_end {
        match parse(&bytes[..len]) {
            Err(
                GgufError::Truncated { .. }
                | GgufError::CountTooLarge { .. }
                | GgufError::TensorOutOfBounds { .. },
            ) => {}
            other => panic!("truncated at {len}: unexpected {other:?}"),
        }
    }
}

#[test]
fn bad_magic_and_version() {
    let mut b = valid_file();
    b[0] = b'X';
    assert!(matches!(parse(&b), Err(GgufError::BadMagic(_))));
    let mut b = valid_file();
    b[4..8].copy_from_slice(&99u32.to_le_bytes());
    assert!(matches!(parse(&b), Err(GgufError::UnsupportedVersion(99))));
}

#[test]
fn huge_counts_are_rejected_before_allocating() {
    for (at, what) in [(8usize, "tensor count"), (16, "metadata count")] {
        let mut b = valid_file();
        b[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        match parse(&b) {
            Err(GgufError::CountTooLarge { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{what}: {other:?}"),
        }
    }
    // A string length and an array length far past the end of the file.
    let mut b = valid_file();
    let key = find(&b, b"general.architecture");
    b[key - 8..key].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(matches!(parse(&b), Err(GgufError::CountTooLarge { .. })));
    let mut b = valid_file();
    let arr = find(&b, b"tokenizer.ggml.tokens") + "tokenizer.ggml.tokens".len() + 4 + 4;
    b[arr..arr + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert!(matches!(parse(&b), Err(GgufError::CountTooLarge { .. })));
}

fn with_alignment(a: u32) -> Vec<u8> {
    write_gguf(
        &[("general.alignment", Value::U32(a))],
        &[f32_tensor("t", &[8])],
    )
}

#[test]
fn bad_alignment() {
    assert!(matches!(
        parse(&with_alignment(0)),
        Err(GgufError::BadAlignment(0))
    ));
    assert!(matches!(
        parse(&with_alignment(24)),
        Err(GgufError::BadAlignment(24))
    ));
    let wrong_type = write_gguf(&[("general.alignment", Value::String("32".into()))], &[]);
    assert!(matches!(
        parse(&wrong_type),
        Err(GgufError::WrongType { .. })
    ));
}

/// Offset of the `offset` field of tensor `name` in the directory.
fn tensor_offset_field(b: &[u8], name: &str, n_dims: usize) -> usize {
    find(b, name.as_bytes()) + name.len() + 4 + 8 * n_dims + 4
}

#[test]
fn out_of_range_misaligned_and_overlapping_tensors() {
    let b = valid_file();
    let at = tensor_offset_field(&b, "second", 1);
    let mut far = b.clone();
    far[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(
        matches!(parse(&far), Err(GgufError::TensorOutOfBounds { name, .. }) if name == "second")
    );
    let mut wrap = b.clone();
    wrap[at..at + 8].copy_from_slice(&(u64::MAX - 31).to_le_bytes());
    assert!(matches!(
        parse(&wrap),
        Err(GgufError::TensorOutOfBounds { .. })
    ));
    let mut misaligned = b.clone();
    misaligned[at..at + 8].copy_from_slice(&4u64.to_le_bytes());
    assert!(matches!(
        parse(&misaligned),
        Err(GgufError::MisalignedTensor { .. })
    ));
    let mut overlap = b.clone();
    overlap[at..at + 8].copy_from_slice(&32u64.to_le_bytes());
    assert!(matches!(
        parse(&overlap),
        Err(GgufError::OverlappingTensors(..))
    ));
}

#[test]
fn bad_shapes_and_types() {
    let b = valid_file();
    let name_at = find(&b, b"first") + 5;
    // n_dims = 9
    let mut many = b.clone();
    many[name_at..name_at + 4].copy_from_slice(&9u32.to_le_bytes());
    assert!(matches!(
        parse(&many),
        Err(GgufError::BadDims { n_dims: 9, .. })
    ));
    // dims whose product overflows
    let mut huge = b.clone();
    huge[name_at + 4..name_at + 12].copy_from_slice(&(1u64 << 62).to_le_bytes());
    huge[name_at + 12..name_at + 20].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(matches!(parse(&huge), Err(GgufError::BadShape { .. })));
    // zero dim
    let mut zero = b.clone();
    zero[name_at + 4..name_at + 12].copy_from_slice(&0u64.to_le_bytes());
    assert!(matches!(parse(&zero), Err(GgufError::BadShape { .. })));
    // unknown tensor type
    let mut ty = b.clone();
    ty[name_at + 20..name_at + 24].copy_from_slice(&77u32.to_le_bytes());
    assert!(matches!(
        parse(&ty),
        Err(GgufError::UnknownTensorType { raw: 77, .. })
    ));
    // Q8_0 with a row length that is not a whole number of 32-element blocks
    let q = write_gguf(
        &[],
        &[TensorToWrite {
            name: "q".into(),
            dims: vec![33],
            ggml_type: GgmlType::from_name("Q8_0").unwrap(),
            data: vec![0; 68],
        }],
    );
    assert!(matches!(parse(&q), Err(GgufError::NotWholeBlocks { .. })));
    // duplicate tensor names
    let dup = write_gguf(&[], &[f32_tensor("x", &[4]), f32_tensor("x", &[4])]);
    assert!(matches!(parse(&dup), Err(GgufError::DuplicateTensor(_))));
}

#[test]
fn bad_metadata_values() {
    let b = valid_file();
    let key = find(&b, b"general.architecture") + "general.architecture".len();
    let mut ty = b.clone();
    ty[key..key + 4].copy_from_slice(&42u32.to_le_bytes());
    assert!(matches!(
        parse(&ty),
        Err(GgufError::UnknownValueType { raw: 42, .. })
    ));
    let mut utf = b.clone();
    utf[key + 12] = 0xFF;
    assert!(matches!(parse(&utf), Err(GgufError::InvalidUtf8 { .. })));
    let nested = write_gguf(&[], &[]);
    let mut nested = nested;
    // Append one metadata entry by hand: key "k", type array of arrays.
    nested[16..24].copy_from_slice(&1u64.to_le_bytes());
    nested.truncate(24);
    nested.extend_from_slice(&1u64.to_le_bytes());
    nested.push(b'k');
    nested.extend_from_slice(&9u32.to_le_bytes());
    nested.extend_from_slice(&9u32.to_le_bytes());
    nested.extend_from_slice(&0u64.to_le_bytes());
    assert!(matches!(parse(&nested), Err(GgufError::NestedArray { .. })));
    let boolean = write_gguf(&[("flag", Value::Bool(true))], &[]);
    let mut boolean = boolean;
    let at = find(&boolean, b"flag") + 4 + 4;
    boolean[at] = 2;
    assert!(matches!(
        parse(&boolean),
        Err(GgufError::InvalidBool { byte: 2, .. })
    ));
    let dup = write_gguf(&[("k", Value::U8(1)), ("k", Value::U8(2))], &[]);
    assert!(matches!(parse(&dup), Err(GgufError::DuplicateKey(_))));
}

fn hparams_of(meta: Vec<(&str, Value)>) -> Result<HParams, GgufError> {
    HParams::from_gguf(&GgufFile::from_bytes(write_gguf(&meta, &[])).unwrap())
}

fn llama_meta() -> Vec<(&'static str, Value)> {
    vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.block_count", Value::U32(2)),
        ("llama.embedding_length", Value::U32(64)),
        ("llama.feed_forward_length", Value::U32(128)),
        ("llama.attention.head_count", Value::U32(4)),
        ("llama.attention.head_count_kv", Value::U32(2)),
        ("llama.context_length", Value::U32(256)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
    ]
}

#[test]
fn hyper_parameters_are_validated() {
    let hp = hparams_of(llama_meta()).unwrap();
    assert_eq!((hp.head_dim, hp.rope_dim, hp.n_head_kv), (16, 16, 2));
    let without = |key: &str| {
        llama_meta()
            .into_iter()
            .filter(|(k, _)| *k != key)
            .collect::<Vec<_>>()
    };
    assert!(
        matches!(hparams_of(without("llama.block_count")), Err(GgufError::MissingKey(k)) if k == "llama.block_count")
    );
    let set = |key: &str, v: Value| {
        let mut m = without(key);
        m.push((Box::leak(key.to_string().into_boxed_str()), v));
        hparams_of(m)
    };
    assert!(matches!(
        set("llama.attention.head_count_kv", Value::U32(3)),
        Err(GgufError::InvalidValue { .. })
    ));
    assert!(matches!(
        set("llama.block_count", Value::U32(0)),
        Err(GgufError::InvalidValue { .. })
    ));
    assert!(matches!(
        set("llama.block_count", Value::String("2".into())),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(
        set(
            "llama.attention.layer_norm_rms_epsilon",
            Value::F32(f32::NAN)
        ),
        Err(GgufError::InvalidValue { .. })
    ));
    assert!(matches!(
        set("general.architecture", Value::String("mamba".into())),
        Err(GgufError::InvalidValue { .. })
    ));
}

/// Gemma 3's attention scale follows llama.cpp: 1/√(n_embd / n_head) for the 27B (62 layers,
/// MedGemma 27B), 1/√head_dim for every other size (they differ only there).
#[test]
fn gemma3_27b_attention_scale_is_llama_cpps() {
    let gemma = |layers: u32| {
        hparams_of(vec![
            ("general.architecture", Value::String("gemma3".into())),
            ("gemma3.block_count", Value::U32(layers)),
            ("gemma3.embedding_length", Value::U32(5376)),
            ("gemma3.feed_forward_length", Value::U32(21504)),
            ("gemma3.attention.head_count", Value::U32(32)),
            ("gemma3.attention.head_count_kv", Value::U32(16)),
            ("gemma3.attention.key_length", Value::U32(128)),
            ("gemma3.attention.value_length", Value::U32(128)),
            ("gemma3.attention.sliding_window", Value::U32(1024)),
            ("gemma3.context_length", Value::U32(131072)),
            ("gemma3.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
        ])
        .unwrap()
    };
    assert_eq!(gemma(62).attn_scale, 1.0 / 168f32.sqrt());
    assert_eq!(gemma(48).attn_scale, 1.0 / 128f32.sqrt());
}

#[test]
fn truncated_real_model_is_an_error_at_every_cut() {
    let bytes = std::fs::read(common::model_path(common::SMOLLM2)).unwrap();
    let h = parse(&bytes).unwrap();
    let header_end = h.data_offset as usize;
    let cuts = [
        0,
        3,
        4,
        8,
        23,
        24,
        100,
        1_000,
        100_000,
        header_end / 2,
        header_end - 1,
        header_end,
        header_end + 4096,
    ];
    let cuts = cuts.into_iter().chain([bytes.len() / 2, bytes.len() - 1]);
    for len in cuts {
        let err = parse(&bytes[..len])
            .err()
            .unwrap_or_else(|| panic!("cut at {len} parsed"));
        assert!(!err.to_string().is_empty());
        assert!(
            matches!(
                err,
                GgufError::Truncated { .. }
                    | GgufError::CountTooLarge { .. }
                    | GgufError::TensorOutOfBounds { .. }
            ),
            "cut at {len}: {err}"
        );
    }
}
