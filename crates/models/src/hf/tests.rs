//! Checkpoints written here, whole and sharded, and hostile ones: each refused with an error
//! that names the file and the problem, never a panic or an allocation beyond the file.

use std::path::{Path, PathBuf};

use safetensors::{serialize, Dtype, View};

use super::{Checkpoint, CheckpointError};

struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        (&self.data[..]).into()
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn f32s(shape: &[usize], values: impl Fn(usize) -> f32) -> Raw {
    let n: usize = shape.iter().product();
    Raw {
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        data: (0..n).flat_map(|i| values(i).to_le_bytes()).collect(),
    }
}

fn file(tensors: &[(&str, &Raw)]) -> Vec<u8> {
    serialize(tensors.iter().map(|(n, r)| (n.to_string(), *r)), None).unwrap()
}

/// A fresh directory for this process (removed first).
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir()
        .join(format!("ward-hf-checkpoints-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::write(dir.join(name), data).unwrap();
}

/// A directory of these shards and this index.
fn sharded(name: &str, shards: &[(&str, &[u8])], index: &str) -> PathBuf {
    let d = dir(name);
    for (file, bytes) in shards {
        write(&d, file, bytes);
    }
    write(&d, "model.safetensors.index.json", index.as_bytes());
    d
}

fn refused(dir: &Path) -> String {
    match Checkpoint::open(dir) {
        Ok(_) => panic!("{} was accepted", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn one_file_and_shards_read_the_same() {
    let a = f32s(&[2, 3], |i| i as f32);
    let b = Raw {
        dtype: Dtype::BF16,
        shape: vec![4],
        data: [1.0f32, -2.0, 0.5, 3.0]
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
    };
    let c = Raw {
        dtype: Dtype::F16,
        shape: vec![2],
        data: [0.25f32, 8.0]
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
    };
    let whole = dir("whole");
    write(
        &whole,
        "model.safetensors",
        &file(&[("a", &a), ("b", &b), ("c", &c)]),
    );
    let sharded = dir("sharded");
    write(
        &sharded,
        "model-00001-of-00002.safetensors",
        &file(&[("a", &a)]),
    );
    write(
        &sharded,
        "model-00002-of-00002.safetensors",
        &file(&[("b", &b), ("c", &c)]),
    );
    write(
        &sharded,
        "model.safetensors.index.json",
        br#"{"metadata": {"total_size": 36}, "weight_map": {"a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}}"#,
    );
    for d in [whole, sharded] {
        let ck = Checkpoint::open(&d).unwrap();
        assert_eq!(ck.names().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(
            ck.f32("a", &[2, 3]).unwrap(),
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
        assert_eq!(ck.f32("b", &[4]).unwrap(), [1.0, -2.0, 0.5, 3.0]);
        assert_eq!(ck.f32("c", &[2]).unwrap(), [0.25, 8.0]);
        let e = ck.f32("a", &[3, 2]).unwrap_err().to_string();
        assert!(e.contains("shape [2, 3], expected [3, 2]"), "{e}");
        assert!(ck
            .f32("d", &[1])
            .unwrap_err()
            .to_string()
            .contains("missing"));
    }
}

#[test]
fn hostile_files_are_refused_with_the_file_and_the_reason() {
    let a = f32s(&[4], |i| i as f32);
    let good = file(&[("a", &a)]);
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&good[8..8 + header_len])
        .unwrap()
        .to_string();
    let with_header = |h: &str| {
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&good[8 + header_len..]);
        out
    };
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "model.safetensors"),
        (
            "cut-in-header",
            good[..good.len() / 2].to_vec(),
            "model.safetensors",
        ),
        (
            "cut-in-data",
            good[..good.len() - 1].to_vec(),
            "model.safetensors",
        ),
        ("huge-header-length", huge, "model.safetensors"),
        (
            "not-json",
            with_header(&"x".repeat(header.len())),
            "model.safetensors",
        ),
        // Offsets past the data, or of the wrong size for the dtype and shape.
        (
            "offsets-past-end",
            with_header(&header.replace("[0,16]", "[0,64]")),
            "model.safetensors",
        ),
        (
            "wrong-dtype",
            with_header(&header.replace("F32", "F64")),
            "model.safetensors",
        ),
        (
            "wrong-shape",
            with_header(&header.replace("[4]", "[5]")),
            "model.safetensors",
        ),
    ];
    for (name, bytes, names) in cases {
        let d = dir(name);
        write(&d, "model.safetensors", &bytes);
        let e = refused(&d);
        assert!(
            e.contains(names) && e.contains("not a valid safetensors file"),
            "{name}: {e}"
        );
    }
    // Shard indexes: a missing shard, a path out of the directory, a tensor the index puts in
    // another shard, one it names that no shard holds, the same tensor in two shards.
    let e = refused(&sharded(
        "missing-shard",
        &[("model-1.safetensors", &good)],
        r#"{"weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors"}}"#,
    ));
    assert!(e.contains("model-2.safetensors"), "{e}");
    for (index, says) in [
        (
            r#"{"weight_map": {"a": "../model-1.safetensors"}}"#,
            "not a .safetensors file in this directory",
        ),
        (
            r#"{"weight_map": {"a": "/etc/passwd"}}"#,
            "not a .safetensors file in this directory",
        ),
        (
            r#"{"weight_map": {"b": "model-1.safetensors"}}"#,
            "which it does not assign there",
        ),
        (r#"{"weights": {}}"#, "no \"weight_map\" object"),
        (r#"{"weight_map": {"a": 7}}"#, "not a file name"),
        ("[", "not JSON"),
    ] {
        let e = refused(&sharded(
            "bad-index",
            &[("model-1.safetensors", &good)],
            index,
        ));
        assert!(
            e.contains(says) && e.contains("model.safetensors.index.json"),
            "{index}: {e}"
        );
    }
    let d = sharded(
        "assigned-not-held",
        &[
            ("model-1.safetensors", &good),
            ("model-2.safetensors", &file(&[("b", &a)])),
        ],
        r#"{"weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors",
                           "c": "model-2.safetensors"}}"#,
    );
    assert!(
        refused(&d).contains("\"c\" is assigned to model-2.safetensors, which does not hold it")
    );
    let d = dir("nothing");
    assert!(matches!(
        Checkpoint::open(&d),
        Err(CheckpointError::NoWeights(_))
    ));
    // A dtype Ward does not compute with is refused when the tensor is read.
    let d = dir("int-tensor");
    let ints = Raw {
        dtype: Dtype::I32,
        shape: vec![2],
        data: vec![0; 8],
    };
    write(&d, "model.safetensors", &file(&[("i", &ints)]));
    let e = Checkpoint::open(&d)
        .unwrap()
        .f32("i", &[2])
        .unwrap_err()
        .to_string();
    assert!(e.contains("I32") && e.contains("F32, F16 and BF16"), "{e}");
}
