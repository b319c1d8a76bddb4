//! Our ops as TF's NodeDefs.

use super::{attr, shape_proto, tensor_proto, ty};
use crate::proto::tf::{
    ArgDef, Attr, AttrValue, FunctionDef, FunctionDefLibrary, GraphDef, ListValue, NameAttrList, NodeDef, OpDef,
    VersionDef,
};
use crate::{DType, Error, Func, Graph, Op, Result, Value};
use std::collections::{HashMap, HashSet};
use tensorgraph_graph::op_def::AttrValue as OpAttr;
use tensorgraph_graph::{ApplyOp, BinaryOp, Endpoint, GraphData, Node, NodeIndex, UnaryOp};

/// TF's GraphDef producer version this writes (TF 2.21's).
const PRODUCER: i32 = 2021;

/// Where an input of a TF node comes from.
enum In {
    /// Our node's data input `k`.
    Data(usize),
    /// A constant argument, written as the `Const` node `<node>/<arg>`.
    Const(&'static str, Value),
    /// The run-time shape of our data input `k`, as the `Shape` node `<node>/<arg>` (TF's
    /// ops take shapes where ours take the tensor whose shape is meant).
    ShapeOf(&'static str, usize),
    /// `MaxPool` of our data input `k` with the node's window: TF's `orig_output` (the forward
    /// node when the graph has it).
    MaxPoolOf(usize),
}

/// How one of our ops is written as TF's: the TF type, its inputs, the attributes, and what
/// follows it when TF's op computes less than ours.
struct TfForm {
    op: String,
    inputs: Vec<In>,
    attrs: Vec<(&'static str, AttrValue)>,
    post: Post,
}

/// A TF op after the main one: the main node is then `<node>/<TF op>`, the last one `<node>`.
#[derive(PartialEq)]
enum Post {
    None,
    /// `x * scale + shift`: TF's draws are standard, ours carry a range.
    Affine(f64, f64),
    /// A `Cast` to this dtype: TF's counts are integers, ours may be floats.
    Cast(DType),
}

fn i32s(v: impl IntoIterator<Item = i64>) -> Value {
    let v: Vec<i32> = v.into_iter().map(|x| x as i32).collect();
    Value::from(ndarray::Array1::from(v).into_dyn())
}

fn i32_scalar(x: i64) -> Value {
    Value::from(ndarray::arr0(x as i32).into_dyn())
}

/// A table attribute as TF's `AttrValue`.
pub(crate) fn op_attr(v: OpAttr) -> AttrValue {
    attr(match v {
        OpAttr::Type(d) => Attr::Type(crate::proto::dtype_enum(d)),
        OpAttr::Shape(s) => Attr::Shape(shape_proto(&s)),
        OpAttr::Int(i) => Attr::I(i),
        OpAttr::Float(f) => Attr::F(f as f32),
        OpAttr::Bool(b) => Attr::B(b),
        OpAttr::Str(s) => Attr::S(s.as_bytes().to_vec()),
        OpAttr::Ints(v) => Attr::List(ListValue { i: v, ..Default::default() }),
        OpAttr::Types(v) => Attr::List(ListValue {
            r#type: v.into_iter().map(crate::proto::dtype_enum).collect(),
            ..Default::default()
        }),
        OpAttr::Tensor(t) => Attr::Tensor(tensor_proto(&t)),
    })
}

/// The attribute holding where a node was built, in files tensorgraph writes for itself.
pub(super) const LOCATION: &str = "_tg_location";

/// The attribute of a `Size` that counts over explicit axes (all of them).
pub(super) const ALL_AXES: &str = "_tg_axes";

/// The prefix of the attribute holding a float attribute's f64 bits, in those files.
pub(super) const F64_PREFIX: &str = "_f64_";

/// The attributes marking the last node of one of our ops written as several TF ops, in files
/// tensorgraph writes for itself (see `mark`).
pub(super) const MARK_OP: &str = "_tg_op";
pub(super) const MARK_INPUTS: &str = "_tg_inputs";
pub(super) const MARK_PARTS: &str = "_tg_parts";
pub(super) const MARK_ATTR: &str = "_tg_attr_";
/// The control inputs an update was written with for TF only (see `reads_before_update`).
pub(super) const MARK_READS: &str = "_tg_reads_first";

/// The prefix of the ops only tensorgraph has, in files written for tensorgraph itself.
pub(super) const PRIVATE: &str = "Tg";

/// The TF form of `op` whose data inputs have dtypes `ins` and outputs `outs`. `None` for an
/// op TF has no form of; with `private`, such an op is written under [`PRIVATE`] + its name
/// with the table's attributes (a file only tensorgraph reads).
fn tf_form(op: &Op, ins: &[DType], rank0: usize, outs: &[DType]) -> Option<TfForm> {
    let t = ty;
    let t0 = ins.first().or(outs.first()).copied().unwrap_or(DType::F32);
    let int32 = DType::I32;
    let table: Vec<(&'static str, AttrValue)> = op.attrs().into_iter().map(|(k, v)| (k, op_attr(v))).collect();
    let pick = |names: &[&str]| -> Vec<(&'static str, AttrValue)> {
        table.iter().filter(|(k, _)| names.contains(k)).cloned().collect()
    };
    let data = |n: usize| (0..n).map(In::Data).collect::<Vec<_>>();
    let def = op.def();
    let with = |inputs: Vec<In>, attrs| Some(TfForm { op: def.name.to_string(), inputs, attrs, post: Post::None });
    let n = ins.len();
    let consts = |extra: Vec<(&'static str, Value)>, attrs| {
        let mut inputs = data(n);
        inputs.extend(extra.into_iter().map(|(a, v)| In::Const(a, v)));
        Some(TfForm { op: def.name.to_string(), inputs, attrs, post: Post::None })
    };
    let random = |tf_op: &str, seed: u64, seed2: u64, dtype: DType, shape: In, affine: (f64, f64)| {
        let attrs = vec![
            ("dtype", t(dtype)),
            ("T", t(int32)),
            ("seed", attr(Attr::I(seed as i64))),
            ("seed2", attr(Attr::I(seed2 as i64))),
        ];
        let post = if affine == (1.0, 0.0) { Post::None } else { Post::Affine(affine.0, affine.1) };
        Some(TfForm { op: tf_op.to_string(), inputs: vec![shape], attrs, post })
    };
    let dims = |shape: &[usize]| In::Const("shape", i32s(shape.iter().map(|&d| d as i64)));
    let grad_window = |first: In, attrs| with(vec![first, In::Data(1), In::Data(2)], attrs);
    match op {
        Op::Placeholder { .. } | Op::Const { .. } => with(vec![], table.clone()),
        Op::PlaceholderWithDefault => {
            with(data(1), vec![("dtype", t(t0)), ("shape", attr(Attr::Shape(Default::default())))])
        }
        // TF's logical ops take bools only: no type attribute.
        Op::Unary(UnaryOp::LogicalNot) => with(data(n), vec![]),
        Op::Binary(b) if b.is_logical() => with(data(n), vec![]),
        Op::Identity
        | Op::StopGradient
        | Op::ZerosLike
        | Op::OnesLike
        | Op::Softmax
        | Op::LogSoftmax
        | Op::Unary(_) => with(data(n), vec![("T", t(t0))]),
        Op::Binary(b) => {
            let mut a = vec![("T", t(t0))];
            if matches!(b, BinaryOp::Equal | BinaryOp::NotEqual) {
                a.push(("incompatible_shape_error", attr(Attr::B(true))));
            }
            with(data(n), a)
        }
        Op::MatMul { .. } => with(data(n), [vec![("T", t(t0))], table.clone()].concat()),
        Op::BiasAdd => with(data(n), vec![("T", t(t0)), ("data_format", attr(Attr::S(b"NHWC".to_vec())))]),
        Op::AddN => with(data(n), vec![("T", t(t0)), ("N", attr(Attr::I(n as i64)))]),
        Op::MergeSummary => with(data(n), vec![("N", attr(Attr::I(n as i64)))]),
        Op::Switch => with(data(n), vec![("T", t(t0))]),
        Op::Merge => with(data(n), vec![("T", t(t0)), ("N", attr(Attr::I(n as i64)))]),
        // TF takes the tag as the first input.
        Op::ScalarSummary { .. } | Op::HistogramSummary { .. } | Op::ImageSummary { .. } => {
            let (tag_input, tag) = match op.attrs().remove(0) {
                (name, OpAttr::Tensor(v)) => (name, v),
                _ => unreachable!("a summary's first attribute is its tag"),
            };
            let mut attrs = vec![("T", t(t0))];
            attrs.extend(pick(&["max_images"]));
            with(vec![In::Const(tag_input, tag), In::Data(0)], attrs)
        }
        Op::Select => with(data(n), vec![("T", t(ins.get(1).copied().unwrap_or(t0)))]),
        Op::Cumsum { axis, .. } | Op::Cumprod { axis, .. } => consts(
            vec![("axis", i32_scalar(*axis as i64))],
            [vec![("T", t(t0)), ("Tidx", t(int32))], pick(&["exclusive", "reverse"])].concat(),
        ),
        Op::TopKV2 { k, .. } => {
            consts(vec![("k", i32_scalar(*k as i64))], [vec![("T", t(t0))], pick(&["sorted"])].concat())
        }
        Op::BatchMatMulV2 { .. } => with(data(n), [vec![("T", t(t0))], pick(&["adj_x", "adj_y"])].concat()),
        Op::LeakyRelu { .. } => with(data(n), [vec![("T", t(t0))], pick(&["alpha"])].concat()),
        Op::Cast { to } => with(data(n), vec![("SrcT", t(t0)), ("DstT", t(*to)), ("Truncate", attr(Attr::B(false)))]),
        Op::Reduce { axes, keep_dims, .. } => consts(
            vec![("reduction_indices", i32s(axes.iter().map(|&a| a as i64)))],
            vec![("T", t(t0)), ("Tidx", t(int32)), ("keep_dims", attr(Attr::B(*keep_dims)))],
        ),
        Op::ArgMax { axis, output_type } | Op::ArgMin { axis, output_type } => consts(
            vec![("dimension", i32_scalar(*axis as i64))],
            vec![("T", t(t0)), ("Tidx", t(int32)), ("output_type", t(*output_type))],
        ),
        Op::SparseSoftmaxCrossEntropyWithLogits => {
            with(data(n), vec![("T", t(t0)), ("Tlabels", t(ins.get(1).copied().unwrap_or(DType::I64)))])
        }
        Op::InTopKV2 { k } => {
            let tk = ins.get(1).copied().unwrap_or(DType::I32);
            consts(vec![("k", Value::filled(tk, &[], *k as f64))], vec![("T", t(tk))])
        }
        Op::LSTMBlockCell { .. } | Op::LSTMBlockCellGrad { .. } => {
            with(data(n), [vec![("T", t(t0))], table.clone()].concat())
        }
        Op::Conv2D(_) | Op::MaxPool(_) | Op::AvgPool(_) | Op::DepthwiseConv2dNative(_) => {
            with(data(n), [vec![("T", t(t0))], table.clone()].concat())
        }
        Op::Conv2DBackpropInput(_) | Op::DepthwiseConv2dNativeBackpropInput(_) => {
            grad_window(In::ShapeOf("input_sizes", 0), [vec![("T", t(t0))], table.clone()].concat())
        }
        Op::Conv2DBackpropFilter(_) | Op::DepthwiseConv2dNativeBackpropFilter(_) => with(
            vec![In::Data(0), In::ShapeOf("filter_sizes", 1), In::Data(2)],
            [vec![("T", t(t0))], table.clone()].concat(),
        ),
        Op::MaxPoolGrad(_) | Op::MaxPoolGradGrad(_) => {
            with(vec![In::Data(0), In::MaxPoolOf(0), In::Data(1)], [vec![("T", t(t0))], table.clone()].concat())
        }
        Op::AvgPoolGrad(_) => with(
            vec![In::ShapeOf("orig_input_shape", 0), In::Data(1)],
            [vec![("T", t(ins.get(1).copied().unwrap_or(t0)))], table.clone()].concat(),
        ),
        Op::Reshape { shape } => {
            consts(vec![("shape", i32s(shape.iter().copied()))], vec![("T", t(t0)), ("Tshape", t(int32))])
        }
        Op::Transpose { perm } => {
            consts(vec![("perm", i32s(perm.iter().map(|&p| p as i64)))], vec![("T", t(t0)), ("Tperm", t(int32))])
        }
        Op::ExpandDims { axis } => {
            consts(vec![("dim", i32_scalar(*axis as i64))], vec![("T", t(t0)), ("Tdim", t(int32))])
        }
        Op::Squeeze { .. } => with(data(n), [vec![("T", t(t0))], pick(&["squeeze_dims"])].concat()),
        Op::ConcatV2 { axis } => consts(
            vec![("axis", i32_scalar(*axis as i64))],
            vec![("T", t(t0)), ("N", attr(Attr::I(n as i64))), ("Tidx", t(int32))],
        ),
        Op::Slice { begin, size } => consts(
            vec![("begin", i32s(begin.iter().map(|&b| b as i64))), ("size", i32s(size.iter().copied()))],
            vec![("T", t(t0)), ("Index", t(int32))],
        ),
        Op::GatherV2 { axis } => consts(
            vec![("axis", i32_scalar(*axis as i64))],
            vec![
                ("Tparams", t(t0)),
                ("Tindices", t(ins.get(1).copied().unwrap_or(DType::I64))),
                ("Taxis", t(int32)),
                ("batch_dims", attr(Attr::I(0))),
            ],
        ),
        Op::StridedSlice(s) | Op::StridedSliceGrad(s) => {
            let masks = [
                ("begin_mask", s.begin_mask),
                ("end_mask", s.end_mask),
                ("ellipsis_mask", s.ellipsis_mask),
                ("new_axis_mask", s.new_axis_mask),
                ("shrink_axis_mask", s.shrink_axis_mask),
            ];
            let mut attrs = vec![("T", t(t0)), ("Index", t(int32))];
            attrs.extend(masks.map(|(k, m)| (k, attr(Attr::I(m)))));
            let args = [("begin", &s.begin), ("end", &s.end), ("strides", &s.strides)];
            let mut inputs: Vec<In> = args.iter().map(|(k, v)| In::Const(k, i32s(v.iter().copied()))).collect();
            if matches!(op, Op::StridedSlice(_)) {
                inputs.insert(0, In::Data(0));
            } else {
                inputs.insert(0, In::ShapeOf("shape", 1));
                inputs.push(In::Data(0));
            }
            with(inputs, attrs)
        }
        Op::Tile { multiples } => consts(
            vec![("multiples", i32s(multiples.iter().map(|&m| m as i64)))],
            vec![("T", t(t0)), ("Tmultiples", t(int32))],
        ),
        Op::UnsortedSegmentSum => with(
            data(n),
            vec![
                ("T", t(t0)),
                ("Tindices", t(ins.get(1).copied().unwrap_or(DType::I64))),
                ("Tnumsegments", t(ins.get(2).copied().unwrap_or(DType::I64))),
            ],
        ),
        Op::SplitV { sizes, axis } => consts(
            vec![("size_splits", i32s(sizes.iter().map(|&s| s as i64))), ("split_dim", i32_scalar(*axis as i64))],
            vec![("T", t(t0)), ("Tlen", t(int32)), ("num_split", attr(Attr::I(sizes.len() as i64)))],
        ),
        Op::Pack { .. } => {
            with(data(n), [vec![("T", t(t0)), ("N", attr(Attr::I(n as i64)))], pick(&["axis"])].concat())
        }
        Op::Unpack { .. } => with(data(n), [vec![("T", t(t0))], pick(&["num", "axis"])].concat()),
        Op::Pad { paddings } | Op::MirrorPad { paddings, .. } | Op::MirrorPadGrad { paddings, .. } => {
            let flat: Vec<i32> = paddings.iter().flat_map(|&(a, b)| [a as i32, b as i32]).collect();
            let p = Value::from(ndarray::Array2::from_shape_vec((paddings.len(), 2), flat).expect("n x 2").into_dyn());
            let mode = table.iter().filter(|(k, _)| *k == "mode").cloned();
            consts(vec![("paddings", p)], [vec![("T", t(t0)), ("Tpaddings", t(int32))], mode.collect()].concat())
        }
        Op::Where => with(data(n), vec![("T", t(t0))]),
        Op::Range => with(data(n), vec![("Tidx", t(t0))]),
        Op::SliceDynamic => with(data(n), vec![("T", t(t0)), ("Index", t(ins[1]))]),
        Op::ReshapeDynamic => with(data(n), vec![("T", t(t0)), ("Tshape", t(ins[1]))]),
        Op::FillDims => with(data(n), vec![("T", t(ins[1])), ("index_type", t(t0))]),
        Op::OneHot { depth, on_value, off_value, dtype } => consts(
            vec![
                ("depth", i32_scalar(*depth as i64)),
                ("on_value", Value::filled(*dtype, &[], *on_value)),
                ("off_value", Value::filled(*dtype, &[], *off_value)),
            ],
            vec![("T", t(*dtype)), ("TI", t(t0)), ("axis", attr(Attr::I(-1)))],
        ),
        Op::Fill { dtype, shape, value } => consts(
            vec![("dims", i32s(shape.iter().map(|&d| d as i64))), ("value", Value::filled(*dtype, &[], *value))],
            vec![("T", t(*dtype)), ("index_type", t(int32))],
        ),
        Op::Shape { dtype } => with(data(n), vec![("T", t(t0)), ("out_type", t(*dtype))]),
        // Over every axis it is TF's Size (the axes ride along: TF ignores `_` attributes),
        // counting in int32 and cast when ours counts in another dtype.
        Op::Size { axes, dtype } if axes.as_ref().is_none_or(|a| a.iter().copied().eq(0..rank0)) => {
            let count = if matches!(dtype, DType::I32 | DType::I64) { *dtype } else { int32 };
            let mut attrs = vec![("T", t(t0)), ("out_type", t(count))];
            if axes.is_some() {
                let all = ListValue { i: (0..rank0 as i64).collect(), ..Default::default() };
                attrs.push((ALL_AXES, attr(Attr::List(all))));
            }
            let post = if count == *dtype { Post::None } else { Post::Cast(*dtype) };
            Some(TfForm { op: "Size".into(), inputs: data(n), attrs, post })
        }
        Op::BroadcastTo => with(vec![In::Data(0), In::ShapeOf("shape", 1)], vec![("T", t(t0)), ("Tidx", t(int32))]),
        Op::RandomUniform { dtype, shape, minval, maxval, seed, seed2 } => {
            random("RandomUniform", *seed, *seed2, *dtype, dims(shape), (maxval - minval, *minval))
        }
        Op::RandomUniformLike { dtype, minval, maxval, seed, seed2 } => {
            random("RandomUniform", *seed, *seed2, *dtype, In::ShapeOf("shape", 0), (maxval - minval, *minval))
        }
        Op::RandomStandardNormal { dtype, shape, mean, stddev, seed, seed2 } => {
            random("RandomStandardNormal", *seed, *seed2, *dtype, dims(shape), (*stddev, *mean))
        }
        Op::TruncatedNormal { dtype, shape, mean, stddev, seed, seed2 } => {
            random("TruncatedNormal", *seed, *seed2, *dtype, dims(shape), (*stddev, *mean))
        }
        Op::VariableV2 { .. } => with(
            vec![],
            [table.clone(), vec![("container", attr(Attr::S(vec![]))), ("shared_name", attr(Attr::S(vec![])))]]
                .concat(),
        ),
        Op::Assign => with(
            data(n),
            vec![("T", t(t0)), ("validate_shape", attr(Attr::B(true))), ("use_locking", attr(Attr::B(true)))],
        ),
        Op::AssignAdd | Op::AssignSub => with(data(n), vec![("T", t(t0)), ("use_locking", attr(Attr::B(false)))]),
        Op::Apply(a) => {
            let mut attrs = vec![("T", t(t0)), ("use_locking", attr(Attr::B(false)))];
            if let ApplyOp::Momentum { use_nesterov } = a {
                attrs.push(("use_nesterov", attr(Attr::B(*use_nesterov))));
            }
            with(data(n), attrs)
        }
        Op::NoOp => with(vec![], vec![]),
        // No TF op computes these as they are (batch norm's training switch is a tensor here,
        // an attribute in TF, which spells the switch with control flow).
        // SumToShape has a form of several nodes: `write_sum_to_shape`.
        Op::SumToShape => None,
        // Written with their functions by `write_functional` and `write_while_grad`.
        Op::While { .. } | Op::If { .. } | Op::WhileGrad { .. } => None,
        // Written as several TF ops by `write_batch_norm`, `write_batch_norm_grad`,
        // `write_size_over_axes` and `write_slice_grad`.
        Op::FusedBatchNorm { .. } | Op::FusedBatchNormGrad | Op::Size { .. } | Op::SliceGrad => None,
    }
}

fn input_name(name: &str, slot: usize) -> String {
    if slot == 0 {
        name.to_string()
    } else {
        format!("{name}:{slot}")
    }
}

pub(super) fn node_def<K: Into<String>>(
    name: String,
    op: &str,
    input: Vec<String>,
    attrs: Vec<(K, AttrValue)>,
) -> NodeDef {
    let attr = attrs.into_iter().map(|(k, v)| (k.into(), v)).collect();
    NodeDef { name, op: op.into(), input, device: String::new(), attr }
}

pub(super) fn const_def(name: String, value: &Value) -> NodeDef {
    node_def(
        name,
        "Const",
        vec![],
        vec![("dtype", ty(value.dtype())), ("value", attr(Attr::Tensor(tensor_proto(value))))],
    )
}

/// Writes the nodes `keep` selects (which must include every input of each) in graph order.
/// With `private`, ops TF lacks are written under tensorgraph's own names instead of failing.
pub(super) fn graph_def(g: &Graph, keep: &dyn Fn(NodeIndex) -> bool, private: bool) -> Result<GraphDef> {
    let mut library = Library::default();
    let node = g.read(|d| {
        let mut w = Writer { private, args: None, library: &mut library, keep };
        let mut nodes = Vec::new();
        for i in d.dag.node_indices().filter(|&i| keep(i)) {
            write_node(d, d.node(i), &mut w, &mut nodes)?;
        }
        Ok::<_, Error>(nodes)
    })?;
    let library = (!library.functions.is_empty()).then_some(FunctionDefLibrary { function: library.functions });
    Ok(GraphDef { node, library, versions: Some(VersionDef { producer: PRODUCER, min_consumer: 0 }) })
}

/// The functions written so far (the bodies and branches of loops and conditionals).
#[derive(Default)]
struct Library {
    functions: Vec<FunctionDef>,
    names: HashSet<String>,
}

impl Library {
    /// A function name from `base` no function has yet, reserved.
    fn reserve(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        for k in 1.. {
            if !self.names.contains(&name) {
                break;
            }
            name = format!("{base}_{k}");
        }
        self.names.insert(name.clone());
        name
    }

    /// Adds a function: its name, and whether it holds a stateful op.
    fn add(&mut self, f: FunctionDef) -> (String, bool) {
        let signature = f.signature.as_ref().expect("written with a signature");
        let named = (signature.name.clone(), signature.is_stateful);
        self.functions.push(f);
        named
    }
}

/// Where nodes are being written: the graph, or a function of the library.
struct Writer<'a> {
    private: bool,
    /// In a function: its arguments (the placeholders standing for them) by name; node
    /// outputs are then named `node:output_arg:index`, in a graph `node:slot`.
    args: Option<HashMap<Endpoint, String>>,
    library: &'a mut Library,
    /// The nodes being written (of the graph; all of a function).
    keep: &'a dyn Fn(NodeIndex) -> bool,
}

impl Writer<'_> {
    /// How a node input names output `e` of our node `m`.
    fn output_ref(&self, d: &GraphData, e: Endpoint) -> String {
        let m = d.node(e.node);
        let Some(args) = &self.args else { return input_name(&m.name, e.slot) };
        if let Some(a) = args.get(&e) {
            return a.clone();
        }
        let (arg, index) = tf_output(d, m, e.slot, self.keep);
        format!("{}:{arg}:{index}", m.name)
    }

    /// How a node input names output `index` of output argument `arg` of a node written here
    /// under `name` (a helper node: a constant argument, a shape).
    fn helper_ref(&self, name: &str, arg: &str, index: usize) -> String {
        match self.args {
            Some(_) => format!("{name}:{arg}:{index}"),
            None => input_name(name, index),
        }
    }
}

/// TF's output argument and index within it of output `slot` of node `m` as written.
fn tf_output(d: &GraphData, m: &Node, slot: usize, keep: &dyn Fn(NodeIndex) -> bool) -> (&'static str, usize) {
    match &m.op {
        Op::SumToShape => ("output", 0),                          // written ending in a Reshape
        Op::Size { .. } if some_axes(d, m).is_some() => ("y", 0), // ending in a Cast
        // FusedBatchNormV3, or an If of two when the switch is a run-time tensor.
        Op::FusedBatchNorm { .. } => match constant_switch(d, m) {
            Some(_) if !batch_norm_statistics_read(d, m, keep) => {
                (["y", "batch_mean"].get(slot).copied().unwrap_or("y"), 0)
            }
            _ => ("output", slot), // an If, or an IdentityN
        },
        Op::FusedBatchNormGrad => ("output", slot), // an IdentityN
        Op::While { .. } | Op::If { .. } | Op::WhileGrad { .. } => ("output", slot),
        op => {
            let ins: Vec<DType> = m.inputs.iter().map(|&e| d.spec(e).dtype).collect();
            let outs: Vec<DType> = m.outputs.iter().map(|o| o.dtype).collect();
            let rank0 = m.inputs.first().map_or(0, |&e| d.spec(e).shape.rank());
            match tf_form(op, &ins, rank0, &outs).map(|f| f.post) {
                Some(Post::Affine(..)) => ("z", 0), // ends in AddV2
                Some(Post::Cast(_)) => ("y", 0),
                _ => match op.def().outputs {
                    [one] => (one, slot),
                    several => (several.get(slot).copied().unwrap_or("output"), 0),
                },
            }
        }
    }
}

/// The NodeDefs of node `n`: its helper nodes (constant arguments, shapes), then itself.
fn write_node(d: &GraphData, n: &Node, w: &mut Writer, nodes: &mut Vec<NodeDef>) -> Result<()> {
    let private = w.private;
    if n.op == Op::SumToShape {
        write_sum_to_shape(d, n, w, nodes);
        return Ok(());
    }
    let start = nodes.len();
    let several = match &n.op {
        Op::FusedBatchNorm { epsilon } => Some(write_batch_norm(d, n, *epsilon, w, nodes)),
        Op::FusedBatchNormGrad => Some(write_batch_norm_grad(d, n, w, nodes)),
        Op::SliceGrad => Some(write_slice_grad(d, n, w, nodes)),
        Op::Size { .. } => some_axes(d, n).map(|axes| {
            write_size_over_axes(d, n, axes, w, nodes);
            Ok(())
        }),
        _ => None,
    };
    if let Some(written) = several {
        written?;
        if private {
            mark(d, n, w, &mut nodes[start..]);
        }
        return Ok(());
    }
    if !private && only_a_batch_norm_switch(d, n, w) {
        return Ok(()); // written as the batch norms' is_training attribute
    }
    if matches!(n.op, Op::While { .. } | Op::If { .. }) {
        return write_functional(d, n, w, nodes);
    }
    if matches!(n.op, Op::WhileGrad { .. }) {
        return write_while_grad(d, n, w, nodes);
    }
    let ins: Vec<DType> = n.inputs.iter().map(|&e| d.spec(e).dtype).collect();
    let outs: Vec<DType> = n.outputs.iter().map(|o| o.dtype).collect();
    let rank0 = n.inputs.first().map_or(0, |&e| d.spec(e).shape.rank());
    let Some(form) = tf_form(&n.op, &ins, rank0, &outs) else {
        return Err(Error::InvalidArgument {
            node: n.info(),
            detail: format!("{} has no TensorFlow GraphDef form yet", n.op.type_name()),
        });
    };
    let data_input = |k: usize| {
        let e = n.inputs[k];
        (w.output_ref(d, e), e)
    };
    // A helper node's name may be taken by a node of an imported graph that is that very
    // helper (TF's `Reshape/shape`): it is read instead of written again.
    let taken = |name: &str, same: &dyn Fn(&Node) -> bool| -> Result<bool> {
        match d.find(name) {
            None => Ok(false),
            Some(j) if same(d.node(j)) => Ok(true),
            Some(_) => Err(Error::InvalidArgument {
                node: n.info(),
                detail: format!("its TF form needs a node {name}, a name another node has"),
            }),
        }
    };
    let mut input = Vec::with_capacity(form.inputs.len());
    for src in &form.inputs {
        match src {
            In::Data(k) => input.push(data_input(*k).0),
            In::Const(arg, value) => {
                let name = format!("{}/{arg}", n.name);
                if !taken(&name, &|m| matches!(&m.op, Op::Const { value: v } if v == value))? {
                    nodes.push(const_def(name.clone(), value));
                }
                input.push(w.helper_ref(&name, "output", 0));
            }
            In::ShapeOf(arg, k) => {
                let name = format!("{}/{arg}", n.name);
                let (of, e) = data_input(*k);
                if !taken(&name, &|m| matches!(m.op, Op::Shape { dtype: DType::I32 }) && m.inputs == [e])? {
                    let attrs = vec![("T", ty(d.spec(e).dtype)), ("out_type", ty(DType::I32))];
                    nodes.push(node_def(name.clone(), "Shape", vec![of], attrs));
                }
                input.push(w.helper_ref(&name, "output", 0));
            }
            In::MaxPoolOf(k) => {
                let (of, e) = data_input(*k);
                let window = match &n.op {
                    Op::MaxPoolGrad(w) | Op::MaxPoolGradGrad(w) => *w,
                    _ => unreachable!("only max-pool gradients read the forward output"),
                };
                // The forward MaxPool of the same input and window, as TF's graphs read it.
                let forward =
                    d.dag.node_indices().map(|j| d.node(j)).find(|m| m.op == Op::MaxPool(window) && m.inputs == [e]);
                match forward {
                    Some(f) => input.push(w.helper_ref(&f.name, "output", 0)),
                    None => {
                        let name = format!("{}/orig_output", n.name);
                        let mut attrs: Vec<(&str, AttrValue)> =
                            window.attrs().into_iter().map(|(k, v)| (k, op_attr(v))).collect();
                        attrs.push(("T", ty(d.spec(e).dtype)));
                        nodes.push(node_def(name.clone(), "MaxPool", vec![of], attrs));
                        input.push(w.helper_ref(&name, "output", 0));
                    }
                }
            }
        }
    }
    input.extend(n.control_inputs.iter().map(|&c| format!("^{}", d.node(c).name)));
    let reads: Vec<String> = reads_before_update(d, n, w.keep).into_iter().map(|c| d.node(c).name.clone()).collect();
    input.extend(reads.iter().map(|r| format!("^{r}")));
    let mut attrs: Vec<(String, AttrValue)> = form.attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    if private {
        attrs.extend(private_attrs(n));
        if !reads.is_empty() {
            attrs.push((MARK_READS.into(), strings(reads)));
        }
    }
    let dtype = outs.first().copied().unwrap_or(DType::F32);
    let main = format!("{}/{}", n.name, form.op);
    let (scale, shift) = match form.post {
        Post::None => {
            nodes.push(node_def(n.name.clone(), &form.op, input, attrs));
            return Ok(());
        }
        Post::Cast(to) => {
            let count = if let Some(AttrValue { value: Some(Attr::Type(c)) }) =
                attrs.iter().find(|(k, _)| k == "out_type").map(|(_, v)| v)
            {
                *c
            } else {
                crate::proto::dtype_enum(DType::I32)
            };
            nodes.push(node_def(main.clone(), &form.op, input, attrs));
            let cast = vec![("SrcT", attr(Attr::Type(count))), ("DstT", ty(to)), ("Truncate", attr(Attr::B(false)))];
            nodes.push(node_def(n.name.clone(), "Cast", vec![w.helper_ref(&main, "output", 0)], cast));
            return Ok(());
        }
        Post::Affine(scale, shift) => (scale, shift),
    };
    // A draw with a range: TF's standard draw, scaled and shifted (as tf.random_uniform).
    let (draw, mul) = (main, format!("{}/mul", n.name));
    let (scale_name, shift_name) = (format!("{}/scale", n.name), format!("{}/shift", n.name));
    let r = |name: &str, arg: &str| w.helper_ref(name, arg, 0);
    nodes.push(node_def(draw.clone(), &form.op, input, attrs));
    nodes.push(const_def(scale_name.clone(), &Value::filled(dtype, &[], scale)));
    nodes.push(node_def(
        mul.clone(),
        "Mul",
        vec![r(&draw, "output"), r(&scale_name, "output")],
        vec![("T", ty(dtype))],
    ));
    nodes.push(const_def(shift_name.clone(), &Value::filled(dtype, &[], shift)));
    let sum = vec![r(&mul, "z"), r(&shift_name, "output")];
    nodes.push(node_def(n.name.clone(), "AddV2", sum, vec![("T", ty(dtype))]));
    Ok(())
}

/// The nodes that must run before optimizer update `n` (an `Apply*`) writes its variable in
/// place: the stateless nodes of the training step (those some update needs) that read the
/// variable's value, directly or through `Identity`s of it, and are neither before nor after
/// `n` already. Our sessions run every ready stateless node before any stateful one; TF's runs
/// ready nodes in any order, and a read of a `VariableV2` aliases the buffer the update writes,
/// so without these control inputs TF could compute a gradient from a weight already updated
/// (seen: a dense layer's input gradient). Nodes outside the training step (an evaluation)
/// and initializers are left alone: they must not start needing the step's feeds.
fn reads_before_update(d: &GraphData, n: &Node, keep: &dyn Fn(NodeIndex) -> bool) -> Vec<NodeIndex> {
    use tensorgraph_graph::Direction::{Incoming, Outgoing};
    if !matches!(n.op, Op::Apply(_)) {
        return Vec::new();
    }
    let vars: Vec<NodeIndex> =
        n.op.ref_inputs()
            .into_iter()
            .filter_map(|k| n.inputs.get(k).map(|e| e.node))
            .filter(|&v| matches!(d.node(v).op, Op::VariableV2 { .. }))
            .collect();
    let reach = |from: Vec<NodeIndex>, dir| {
        let mut seen: HashSet<NodeIndex> = from.iter().copied().collect();
        let mut stack = from;
        while let Some(i) = stack.pop() {
            stack.extend(d.dag.neighbors_directed(i, dir).filter(|&j| seen.insert(j)));
        }
        seen
    };
    let me = d.find(&n.name).expect("a node of the graph");
    let (before, after) = (reach(vec![me], Incoming), reach(vec![me], Outgoing));
    let updates = d.dag.node_indices().filter(|&j| matches!(d.node(j).op, Op::Apply(_)) && keep(j)).collect();
    let step = reach(updates, Incoming);
    let mut sources = vars;
    let mut readers = Vec::new();
    while let Some(s) = sources.pop() {
        for m in d.dag.neighbors_directed(s, Outgoing) {
            let node = d.node(m);
            if node.op == Op::Identity {
                sources.push(m);
            } else if step.contains(&m) && !node.op.is_stateful() && !before.contains(&m) && !after.contains(&m) {
                readers.push(m);
            }
        }
    }
    readers.sort();
    readers.dedup();
    readers
}

/// Where the node was built, so errors in a program that imports it still say so, and float
/// attributes to the bit (TF's are float32), for files tensorgraph writes for itself: TF
/// ignores attributes named `_...`.
fn private_attrs(n: &Node) -> Vec<(String, AttrValue)> {
    let l = &n.location;
    let mut attrs = vec![(LOCATION.into(), attr(Attr::S(format!("{}:{}:{}", l.file, l.line, l.column).into_bytes())))];
    for (k, v) in n.op.attrs() {
        if let OpAttr::Float(f) = v {
            attrs.push((format!("{F64_PREFIX}{k}"), attr(Attr::I(f.to_bits() as i64))));
        }
    }
    attrs
}

/// A `list(string)` attribute.
fn strings(v: Vec<String>) -> AttrValue {
    attr(Attr::List(ListValue { s: v.into_iter().map(String::into_bytes).collect(), ..Default::default() }))
}

/// Marks the last of `written` (our node `n` written as several TF ops, the last one `n`)
/// with what tensorgraph needs to read it back as `n` itself: the op ([`MARK_OP`]: its
/// private name), its inputs ([`MARK_INPUTS`]), the other nodes written for it, which are then
/// not read ([`MARK_PARTS`]), and its attributes ([`MARK_ATTR`] + name). TF runs the ops.
fn mark(d: &GraphData, n: &Node, w: &Writer, written: &mut [NodeDef]) {
    let Some((last, parts)) = written.split_last_mut() else { return };
    debug_assert_eq!(last.name, n.name);
    let op = format!("{PRIVATE}{}", n.op.type_name());
    last.attr.insert(MARK_OP.into(), attr(Attr::S(op.into_bytes())));
    last.attr.insert(MARK_INPUTS.into(), strings(n.inputs.iter().map(|&e| w.output_ref(d, e)).collect()));
    last.attr.insert(MARK_PARTS.into(), strings(parts.iter().map(|p| p.name.clone()).collect()));
    for (k, v) in n.op.attrs() {
        last.attr.insert(format!("{MARK_ATTR}{k}"), op_attr(v));
    }
    last.attr.extend(private_attrs(n));
}

/// `SumToShape(grad, like)` as TF's gradients spell it: the axes `like` was broadcast along
/// from `BroadcastGradientArgs` of the two shapes, summed over, reshaped to `like`'s shape:
/// `N/grad_shape`, `N/like_shape`, `N/args`, `N/sum`, then `N` (read back as one op).
fn write_sum_to_shape(d: &GraphData, n: &Node, w: &Writer, nodes: &mut Vec<NodeDef>) {
    let name = |k: usize| w.output_ref(d, n.inputs[k]);
    let r = |name: &str, arg: &str| w.helper_ref(name, arg, 0);
    let t = ty(d.spec(n.inputs[0]).dtype);
    let shape_attrs = |of: Endpoint| vec![("T", ty(d.spec(of).dtype)), ("out_type", ty(DType::I32))];
    let [gs, ls, args, sum] = ["grad_shape", "like_shape", "args", "sum"].map(|s| format!("{}/{s}", n.name));
    nodes.push(node_def(gs.clone(), "Shape", vec![name(0)], shape_attrs(n.inputs[0])));
    nodes.push(node_def(ls.clone(), "Shape", vec![name(1)], shape_attrs(n.inputs[1])));
    let shapes = vec![r(&ls, "output"), r(&gs, "output")];
    nodes.push(node_def(args.clone(), "BroadcastGradientArgs", shapes, vec![("T", ty(DType::I32))]));
    let sum_attrs = vec![("T", t.clone()), ("Tidx", ty(DType::I32)), ("keep_dims", attr(Attr::B(false)))];
    nodes.push(node_def(sum.clone(), "Sum", vec![name(0), r(&args, "r0")], sum_attrs));
    let mut input = vec![r(&sum, "output"), r(&ls, "output")];
    input.extend(n.control_inputs.iter().map(|&c| format!("^{}", d.node(c).name)));
    let mut attrs = vec![("T", t), ("Tshape", ty(DType::I32))];
    if w.private {
        let l = &n.location;
        attrs.push((LOCATION, attr(Attr::S(format!("{}:{}:{}", l.file, l.line, l.column).into_bytes()))));
    }
    nodes.push(node_def(n.name.clone(), "Reshape", input, attrs));
}

/// The axes of a `Size` counting over some of its input's axes, not all.
fn some_axes<'n>(d: &GraphData, n: &'n Node) -> Option<&'n [usize]> {
    let Op::Size { axes: Some(axes), .. } = &n.op else { return None };
    let rank = n.inputs.first().map_or(0, |&e| d.spec(e).shape.rank());
    (!axes.iter().copied().eq(0..rank)).then_some(axes.as_slice())
}

