//! Shared by the file-format targets: half the inputs are taken as whole files (exercising the
//! header and checksum checks); the other half as payloads wrapped in a valid header, so the
//! fuzzer reaches the decoder and the graph validation behind the checksum.

use std::io::Write;

pub fn file_bytes(data: &[u8], magic: &[u8; 8], version: u32) -> Vec<u8> {
    match data.split_first() {
        Some((&flag, rest)) if flag & 1 == 1 => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(rest).expect("in memory");
            let payload = gz.finish().expect("in memory");
            let mut out = Vec::new();
            out.extend_from_slice(magic);
            out.extend_from_slice(&version.to_le_bytes());
            out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
            out.extend_from_slice(&(rest.len() as u64).to_le_bytes());
            out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            out.extend_from_slice(&payload);
            out
        }
        _ => data.to_vec(),
    }
}
