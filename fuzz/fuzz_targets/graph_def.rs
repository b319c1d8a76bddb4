#![no_main]
//! The TF GraphDef reader on arbitrary bytes: a protobuf decode error, an import error, or a
//! graph that exports back and runs (every op, its placeholders fed) without panicking.

mod run_graph;

use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(def) = tensorgraph::proto::tf::GraphDef::decode(data) else { return };
    if let Ok(g) = tensorgraph::io::graph_def::from_graph_def(&def, "fuzz.pb") {
        let _ = tensorgraph::io::graph_def::to_graph_def(&g);
        run_graph::run_all(&g, data);
    }
});