/// `Size` over some axes (the mean's gradient over them) as TF ops: the product of those
/// dimensions of the input's shape, `N/shape`, `N/dims` (a Gather), `N/count` (a Prod), then
/// `N`, a Cast to the count's dtype.
fn write_size_over_axes(d: &GraphData, n: &Node, axes: &[usize], w: &Writer, nodes: &mut Vec<NodeDef>) {
    let Op::Size { dtype, .. } = n.op else { unreachable!("a Size") };
    let r = |name: &str, arg: &str| w.helper_ref(name, arg, 0);
    let at = |s: &str| format!("{}/{s}", n.name);
    let int32 = DType::I32;
    let x = n.inputs[0];
    let shape_attrs = vec![("T", ty(d.spec(x).dtype)), ("out_type", ty(int32))];
    nodes.push(node_def(at("shape"), "Shape", vec![w.output_ref(d, x)], shape_attrs));
    nodes.push(const_def(at("axes"), &i32s(axes.iter().map(|&a| a as i64))));
    nodes.push(const_def(at("dims/axis"), &i32_scalar(0)));
    let gather = vec![r(&at("shape"), "output"), r(&at("axes"), "output"), r(&at("dims/axis"), "output")];
    let gather_attrs =
        vec![("Tparams", ty(int32)), ("Tindices", ty(int32)), ("Taxis", ty(int32)), ("batch_dims", attr(Attr::I(0)))];
    nodes.push(node_def(at("dims"), "GatherV2", gather, gather_attrs));
    nodes.push(const_def(at("count/reduction_indices"), &i32s([0])));
    let prod_attrs = vec![("T", ty(int32)), ("Tidx", ty(int32)), ("keep_dims", attr(Attr::B(false)))];
    let prod = vec![r(&at("dims"), "output"), r(&at("count/reduction_indices"), "output")];
    nodes.push(node_def(at("count"), "Prod", prod, prod_attrs));
    let mut input = vec![r(&at("count"), "output")];
    input.extend(n.control_inputs.iter().map(|&c| format!("^{}", d.node(c).name)));
    let cast = vec![("SrcT", ty(int32)), ("DstT", ty(dtype)), ("Truncate", attr(Attr::B(false)))];
    nodes.push(node_def(n.name.clone(), "Cast", input, cast));
}

