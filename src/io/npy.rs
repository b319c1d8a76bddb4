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

/// [`read_npy`] from a file's bytes (`path` only names it in errors).
pub fn read_npy_bytes(bytes: &[u8], path: &Path) -> Result<Value> {
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
    };
    r.map_err(|e| Error::BadFile { path: path.display().to_string(), detail: e.to_string() })?;
    write_atomic(path, &bytes)
}
