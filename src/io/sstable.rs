//! The sorted-string table that holds a TF checkpoint's index (LevelDB's table format, as TF's
//! `table_builder`): data blocks of prefix-compressed keys with restart points, each followed by
//! a compression byte and a masked CRC-32C; an empty metaindex block; an index block mapping
//! each data block's last key to its place; a 48-byte footer ending in the table magic.
//!
//! Only uncompressed blocks are written or read (TF writes its checkpoint indexes uncompressed).

use crate::proto::masked_crc32c;
use prost::encoding::{decode_varint, encode_varint};

const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
const FOOTER: usize = 48;
/// A block handle's largest encoding: two varint64s.
const HANDLE_MAX: usize = 20;
/// Entries between restart points (full keys), LevelDB's and TF's default.
const RESTART_INTERVAL: usize = 16;
/// Data blocks are cut once they reach this size (TF's table default, 256 KiB).
const BLOCK_SIZE: usize = 262_144;
const TRAILER: usize = 5;

/// A table's rows: key and value bytes.
pub(crate) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Where a block lies in the file (without its trailer).
#[derive(Clone, Copy, Debug)]
struct Handle {
    offset: u64,
    size: u64,
}

impl Handle {
    fn encode(self, out: &mut Vec<u8>) {
        encode_varint(self.offset, out);
        encode_varint(self.size, out);
    }

    fn decode(mut b: &[u8]) -> Result<(Handle, &[u8]), String> {
        let offset = decode_varint(&mut b).map_err(|_| "a block handle is not two varints")?;
        let size = decode_varint(&mut b).map_err(|_| "a block handle is not two varints")?;
        Ok((Handle { offset, size }, b))
    }
}

/// Builds one block: entries in key order, then the restart offsets and their count.
#[derive(Default)]
struct Block {
    bytes: Vec<u8>,
    restarts: Vec<u32>,
    last_key: Vec<u8>,
    entries: usize,
}

impl Block {
    fn add(&mut self, key: &[u8], value: &[u8], restart_interval: usize) {
        let shared = if self.entries.is_multiple_of(restart_interval) {
            self.restarts.push(self.bytes.len() as u32);
            0
        } else {
            key.iter().zip(&self.last_key).take_while(|(a, b)| a == b).count()
        };
        encode_varint(shared as u64, &mut self.bytes);
        encode_varint((key.len() - shared) as u64, &mut self.bytes);
        encode_varint(value.len() as u64, &mut self.bytes);
        self.bytes.extend_from_slice(&key[shared..]);
        self.bytes.extend_from_slice(value);
        self.last_key = key.to_vec();
        self.entries += 1;
    }

    /// The size the block will have when finished.
    fn estimated_size(&self) -> usize {
        self.bytes.len() + 4 * self.restarts.len() + 4
    }

    /// The block's contents; an empty block still has one restart point, as LevelDB's.
    fn finish(mut self) -> Vec<u8> {
        if self.restarts.is_empty() {
            self.restarts.push(0);
        }
        for r in &self.restarts {
            self.bytes.extend_from_slice(&r.to_le_bytes());
        }
        self.bytes.extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        self.bytes
    }
}

/// Appends `contents` and its trailer (no compression, masked CRC of contents and type byte).
fn write_block(out: &mut Vec<u8>, contents: &[u8]) -> Handle {
    let handle = Handle { offset: out.len() as u64, size: contents.len() as u64 };
    out.extend_from_slice(contents);
    out.push(0);
    let crc = masked_crc32c(&out[handle.offset as usize..]);
    out.extend_from_slice(&crc.to_le_bytes());
    handle
}

/// The shortest key `k` with `start <= k < limit` that differs from `start` in one byte
/// (LevelDB's `FindShortestSeparator`): an index key that keeps the index small.
fn separator(start: &[u8], limit: &[u8]) -> Vec<u8> {
    let common = start.iter().zip(limit).take_while(|(a, b)| a == b).count();
    match (start.get(common), limit.get(common)) {
        (Some(&s), Some(&l)) if s < 0xff && s + 1 < l => [&start[..common], &[s + 1]].concat(),
        _ => start.to_vec(),
    }
}

