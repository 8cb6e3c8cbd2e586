//! Parsing and validating a GGUF file held in memory (normally a memory map).
//!
//! Every count, length and offset read from the file is checked against the bytes that remain
//! before anything is allocated, so a hostile or truncated file yields a [`GgufError`] naming
//! the problem and never a panic or an allocation larger than the file itself.

use std::collections::{BTreeMap, HashSet};

use super::types::GgmlType;
use super::value::{Array, Value, ValueType};
use super::GgufError;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most four dimensions.
const MAX_DIMS: u32 = 4;

/// Where one tensor's data lives and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the contiguous (row) dimension.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset from the start of the data section.
    pub offset: u64,
    pub n_bytes: u64,
}

/// The parsed header of a GGUF file: metadata, tensor directory and where the data starts.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute file offset of the tensor data section.
    pub data_offset: u64,
}

/// A bounds-checked little-endian reader over the file bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                what: what.to_string(),
                offset: self.pos as u64,
            });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count that is about to size an allocation: it must fit in what is left of the file
    /// given that every element takes at least `min_elem_bytes`.
    fn count(&mut self, what: &str, min_elem_bytes: usize) -> Result<usize, GgufError> {
        let at = self.pos as u64;
        let n = self.u64(what)?;
        let fits = (self.remaining() / min_elem_bytes.max(1)) as u64;
        if n > fits {
            return Err(GgufError::CountTooLarge {
                what: what.to_string(),
                count: n,
                offset: at,
            });
        }
        Ok(n as usize)
    }

    fn bool(&mut self, key: &str) -> Result<bool, GgufError> {
        let at = self.pos as u64;
        match self.array::<1>(key)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(GgufError::InvalidBool {
                key: key.to_string(),
                byte,
                offset: at,
            }),
        }
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let at = self.pos as u64;
        let len = self.count(what, 1)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::InvalidUtf8 {
            what: what.to_string(),
            offset: at,
        })
    }

    fn value_type(&mut self, what: &str) -> Result<ValueType, GgufError> {
        let at = self.pos as u64;
        let raw = self.u32(what)?;
        ValueType::from_u32(raw).ok_or(GgufError::UnknownValueType {
            what: what.to_string(),
            raw,
            offset: at,
        })
    }

    fn value(&mut self, ty: ValueType, key: &str) -> Result<Value, GgufError> {
        let v = match ty {
            ValueType::U8 => Value::U8(self.array::<1>(key)?[0]),
            ValueType::I8 => Value::I8(self.array::<1>(key)?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(key)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(key)?)),
            ValueType::U32 => Value::U32(self.u32(key)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(key)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(key)?)),
            ValueType::U64 => Value::U64(self.u64(key)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(key)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(key)?)),
            ValueType::Bool => Value::Bool(self.bool(key)?),
            ValueType::String => Value::String(self.string(key)?),
            ValueType::Array => Value::Array(self.array_value(key)?),
        };
        Ok(v)
    }

    fn array_value(&mut self, key: &str) -> Result<Array, GgufError> {
        let elem = self.value_type(key)?;
        if elem == ValueType::Array {
            return Err(GgufError::NestedArray {
                key: key.to_string(),
            });
        }
        // A string element is at least its 8-byte length.
        let min = if elem == ValueType::String {
            8
        } else {
            elem.fixed_size()
        };
        let n = self.count(key, min)?;
        macro_rules! fixed {
            ($variant:ident, $ty:ty) => {{
                let raw = self.take(n * std::mem::size_of::<$ty>(), key)?;
                Array::$variant(
                    raw.chunks_exact(std::mem::size_of::<$ty>())
                        .map(|c| <$ty>::from_le_bytes(c.try_into().expect("chunk size")))
                        .collect(),
                )
            }};
        }
        Ok(match elem {
            ValueType::U8 => Array::U8(self.take(n, key)?.to_vec()),
            ValueType::I8 => Array::I8(self.take(n, key)?.iter().map(|&b| b as i8).collect()),
            ValueType::U16 => fixed!(U16, u16),
            ValueType::I16 => fixed!(I16, i16),
            ValueType::U32 => fixed!(U32, u32),
            ValueType::I32 => fixed!(I32, i32),
            ValueType::F32 => fixed!(F32, f32),
            ValueType::U64 => fixed!(U64, u64),
            ValueType::I64 => fixed!(I64, i64),
            ValueType::F64 => fixed!(F64, f64),
            ValueType::Bool => {
                Array::Bool((0..n).map(|_| self.bool(key)).collect::<Result<_, _>>()?)
            }
            ValueType::String => {
                // Each `String` takes 24 bytes in memory against at least 8 on disk: keep even
                // this one allocation no larger than the file.
                if n.saturating_mul(std::mem::size_of::<String>()) > self.bytes.len() {
                    return Err(GgufError::CountTooLarge {
                        what: key.to_string(),
                        count: n as u64,
                        offset: self.pos as u64,
                    });
                }
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(self.string(key)?);
                }
                Array::String(out)
            }
            ValueType::Array => unreachable!("rejected above"),
        })
    }
}