/// Whether `n` is a constant read only as the training switch of batch norms.
fn only_a_batch_norm_switch(d: &GraphData, n: &Node, w: &Writer) -> bool {
    if !matches!(&n.op, Op::Const { value: Value::Bool(b) } if b.ndim() == 0) {
        return false;
    }
    let me = d.find(&n.name).expect("the node being written");
    let readers: Vec<(&Node, Vec<usize>)> = d
        .dag
        .node_indices()
        .filter(|&j| (w.keep)(j))
        .filter_map(|j| {
            let m = d.node(j);
            let reads: Vec<usize> = m.inputs.iter().enumerate().filter(|(_, e)| e.node == me).map(|(k, _)| k).collect();
            (!reads.is_empty() || m.control_inputs.contains(&me)).then_some((m, reads))
        })
        .collect();
    !readers.is_empty() && readers.iter().all(|(m, reads)| matches!(m.op, Op::FusedBatchNorm { .. }) && reads == &[5])
}

/// The training switch of a batch norm when it is a constant.
fn constant_switch(d: &GraphData, n: &Node) -> Option<bool> {
    match &d.node(n.inputs.get(5)?.node).op {
        Op::Const { value: Value::Bool(b) } if b.ndim() == 0 => b.first().copied(),
        _ => None,
    }
}