/// The shortest key `>= key` (LevelDB's `FindShortSuccessor`): the last index key.
fn successor(key: &[u8]) -> Vec<u8> {
    match key.iter().position(|&b| b != 0xff) {
        Some(i) => [&key[..i], &[key[i] + 1]].concat(),
        None => key.to_vec(),
    }
}

/// A table of `entries`, which must be sorted by key with no key twice. The bytes are TF's
/// for the same entries (block size, restart intervals, index keys), so a checkpoint written
/// here equals TF's.
pub(crate) fn write(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "sorted, unique keys");
    let mut out = Vec::new();
    let mut index = Block::default();
    let mut block = Block::default();
    // A flushed block's index entry waits for the next key, which bounds its separator.
    let mut pending: Option<(Vec<u8>, Handle)> = None;
    let index_entry = |index: &mut Block, key: &[u8], h: Handle| {
        let mut v = Vec::new();
        h.encode(&mut v);
        index.add(key, &v, 1);
    };
    for (key, value) in entries {
        if let Some((last, h)) = pending.take() {
            index_entry(&mut index, &separator(&last, key), h);
        }
        block.add(key, value, RESTART_INTERVAL);
        if block.estimated_size() >= BLOCK_SIZE {
            let last = std::mem::take(&mut block.last_key);
            pending = Some((last, write_block(&mut out, &std::mem::take(&mut block).finish())));
        }
    }
    if block.entries > 0 {
        let last = std::mem::take(&mut block.last_key);
        pending = Some((last, write_block(&mut out, &block.finish())));
    }
    if let Some((last, h)) = pending {
        index_entry(&mut index, &successor(&last), h);
    }
    let metaindex = write_block(&mut out, &Block::default().finish());
    let index = write_block(&mut out, &index.finish());
    let mut footer = Vec::with_capacity(FOOTER);
    metaindex.encode(&mut footer);
    index.encode(&mut footer);
    footer.resize(2 * HANDLE_MAX, 0);
    footer.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&footer);
    out
}

/// Every entry of the table in `file`, in key order. The error says what is damaged.
pub(crate) fn read(file: &[u8]) -> Result<Entries, String> {
    if file.len() < FOOTER {
        return Err(format!("{} bytes, shorter than a table's {FOOTER}-byte footer", file.len()));
    }
    let footer = &file[file.len() - FOOTER..];
    if footer[2 * HANDLE_MAX..] != MAGIC.to_le_bytes() {
        return Err("no table magic number at the end (not a TF checkpoint index)".into());
    }
    let (_metaindex, rest) = Handle::decode(&footer[..2 * HANDLE_MAX])?;
    let (index, _) = Handle::decode(rest)?;
    let body = &file[..file.len() - FOOTER];
    let mut entries = Vec::new();
    for (_, h) in read_block(body, index)? {
        let (handle, _) = Handle::decode(&h)?;
        for entry in read_block(body, handle)? {
            if entries.last().is_some_and(|(k, _): &(Vec<u8>, Vec<u8>)| *k >= entry.0) {
                return Err("keys are not in increasing order".into());
            }
            entries.push(entry);
        }
    }
    Ok(entries)
}

/// The entries of the block at `h`, after checking its place, trailer and CRC.
fn read_block(body: &[u8], h: Handle) -> Result<Entries, String> {
    let start = usize::try_from(h.offset).ok().filter(|&s| s <= body.len());
    let end = start.and_then(|s| s.checked_add(usize::try_from(h.size).ok()?)?.checked_add(TRAILER));
    let (Some(start), Some(end)) = (start, end.filter(|&e| e <= body.len())) else {
        return Err(format!("a block at {}+{} lies outside the {}-byte table", h.offset, h.size, body.len()));
    };
    let with_type = &body[start..end - 4];
    let stored = u32::from_le_bytes(body[end - 4..end].try_into().expect("4 bytes"));
    if masked_crc32c(with_type) != stored {
        return Err(format!("the block at byte {start} fails its CRC check (the file is damaged)"));
    }
    match with_type[with_type.len() - 1] {
        0 => {}
        1 => return Err("a snappy-compressed block (not supported; TF writes checkpoints uncompressed)".into()),
        t => return Err(format!("a block of unknown compression type {t}")),
    }
    parse_block(&with_type[..with_type.len() - 1])
}

