//! Graph files, as TF1's MetaGraph: the whole graph with its variables and collections, to be
//! imported by a program that never saw the code that built it.

use super::container;
use crate::{Graph, Result};
use std::path::Path;

/// Version 2: optimizer updates became one `Apply` op family (the op enum's layout changed).
/// Version 3: the DAG is stored as its node slots (petgraph's own form trusted forged input).
const FORMAT: container::Format = container::Format { magic: b"TGRAPH\0\x01", version: 3, what: "graph" };

/// Writes `g` (nodes, attributes, constants, variables, collections, source locations).
pub fn export_meta_graph(g: &Graph, path: impl AsRef<Path>) -> Result<()> {
    g.read(|data| container::write(path.as_ref(), &FORMAT, data))
}

/// Reads a graph written by [`export_meta_graph`] into a fresh [`Graph`]; look its tensors up
/// by name ([`Graph::tensor_by_name`]) or collection ([`Graph::get_collection`]).
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::io::{export_meta_graph, import_meta_graph};
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None]).named("x")?;
/// let y = g.name_scope("out", || math::square(&x))?;
/// g.add_to_collection("outputs", &y);
/// let path = std::env::temp_dir().join(format!("tg-meta-doc-{}.tgraph", std::process::id()));
/// export_meta_graph(&g, &path)?;
/// let h = import_meta_graph(&path)?;
/// let y2 = h.get_collection("outputs").remove(0);
/// assert_eq!(y2.name(), "out/Square:0");
/// let out = Session::new(&h)?.run(&[&y2], &[(&h.tensor_by_name("x:0")?, ndarray::array![3.0f32].into())])?;
/// assert_eq!(out[0].to_f64_vec(), [9.0]);
/// # std::fs::remove_file(&path).ok();
/// # Ok(()) }
/// ```
pub fn import_meta_graph(path: impl AsRef<Path>) -> Result<Graph> {
    let path = path.as_ref();
    import_meta_graph_bytes(&super::read_file(path)?, path)
}

/// [`import_meta_graph`] from the bytes of a file (`path` only names it in errors). The graph is
/// validated node by node (inputs, names, variables, collections, and every node's shapes
/// inferred again), so a damaged or forged file is an error, never a graph that panics later.
pub fn import_meta_graph_bytes(bytes: &[u8], path: &Path) -> Result<Graph> {
    let mut data: tensorgraph_graph::GraphData = container::decode(bytes, &FORMAT, path)?;
    data.validate().map_err(|detail| crate::Error::BadFile { path: path.display().to_string(), detail })?;
    Ok(Graph::from_data(data))
}
