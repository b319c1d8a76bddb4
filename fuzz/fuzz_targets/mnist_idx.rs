#![no_main]
//! The MNIST IDX reader on arbitrary bytes (gzip-wrapped half the time so the IDX header checks
//! are reached): an error or arrays, never a panic.

use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let gz = match data.split_first() {
        Some((&flag, rest)) if flag & 1 == 1 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(rest).expect("in memory");
            e.finish().expect("in memory")
        }
        _ => data.to_vec(),
    };
    let path = std::path::Path::new("fuzz-idx.gz");
    let _ = tensorgraph::data::mnist::parse_images(&gz, path);
    let _ = tensorgraph::data::mnist::parse_labels(&gz, path);
});