/// The entries of a block's contents (keys restored from their shared prefixes).
fn parse_block(b: &[u8]) -> Result<Entries, String> {
    let bad = |what: &str| Err(format!("a block is damaged: {what}"));
    let Some(count_at) = b.len().checked_sub(4) else { return bad("shorter than its restart count") };
    let restarts = u32::from_le_bytes(b[count_at..].try_into().expect("4 bytes")) as usize;
    let Some(data_end) = restarts.checked_mul(4).and_then(|n| count_at.checked_sub(n)) else {
        return bad("more restart points than bytes");
    };
    let mut data = &b[..data_end];
    let mut entries = Vec::new();
    let mut key: Vec<u8> = Vec::new();
    while !data.is_empty() {
        let mut varint = || decode_varint(&mut data).ok().and_then(|v| usize::try_from(v).ok());
        let (Some(shared), Some(own), Some(len)) = (varint(), varint(), varint()) else {
            return bad("an entry header is not three varints");
        };
        if shared > key.len() {
            return bad("an entry shares more of the previous key than it has");
        }
        if own.checked_add(len).is_none_or(|n| n > data.len()) {
            return bad("an entry runs past the block's end");
        }
        key.truncate(shared);
        key.extend_from_slice(&data[..own]);
        entries.push((key.clone(), data[own..own + len].to_vec()));
        data = &data[own + len..];
    }
    Ok(entries)
}

/// The index block's keys and data block places (for tests against TF's layout).
#[cfg(test)]
pub(crate) fn index_of(file: &[u8]) -> Vec<(Vec<u8>, u64, u64)> {
    let footer = &file[file.len() - FOOTER..];
    let (_, rest) = Handle::decode(footer).unwrap();
    let (index, _) = Handle::decode(rest).unwrap();
    let body = &file[..file.len() - FOOTER];
    let rows = read_block(body, index).unwrap();
    rows.into_iter().map(|(k, v)| (k, Handle::decode(&v).unwrap().0)).map(|(k, h)| (k, h.offset, h.size)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_over_several_blocks() {
        let entries: Vec<(Vec<u8>, Vec<u8>)> =
            (0..30_000).map(|i| (format!("layer{:05}/kernel", i).into_bytes(), vec![i as u8; 20 + i % 7])).collect();
        let table = write(&entries);
        assert!(table.len() > 2 * BLOCK_SIZE, "several data blocks");
        assert_eq!(read(&table).unwrap(), entries);
        assert_eq!(read(&write(&[])).unwrap(), vec![]);
    }

    #[test]
    fn index_keys_are_short_separators() {
        assert_eq!(separator(b"v013490", b"v013491"), b"v013490");
        assert_eq!(separator(b"abc1", b"abc9zz"), b"abc2");
        assert_eq!(separator(b"ab", b"abc"), b"ab");
        assert_eq!(successor(b"v029999"), b"w");
        assert_eq!(successor(b"\xff\xffa"), b"\xff\xffb");
        assert_eq!(successor(b"\xff"), b"\xff");
    }

    #[test]
    fn damage_is_reported_not_panicked() {
        let entries = vec![(b"".to_vec(), b"header".to_vec()), (b"w".to_vec(), b"entry".to_vec())];
        let table = write(&entries);
        for i in 0..table.len() {
            let mut t = table.clone();
            t[i] ^= 0x40;
            // Any byte flipped: an error, or (in the footer's padding) the same entries.
            if let Ok(e) = read(&t) {
                assert_eq!(e, entries, "byte {i}");
            }
        }
        for n in 0..table.len() {
            assert!(read(&table[..n]).is_err());
        }
    }
}
