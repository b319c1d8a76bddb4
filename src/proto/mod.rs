//! TensorFlow's file formats at the byte level: its protobuf messages ([`tf`]), its dtype
//! numbering and the masked CRC-32C its records and tables carry.

pub mod onnx;
pub mod tf;

use crate::{DType, Value};
use ndarray::{ArrayD, IxDyn};

/// TF's `DataType` number of a dtype (`DT_FLOAT` = 1, ...).
pub fn dtype_enum(d: DType) -> i32 {
    match d {
        DType::F32 => 1,
        DType::F64 => 2,
        DType::I32 => 3,
        DType::I64 => 9,
        DType::Bool => 10,
        DType::String => 7,
    }
}

/// The dtype of TF's `DataType` number `n`, or TF's name for one tensorgraph lacks.
pub fn dtype_from_enum(n: i32) -> Result<DType, String> {
    Ok(match n {
        1 => DType::F32,
        2 => DType::F64,
        3 => DType::I32,
        9 => DType::I64,
        10 => DType::Bool,
        7 => DType::String,
        4 => return Err("uint8".into()),
        5 => return Err("int16".into()),
        6 => return Err("int8".into()),
        8 => return Err("complex64".into()),
        14 => return Err("bfloat16".into()),
        19 => return Err("float16".into()),
        n if n > 100 => return Err(format!("a reference type ({})", n - 100)),
        n => return Err(format!("DataType {n}")),
    })
}

/// CRC-32C masked as TF's records and tables store it (so a CRC of data holding CRCs does not
/// degenerate).
pub fn masked_crc32c(data: &[u8]) -> u32 {
    mask(crc32c::crc32c(data))
}

/// TF's mask of a CRC-32C.
pub fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// A value's elements as little-endian bytes (TF's tensor content and checkpoint data). Strings
/// have no such form (TF keeps them in `string_val`): they append nothing, and the writers
/// check for them first.
pub fn append_le_bytes(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::F32(a) => a.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Value::F64(a) => a.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Value::I32(a) => a.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Value::I64(a) => a.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Value::Bool(a) => out.extend(a.iter().map(|&b| u8::from(b))),
        Value::String(_) => {}
    }
}

/// A value of `dtype` and `shape` from little-endian bytes; the error says what does not fit.
pub fn from_le_bytes(dtype: DType, shape: &[usize], bytes: &[u8]) -> std::result::Result<Value, String> {
    let count = tensorgraph_graph::checked_len(shape)?;
    let width = match dtype {
        DType::F32 | DType::I32 => 4,
        DType::F64 | DType::I64 => 8,
        DType::Bool => 1,
        DType::String => return Err("strings are not stored as raw bytes".into()),
    };
    if count.checked_mul(width) != Some(bytes.len()) {
        return Err(format!("{} bytes for {count} elements of {dtype}", bytes.len()));
    }
    fn array<T, const N: usize>(shape: &[usize], bytes: &[u8], f: impl Fn([u8; N]) -> T) -> ArrayD<T> {
        let v = bytes.chunks_exact(N).map(|b| f(b.try_into().expect("chunks of N bytes"))).collect();
        ArrayD::from_shape_vec(IxDyn(shape), v).expect("count checked")
    }
    Ok(match dtype {
        DType::F32 => Value::F32(array(shape, bytes, f32::from_le_bytes)),
        DType::F64 => Value::F64(array(shape, bytes, f64::from_le_bytes)),
        DType::I32 => Value::I32(array(shape, bytes, i32::from_le_bytes)),
        DType::I64 => Value::I64(array(shape, bytes, i64::from_le_bytes)),
        DType::Bool => {
            if let Some(b) = bytes.iter().find(|&&b| b > 1) {
                return Err(format!("a bool byte of {b}"));
            }
            Value::Bool(array(shape, bytes, |[b]: [u8; 1]| b != 0))
        }
        DType::String => unreachable!("refused above"),
    })
}
