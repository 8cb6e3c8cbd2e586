//! A Hugging Face checkpoint's weights: `model.safetensors`, or the shards that
//! `model.safetensors.index.json` names, memory-mapped and checked before any tensor is used.
//!
//! Each shard's header is validated by the `safetensors` crate (its length, UTF-8 JSON, offsets
//! that tile the data exactly, sizes that match dtype × shape, and a file that ends where the
//! last tensor does). On top of that: an index may name only plain file names in the
//! directory, and every shard it names must exist and hold exactly the tensors it assigns
//! there. Nothing is read beyond the headers until a tensor is asked for,
//! and nothing is allocated beyond what the files hold.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

/// Why a checkpoint cannot be used. Each names the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: neither model.safetensors nor model.safetensors.index.json is there")]
    NoWeights(PathBuf),
    #[error("{path}: not a valid safetensors file: {reason}")]
    BadShard { path: PathBuf, reason: String },
    #[error("{path}: not a valid shard index: {reason}")]
    BadIndex { path: PathBuf, reason: String },
    #[error("tensor {name:?}: {reason}")]
    Tensor { name: String, reason: String },
}

/// Where one tensor's bytes are.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    shard: usize,
    /// Byte range in the shard's file.
    start: usize,
    end: usize,
}

pub struct Checkpoint {
    shards: Vec<(String, Mmap)>,
    tensors: BTreeMap<String, TensorEntry>,
}

impl Checkpoint {
    /// The weights of the checkpoint in `dir`.
    pub fn open(dir: &Path) -> Result<Checkpoint, CheckpointError> {
        let index_path = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        // Which shard each tensor is in, by the index (None: one file, whatever it holds).
        let (files, assigned): (Vec<String>, Option<HashMap<String, String>>) =
            if index_path.is_file() {
                let map = read_index(&index_path)?;
                let mut files: Vec<String> = map.values().cloned().collect();
                files.sort();
                files.dedup();
                (files, Some(map))
            } else if single.is_file() {
                (vec!["model.safetensors".into()], None)
            } else {
                return Err(CheckpointError::NoWeights(dir.to_path_buf()));
            };
        Checkpoint::from_files(dir, &files, assigned.as_ref(), &index_path)
    }

