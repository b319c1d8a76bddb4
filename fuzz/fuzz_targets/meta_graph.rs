#![no_main]
//! The graph-file reader on arbitrary bytes: an error, or a validated graph that can be dumped,
//! exported, planned and run (every op, its placeholders fed) without panicking.

mod common;
mod run_graph;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = common::file_bytes(data, b"TGRAPH\0\x01", 3);
    if let Ok(g) = tensorgraph::io::meta_graph::import_meta_graph_bytes(&bytes, std::path::Path::new("fuzz.tgraph")) {
        let _ = g.to_text();
        let _ = tensorgraph::inspect::to_dot(&g);
        let _ = tensorgraph::inspect::summary(&g);
        let _ = tensorgraph::summary::graph_def(&g);
        run_graph::run_all(&g, data);
    }
});
