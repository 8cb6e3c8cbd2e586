//! A minimal GGUF writer, used by tests to build hostile files and random-weight models, and by
//! [`crate::synthetic`] to stream benchmark-sized ones.

use super::types::GgmlType;
use super::value::{Array, Value, ValueType};

/// One tensor to write: its bytes must already be in the ggml layout of `ggml_type`.
pub struct TensorToWrite {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    pub data: Vec<u8>,
}

impl TensorToWrite {
    /// An F32 tensor holding `values` (row-major, `dims[0]` contiguous).
    pub fn f32(name: &str, dims: &[u64], values: impl IntoIterator<Item = f32>) -> TensorToWrite {
        TensorToWrite {
            name: name.into(),
            dims: dims.to_vec(),
            ggml_type: GgmlType::from_name("F32").expect("F32 is a ggml type"),
            data: values.into_iter().flat_map(f32::to_le_bytes).collect(),
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn value_type(v: &Value) -> ValueType {
    match v {
        Value::U8(_) => ValueType::U8,
        Value::I8(_) => ValueType::I8,
        Value::U16(_) => ValueType::U16,
        Value::I16(_) => ValueType::I16,
        Value::U32(_) => ValueType::U32,
        Value::I32(_) => ValueType::I32,
        Value::F32(_) => ValueType::F32,
        Value::Bool(_) => ValueType::Bool,
        Value::String(_) => ValueType::String,
        Value::Array(_) => ValueType::Array,
        Value::U64(_) => ValueType::U64,
        Value::I64(_) => ValueType::I64,
        Value::F64(_) => ValueType::F64,
    }
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_str(out, s),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Array(a) => put_array(out, a),
    }
}

fn put_array(out: &mut Vec<u8>, a: &Array) {
    macro_rules! each {
        ($vt:expr, $v:expr, $put:expr) => {{
            out.extend_from_slice(&$vt.to_u32().to_le_bytes());
            out.extend_from_slice(&($v.len() as u64).to_le_bytes());
            for x in $v {
                $put(&mut *out, x);
            }
        }};
    }
    match a {
        Array::U8(v) => each!(ValueType::U8, v, |o: &mut Vec<u8>, x: &u8| o.push(*x)),
        Array::I8(v) => each!(ValueType::I8, v, |o: &mut Vec<u8>, x: &i8| o.push(*x as u8)),
        Array::U16(v) => each!(ValueType::U16, v, |o: &mut Vec<u8>, x: &u16| o
            .extend_from_slice(&x.to_le_bytes())),
        Array::I16(v) => each!(ValueType::I16, v, |o: &mut Vec<u8>, x: &i16| o
            .extend_from_slice(&x.to_le_bytes())),
        Array::U32(v) => each!(ValueType::U32, v, |o: &mut Vec<u8>, x: &u32| o
            .extend_from_slice(&x.to_le_bytes())),
        Array::I32(v) => each!(ValueType::I32, v, |o: &mut Vec<u8>, x: &i32| o
            .extend_from_slice(&x.to_le_bytes())),
        Array::F32(v) => each!(ValueType::F32, v, |o: &mut Vec<u8>, x: &f32| o
            .extend_from_slice(&x.to_le_bytes())),
        Array::Bool(v) => each!(ValueType::Bool, v, |o: &mut Vec<u8>, x: &bool| o
            .push(u8::from(*x))),
        Array::String(v) => each!(ValueType::String, v, |o: &mut Vec<u8>, x: &String| put_str(
            o, x
        )),
        Array::U64(v) => each!(ValueType::U64, v, |o: &mut Vec<u8>, x: &u64| o
            .extend_from_slice(&x.to_le_bytes())),
        Array::I64(v) => each!(ValueType::I64, v, |o: &mut Vec<u8>, x: &i64| o
            .extend_from_slice(&x.to_le_bytes())),
        Array::F64(v) => each!(ValueType::F64, v, |o: &mut Vec<u8>, x: &f64| o
            .extend_from_slice(&x.to_le_bytes())),
    }
}

/// Alignment of the data section and of each tensor in it.
pub const ALIGN: usize = 32;

/// A tensor's entry in the header: its data follows in the data section, padded to [`ALIGN`].
pub struct TensorInfo<'a> {
    pub name: &'a str,
    pub dims: &'a [u64],
    pub ggml_type: GgmlType,
    pub bytes: usize,
}

/// The header of a GGUF v3 file (metadata in order, then the tensor infos), padded so the data
/// section starts right after it; the tensors' bytes must follow in the same order, each padded
/// to [`ALIGN`].
pub fn write_header(metadata: &[(&str, Value)], tensors: &[TensorInfo]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, v) in metadata {
        put_str(&mut out, key);
        out.extend_from_slice(&value_type(v).to_u32().to_le_bytes());
        put_value(&mut out, v);
    }
    let mut offset = 0usize;
    for t in tensors {
        put_str(&mut out, t.name);
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.ggml_type.id.to_le_bytes());
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        offset += t.bytes.div_ceil(ALIGN) * ALIGN;
    }
    out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
    out
}

/// Serialise a GGUF v3 file with the given metadata (in order) and tensors, aligned to 32 bytes.
pub fn write_gguf(metadata: &[(&str, Value)], tensors: &[TensorToWrite]) -> Vec<u8> {
    let infos: Vec<TensorInfo> = tensors
        .iter()
        .map(|t| TensorInfo {
            name: &t.name,
            dims: &t.dims,
            ggml_type: t.ggml_type,
            bytes: t.data.len(),
        })
        .collect();
    let mut out = write_header(metadata, &infos);
    for t in tensors {
        out.extend_from_slice(&t.data);
        out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
    }
    out
}