    /// One safetensors file (a LoRA adapter's `adapter_model.safetensors`).
    pub fn open_file(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.ok_or_else(|| CheckpointError::NoWeights(path.to_path_buf()))?;
        if !path.is_file() {
            return Err(CheckpointError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "missing"),
            });
        }
        Checkpoint::from_files(dir, &[name], None, path)
    }

    /// The files `files` of `dir`, each tensor in the shard `assigned` gives it (if given, by
    /// the index at `index_path`).
    fn from_files(
        dir: &Path,
        files: &[String],
        assigned: Option<&HashMap<String, String>>,
        index_path: &Path,
    ) -> Result<Checkpoint, CheckpointError> {
        let mut checkpoint = Checkpoint {
            shards: Vec::with_capacity(files.len()),
            tensors: BTreeMap::new(),
        };
        for (i, file) in files.iter().enumerate() {
            let path = dir.join(file);
            let io = |source| CheckpointError::Io {
                path: path.clone(),
                source,
            };
            let f = File::open(&path).map_err(io)?;
            // SAFETY: the map is read-only and kept for the checkpoint's life; a file changed
            // underneath it by another process is outside what Ward defends against (the same
            // holds for the GGUF files it maps).
            let map = unsafe { Mmap::map(&f) }.map_err(io)?;
            let (header_len, metadata) =
                SafeTensors::read_metadata(&map).map_err(|e| CheckpointError::BadShard {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            let base = 8 + header_len;
            for (name, info) in metadata.tensors() {
                if let Some(map) = assigned {
                    if map.get(&name) != Some(file) {
                        return Err(CheckpointError::BadIndex {
                            path: index_path.to_path_buf(),
                            reason: format!(
                                "{file} holds tensor {name:?}, which it does not assign there"
                            ),
                        });
                    }
                }
                let entry = TensorEntry {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    shard: i,
                    start: base + info.data_offsets.0,
                    end: base + info.data_offsets.1,
                };
                // One shard per name: the index assigns each to one, and a header's names are
                // unique (its offsets would not tile the data otherwise).
                checkpoint.tensors.insert(name, entry);
            }
            checkpoint.shards.push((file.clone(), map));
        }
        if let Some(map) = assigned {
            if let Some((name, file)) = map
                .iter()
                .find(|(n, _)| !checkpoint.tensors.contains_key(*n))
            {
                return Err(CheckpointError::BadIndex {
                    path: index_path.to_path_buf(),
                    reason: format!(
                        "tensor {name:?} is assigned to {file}, which does not hold it"
                    ),
                });
            }
        }
        Ok(checkpoint)
    }

    /// Every tensor's name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// The weight files, in file-name order.
    pub fn shard_files(&self) -> impl Iterator<Item = &str> {
        self.shards.iter().map(|(f, _)| f.as_str())
    }

    /// Every tensor's name, shard by shard (shards in file-name order), sorted within each:
    /// the order llama.cpp's converter writes them in.
    pub fn names_in_file_order(&self) -> impl Iterator<Item = &str> {
        (0..self.shards.len()).flat_map(move |shard| {
            self.tensors
                .iter()
                .filter(move |(_, e)| e.shard == shard)
                .map(|(name, _)| name.as_str())
        })
    }

    pub fn entry(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.get(name)
    }

    /// A tensor's raw bytes, as the file holds them (little-endian).
    pub fn bytes(&self, entry: &TensorEntry) -> &[u8] {
        &self.shards[entry.shard].1[entry.start..entry.end]
    }

    /// A floating-point tensor (F32, F16 or BF16) as f32 values, checked to have `shape`.
    pub fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, CheckpointError> {
        let bad = |reason: String| CheckpointError::Tensor {
            name: name.to_string(),
            reason,
        };
        let entry = self.entry(name).ok_or_else(|| bad("missing".into()))?;
        if entry.shape != shape {
            return Err(bad(format!("shape {:?}, expected {shape:?}", entry.shape)));
        }
        let mut out = vec![0.0; entry.shape.iter().product()];
        decode_f32(entry.dtype, self.bytes(entry), &mut out).ok_or_else(|| {
            bad(format!(
                "dtype {:?}; Ward reads F32, F16 and BF16",
                entry.dtype
            ))
        })?;
        Ok(out)
    }
}

/// A float tensor's little-endian `bytes` (F32, F16 or BF16) as f32 values into `out`; `None`
/// for any other dtype.
pub fn decode_f32(dtype: Dtype, bytes: &[u8], out: &mut [f32]) -> Option<()> {
    match dtype {
        Dtype::F32 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        Dtype::F16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        Dtype::BF16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::bf16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        _ => return None,
    }
    Some(())
}

/// `weight_map` of a shard index: tensor name → shard file, each a plain file name.
fn read_index(path: &Path) -> Result<HashMap<String, String>, CheckpointError> {
    let bad = |reason: String| CheckpointError::BadIndex {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let index: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let map = index
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("no \"weight_map\" object".into()))?;
    map.iter()
        .map(|(name, file)| {
            let file = file
                .as_str()
                .ok_or_else(|| bad(format!("tensor {name:?}'s shard is not a file name")))?;
            // A shard is a file beside the index, never a path elsewhere.
            let plain = !file.is_empty()
                && !file.contains(['/', '\\'])
                && file != "."
                && file != ".."
                && file.ends_with(".safetensors");
            if !plain {
                return Err(bad(format!(
                    "tensor {name:?}'s shard {file:?} is not a .safetensors file in this directory"
                )));
            }
            Ok((name.clone(), file.to_string()))
        })
        .collect()
}
