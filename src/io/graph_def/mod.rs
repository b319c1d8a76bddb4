//! Graphs as TensorFlow's `GraphDef`: each node under TF's op type with exactly the attributes
//! TF's op registry declares, the arguments TF takes as inputs (a reduction's axes, a reshape's
//! shape, ...) as `Const` nodes named `<node>/<argument>`, and where TF's ops take a shape but
//! ours the tensor whose shape is meant (gradients, `BroadcastTo`, `RandomUniformLike`), a
//! `Shape` node; so TensorFlow imports and runs what this writes. And the way back.
//!
//! Both directions read the op table (`Op::def`, `Op::attrs`). Loops and conditionals are TF 2's
//! `StatelessWhile`/`StatelessIf` with their functions in the graph's library; TF1's `Switch`
//! and `Merge` (control flow v1 conditionals) import and are written back as they are, and
//! TF1's loop frames (`Enter` ... `Exit`) import as `While`s (`functionalize`), over TF1's
//! `TensorArray`s as tensors (`tensor_arrays`). A loop's gradient is two loops, as TF's own
//! are (the first keeps each iteration's variables, the second applies the body's gradient
//! back from the last); batch norm's statistics and gradient are TF's math ops, a run-time
//! slice's gradient TF's `Pad`. Files tensorgraph writes for itself
//! ([`to_graph_def_with_private_ops`]) mark such multi-node forms so that they read back as our
//! op (`marked`); files of former versions holding `Tg<Op>` nodes still read.

mod export;
mod functionalize;
mod import;
mod marked;
mod saver;
mod tensor_arrays;

pub(crate) use export::op_attr;
pub use import::from_graph_def;
pub(crate) use saver::{add_saver, strip_saver};

use crate::proto::tf::{Attr, AttrValue, Dim, GraphDef, TensorProto, TensorShapeProto};
use crate::proto::{append_le_bytes, dtype_enum, dtype_from_enum, from_le_bytes};
use crate::{DType, Graph, Result, Shape, Value};
use tensorgraph_graph::NodeIndex;

pub(crate) fn attr(a: Attr) -> AttrValue {
    AttrValue { value: Some(a) }
}

fn ty(d: DType) -> AttrValue {
    attr(Attr::Type(dtype_enum(d)))
}

pub(crate) fn shape_proto(s: &Shape) -> TensorShapeProto {
    TensorShapeProto {
        dim: s.dims().iter().map(|d| Dim { size: d.map_or(-1, |d| d as i64) }).collect(),
        unknown_rank: false,
    }
}

/// A value as a `TensorProto` (raw little-endian content, as TF writes large constants).
pub fn tensor_proto(v: &Value) -> TensorProto {
    if let Value::String(a) = v {
        return TensorProto {
            dtype: dtype_enum(v.dtype()),
            tensor_shape: Some(shape_proto(&Shape::known(v.shape()))),
            string_val: a.iter().cloned().collect(),
            ..Default::default()
        };
    }
    let mut content = Vec::new();
    append_le_bytes(v, &mut content);
    TensorProto {
        dtype: dtype_enum(v.dtype()),
        tensor_shape: Some(shape_proto(&Shape::known(v.shape()))),
        tensor_content: content,
        ..Default::default()
    }
}

/// A `TensorProto`'s value, from raw content or the typed field (the last value repeated to
/// fill the shape, as TF does).
pub fn tensor_value(t: &TensorProto) -> std::result::Result<Value, String> {
    let dtype = dtype_from_enum(t.dtype).map_err(|n| format!("dtype {n} is not supported"))?;
    let dims = t.tensor_shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or(&[]);
    let shape = dims
        .iter()
        .map(|d| usize::try_from(d.size).map_err(|_| format!("a dimension of {}", d.size)))
        .collect::<std::result::Result<Vec<usize>, _>>()?;
    if !t.tensor_content.is_empty() {
        return from_le_bytes(dtype, &shape, &t.tensor_content);
    }
    Ok(match dtype {
        DType::F32 => Value::from(repeat_last(&t.float_val, &shape)?),
        DType::F64 => Value::from(repeat_last(&t.double_val, &shape)?),
        DType::I32 => Value::from(repeat_last(&t.int_val, &shape)?),
        DType::I64 => Value::from(repeat_last(&t.int64_val, &shape)?),
        DType::Bool => Value::from(repeat_last(&t.bool_val, &shape)?),
        DType::String => {
            if t.string_val.len() != tensorgraph_graph::checked_len(&shape)? {
                return Err(format!("{} strings for shape {}", t.string_val.len(), crate::fmt_dims(&shape)));
            }
            Value::from(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), t.string_val.clone()).expect("counted"))
        }
    })
}

