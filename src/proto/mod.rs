//! TensorFlow's file formats at the byte level: its protobuf messages ([`tf`]), its dtype
//! numbering and the masked CRC-32C its records and tables carry.

pub mod tf;

use crate::DType;

/// TF's `DataType` number of a dtype (`DT_FLOAT` = 1, ...).
pub fn dtype_enum(d: DType) -> i32 {
    match d {
        DType::F32 => 1,
        DType::F64 => 2,
        DType::I32 => 3,
        DType::I64 => 9,
        DType::Bool => 10,
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
        4 => return Err("uint8".into()),
        5 => return Err("int16".into()),
        6 => return Err("int8".into()),
        7 => return Err("string".into()),
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
