//! TF's tensor bundle, the V2 checkpoint format: `PREFIX.index` (a table from tensor name to a
//! `BundleEntryProto`, with a `BundleHeaderProto` under the empty key) and the tensors' bytes,
//! little-endian, in `PREFIX.data-00000-of-00001`. `tf.train.load_checkpoint`, `Saver.restore`
//! and `inspect_checkpoint` read what this writes; this reads what they write (several shards
//! too; not partitioned variables or string tensors, which it names).

use super::{read_file, sstable, write_atomic};
use crate::proto::tf::{BundleEntryProto, BundleHeaderProto, Dim, TensorShapeProto, VersionDef};
use crate::proto::{dtype_enum, dtype_from_enum, masked_crc32c};
use crate::{DType, Error, Result, Value};
use prost::Message;
use std::path::{Path, PathBuf};

/// The index file of checkpoint `prefix`.
pub(crate) fn index_path(prefix: &Path) -> PathBuf {
    with_suffix(prefix, ".index")
}

/// Data shard `shard` of `shards` of checkpoint `prefix`.
pub(crate) fn data_path(prefix: &Path, shard: usize, shards: usize) -> PathBuf {
    with_suffix(prefix, &format!(".data-{shard:05}-of-{shards:05}"))
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// One tensor as the index lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// The dtype, or TF's name of one tensorgraph cannot hold (`string`, `float16`, ...).
    pub dtype: std::result::Result<DType, String>,
    pub shape: Vec<usize>,
}

/// Writes `tensors` as checkpoint `prefix`: the data file first, then the index that makes it
/// a checkpoint, each atomically (a crash leaves the old checkpoint or the new one whole).
pub(crate) fn write(prefix: &Path, tensors: &[(String, Value)]) -> Result<()> {
    if let Some((name, _)) = tensors.iter().find(|(_, v)| v.dtype() == DType::String) {
        let detail = format!("{name} holds strings, which checkpoints here do not store");
        return Err(Error::BadFile { path: prefix.display().to_string(), detail });
    }
    let mut sorted: Vec<&(String, Value)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut data = Vec::new();
    let header =
        BundleHeaderProto { num_shards: 1, endianness: 0, version: Some(VersionDef { producer: 1, min_consumer: 0 }) };
    let mut entries = vec![(Vec::new(), header.encode_to_vec())];
    for (name, value) in sorted {
        let offset = data.len();
        crate::proto::append_le_bytes(value, &mut data);
        let entry = BundleEntryProto {
            dtype: dtype_enum(value.dtype()),
            shape: Some(TensorShapeProto {
                dim: value.shape().iter().map(|&d| Dim { size: d as i64 }).collect(),
                unknown_rank: false,
            }),
            shard_id: 0,
            offset: offset as i64,
            size: (data.len() - offset) as i64,
            crc32c: masked_crc32c(&data[offset..]),
            slices: vec![],
        };
        entries.push((name.as_bytes().to_vec(), entry.encode_to_vec()));
    }
    write_atomic(&data_path(prefix, 0, 1), &data)?;
    write_atomic(&index_path(prefix), &sstable::write(&entries))
}

/// The header and entries of checkpoint `prefix`'s index.
fn read_index(prefix: &Path) -> Result<(BundleHeaderProto, Vec<(String, BundleEntryProto)>)> {
    let path = index_path(prefix);
    parse_index(&read_file(&path)?, &path)
}