/// `vals` filling `shape`, the last value repeated (TF's compact form of constants).
fn repeat_last<T: Copy + Clone>(vals: &[T], shape: &[usize]) -> std::result::Result<ndarray::ArrayD<T>, String> {
    let n = tensorgraph_graph::checked_len(shape)?;
    let fits = match vals.last() {
        Some(_) => vals.len() <= n,
        None => n == 0,
    };
    if !fits {
        return Err(format!("{} values for shape {}", vals.len(), crate::fmt_dims(shape)));
    }
    // The compact form can declare far more elements than the file holds: allocate fallibly.
    let Some(&last) = vals.last() else {
        return Ok(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), vec![]).expect("0 elements"));
    };
    let mut all = tensorgraph_graph::try_vec(n, last)?;
    all[..vals.len()].copy_from_slice(vals);
    Ok(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), all).expect("n elements"))
}

/// The graph as a TF `GraphDef`, in the graph's order. Errors name the first node whose op has
/// no TF form.
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::io::graph_def::{from_graph_def, to_graph_def};
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(6)]).named("x")?;
/// math::reduce_mean(&array::reshape(&x, &[-1, 3, 2])?, Some(&[1])).named("m")?;
/// let def = to_graph_def(&g)?;
/// let nodes: Vec<_> = def.node.iter().map(|n| (n.name.as_str(), n.op.as_str())).collect();
/// assert_eq!(nodes, [("x", "Placeholder"), ("Reshape/shape", "Const"), ("Reshape", "Reshape"),
///                    ("m/reduction_indices", "Const"), ("m", "Mean")]);
/// let back = from_graph_def(&def, "example")?;
/// assert_eq!(back.tensor_by_name("m:0")?.shape().to_string(), "[?,2]");
/// # Ok(()) }
/// ```
pub fn to_graph_def(g: &Graph) -> Result<GraphDef> {
    export::graph_def(g, &|_| true, false)
}

/// [`to_graph_def`] for files tensorgraph reads back (`.meta`): TF's ops as [`to_graph_def`]
/// writes them, and where one of ours became several TF ops, a mark on the last one (op,
/// inputs, parts, attributes: `_`-attributes TF ignores) from which the import makes our op
/// again; where each node was built and float attributes to the bit, too.
pub fn to_graph_def_with_private_ops(g: &Graph) -> Result<GraphDef> {
    export::graph_def(g, &|_| true, true)
}

/// Reads a TF `GraphDef` file (`.pb`, as `tf.io.write_graph` or a frozen graph writes it) and
/// imports it ([`from_graph_def`]).
///
/// ```no_run
/// # fn main() -> tensorgraph::Result<()> {
/// let g = tensorgraph::io::graph_def::import_graph_def("frozen_cnn.pb")?;
/// let logits = g.tensor_by_name("logits:0")?;
/// # Ok(()) }
/// ```
pub fn import_graph_def(path: impl AsRef<std::path::Path>) -> Result<Graph> {
    use prost::Message;
    let path = path.as_ref();
    let bytes = super::read_file(path)?;
    let def = GraphDef::decode(bytes.as_slice()).map_err(|e| crate::Error::BadFile {
        path: path.display().to_string(),
        detail: format!("not a GraphDef protobuf ({e})"),
    })?;
    from_graph_def(&def, &path.display().to_string())
}

/// The nodes `outputs` need (through data and control inputs).
fn needed(g: &Graph, outputs: &[crate::Tensor]) -> std::collections::HashSet<NodeIndex> {
    g.read(|d| {
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<NodeIndex> = outputs.iter().map(|t| t.endpoint().node).collect();
        while let Some(i) = stack.pop() {
            if seen.insert(i) {
                let n = d.node(i);
                stack.extend(n.inputs.iter().map(|e| e.node));
                stack.extend(n.control_inputs.iter().copied());
            }
        }
        seen
    })
}

/// TF's `convert_variables_to_constants`: the graph pruned to what `outputs` need (all of it
/// when `outputs` is empty), each variable a `Const` of the same name holding its value in
/// `sess`. What TF's `import_graph_def` loads and runs without a checkpoint.
pub fn freeze(g: &Graph, sess: &crate::Session, outputs: &[crate::Tensor]) -> Result<GraphDef> {
    let keep = needed(g, outputs);
    let mut def = export::graph_def(g, &|i| outputs.is_empty() || keep.contains(&i), false)?;
    export::fold_variables(&mut def, &export::variable_values(g, sess)?)?;
    Ok(def)
}
