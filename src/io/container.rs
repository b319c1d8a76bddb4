//! The container of every tensorgraph file: a fixed header, then a gzip-compressed bincode
//! payload.
//!
//! ```text
//! magic     8 bytes   b"TGRAPH\0\x01" or b"TGCKPT\0\x01" (what the file holds)
//! version   u32 LE    format version of the payload
//! length    u64 LE    bytes of the compressed payload that follow
//! raw       u64 LE    bytes of the payload once decompressed (bounds every allocation)
//! crc32     u32 LE    CRC-32 of the compressed payload
//! payload   gzip(bincode(T))
//! ```
//! Writes are atomic (see `io::write_atomic`).

use crate::{Error, Result};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{de::DeserializeOwned, Serialize};
use std::io::{Read, Write};
use std::path::Path;

/// What a file holds: its magic, the payload's format version, and a name for errors.
pub(crate) struct Format {
    pub magic: &'static [u8; 8],
    pub version: u32,
    pub what: &'static str,
}
const HEADER: usize = 8 + 4 + 8 + 8 + 4;
/// Largest payload a file may declare (decompressed): 16 GiB, far above any model here, so a
/// corrupted length cannot make us allocate without bound.
const MAX_RAW: u64 = 16 << 30;
/// Deflate expands at most 1032:1; a declared size beyond that of the compressed length is a lie
/// (a decompression bomb or damage), refused before any decompression.
const MAX_RATIO: u64 = 1032;

fn bad(path: &Path, detail: impl Into<String>) -> Error {
    Error::BadFile { path: path.display().to_string(), detail: detail.into() }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

/// bincode's error in words (its `Display` of a UTF-8 error is a Debug dump).
fn describe(e: bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError as D;
    match e {
        D::Utf8 { inner } => format!("a name is not valid UTF-8 ({inner})"),
        D::UnexpectedEnd { additional } => format!("the payload ends {additional} bytes early"),
        D::LimitExceeded => "a length inside the payload exceeds what its size allows".into(),
        D::UnexpectedVariant { type_name, found, .. } => format!("unknown {type_name} variant {found}"),
        D::InvalidBooleanValue(v) => format!("{v} is not a boolean"),
        D::InvalidCharEncoding(_) => "an invalid character".into(),
        other => format!("{other}").chars().filter(|c| !"{}".contains(*c)).collect(),
    }
}

/// Serialises `value` into `path` atomically.
pub(crate) fn write<T: Serialize>(path: &Path, format: &Format, value: &T) -> Result<()> {
    let raw = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| bad(path, format!("cannot encode: {}", e.to_string().replace(['{', '}'], ""))))?;
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&raw).map_err(io(path))?;
    let payload = gz.finish().map_err(io(path))?;
    let mut bytes = Vec::with_capacity(HEADER + payload.len());
    bytes.extend_from_slice(format.magic);
    bytes.extend_from_slice(&format.version.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);

    super::write_atomic(path, &bytes)
}

/// Reads a file written by [`write`] in the same format; any damage is an error, never a panic.
pub(crate) fn read<T: DeserializeOwned>(path: &Path, format: &Format) -> Result<T> {
    decode(&super::read_file(path)?, format, path)
}

/// Decodes the bytes of a file written by [`write`]; `path` only names it in errors.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], format: &Format, path: &Path) -> Result<T> {
    if bytes.len() < HEADER {
        return Err(bad(path, format!("truncated: {} bytes, shorter than the {HEADER}-byte header", bytes.len())));
    }
    if &bytes[..8] != format.magic {
        return Err(bad(path, format!("not a tensorgraph {} file (bad magic)", format.what)));
    }
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let version = u32_at(8);
    if version != format.version {
        let by = if version < format.version { "an older" } else { "a newer" };
        return Err(bad(
            path,
            format!("written by {by} tensorgraph (format version {version}; this build reads {})", format.version),
        ));
    }
    let (length, raw_len, crc) = (u64_at(12), u64_at(20), u32_at(28));
    let payload = &bytes[HEADER..];
    if payload.len() as u64 != length {
        return Err(bad(
            path,
            format!("truncated or padded: header says {length} payload bytes, file has {}", payload.len()),
        ));
    }
    if crc32fast::hash(payload) != crc {
        return Err(bad(path, "checksum mismatch: the file is corrupted"));
    }
    if raw_len > MAX_RAW {
        return Err(bad(path, format!("declared size {raw_len} exceeds the {MAX_RAW}-byte limit")));
    }
    if raw_len > length.saturating_mul(MAX_RATIO).saturating_add(1024) {
        return Err(bad(path, format!("declared size {raw_len} is more than {length} compressed bytes cannot hold")));
    }
    let mut raw = Vec::with_capacity(raw_len.min(1 << 26) as usize);
    GzDecoder::new(payload)
        .take(raw_len + 1)
        .read_to_end(&mut raw)
        .map_err(|e| bad(path, format!("cannot decompress: {e}")))?;
    if raw.len() as u64 != raw_len {
        return Err(bad(path, format!("decompressed {} bytes, header says {raw_len}", raw.len())));
    }
    // bincode checks every length prefix against a budget before allocating; the budget grows
    // with the (verified) decompressed size, so a forged length cannot claim more than a small
    // multiple of the real data (integers are varint-encoded, so in memory they may be 8x larger).
    macro_rules! decode_within {
        ($limit:expr) => {
            bincode::serde::decode_from_slice(&raw, bincode::config::standard().with_limit::<{ $limit }>())
        };
    }
    let decoded = match raw.len() {
        n if n <= 1 << 20 => decode_within!(8 << 20),
        n if n <= 16 << 20 => decode_within!(128 << 20),
        n if n <= 256 << 20 => decode_within!(2 << 30),
        _ => decode_within!(MAX_RAW as usize * 8),
    };
    let (value, used) = decoded.map_err(|e| bad(path, format!("cannot decode: {}", describe(e))))?;
    if used != raw.len() {
        return Err(bad(path, format!("{} trailing bytes after the payload", raw.len() - used)));
    }
    Ok(value)
}