/// The header and entries of an index's bytes (`path` names it in errors).
fn parse_index(bytes: &[u8], path: &Path) -> Result<(BundleHeaderProto, Vec<(String, BundleEntryProto)>)> {
    let bad = |detail: String| Error::BadFile { path: path.display().to_string(), detail };
    let table = sstable::read(bytes).map_err(bad)?;
    let mut rows = table.into_iter();
    let header = match rows.next() {
        Some((k, v)) if k.is_empty() => {
            BundleHeaderProto::decode(v.as_slice()).map_err(|e| bad(format!("its header does not decode: {e}")))?
        }
        _ => return Err(bad("no bundle header under the empty key".into())),
    };
    if header.endianness != 0 {
        return Err(bad("written big-endian (only little-endian checkpoints are read)".into()));
    }
    if !(1..=100_000).contains(&header.num_shards) {
        return Err(bad(format!("{} data shards", header.num_shards)));
    }
    let entries = rows
        .map(|(k, v)| {
            let name = String::from_utf8(k).map_err(|_| bad("a tensor name is not UTF-8".into()))?;
            let entry = BundleEntryProto::decode(v.as_slice())
                .map_err(|e| bad(format!("the entry of {name} does not decode: {e}")))?;
            Ok((name, entry))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((header, entries))
}

/// The shape of an entry, checked.
fn entry_shape(entry: &BundleEntryProto) -> std::result::Result<Vec<usize>, String> {
    let dims = entry.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or(&[]);
    dims.iter().map(|d| usize::try_from(d.size).map_err(|_| format!("a dimension of {}", d.size))).collect()
}

/// Names, dtypes and shapes of every tensor in checkpoint `prefix`, as `tf.train.list_variables`.
pub fn list(prefix: &Path) -> Result<Vec<TensorInfo>> {
    let (_, entries) = read_index(prefix)?;
    entries
        .into_iter()
        .map(|(name, e)| {
            let shape = entry_shape(&e).map_err(|detail| Error::BadFile {
                path: index_path(prefix).display().to_string(),
                detail: format!("{name} has {detail}"),
            })?;
            Ok(TensorInfo { name, dtype: dtype_from_enum(e.dtype), shape })
        })
        .collect()
}

/// The tensors of checkpoint `prefix` that `wanted` selects, by name. Each one's place, size and
/// CRC are checked; one tensorgraph cannot hold (a string, a partitioned variable) is an error
/// only when selected.
pub(crate) fn read(prefix: &Path, wanted: impl Fn(&str) -> bool) -> Result<Vec<(String, Value)>> {
    let (header, entries) = read_index(prefix)?;
    let shards = header.num_shards as usize;
    tensors(prefix, entries, shards, |shard| read_file(&data_path(prefix, shard, shards)), wanted)
}

/// What [`read`] returns for a one-shard checkpoint given as bytes (for fuzzing the readers).
#[doc(hidden)]
pub fn read_bytes(index: &[u8], data: &[u8]) -> Result<Vec<(String, Value)>> {
    let prefix = Path::new("fuzz");
    let (header, entries) = parse_index(index, &index_path(prefix))?;
    tensors(prefix, entries, header.num_shards as usize, |_| Ok(data.to_vec()), |_| true)
}

/// The `wanted` tensors among `entries`, their bytes from `load(shard)`.
fn tensors(
    prefix: &Path,
    entries: Vec<(String, BundleEntryProto)>,
    shards: usize,
    mut load: impl FnMut(usize) -> Result<Vec<u8>>,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<(String, Value)>> {
    let mut data: Vec<Option<Vec<u8>>> = vec![None; shards];
    let mut out = Vec::new();
    for (name, e) in entries.into_iter().filter(|(n, _)| wanted(n)) {
        let bad = |path: &Path, detail: String| Error::BadFile {
            path: path.display().to_string(),
            detail: format!("tensor {name}: {detail}"),
        };
        let index = index_path(prefix);
        if !e.slices.is_empty() {
            return Err(bad(&index, "a partitioned variable (slices are not supported)".into()));
        }
        let dtype = dtype_from_enum(e.dtype).map_err(|t| bad(&index, format!("dtype {t} is not supported")))?;
        let shape = entry_shape(&e).map_err(|d| bad(&index, d))?;
        let shard = usize::try_from(e.shard_id).ok().filter(|&s| s < shards);
        let Some(shard) = shard else { return Err(bad(&index, format!("shard {} of {shards}", e.shard_id))) };
        let path = data_path(prefix, shard, shards);
        if data[shard].is_none() {
            data[shard] = Some(load(shard)?);
        }
        let bytes = data[shard].as_deref().expect("just read");
        let range = usize::try_from(e.offset)
            .ok()
            .zip(usize::try_from(e.size).ok())
            .and_then(|(o, s)| Some(o..o.checked_add(s)?))
            .filter(|r| r.end <= bytes.len());
        let Some(range) = range else {
            return Err(bad(&path, format!("bytes {}+{} lie outside the {}-byte file", e.offset, e.size, bytes.len())));
        };
        let bytes = &bytes[range];
        if masked_crc32c(bytes) != e.crc32c {
            return Err(bad(&path, "its bytes fail their CRC check (the file is damaged)".into()));
        }
        let value = crate::proto::from_le_bytes(dtype, &shape, bytes).map_err(|d| bad(&path, d))?;
        out.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TF 2.21's index for 30,000 float scalars `v000000`..`v029999` saved by `SaveV2` spans
    /// three data blocks, with these index keys and block places (measured once with
    /// `tf.raw_ops.SaveV2`; the fixture itself would be 590 KB).
    #[test]
    fn a_large_index_has_tensorflows_blocks() {
        let dir = std::env::temp_dir().join(format!("tg-bundle-blocks-{}", std::process::id()));
        let tensors: Vec<(String, Value)> =
            (0..30_000).map(|i| (format!("v{i:06}"), Value::filled(DType::F32, &[], i as f64))).collect();
        write(&dir.join("m"), &tensors).unwrap();
        let index = std::fs::read(index_path(&dir.join("m"))).unwrap();
        let blocks = sstable::index_of(&index);
        let want: Vec<(Vec<u8>, u64, u64)> = vec![
            (b"v013490".to_vec(), 0, 262_149),
            (b"v026772".to_vec(), 262_154, 262_147),
            (b"w".to_vec(), 524_306, 63_694),
        ];
        assert_eq!(blocks, want);
        let back = read(&dir.join("m"), |n| n == "v012345").unwrap();
        assert_eq!(back, vec![("v012345".to_string(), Value::filled(DType::F32, &[], 12345.0))]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