/// Whether a node written (`keep`) reads batch norm `n`'s statistics beyond what TF's
/// `FusedBatchNormV3` gives as ours (`y`, and in training mode the batch mean): then it is
/// written with them.
fn batch_norm_statistics_read(d: &GraphData, n: &Node, keep: &dyn Fn(NodeIndex) -> bool) -> bool {
    let me = d.find(&n.name).expect("a node of the graph");
    let readable = if constant_switch(d, n) == Some(true) { 1 } else { 0 };
    d.dag
        .node_indices()
        .filter(|&j| keep(j))
        .any(|j| d.node(j).inputs.iter().any(|e| e.node == me && e.slot > readable))
}

/// Our batch norm as TF's `FusedBatchNormV3`: its training switch an attribute where it is a
/// constant, else an `If` over the switch whose branches are `FusedBatchNormV3` in training and
/// in inference mode (as TF's `tf.layers.batch_normalization` writes a run-time switch). Where
/// our statistics are read (a training graph: the moving averages' updates, the gradient),
/// that is `N/bn` and `N` an `IdentityN` of its `y` and the statistics as TF ops compute them
/// (TF's batch variance is Bessel-corrected and its reserve spaces are not ours): the batch
/// mean and biased variance over every axis but the last, the mean used and `1/√(variance + ε)`.
fn write_batch_norm(d: &GraphData, n: &Node, epsilon: f64, w: &mut Writer, nodes: &mut Vec<NodeDef>) -> Result<()> {
    let statistics = batch_norm_statistics_read(d, n, w.keep);
    let bn = if statistics { format!("{}/bn", n.name) } else { n.name.clone() };
    let dtype = d.spec(n.inputs[0]).dtype;
    let bn_attrs = |training: bool| {
        vec![
            ("T", ty(dtype)),
            ("U", ty(dtype)),
            ("epsilon", attr(Attr::F(epsilon as f32))),
            ("exponential_avg_factor", attr(Attr::F(1.0))),
            ("data_format", attr(Attr::S(b"NHWC".to_vec()))),
            ("is_training", attr(Attr::B(training))),
        ]
    };
    let refs: Vec<String> = n.inputs.iter().map(|&e| w.output_ref(d, e)).collect();
    let mut input: Vec<String> = refs[..5].to_vec();
    input.extend(n.control_inputs.iter().map(|&c| format!("^{}", d.node(c).name)));
    let y = if let Some(training) = constant_switch(d, n) {
        nodes.push(node_def(bn.clone(), "FusedBatchNormV3", input, bn_attrs(training)));
        w.helper_ref(&bn, "y", 0)
    } else {
        let base = n.name.replace('/', "_");
        let mut branches = Vec::with_capacity(2);
        for (branch, training) in [("then", true), ("else", false)] {
            let name = w.library.reserve(&format!("{base}_{branch}"));
            let args = (0..5).map(|k| (format!("arg{k}"), dtype)).collect::<Vec<_>>();
            let bn = node_def("bn".into(), "FusedBatchNormV3", args.iter().map(|a| a.0.clone()).collect(), {
                bn_attrs(training)
            });
            w.library.add(function_def(name.clone(), args, vec![bn], vec![("bn:y:0".into(), dtype)], false));
            branches.push(attr(Attr::Func(NameAttrList { name, attr: HashMap::new() })));
        }
        let attrs = vec![
            ("Tcond", ty(DType::Bool)),
            ("Tin", type_list(vec![dtype; 5])),
            ("Tout", type_list(vec![dtype])),
            ("then_branch", branches[0].clone()),
            ("else_branch", branches[1].clone()),
            ("output_shapes", shape_list(vec![&n.outputs[0].shape])),
        ];
        input.insert(0, refs[5].clone());
        nodes.push(node_def(bn.clone(), "StatelessIf", input, attrs));
        w.helper_ref(&bn, "output", 0)
    };
    if !statistics {
        return Ok(());
    }
    let mut m = Math::new(d, n, w, nodes, dtype, d.spec(n.inputs[0]).shape.rank());
    let (x, mean_in, variance_in) = (&refs[0], &refs[3], &refs[4]);
    let batch_mean = m.reduce("batch_mean", "Mean", x)?;
    let centered = m.binary("centered", "Sub", x, &batch_mean)?;
    let squared = m.op("squared", "Square", vec![centered], "y")?;
    let batch_variance = m.reduce("batch_variance", "Mean", &squared)?;
    let (mean, variance) = match constant_switch(d, n) {
        Some(true) => (batch_mean.clone(), batch_variance.clone()),
        Some(false) => (mean_in.clone(), variance_in.clone()),
        None => (
            m.select("mean", &refs[5], &batch_mean, mean_in)?,
            m.select("variance", &refs[5], &batch_variance, variance_in)?,
        ),
    };
    let eps = m.constant("epsilon", &Value::filled(dtype, &[], epsilon))?;
    let shifted = m.binary("shifted", "AddV2", &variance, &eps)?;
    let inv_std = m.op("inv_std", "Rsqrt", vec![shifted], "y")?;
    m.identity_n(vec![y, batch_mean, batch_variance, mean, inv_std])
}

