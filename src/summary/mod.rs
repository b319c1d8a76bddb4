//! TensorBoard, as TF1's `tf.summary`: summary ops in the graph ([`scalar`], [`histogram`],
//! [`image`], [`merge_all`]), whose fetched values [`FileWriter::add_summary`] writes to an
//! event file beside the graph.

use crate::io::graph_def::{attr, op_attr, shape_proto};
use crate::proto::tf::{Attr, AttrValue, Event, GraphDef, ListValue, NodeDef, Summary, SummaryValue, VersionDef, What};
use crate::proto::{dtype_enum, masked_crc32c};
use crate::{Error, Graph, Op, Result};
use prost::Message;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tensorgraph_graph::op_def::AttrValue as OpAttr;
pub use tensorgraph_graph::ops::summary::{histogram, image, merge, merge_all, scalar, SUMMARIES};

/// The op's attributes (its definition's, under TF's names) as TF's `AttrValue`s, so TensorBoard
/// shows them as TF would. A `Const`'s value is left out (TensorBoard needs none; the GraphDef
/// export, `io::graph_def`, writes it).
fn op_attrs(op: &Op, out: &mut HashMap<String, AttrValue>) {
    for (name, value) in op.attrs() {
        if !matches!(value, OpAttr::Tensor(_)) {
            out.insert(name.into(), op_attr(value));
        }
    }
}

/// The graph as a TF `GraphDef`: node names with `/` scopes, TF op types, inputs as `node:slot`
/// (`node` for slot 0) and `^node` for control inputs, dtype attributes and `_output_shapes`.
pub fn graph_def(g: &Graph) -> GraphDef {
    g.read(|d| {
        let node = d
            .dag
            .node_indices()
            .map(|i| {
                let n = d.node(i);
                let mut input: Vec<String> = n
                    .inputs
                    .iter()
                    .map(|e| {
                        let name = &d.node(e.node).name;
                        if e.slot == 0 {
                            name.clone()
                        } else {
                            format!("{name}:{}", e.slot)
                        }
                    })
                    .collect();
                input.extend(n.control_inputs.iter().map(|&c| format!("^{}", d.node(c).name)));
                let mut attr_map = HashMap::new();
                op_attrs(&n.op, &mut attr_map);
                if let Some(first) = n.outputs.first() {
                    attr_map.entry("T".into()).or_insert_with(|| attr(Attr::Type(dtype_enum(first.dtype))));
                }
                let shapes = n.outputs.iter().map(|o| shape_proto(&o.shape)).collect();
                attr_map.insert(
                    "_output_shapes".into(),
                    attr(Attr::List(ListValue { shape: shapes, ..Default::default() })),
                );
                NodeDef {
                    name: n.name.clone(),
                    op: n.op.type_name().into(),
                    input,
                    device: String::new(),
                    attr: attr_map,
                }
            })
            .collect();
        GraphDef { node, library: None, versions: Some(VersionDef { producer: 1, min_consumer: 0 }) }
    })
}

/// Frames one record: length, masked CRC of the length, data, masked CRC of the data.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// Writes `events.out.tfevents.*` files that TensorBoard reads, flushing after every event so
/// a running TensorBoard sees training as it happens.
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::summary::FileWriter;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// g.name_scope("dnn", || math::square(&g.placeholder(DType::F32, [None]).named("x")?))?;
/// let dir = std::env::temp_dir().join(format!("tg-events-doc-{}", std::process::id()));
/// let mut w = FileWriter::new(&dir, Some(&g))?;
/// w.add_scalar("loss", 0.5, 1)?;
/// assert!(w.path().file_name().unwrap().to_string_lossy().starts_with("events.out.tfevents."));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
pub struct FileWriter {
    file: std::fs::File,
    path: PathBuf,
}

impl FileWriter {
    /// Creates a new event file in `logdir` (created if needed), writes the version record and,
    /// if given, the graph.
    pub fn new(logdir: impl AsRef<Path>, graph: Option<&Graph>) -> Result<FileWriter> {
        let dir = logdir.as_ref();
        let io = |p: &Path| {
            let p = p.display().to_string();
            move |source| Error::Io { path: p.clone(), source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        // As TF 2's writers: time, host, process and a per-process number, so that writers
        // created in the same second never share a file; `create_new` guards the rest.
        static WRITERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let (path, file) = loop {
            let n = WRITERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let name = format!("events.out.tfevents.{}.{host}.{}.{n}", now.as_secs(), std::process::id());
            let path = dir.join(name);
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(&path)(e)),
            }
        };
        let mut w = FileWriter { file, path };
        w.write_event(Event {
            wall_time: wall_time(),
            step: 0,
            what: Some(What::FileVersion("brain.Event:2".into())),
        })?;
        if let Some(g) = graph {
            w.add_graph(g)?;
        }
        Ok(w)
    }

    /// The event file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the graph (TensorBoard's Graphs tab).
    pub fn add_graph(&mut self, g: &Graph) -> Result<()> {
        let bytes = graph_def(g).encode_to_vec();
        self.write_event(Event { wall_time: wall_time(), step: 0, what: Some(What::GraphDef(bytes)) })
    }

    /// Writes one point of the scalar curve `tag` (TensorBoard's Scalars tab).
    pub fn add_scalar(&mut self, tag: &str, value: f32, step: i64) -> Result<()> {
        let value = SummaryValue { tag: tag.into(), simple_value: Some(value), ..Default::default() };
        self.write_event(Event {
            wall_time: wall_time(),
            step,
            what: Some(What::Summary(Summary { value: vec![value] })),
        })
    }

    /// Writes a summary a session computed (a fetched [`scalar`], [`histogram`], [`image`] or
    /// [`merge_all`]) at `step`, as TF's `FileWriter.add_summary(summary_str, global_step)`.
    pub fn add_summary(&mut self, summary: &crate::Value, step: i64) -> Result<()> {
        let bytes = summary.as_string().and_then(|a| (a.len() == 1).then(|| a.iter().next()).flatten());
        let Some(bytes) = bytes else {
            let got = format!("{} {}", summary.dtype(), crate::fmt_dims(summary.shape()));
            return Err(Error::ValueType { expected: "a summary (string scalar)".into(), got });
        };
        let summary = Summary::decode(bytes.as_slice()).map_err(|e| Error::ValueType {
            expected: "a summary (string scalar)".into(),
            got: format!("other bytes ({e})"),
        })?;
        self.write_event(Event { wall_time: wall_time(), step, what: Some(What::Summary(summary)) })
    }

    fn write_event(&mut self, e: Event) -> Result<()> {
        let record = frame(&e.encode_to_vec());
        self.file
            .write_all(&record)
            .and_then(|_| self.file.flush())
            .map_err(|source| Error::Io { path: self.path.display().to_string(), source })
    }
}

fn wall_time() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
