//! numpy's `.npy` files (via `ndarray-npy`), so feeds and results move to and from Python.

use super::{read_file, write_atomic};
use crate::{Error, Result, Value};
use ndarray::ArrayD;
use ndarray_npy::{ReadNpyExt, WriteNpyExt};
use std::path::Path;

/// The array in the `.npy` file at `path`: float32, float64, int32, int64 or bool, C order.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Value> {
    let path = path.as_ref();
    read_npy_bytes(&read_file(path)?, path)
}

/// Checks what `ndarray-npy` would allocate before it does: the header's declared length and
/// the array's size must fit in the file (a forged header once made it allocate 3.6 GB).
fn precheck(b: &[u8]) -> std::result::Result<(), String> {
    if !b.starts_with(b"\x93NUMPY") || b.len() < 10 {
        return Err("no .npy magic (\\x93NUMPY) at its start".into());
    }
    let (len, start) = match b[6] {
        1 => (usize::from(u16::from_le_bytes([b[8], b[9]])), 10usize),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        v => return Err(format!("format version {v} (1, 2 or 3 are read)")),
    };
    let end = start.checked_add(len).filter(|&e| e <= b.len()).ok_or("its header is longer than the file")?;
    let header = std::str::from_utf8(&b[start..end]).map_err(|_| "its header is not text")?;
    let field = |key: &str| header.split_once(key).map(|(_, rest)| rest);
    let dims = field("'shape':")
        .and_then(|r| r.split_once('(')?.1.split_once(')'))
        .map(|(dims, _)| dims)
        .ok_or("its header has no shape")?;
    let count = dims
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .try_fold(1usize, |n, d| n.checked_mul(d.parse::<usize>().ok()?))
        .ok_or("its shape is not a tuple of sizes that fits in memory")?;
    let item: usize = field("'descr':")
        .and_then(|r| r.split('\'').nth(1))
        .map(|d| d.chars().filter(char::is_ascii_digit).collect::<String>())
        .and_then(|d| d.parse().ok())
        .unwrap_or(1);
    match count.checked_mul(item) {
        Some(n) if n <= b.len() - end => Ok(()),
        _ => Err(format!("its shape ({dims}) holds more than the {} bytes after the header", b.len() - end)),
    }
}

/// [`read_npy`] from a file's bytes (`path` only names it in errors).
pub fn read_npy_bytes(bytes: &[u8], path: &Path) -> Result<Value> {
    precheck(bytes).map_err(|detail| Error::BadFile { path: path.display().to_string(), detail })?;
    fn attempt<T: ndarray_npy::ReadableElement>(bytes: &[u8]) -> Option<ArrayD<T>> {
        ArrayD::<T>::read_npy(bytes).ok()
    }
    let value = attempt::<f32>(bytes)
        .map(Value::from)
        .or_else(|| attempt::<f64>(bytes).map(Value::from))
        .or_else(|| attempt::<i32>(bytes).map(Value::from))
        .or_else(|| attempt::<i64>(bytes).map(Value::from))
        .or_else(|| attempt::<bool>(bytes).map(Value::from));
    value.ok_or_else(|| {
        // The float32 attempt's error says what is wrong (header, dtype, length).
        let why = ArrayD::<f32>::read_npy(bytes).err().map_or_else(String::new, |e| e.to_string());
        Error::BadFile {
            path: path.display().to_string(),
            detail: format!("not a .npy file of float32, float64, int32, int64 or bool ({why})"),
        }
    })
}

/// Writes `value` to `path` as `.npy`, atomically.
pub fn write_npy(path: impl AsRef<Path>, value: &Value) -> Result<()> {
    let path = path.as_ref();
    let mut bytes = Vec::new();
    let r = match value {
        Value::F32(a) => a.write_npy(&mut bytes),
        Value::F64(a) => a.write_npy(&mut bytes),
        Value::I32(a) => a.write_npy(&mut bytes),
        Value::I64(a) => a.write_npy(&mut bytes),
        Value::Bool(a) => a.write_npy(&mut bytes),
        Value::String(_) => {
            let detail = "string tensors have no .npy form here".to_string();
            return Err(Error::BadFile { path: path.display().to_string(), detail });
        }
    };
    r.map_err(|e| Error::BadFile { path: path.display().to_string(), detail: e.to_string() })?;
    write_atomic(path, &bytes)
}