/// Our batch norm gradient as TF ops (TF's `FusedBatchNormGradV3` reads its forward op's
/// reserve spaces, not our statistics): with `x̂ = (x - mean)·inv_std`, `dscale = Σ dy·x̂` and
/// `doffset = Σ dy` over every axis but the last, `dx = scale·inv_std·dy` in inference mode and
/// `scale·inv_std·(dy - mean(dy) - x̂·mean(dy·x̂))` in training mode; `N` an `IdentityN` of the
/// three.
fn write_batch_norm_grad(d: &GraphData, n: &Node, w: &mut Writer, nodes: &mut Vec<NodeDef>) -> Result<()> {
    let dtype = d.spec(n.inputs[0]).dtype;
    let refs: Vec<String> = n.inputs.iter().map(|&e| w.output_ref(d, e)).collect();
    let [dy, x, scale, mean, inv_std, training] = [0, 1, 2, 3, 4, 5].map(|k| refs[k].clone());
    let mut m = Math::new(d, n, w, nodes, dtype, d.spec(n.inputs[1]).shape.rank());
    let centered = m.binary("centered", "Sub", &x, &mean)?;
    let xhat = m.binary("xhat", "Mul", &centered, &inv_std)?;
    let dy_xhat = m.binary("dy_xhat", "Mul", &dy, &xhat)?;
    let dscale = m.reduce("dscale", "Sum", &dy_xhat)?;
    let doffset = m.reduce("doffset", "Sum", &dy)?;
    let gain = m.binary("gain", "Mul", &scale, &inv_std)?;
    let dy_mean = m.reduce("dy_mean", "Mean", &dy)?;
    let dy_xhat_mean = m.reduce("dy_xhat_mean", "Mean", &dy_xhat)?;
    let dy_centered = m.binary("dy_centered", "Sub", &dy, &dy_mean)?;
    let projection = m.binary("projection", "Mul", &xhat, &dy_xhat_mean)?;
    let training_dy = m.binary("training_dy", "Sub", &dy_centered, &projection)?;
    let picked = m.select("picked", &training, &training_dy, &dy)?;
    let dx = m.binary("dx", "Mul", &picked, &gain)?;
    m.identity_n(vec![dx, dscale, doffset])
}

/// `SliceGrad(dy, like, begin)` as TF's gradient of `Slice` spells it: `dy` padded with
/// `begin` zeros before and `shape(like) - begin - shape(dy)` after, in each dimension.
fn write_slice_grad(d: &GraphData, n: &Node, w: &mut Writer, nodes: &mut Vec<NodeDef>) -> Result<()> {
    let (dtype, index) = (d.spec(n.inputs[0]).dtype, d.spec(n.inputs[2]).dtype);
    let refs: Vec<String> = n.inputs.iter().map(|&e| w.output_ref(d, e)).collect();
    let mut m = Math::new(d, n, w, nodes, dtype, 0);
    let shape = |of: usize| vec![("T", ty(d.spec(n.inputs[of]).dtype)), ("out_type", ty(index))];
    let like_shape = m.push("like_shape", "Shape", vec![refs[1].clone()], shape(1), "output")?;
    let dy_shape = m.push("dy_shape", "Shape", vec![refs[0].clone()], shape(0), "output")?;
    let ints = || vec![("T", ty(index))];
    let rest = m.push("rest", "Sub", vec![like_shape, refs[2].clone()], ints(), "z")?;
    let after = m.push("after", "Sub", vec![rest, dy_shape], ints(), "z")?;
    let pack = vec![("T", ty(index)), ("N", attr(Attr::I(2))), ("axis", attr(Attr::I(1)))];
    let paddings = m.push("paddings", "Pack", vec![refs[2].clone(), after], pack, "output")?;
    let pad = vec![("T", ty(dtype)), ("Tpaddings", ty(index))];
    let name = n.name.clone();
    let mut input = vec![refs[0].clone(), paddings];
    input.extend(n.control_inputs.iter().map(|&c| format!("^{}", d.node(c).name)));
    m.nodes.push(node_def(name, "Pad", input, pad));
    Ok(())
}

