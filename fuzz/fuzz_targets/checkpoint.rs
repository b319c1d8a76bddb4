#![no_main]
//! The checkpoint reader on arbitrary bytes: an error or a listing, never a panic.

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = common::file_bytes(data, b"TGCKPT\0\x01", 1);
    let _ = tensorgraph::io::checkpoint::list_variables(&bytes, std::path::Path::new("fuzz.tgckpt"));
});