/// Parse and validate the header and tensor directory of a GGUF file.
pub fn parse(bytes: &[u8]) -> Result<GgufHeader, GgufError> {
    let mut c = Cursor { bytes, pos: 0 };
    let magic = c.array::<4>("magic")?;
    if &magic != MAGIC {
        return Err(GgufError::BadMagic(magic));
    }
    let version = c.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::UnsupportedVersion(version));
    }
    // A tensor entry takes at least 8 (name) + 4 (n_dims) + 4 (type) + 8 (offset) bytes,
    // a metadata entry at least 8 (key) + 4 (type) + 1 byte.
    let n_tensors = c.count("tensor count", 24)?;
    let n_kv = c.count("metadata count", 13)?;

    let mut metadata = BTreeMap::new();
    for i in 0..n_kv {
        let key = c.string(&format!("metadata key #{i}"))?;
        let ty = c.value_type(&key)?;
        let value = c.value(ty, &key)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(GgufError::DuplicateKey(key));
        }
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Value::U32(a)) => u64::from(*a),
        Some(other) => {
            return Err(GgufError::WrongType {
                key: "general.alignment".into(),
                expected: "u32",
                found: other.type_name(),
            })
        }
    };
    if alignment == 0 || !alignment.is_power_of_two() {
        return Err(GgufError::BadAlignment(alignment));
    }

    // Grow the directory as entries parse instead of trusting the count for one big reservation.
    let mut tensors =
        Vec::with_capacity(n_tensors.min(bytes.len() / std::mem::size_of::<TensorInfo>()));
    let mut names = HashSet::with_capacity(tensors.capacity());
    for i in 0..n_tensors {
        let name = c.string(&format!("tensor #{i} name"))?;
        let n_dims = c.u32(&name)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(GgufError::BadDims { name, n_dims });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(c.u64(&name)?);
        }
        let raw_type = c.u32(&name)?;
        let ggml_type =
            GgmlType::from_id(raw_type).ok_or_else(|| GgufError::UnknownTensorType {
                name: name.clone(),
                raw: raw_type,
            })?;
        let offset = c.u64(&name)?;
        if offset % alignment != 0 {
            return Err(GgufError::MisalignedTensor {
                name,
                offset,
                alignment,
            });
        }
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n > 0 && n <= i64::MAX as u64)
            .ok_or_else(|| GgufError::BadShape {
                name: name.clone(),
                dims: dims.clone(),
            })?;
        let n_bytes =
            ggml_type
                .byte_size(dims[0], n_elements)
                .ok_or_else(|| GgufError::NotWholeBlocks {
                    name: name.clone(),
                    ggml_type: ggml_type.name,
                    ne0: dims[0],
                })?;
        if !names.insert(name.clone()) {
            return Err(GgufError::DuplicateTensor(name));
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            n_bytes,
        });
    }

    let data_offset = (c.pos as u64).div_ceil(alignment) * alignment;
    let data_len = (bytes.len() as u64)
        .checked_sub(data_offset)
        .ok_or(GgufError::Truncated {
            what: "tensor data section".into(),
            offset: bytes.len() as u64,
        })?;
    check_tensor_extents(&tensors, data_len)?;

    Ok(GgufHeader {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}

/// Every tensor must lie inside the data section and no two may share bytes.
fn check_tensor_extents(tensors: &[TensorInfo], data_len: u64) -> Result<(), GgufError> {
    for t in tensors {
        let end = t.offset.checked_add(t.n_bytes);
        if end.is_none_or(|e| e > data_len) {
            return Err(GgufError::TensorOutOfBounds {
                name: t.name.clone(),
                offset: t.offset,
                n_bytes: t.n_bytes,
                data_len,
            });
        }
    }
    let mut by_offset: Vec<&TensorInfo> = tensors.iter().collect();
    by_offset.sort_by_key(|t| t.offset);
    for pair in by_offset.windows(2) {
        if pair[0].offset + pair[0].n_bytes > pair[1].offset {
            return Err(GgufError::OverlappingTensors(
                pair[0].name.clone(),
                pair[1].name.clone(),
            ));
        }
    }
    Ok(())
}
