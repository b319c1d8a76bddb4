#![no_main]
//! The TF checkpoint reader (index table, entries, tensor bytes) on arbitrary bytes: an error
//! or tensors, never a panic. Input: index length (u32 LE), the index, then the data shard.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<4>() else { return };
    let len = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (index, shard) = rest.split_at(len);
    let _ = tensorgraph::io::bundle::read_bytes(index, shard);
});