/// `N/part`, the name of a node written for node `N`'s TF form: an error where another node
/// of the graph has it.
fn helper_name(d: &GraphData, n: &Node, part: &str) -> Result<String> {
    let name = format!("{}/{part}", n.name);
    match d.find(&name) {
        None => Ok(name),
        Some(_) => Err(Error::InvalidArgument {
            node: n.info(),
            detail: format!("its TF form needs a node {name}, a name another node has"),
        }),
    }
}

/// Writes the TF ops of a form of several nodes for node `N`: each under `N/<part>`, of the
/// node's dtype, the last one `N` itself.
struct Math<'a> {
    d: &'a GraphData,
    n: &'a Node,
    w: &'a Writer<'a>,
    nodes: &'a mut Vec<NodeDef>,
    dtype: DType,
    /// Every axis but the last, for reductions over them (written on first use).
    rank: usize,
    axes: Option<String>,
}

impl<'a> Math<'a> {
    fn new(
        d: &'a GraphData,
        n: &'a Node,
        w: &'a Writer<'a>,
        nodes: &'a mut Vec<NodeDef>,
        dtype: DType,
        rank: usize,
    ) -> Self {
        Math { d, n, w, nodes, dtype, rank, axes: None }
    }

    fn fresh(&self, part: &str) -> Result<String> {
        helper_name(self.d, self.n, part)
    }

    /// Node `N/part`, `op` of `inputs`: how an input names its output argument `out`.
    fn push(
        &mut self,
        part: &str,
        op: &str,
        inputs: Vec<String>,
        attrs: Vec<(&str, AttrValue)>,
        out: &str,
    ) -> Result<String> {
        let name = self.fresh(part)?;
        self.nodes.push(node_def(name.clone(), op, inputs, attrs));
        Ok(self.w.helper_ref(&name, out, 0))
    }

    fn op(&mut self, part: &str, op: &str, inputs: Vec<String>, out: &str) -> Result<String> {
        self.push(part, op, inputs, vec![("T", ty(self.dtype))], out)
    }

    fn binary(&mut self, part: &str, op: &str, a: &str, b: &str) -> Result<String> {
        self.op(part, op, vec![a.into(), b.into()], "z")
    }

    fn select(&mut self, part: &str, cond: &str, a: &str, b: &str) -> Result<String> {
        self.op(part, "SelectV2", vec![cond.into(), a.into(), b.into()], "output")
    }

    fn constant(&mut self, part: &str, value: &Value) -> Result<String> {
        let name = self.fresh(part)?;
        self.nodes.push(const_def(name.clone(), value));
        Ok(self.w.helper_ref(&name, "output", 0))
    }

    /// `Mean` or `Sum` over every axis but the last.
    fn reduce(&mut self, part: &str, op: &str, x: &str) -> Result<String> {
        let axes = match self.axes.clone() {
            Some(axes) => axes,
            None => {
                let axes = self.constant("axes", &i32s((0..self.rank.saturating_sub(1)).map(|a| a as i64)))?;
                self.axes = Some(axes.clone());
                axes
            }
        };
        let attrs = vec![("T", ty(self.dtype)), ("Tidx", ty(DType::I32)), ("keep_dims", attr(Attr::B(false)))];
        self.push(part, op, vec![x.into(), axes], attrs, "output")
    }

    /// `N` itself: an `IdentityN` of `outputs`, our node's outputs in order, after the node's
    /// control inputs.
    fn identity_n(self, mut outputs: Vec<String>) -> Result<()> {
        let attrs = vec![("T", type_list(vec![self.dtype; outputs.len()]))];
        outputs.extend(self.n.control_inputs.iter().map(|&c| format!("^{}", self.d.node(c).name)));
        self.nodes.push(node_def(self.n.name.clone(), "IdentityN", outputs, attrs));
        Ok(())
    }
}

