#![no_main]
//! The graph-file reader (TF's MetaGraphDef) on arbitrary bytes: an error, or a graph that can
//! be dumped, exported, planned and run (every op, its placeholders fed) without panicking.

mod run_graph;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.meta");
    if let Ok((g, _signatures)) = tensorgraph::io::meta_graph::import_meta_graph_bytes(data, path) {
        let _ = g.to_text();
        let _ = tensorgraph::inspect::to_dot(&g);
        let _ = tensorgraph::inspect::summary(&g);
        let _ = tensorgraph::summary::graph_def(&g);
        let _ = tensorgraph::io::meta_graph::meta_graph_def(&g, &[]);
        run_graph::run_all(&g, data);
    }
});
