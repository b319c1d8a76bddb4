#![no_main]
//! The `.npy` reader on arbitrary bytes: an error or an array, never a panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tensorgraph::io::npy::read_npy_bytes(data, std::path::Path::new("fuzz.npy"));
});