/// The value each variable of `g` holds in `sess`, by variable name.
pub(super) fn variable_values(g: &Graph, sess: &crate::Session) -> Result<HashMap<String, Value>> {
    g.global_variables()
        .iter()
        .filter_map(|v| match sess.variable_value(v) {
            Ok(Some(value)) => Some(Ok((v.name(), value))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        })
        .collect()
}

/// Replaces each `VariableV2` node by a `Const` of its value (TF's freezing).
pub(super) fn fold_variables(def: &mut GraphDef, values: &HashMap<String, Value>) -> Result<()> {
    for n in &mut def.node {
        if n.op == "VariableV2" {
            let value = values.get(&n.name).ok_or_else(|| Error::NotFound {
                what: "value of variable (initialize or restore it first)",
                name: n.name.clone(),
            })?;
            *n = const_def(n.name.clone(), value);
        }
    }
    Ok(())
}

/// A `list(type)` attribute (a functional op's `T`, `Tin`, `Tout`).
fn type_list(dtypes: Vec<DType>) -> AttrValue {
    let r#type = dtypes.into_iter().map(crate::proto::dtype_enum).collect();
    attr(Attr::List(ListValue { r#type, ..Default::default() }))
}

/// A `list(shape)` attribute (a functional op's `output_shapes`).
fn shape_list(shapes: Vec<&crate::Shape>) -> AttrValue {
    attr(Attr::List(ListValue { shape: shapes.into_iter().map(shape_proto).collect(), ..Default::default() }))
}

/// An argument of a function written into the library: the function's own input `k`, or one
/// it takes without reading (TF's loops hand every input to both of their functions).
enum Param {
    Input(usize),
    Unused(DType),
}

/// A result of a function written into the library: its own output `k`, or argument `p`
/// passed through unchanged (a loop's captured tensors).
enum Ret {
    Output(usize),
    Param(usize),
}

/// `While` as TF's `StatelessWhile` and `If` as `StatelessIf` (`While`/`If` where a function
/// holds a stateful op), their functions written into the library. TF's loop functions take
/// every input of the loop and the body returns them all: here `cond` and `body` capture
/// separately, so each declares the other's captures as arguments it does not read, and the
/// body passes all captures through. The loop's first outputs are ours.
fn write_functional(d: &GraphData, n: &Node, w: &mut Writer, nodes: &mut Vec<NodeDef>) -> Result<()> {
    let specs: Vec<crate::TensorSpec> = n.inputs.iter().map(|&e| d.spec(e).clone()).collect();
    let func = |name: String| attr(Attr::Func(NameAttrList { name, attr: HashMap::new() }));
    let base = n.name.replace('/', "_");
    let mut extra_inputs = Vec::new();
    let scalar = crate::Shape::scalar();
    let (op, attrs) = match &n.op {
        Op::If { then_branch, else_branch } => {
            let params: Vec<Param> = (0..specs.len() - 1).map(Param::Input).collect();
            let rets: Vec<Ret> = (0..then_branch.outputs.len()).map(Ret::Output).collect();
            let then_def = write_function(w, &format!("{base}_then"), then_branch, &params, &rets)?;
            let (then_name, s1) = w.library.add(then_def);
            let else_def = write_function(w, &format!("{base}_else"), else_branch, &params, &rets)?;
            let (else_name, s2) = w.library.add(else_def);
            let attrs = vec![
                ("Tcond", ty(DType::Bool)),
                ("Tin", type_list(specs[1..].iter().map(|s| s.dtype).collect())),
                ("Tout", type_list(n.outputs.iter().map(|o| o.dtype).collect())),
                ("then_branch", func(then_name)),
                ("else_branch", func(else_name)),
                ("output_shapes", shape_list(n.outputs.iter().map(|o| &o.shape).collect())),
            ];
            (if s1 || s2 { "If" } else { "StatelessIf" }, attrs)
        }
        Op::While { cond, body, maximum_iterations } => {
            let v = body.outputs.len();
            let (cc, cb) = (cond.inputs.len() - v, body.inputs.len() - v);
            let unused =
                |r: std::ops::Range<usize>| specs[r].iter().map(|s| Param::Unused(s.dtype)).collect::<Vec<_>>();
            let mut cond_params: Vec<Param> =
                (0..v + cc).map(Param::Input).chain(unused(v + cc..v + cc + cb)).collect();
            let mut body_params: Vec<Param> =
                (0..v).map(Param::Input).chain(unused(v..v + cc)).chain((v..v + cb).map(Param::Input)).collect();
            let mut body_rets: Vec<Ret> = (0..v).map(Ret::Output).chain((v..v + cc + cb).map(Ret::Param)).collect();
            // A bound on the iterations is two more loop variables, as TF's while_v2 writes it:
            // a counter and the bound, the condition `counter < bound && cond(..)`.
            let bound = maximum_iterations.map(|m| i64::try_from(m).unwrap_or(i64::MAX));
            if bound.is_some() {
                let p = cond_params.len();
                for params in [&mut cond_params, &mut body_params] {
                    params.extend([Param::Unused(DType::I64), Param::Unused(DType::I64)]);
                }
                body_rets.extend([Ret::Param(p), Ret::Param(p + 1)]);
            }
            let mut cond_def = write_function(w, &format!("{base}_cond"), cond, &cond_params, &[Ret::Output(0)])?;
            let mut body_def = write_function(w, &format!("{base}_body"), body, &body_params, &body_rets)?;
            if bound.is_some() {
                count_iterations(&mut cond_def, &mut body_def);
            }
            let (cond_name, s1) = w.library.add(cond_def);
            let (body_name, s2) = w.library.add(body_def);
            // The loop variables' shapes are the body's arguments' (the shape invariants).
            let body_args = body.input_specs();
            let mut loop_shapes: Vec<&crate::Shape> =
                body_args[..v].iter().chain(&specs[v..]).map(|s| &s.shape).collect();
            let mut dtypes: Vec<DType> = specs.iter().map(|s| s.dtype).collect();
            if let Some(bound) = bound {
                for (arg, value) in [("loop_counter", 0), ("maximum_iterations", bound)] {
                    let name = helper_name(d, n, arg)?;
                    nodes.push(const_def(name.clone(), &Value::from(ndarray::arr0(value).into_dyn())));
                    extra_inputs.push(w.helper_ref(&name, "output", 0));
                    loop_shapes.push(&scalar);
                    dtypes.push(DType::I64);
                }
            }
            let attrs = vec![
                ("T", type_list(dtypes)),
                ("cond", func(cond_name)),
                ("body", func(body_name)),
                ("output_shapes", shape_list(loop_shapes)),
                ("parallel_iterations", attr(Attr::I(10))),
            ];
            (if s1 || s2 { "While" } else { "StatelessWhile" }, attrs)
        }
        _ => unreachable!("only While and If have functions"),
    };
    let mut input: Vec<String> = n.inputs.iter().map(|&e| w.output_ref(d, e)).collect();
    input.extend(extra_inputs);
    input.extend(n.control_inputs.iter().map(|&c| format!("^{}", d.node(c).name)));
    nodes.push(node_def(n.name.clone(), op, input, attrs));
    Ok(())
}

/// Adds the iteration count to a loop's functions whose last two arguments are the counter and
/// the bound: the condition becomes `counter < bound && cond`, the body returns `counter + 1`.
fn count_iterations(cond: &mut FunctionDef, body: &mut FunctionDef) {
    let args = |f: &FunctionDef| {
        let a = &f.signature.as_ref().expect("written with a signature").input_arg;
        (a[a.len() - 2].name.clone(), a[a.len() - 1].name.clone())
    };
    let i64_attr = || vec![("T", ty(DType::I64))];
    // Node names from the argument names, which no node of the function starts with.
    let (counter, bound) = args(cond);
    let (less, and) = (format!("{counter}_less"), format!("{counter}_and"));
    let pred = cond.ret.insert("output_0".into(), format!("{and}:z:0")).expect("a condition's result");
    cond.node_def.push(node_def(less.clone(), "Less", vec![counter, bound], i64_attr()));
    let no_attrs: Vec<(&str, AttrValue)> = Vec::new();
    cond.node_def.push(node_def(and, "LogicalAnd", vec![format!("{less}:z:0"), pred], no_attrs));
    let (counter, _) = args(body);
    let (one, next) = (format!("{counter}_one"), format!("{counter}_next"));
    body.node_def.push(const_def(one.clone(), &Value::from(ndarray::arr0(1i64).into_dyn())));
    body.node_def.push(node_def(next.clone(), "AddV2", vec![counter, format!("{one}:output:0")], i64_attr()));
    let outputs = &body.signature.as_ref().expect("written with a signature").output_arg;
    let counter_out = outputs[outputs.len() - 2].name.clone();
    body.ret.insert(counter_out, format!("{next}:z:0"));
}

/// `f` as a function of the library named after `base` (the name reserved), taking `params`
/// and returning `rets` (named `output_<k>`).
fn write_function(w: &mut Writer, base: &str, f: &Func, params: &[Param], rets: &[Ret]) -> Result<FunctionDef> {
    let name = w.library.reserve(base);
    let prefix = free_prefix(f);
    let mut args = Vec::with_capacity(params.len());
    let mut refs = vec![String::new(); f.inputs.len()];
    let specs = f.input_specs();
    for (p, param) in params.iter().enumerate() {
        let arg = format!("{prefix}{p}");
        let dtype = match param {
            Param::Input(k) => {
                refs[*k] = arg.clone();
                specs[*k].dtype
            }
            Param::Unused(dtype) => *dtype,
        };
        args.push((arg, dtype));
    }
    let body = inline(w, f, &refs)?;
    let out_specs = f.output_specs();
    let rets = rets
        .iter()
        .map(|r| match r {
            Ret::Output(j) => (body.outputs[*j].clone(), out_specs[*j].dtype),
            Ret::Param(p) => args[*p].clone(),
        })
        .collect();
    Ok(function_def(name, args, body.nodes, rets, body.stateful))
}

/// A function's definition: arguments and results (named `output_<k>`) by reference and dtype.
fn function_def(
    name: String,
    args: Vec<(String, DType)>,
    node_def: Vec<NodeDef>,
    rets: Vec<(String, DType)>,
    is_stateful: bool,
) -> FunctionDef {
    let arg_def = |(name, dtype): (String, DType)| ArgDef { name, r#type: crate::proto::dtype_enum(dtype) };
    let input_arg = args.into_iter().map(arg_def).collect();
    let mut ret = HashMap::new();
    let mut output_arg = Vec::with_capacity(rets.len());
    for (k, (source, dtype)) in rets.into_iter().enumerate() {
        ret.insert(format!("output_{k}"), source);
        output_arg.push(arg_def((format!("output_{k}"), dtype)));
    }
    let signature = OpDef { name, input_arg, output_arg, is_stateful };
    FunctionDef { signature: Some(signature), node_def, ret }
}

/// A prefix no node of `f`'s graph starts with, for the names of the nodes and arguments
/// written around its own.
fn free_prefix(f: &Func) -> String {
    f.graph.read(|d| {
        let mut prefix = "arg".to_string();
        while d.dag.node_indices().any(|i| d.node(i).name.starts_with(&prefix)) {
            prefix.push('_');
        }
        prefix
    })
}

/// Function graph `f` written as nodes of a function: what its outputs need (a gradient's
/// function graph also holds the forward function's), its inputs read from `inputs`.
struct Inlined {
    nodes: Vec<NodeDef>,
    /// How the function's nodes name each of `f`'s outputs.
    outputs: Vec<String>,
    stateful: bool,
}

fn inline(w: &mut Writer, f: &Func, inputs: &[String]) -> Result<Inlined> {
    f.graph.read(|d| {
        let args: HashMap<Endpoint, String> = f.inputs.iter().copied().zip(inputs.iter().cloned()).collect();
        let arg_nodes: HashSet<NodeIndex> = f.inputs.iter().map(|e| e.node).collect();
        let mut needed = HashSet::new();
        let mut stack: Vec<NodeIndex> = f.outputs.iter().map(|e| e.node).collect();
        while let Some(i) = stack.pop() {
            if !arg_nodes.contains(&i) && needed.insert(i) {
                let n = d.node(i);
                stack.extend(n.inputs.iter().map(|e| e.node).chain(n.control_inputs.iter().copied()));
            }
        }
        let mut inner = Writer { private: w.private, args: Some(args), library: &mut *w.library, keep: &|_| true };
        let mut nodes = Vec::new();
        let mut stateful = false;
        for i in d.dag.node_indices().filter(|i| needed.contains(i)) {
            stateful |= d.node(i).op.is_stateful();
            write_node(d, d.node(i), &mut inner, &mut nodes)?;
        }
        stateful |= nodes.iter().any(|n| n.op == "While" || n.op == "If");
        let outputs = f.outputs.iter().map(|&e| inner.output_ref(d, e)).collect();
        Ok(Inlined { nodes, outputs, stateful })
    })
}

/// `WhileGrad` as TF ops: two loops, as TF's own loop gradients are. `N/forward` runs the loop
/// again, appending each iteration's variables to histories and counting the iterations; then
/// `N` runs from the last iteration to the first, taking that iteration's variables from the
/// histories into the body's gradient function and summing the captures' gradients (started
/// by `N/zeros_<j>`). A variable may change shape from iteration to iteration (an
/// accumulator), so its history is two: its values flattened one after the other
/// (`N/values_<i>`) and its shape at each iteration (`N/shapes_<i>`), read back from the end
/// (`N/position_<i>`). `N`'s first outputs are the gradients, as ours.
fn write_while_grad(d: &GraphData, n: &Node, w: &mut Writer, nodes: &mut Vec<NodeDef>) -> Result<()> {
    let Op::WhileGrad { cond, body, grad, maximum_iterations } = &n.op else { unreachable!("a WhileGrad") };
    let nv = body.outputs.len();
    let (cc, cb) = (cond.inputs.len() - nv, body.inputs.len() - nv);
    if grad.outputs.len() != nv + cb {
        let detail = "its body's gradient takes other captures than the body (captured after differentiating)";
        return Err(Error::InvalidArgument { node: n.info(), detail: detail.into() });
    }
    let specs: Vec<crate::TensorSpec> = n.inputs.iter().map(|&e| d.spec(e).clone()).collect();
    let var_specs = body.input_specs()[..nv].to_vec();
    let var_types: Vec<DType> = var_specs.iter().map(|s| s.dtype).collect();
    let refs: Vec<String> = n.inputs.iter().map(|&e| w.output_ref(d, e)).collect();
    let (bcaps, douts) = (&refs[nv + cc..nv + cc + cb], &refs[nv + cc + cb..]);
    let bcap_specs = &specs[nv + cc..nv + cc + cb];
    let bcap_types: Vec<DType> = bcap_specs.iter().map(|s| s.dtype).collect();
    let (int32, int64) = (DType::I32, DType::I64);
    let fresh = |part: &str| helper_name(d, n, part);
    let func = |name: String| attr(Attr::Func(NameAttrList { name, attr: HashMap::new() }));
    let scalar = || crate::Shape::scalar();
    let rows = |rank: usize| crate::Shape::from(vec![None, Some(rank)]);
    let int_scalar = |dtype: DType, x: i64| Value::filled(dtype, &[], x as f64);
    let t_of = |dtype: DType| vec![("T", ty(dtype))];
    let loop_attrs = |types: Vec<DType>, cond: String, body: String, shapes: Vec<crate::Shape>| {
        vec![
            ("T", type_list(types)),
            ("cond", func(cond)),
            ("body", func(body)),
            ("output_shapes", shape_list(shapes.iter().collect())),
            ("parallel_iterations", attr(Attr::I(10))),
        ]
    };
    let base = n.name.replace('/', "_");
    let args_named = |prefix: &str, types: &[DType]| -> Vec<(String, DType)> {
        types.iter().enumerate().map(|(k, &t)| (format!("{prefix}{k}"), t)).collect()
    };
    let names = |args: &[(String, DType)]| args.iter().map(|a| a.0.clone()).collect::<Vec<_>>();

    // The forward loop: (variables, cond's captures, body's captures, values, shapes, counter,
    // bound), the histories empty, the bound i64::MAX when the loop has none.
    let mut input: Vec<String> = refs[..nv + cc + cb].to_vec();
    let mut empty = Vec::with_capacity(2 * nv);
    for (i, s) in var_specs.iter().enumerate() {
        empty.push((fresh(&format!("values_{i}"))?, Value::filled(s.dtype, &[0], 0.0)));
    }
    for (i, s) in var_specs.iter().enumerate() {
        empty.push((fresh(&format!("shapes_{i}"))?, Value::filled(int32, &[0, s.shape.rank()], 0.0)));
    }
    let bound = i64::try_from(maximum_iterations.unwrap_or(u64::MAX)).unwrap_or(i64::MAX);
    empty.push((fresh("forward/loop_counter")?, int_scalar(int64, 0)));
    empty.push((fresh("forward/maximum_iterations")?, int_scalar(int64, bound)));
    for (name, value) in empty {
        nodes.push(const_def(name.clone(), &value));
        input.push(w.helper_ref(&name, "output", 0));
    }
    input.extend(n.control_inputs.iter().map(|&c| format!("^{}", d.node(c).name)));
    let mut fwd_types: Vec<DType> = specs[..nv + cc + cb].iter().map(|s| s.dtype).collect();
    fwd_types.extend(var_types.iter().copied().chain(vec![int32; nv]).chain([int64, int64]));
    let mut fwd_shapes: Vec<crate::Shape> = var_specs.iter().map(|s| s.shape.clone()).collect();
    fwd_shapes.extend(specs[nv..nv + cc + cb].iter().map(|s| s.shape.clone()));
    fwd_shapes.extend(vec![crate::Shape::from([None]); nv]);
    fwd_shapes.extend(var_specs.iter().map(|s| rows(s.shape.rank())).chain([scalar(), scalar()]));

    let args = args_named(&free_prefix(cond), &fwd_types);
    let inlined = inline(w, cond, &names(&args[..nv + cc]))?;
    let name = w.library.reserve(&format!("{base}_forward_cond"));
    let rets = vec![(inlined.outputs[0].clone(), DType::Bool)];
    let mut cond_def = function_def(name, args, inlined.nodes, rets, inlined.stateful);

    let p = free_prefix(body);
    let args = args_named(&p, &fwd_types);
    let body_inputs: Vec<String> = names(&args[..nv]).into_iter().chain(names(&args[nv + cc..nv + cc + cb])).collect();
    let inlined = inline(w, body, &body_inputs)?;
    let mut fwd_nodes = inlined.nodes;
    let mut rets: Vec<(String, DType)> = inlined.outputs.into_iter().zip(var_types.iter().copied()).collect();
    rets.extend(args[nv..nv + cc + cb].iter().cloned());
    let (axis, flat) = (format!("{p}_axis"), format!("{p}_flat"));
    fwd_nodes.push(const_def(axis.clone(), &i32_scalar(0)));
    fwd_nodes.push(const_def(flat.clone(), &i32s([-1])));
    let concat = |dtype: DType| vec![("T", ty(dtype)), ("N", attr(Attr::I(2))), ("Tidx", ty(int32))];
    let (values_at, shapes_at) = (nv + cc + cb, 2 * nv + cc + cb);
    let mut shape_rets = Vec::with_capacity(nv);
    for (i, &dtype) in var_types.iter().enumerate() {
        let [row, values, shape, shape_row, shapes] =
            ["row", "values", "shape", "shape_row", "shapes"].map(|s| format!("{p}_{s}{i}"));
        let var = args[i].0.clone();
        let reshape = vec![var.clone(), format!("{flat}:output:0")];
        fwd_nodes.push(node_def(row.clone(), "Reshape", reshape, vec![("T", ty(dtype)), ("Tshape", ty(int32))]));
        let input = vec![args[values_at + i].0.clone(), format!("{row}:output:0"), format!("{axis}:output:0")];
        fwd_nodes.push(node_def(values.clone(), "ConcatV2", input, concat(dtype)));
        rets.push((format!("{values}:output:0"), dtype));
        let shape_attrs = vec![("T", ty(dtype)), ("out_type", ty(int32))];
        fwd_nodes.push(node_def(shape.clone(), "Shape", vec![var], shape_attrs));
        let expand = vec![format!("{shape}:output:0"), format!("{axis}:output:0")];
        fwd_nodes.push(node_def(shape_row.clone(), "ExpandDims", expand, vec![("T", ty(int32)), ("Tdim", ty(int32))]));
        let input = vec![args[shapes_at + i].0.clone(), format!("{shape_row}:output:0"), format!("{axis}:output:0")];
        fwd_nodes.push(node_def(shapes.clone(), "ConcatV2", input, concat(int32)));
        shape_rets.push((format!("{shapes}:output:0"), int32));
    }
    rets.extend(shape_rets);
    rets.extend(args[args.len() - 2..].iter().cloned());
    let name = w.library.reserve(&format!("{base}_forward_body"));
    let mut body_def = function_def(name, args, fwd_nodes, rets, inlined.stateful);
    count_iterations(&mut cond_def, &mut body_def);
    let (cond_name, s1) = w.library.add(cond_def);
    let (body_name, s2) = w.library.add(body_def);
    let forward = fresh("forward")?;
    let op = if s1 || s2 { "While" } else { "StatelessWhile" };
    nodes.push(node_def(forward.clone(), op, input, loop_attrs(fwd_types, cond_name, body_name, fwd_shapes)));
    let forward_out = |w: &Writer, k: usize| w.helper_ref(&forward, "output", k);

    // The backward loop: (variables' gradients, captures' gradients, captures, values, shapes,
    // positions, t).
    let mut input: Vec<String> = douts.to_vec();
    for (j, (c, &dtype)) in bcaps.iter().zip(&bcap_types).enumerate() {
        let z = fresh(&format!("zeros_{j}"))?;
        nodes.push(node_def(z.clone(), "ZerosLike", vec![c.clone()], t_of(dtype)));
        input.push(w.helper_ref(&z, "y", 0));
    }
    input.extend(bcaps.iter().cloned());
    input.extend((values_at..shapes_at + nv).map(|k| forward_out(w, k)));
    for (i, &dtype) in var_types.iter().enumerate() {
        let position = fresh(&format!("position_{i}"))?;
        let attrs = vec![("T", ty(dtype)), ("out_type", ty(int32))];
        nodes.push(node_def(position.clone(), "Size", vec![forward_out(w, values_at + i)], attrs));
        input.push(w.helper_ref(&position, "output", 0));
    }
    input.push(forward_out(w, shapes_at + nv));
    let mut bwd_types: Vec<DType> = var_types.clone();
    bwd_types.extend(bcap_types.iter().chain(&bcap_types).chain(&var_types).copied());
    bwd_types.extend(vec![int32; 2 * nv].into_iter().chain([int64]));
    let mut bwd_shapes: Vec<crate::Shape> = var_specs.iter().map(|s| s.shape.clone()).collect();
    bwd_shapes.extend(bcap_specs.iter().chain(bcap_specs).map(|s| s.shape.clone()));
    bwd_shapes.extend(vec![crate::Shape::from([None]); nv]);
    bwd_shapes.extend(var_specs.iter().map(|s| rows(s.shape.rank())));
    bwd_shapes.extend(vec![scalar(); nv + 1]);
    let (values_at, shapes_at, positions_at) = (nv + 2 * cb, 2 * nv + 2 * cb, 3 * nv + 2 * cb);

    let args = args_named("arg", &bwd_types);
    let t = args[args.len() - 1].0.clone();
    let more = vec![
        const_def("arg_zero".into(), &int_scalar(int64, 0)),
        node_def("arg_more".into(), "Greater", vec![t, "arg_zero:output:0".into()], t_of(int64)),
    ];
    let name = w.library.reserve(&format!("{base}_cond"));
    let cond_def = function_def(name, args, more, vec![("arg_more:z:0".into(), DType::Bool)], false);

    let p = free_prefix(grad);
    let args = args_named(&p, &bwd_types);
    let [t_prev, one, axis, dims] = ["t", "one", "axis", "dims"].map(|s| format!("{p}_{s}"));
    let mut bwd_nodes = vec![
        const_def(one.clone(), &int_scalar(int64, 1)),
        node_def(t_prev.clone(), "Sub", vec![args[args.len() - 1].0.clone(), format!("{one}:output:0")], t_of(int64)),
        const_def(axis.clone(), &i32_scalar(0)),
        const_def(dims.clone(), &i32s([0])),
    ];
    let mut grad_inputs = Vec::with_capacity(2 * nv + cb);
    let mut starts = Vec::with_capacity(nv);
    for (i, &dtype) in var_types.iter().enumerate() {
        let [shape, size, start, begin, count, flat, var] =
            ["shape", "size", "start", "begin", "count", "flat", "variables"].map(|s| format!("{p}_{s}{i}"));
        let out = |name: &str, arg: &str| format!("{name}:{arg}:0");
        let gather = vec![args[shapes_at + i].0.clone(), out(&t_prev, "z"), out(&axis, "output")];
        let gather_attrs = vec![
            ("Tparams", ty(int32)),
            ("Tindices", ty(int64)),
            ("Taxis", ty(int32)),
            ("batch_dims", attr(Attr::I(0))),
        ];
        bwd_nodes.push(node_def(shape.clone(), "GatherV2", gather, gather_attrs));
        let prod_attrs = vec![("T", ty(int32)), ("Tidx", ty(int32)), ("keep_dims", attr(Attr::B(false)))];
        bwd_nodes.push(node_def(size.clone(), "Prod", vec![out(&shape, "output"), out(&dims, "output")], prod_attrs));
        let sub = vec![args[positions_at + i].0.clone(), out(&size, "output")];
        bwd_nodes.push(node_def(start.clone(), "Sub", sub, t_of(int32)));
        let expand_attrs = || vec![("T", ty(int32)), ("Tdim", ty(int32))];
        let expand = |of: &str| vec![out(of, if of == start { "z" } else { "output" }), out(&axis, "output")];
        bwd_nodes.push(node_def(begin.clone(), "ExpandDims", expand(&start), expand_attrs()));
        bwd_nodes.push(node_def(count.clone(), "ExpandDims", expand(&size), expand_attrs()));
        let slice = vec![args[values_at + i].0.clone(), out(&begin, "output"), out(&count, "output")];
        bwd_nodes.push(node_def(flat.clone(), "Slice", slice, vec![("T", ty(dtype)), ("Index", ty(int32))]));
        let reshape = vec![out(&flat, "output"), out(&shape, "output")];
        bwd_nodes.push(node_def(var.clone(), "Reshape", reshape, vec![("T", ty(dtype)), ("Tshape", ty(int32))]));
        grad_inputs.push(out(&var, "output"));
        starts.push((out(&start, "z"), int32));
    }
    grad_inputs.extend(names(&args[nv + cb..nv + 2 * cb]));
    grad_inputs.extend(names(&args[..nv]));
    let inlined = inline(w, grad, &grad_inputs)?;
    bwd_nodes.extend(inlined.nodes);
    let mut rets: Vec<(String, DType)> = inlined.outputs[..nv].iter().cloned().zip(var_types).collect();
    for (j, &dtype) in bcap_types.iter().enumerate() {
        // Only floats have gradients: the others' stay the zeros they start as.
        let sum = if dtype.is_float() {
            let sum = format!("{p}_captures{j}");
            let input = vec![args[nv + j].0.clone(), inlined.outputs[nv + j].clone()];
            bwd_nodes.push(node_def(sum.clone(), "AddV2", input, t_of(dtype)));
            format!("{sum}:z:0")
        } else {
            args[nv + j].0.clone()
        };
        rets.push((sum, dtype));
    }
    rets.extend(args[nv + cb..positions_at].iter().cloned());
    rets.extend(starts);
    rets.push((format!("{t_prev}:z:0"), int64));
    let name = w.library.reserve(&format!("{base}_body"));
    let body_def = function_def(name, args, bwd_nodes, rets, inlined.stateful);
    let (cond_name, _) = w.library.add(cond_def);
    let (body_name, stateful) = w.library.add(body_def);
    let op = if stateful { "While" } else { "StatelessWhile" };
    nodes.push(node_def(n.name.clone(), op, input, loop_attrs(bwd_types, cond_name, body_name, bwd_shapes)));
    Ok(())
}
