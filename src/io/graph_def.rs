//! Graphs as TensorFlow's `GraphDef`: each node under TF's op type with exactly the attributes
//! TF's op registry declares, and the arguments TF takes as inputs (a reduction's axes, a
//! reshape's shape, ...) as `Const` nodes named `<node>/<argument>`, so TensorFlow imports and
//! runs what this writes; and the way back, for graphs whose arguments are constants.
//!
//! Both directions read the op table (`Op::def`, `Op::attrs`); an op with no TF form here (the
//! gradient helpers `SumToShape`, `BroadcastTo(x, like)`, `RandomUniformLike`, the batch-norm
//! and optimizer ops of training graphs) is an error that names the op and the node.

use crate::proto::tf::{Attr, AttrValue, Dim, GraphDef, ListValue, NodeDef, TensorProto, TensorShapeProto, VersionDef};
use crate::proto::{append_le_bytes, dtype_enum, dtype_from_enum, from_le_bytes};
use crate::{DType, Error, Graph, Op, Result, Shape, Value};
use std::collections::HashMap;
use tensorgraph_graph::op_def::AttrValue as OpAttr;
use tensorgraph_graph::{ApplyOp, BinaryOp, ConvAttrs, NodeIndex, Padding, PoolAttrs, ReduceOp, UnaryOp};

/// TF's GraphDef producer version this writes (TF 2.21's).
const PRODUCER: i32 = 2021;

fn attr(a: Attr) -> AttrValue {
    AttrValue { value: Some(a) }
}

fn ty(d: DType) -> AttrValue {
    attr(Attr::Type(dtype_enum(d)))
}

fn shape_proto(s: &Shape) -> TensorShapeProto {
    TensorShapeProto {
        dim: s.dims().iter().map(|d| Dim { size: d.map_or(-1, |d| d as i64) }).collect(),
        unknown_rank: false,
    }
}

/// A value as a `TensorProto` (raw little-endian content, as TF writes large constants).
pub fn tensor_proto(v: &Value) -> TensorProto {
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
    })
}

/// `vals` filling `shape`, the last value repeated (TF's compact form of constants).
fn repeat_last<T: Copy>(vals: &[T], shape: &[usize]) -> std::result::Result<ndarray::ArrayD<T>, String> {
    let n = tensorgraph_graph::checked_len(shape)?;
    let fits = match vals.last() {
        Some(_) => vals.len() <= n,
        None => n == 0,
    };
    if !fits {
        return Err(format!("{} values for shape {}", vals.len(), crate::fmt_dims(shape)));
    }
    let all: Vec<T> = (0..n).map(|i| vals[i.min(vals.len() - 1)]).collect();
    Ok(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), all).expect("n elements"))
}

fn i32s(v: impl IntoIterator<Item = i64>) -> Value {
    let v: Vec<i32> = v.into_iter().map(|x| x as i32).collect();
    Value::from(ndarray::Array1::from(v).into_dyn())
}

fn i32_scalar(x: i64) -> Value {
    Value::from(ndarray::arr0(x as i32).into_dyn())
}

/// How one of our ops is written as TF's: its TF type, the arguments that become `Const`
/// inputs (after the data inputs), and the attributes besides the type attributes.
struct TfForm {
    op: &'static str,
    const_inputs: Vec<(&'static str, Value)>,
    attrs: Vec<(&'static str, AttrValue)>,
}

/// The TF form of node `op` whose data inputs have dtypes `ins` and outputs `outs`; `None`
/// for an op with none yet.
fn tf_form(op: &Op, ins: &[DType], outs: &[DType]) -> Option<TfForm> {
    let t = |d: DType| ty(d);
    let t0 = ins.first().or(outs.first()).copied().unwrap_or(DType::F32);
    let int32 = DType::I32;
    // The op's own attributes from the table, as TF's AttrValues.
    let table: Vec<(&'static str, AttrValue)> = op.attrs().into_iter().map(|(k, v)| (k, op_attr(v))).collect();
    let pick = |names: &[&str]| -> Vec<(&'static str, AttrValue)> {
        table.iter().filter(|(k, _)| names.contains(k)).cloned().collect()
    };
    let def = op.def();
    let form = |const_inputs, attrs| Some(TfForm { op: def.name, const_inputs, attrs });
    match op {
        Op::Placeholder { .. } | Op::Const { .. } => form(vec![], table.clone()),
        Op::PlaceholderWithDefault => {
            form(vec![], vec![("dtype", t(t0)), ("shape", attr(Attr::Shape(TensorShapeProto::default())))])
        }
        Op::Identity
        | Op::StopGradient
        | Op::ZerosLike
        | Op::OnesLike
        | Op::Softmax
        | Op::LogSoftmax
        | Op::Unary(_) => form(vec![], vec![("T", t(t0))]),
        Op::Binary(b) => {
            let mut a = vec![("T", t(t0))];
            if matches!(b, BinaryOp::Equal | BinaryOp::NotEqual) {
                a.push(("incompatible_shape_error", attr(Attr::B(true))));
            }
            form(vec![], a)
        }
        Op::MatMul { .. } => form(vec![], [vec![("T", t(t0))], table.clone()].concat()),
        Op::BiasAdd => form(vec![], vec![("T", t(t0)), ("data_format", attr(Attr::S(b"NHWC".to_vec())))]),
        Op::AddN => form(vec![], vec![("T", t(t0)), ("N", attr(Attr::I(ins.len() as i64)))]),
        Op::Select => form(vec![], vec![("T", t(ins.get(1).copied().unwrap_or(t0)))]),
        Op::LeakyRelu { .. } => form(vec![], [vec![("T", t(t0))], pick(&["alpha"])].concat()),
        Op::Cast { to } => form(vec![], vec![("SrcT", t(t0)), ("DstT", t(*to)), ("Truncate", attr(Attr::B(false)))]),
        Op::Reduce { axes, keep_dims, .. } => form(
            vec![("reduction_indices", i32s(axes.iter().map(|&a| a as i64)))],
            vec![("T", t(t0)), ("Tidx", t(int32)), ("keep_dims", attr(Attr::B(*keep_dims)))],
        ),
        Op::ArgMax { axis, output_type } => form(
            vec![("dimension", i32_scalar(*axis as i64))],
            vec![("T", t(t0)), ("Tidx", t(int32)), ("output_type", t(*output_type))],
        ),
        Op::SparseSoftmaxCrossEntropyWithLogits => {
            form(vec![], vec![("T", t(t0)), ("Tlabels", t(ins.get(1).copied().unwrap_or(DType::I64)))])
        }
        Op::InTopKV2 { k } => {
            let tk = ins.get(1).copied().unwrap_or(DType::I32);
            let k = Value::filled(tk, &[], *k as f64);
            form(vec![("k", k)], vec![("T", t(tk))])
        }
        Op::Conv2D(_) | Op::MaxPool(_) | Op::AvgPool(_) => form(vec![], [vec![("T", t(t0))], table.clone()].concat()),
        Op::Reshape { shape } => {
            form(vec![("shape", i32s(shape.iter().copied()))], vec![("T", t(t0)), ("Tshape", t(int32))])
        }
        Op::Transpose { perm } => {
            form(vec![("perm", i32s(perm.iter().map(|&p| p as i64)))], vec![("T", t(t0)), ("Tperm", t(int32))])
        }
        Op::ExpandDims { axis } => {
            form(vec![("dim", i32_scalar(*axis as i64))], vec![("T", t(t0)), ("Tdim", t(int32))])
        }
        Op::Squeeze { .. } => form(vec![], [vec![("T", t(t0))], pick(&["squeeze_dims"])].concat()),
        Op::ConcatV2 { axis } => form(
            vec![("axis", i32_scalar(*axis as i64))],
            vec![("T", t(t0)), ("N", attr(Attr::I(ins.len() as i64))), ("Tidx", t(int32))],
        ),
        Op::Slice { begin, size } => form(
            vec![("begin", i32s(begin.iter().map(|&b| b as i64))), ("size", i32s(size.iter().copied()))],
            vec![("T", t(t0)), ("Index", t(int32))],
        ),
        Op::Pad { paddings } => {
            let flat: Vec<i32> = paddings.iter().flat_map(|&(a, b)| [a as i32, b as i32]).collect();
            let p = Value::from(ndarray::Array2::from_shape_vec((paddings.len(), 2), flat).expect("n x 2").into_dyn());
            form(vec![("paddings", p)], vec![("T", t(t0)), ("Tpaddings", t(int32))])
        }
        Op::OneHot { depth, on_value, off_value, dtype } => form(
            vec![
                ("depth", i32_scalar(*depth as i64)),
                ("on_value", Value::filled(*dtype, &[], *on_value)),
                ("off_value", Value::filled(*dtype, &[], *off_value)),
            ],
            vec![("T", t(*dtype)), ("TI", t(t0)), ("axis", attr(Attr::I(-1)))],
        ),
        Op::Fill { dtype, shape, value } => form(
            vec![("dims", i32s(shape.iter().map(|&d| d as i64))), ("value", Value::filled(*dtype, &[], *value))],
            vec![("T", t(*dtype)), ("index_type", t(int32))],
        ),
        Op::Size { axes: None, dtype } | Op::Shape { dtype } => {
            form(vec![], vec![("T", t(t0)), ("out_type", t(*dtype))])
        }
        Op::VariableV2 { .. } => form(
            vec![],
            [table.clone(), vec![("container", attr(Attr::S(vec![]))), ("shared_name", attr(Attr::S(vec![])))]]
                .concat(),
        ),
        Op::Assign => form(
            vec![],
            vec![("T", t(t0)), ("validate_shape", attr(Attr::B(true))), ("use_locking", attr(Attr::B(true)))],
        ),
        Op::AssignAdd | Op::AssignSub => form(vec![], vec![("T", t(t0)), ("use_locking", attr(Attr::B(false)))]),
        Op::Apply(a) => {
            let mut attrs = vec![("T", t(t0)), ("use_locking", attr(Attr::B(false)))];
            if let ApplyOp::Momentum { use_nesterov } = a {
                attrs.push(("use_nesterov", attr(Attr::B(*use_nesterov))));
            }
            form(vec![], attrs)
        }
        Op::NoOp => form(vec![], vec![]),
        Op::RandomUniform { .. }
        | Op::RandomUniformLike { .. }
        | Op::RandomStandardNormal { .. }
        | Op::TruncatedNormal { .. }
        | Op::Size { axes: Some(_), .. }
        | Op::BroadcastTo
        | Op::SumToShape
        | Op::FusedBatchNorm { .. }
        | Op::FusedBatchNormGrad
        | Op::Conv2DBackpropInput(_)
        | Op::Conv2DBackpropFilter(_)
        | Op::MaxPoolGrad(_)
        | Op::MaxPoolGradGrad(_)
        | Op::AvgPoolGrad(_) => None,
    }
}

/// A table attribute as TF's `AttrValue`.
fn op_attr(v: OpAttr) -> AttrValue {
    attr(match v {
        OpAttr::Type(d) => Attr::Type(dtype_enum(d)),
        OpAttr::Shape(s) => Attr::Shape(shape_proto(&s)),
        OpAttr::Int(i) => Attr::I(i),
        OpAttr::Float(f) => Attr::F(f as f32),
        OpAttr::Bool(b) => Attr::B(b),
        OpAttr::Str(s) => Attr::S(s.as_bytes().to_vec()),
        OpAttr::Ints(v) => Attr::List(ListValue { i: v, ..Default::default() }),
        OpAttr::Tensor(t) => Attr::Tensor(tensor_proto(&t)),
    })
}

fn input_name(name: &str, slot: usize) -> String {
    if slot == 0 {
        name.to_string()
    } else {
        format!("{name}:{slot}")
    }
}

/// The graph as a TF `GraphDef`, in the graph's order. Errors name the first node whose op has
/// no TF form.
pub fn to_graph_def(g: &Graph) -> Result<GraphDef> {
    to_graph_def_where(g, &|_| true)
}

/// The nodes `keep` selects (which must include every input of each).
fn to_graph_def_where(g: &Graph, keep: &dyn Fn(NodeIndex) -> bool) -> Result<GraphDef> {
    g.read(|d| {
        let mut nodes = Vec::new();
        for i in d.dag.node_indices().filter(|&i| keep(i)) {
            let n = d.node(i);
            let ins: Vec<DType> = n.inputs.iter().map(|&e| d.spec(e).dtype).collect();
            let outs: Vec<DType> = n.outputs.iter().map(|o| o.dtype).collect();
            let Some(form) = tf_form(&n.op, &ins, &outs) else {
                return Err(Error::InvalidArgument {
                    node: n.info(),
                    detail: format!("{} has no TensorFlow GraphDef form yet", n.op.type_name()),
                });
            };
            let mut input: Vec<String> = n.inputs.iter().map(|e| input_name(&d.node(e.node).name, e.slot)).collect();
            for (arg, value) in form.const_inputs {
                let name = format!("{}/{arg}", n.name);
                // A graph imported from a GraphDef already holds that constant: read it.
                let existing = d.find(&name).map(|j| &d.node(j).op);
                if let Some(existing) = existing {
                    if !matches!(existing, Op::Const { value: v } if *v == value) {
                        return Err(Error::InvalidArgument {
                            node: n.info(),
                            detail: format!("its argument {arg} would be written as {name}, a name another node has"),
                        });
                    }
                    input.push(name);
                    continue;
                }
                let attr = vec![
                    ("dtype".to_string(), ty(value.dtype())),
                    ("value".to_string(), attr(Attr::Tensor(tensor_proto(&value)))),
                ];
                nodes.push(NodeDef {
                    name: name.clone(),
                    op: "Const".into(),
                    input: vec![],
                    device: String::new(),
                    attr: attr.into_iter().collect(),
                });
                input.push(name);
            }
            input.extend(n.control_inputs.iter().map(|&c| format!("^{}", d.node(c).name)));
            let attr: HashMap<String, AttrValue> = form.attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            nodes.push(NodeDef { name: n.name.clone(), op: form.op.into(), input, device: String::new(), attr });
        }
        Ok(GraphDef { node: nodes, versions: Some(VersionDef { producer: PRODUCER, min_consumer: 0 }) })
    })
}

/// A NodeDef's attribute, read as one kind of value.
struct Attrs<'a>(&'a NodeDef);

impl Attrs<'_> {
    fn get(&self, name: &str) -> std::result::Result<&Attr, String> {
        self.0.attr.get(name).and_then(|a| a.value.as_ref()).ok_or_else(|| format!("attribute {name} is missing"))
    }
    fn dtype(&self, name: &str) -> std::result::Result<DType, String> {
        match self.get(name)? {
            Attr::Type(t) => dtype_from_enum(*t).map_err(|n| format!("{name} is {n}, which is not supported")),
            _ => Err(format!("attribute {name} is not a type")),
        }
    }
    fn int(&self, name: &str) -> std::result::Result<i64, String> {
        match self.get(name)? {
            Attr::I(i) => Ok(*i),
            _ => Err(format!("attribute {name} is not an int")),
        }
    }
    fn float(&self, name: &str) -> std::result::Result<f64, String> {
        match self.get(name)? {
            Attr::F(f) => Ok(f64::from(*f)),
            _ => Err(format!("attribute {name} is not a float")),
        }
    }
    fn bool_or(&self, name: &str, default: bool) -> std::result::Result<bool, String> {
        match self.get(name) {
            Ok(Attr::B(b)) => Ok(*b),
            Ok(_) => Err(format!("attribute {name} is not a bool")),
            Err(_) => Ok(default),
        }
    }
    fn string_or(&self, name: &str, default: &str) -> std::result::Result<String, String> {
        match self.get(name) {
            Ok(Attr::S(s)) => String::from_utf8(s.clone()).map_err(|_| format!("attribute {name} is not UTF-8")),
            Ok(_) => Err(format!("attribute {name} is not a string")),
            Err(_) => Ok(default.to_string()),
        }
    }
    fn ints_or(&self, name: &str, default: &[i64]) -> std::result::Result<Vec<i64>, String> {
        match self.get(name) {
            Ok(Attr::List(l)) => Ok(l.i.clone()),
            Ok(_) => Err(format!("attribute {name} is not a list of ints")),
            Err(_) => Ok(default.to_vec()),
        }
    }
    fn shape(&self, name: &str) -> std::result::Result<Shape, String> {
        match self.get(name)? {
            Attr::Shape(s) if s.unknown_rank => Err(format!("{name} has an unknown rank (not supported)")),
            Attr::Shape(s) => {
                let dims: Vec<Option<usize>> = s.dim.iter().map(|d| usize::try_from(d.size).ok()).collect();
                Ok(Shape::from(dims))
            }
            _ => Err(format!("attribute {name} is not a shape")),
        }
    }
    fn tensor(&self, name: &str) -> std::result::Result<Value, String> {
        match self.get(name)? {
            Attr::Tensor(t) => tensor_value(t),
            _ => Err(format!("attribute {name} is not a tensor")),
        }
    }
}

fn four(v: Vec<i64>, name: &str) -> std::result::Result<[usize; 4], String> {
    let v: Vec<usize> = v
        .iter()
        .map(|&x| usize::try_from(x).map_err(|_| format!("{name} has {x}")))
        .collect::<std::result::Result<_, _>>()?;
    v.try_into().map_err(|v: Vec<usize>| format!("{name} has {} values, not 4", v.len()))
}

fn padding(a: &Attrs) -> std::result::Result<Padding, String> {
    match a.string_or("padding", "")?.as_str() {
        "SAME" => Ok(Padding::Same),
        "VALID" => Ok(Padding::Valid),
        other => Err(format!("padding {other:?} is not supported (SAME or VALID)")),
    }
}

fn nhwc(a: &Attrs) -> std::result::Result<(), String> {
    match a.string_or("data_format", "NHWC")?.as_str() {
        "NHWC" => Ok(()),
        other => Err(format!("data_format {other} is not supported (NHWC only)")),
    }
}

/// An axis argument normalised against `rank` (negative counts from the end).
fn axis(x: i64, rank: usize) -> std::result::Result<usize, String> {
    let a = if x < 0 { x + rank as i64 } else { x };
    usize::try_from(a).ok().filter(|&a| a < rank).ok_or_else(|| format!("axis {x} is out of range for rank {rank}"))
}

fn unary(name: &str) -> Option<UnaryOp> {
    use UnaryOp::*;
    let all = [
        Relu, Sigmoid, Tanh, Exp, Log, Neg, Square, Sqrt, Rsqrt, Abs, Sign, Reciprocal, Elu, Selu, Softplus, Softsign,
        Floor, Log1p,
    ];
    all.into_iter().find(|u| u.type_name() == name)
}

fn binary(name: &str) -> Option<BinaryOp> {
    use BinaryOp::*;
    let all = [
        Add,
        Sub,
        Mul,
        Div,
        Maximum,
        Minimum,
        Pow,
        ReluGrad,
        SigmoidGrad,
        TanhGrad,
        Equal,
        NotEqual,
        Less,
        LessEqual,
        Greater,
        GreaterEqual,
    ];
    match name {
        "Add" => Some(Add),
        "Div" => Some(Div), // float division (the graphs here hold no integer Div)
        _ => all.into_iter().find(|b| b.type_name() == name),
    }
}

/// The op a NodeDef describes, given the specs of its data inputs and the values of the `Const`
/// nodes among them (`None` where an input is not a constant). Returns the op and how many
/// leading inputs are data inputs (the rest were its constant arguments).
fn op_of(
    n: &NodeDef,
    specs: &[tensorgraph_graph::TensorSpec],
    consts: &[Option<&Value>],
) -> std::result::Result<(Op, usize), String> {
    let a = Attrs(n);
    let rank = |i: usize| specs.get(i).map(|s| s.shape.rank());
    let konst = |i: usize, what: &str| -> std::result::Result<&Value, String> {
        consts
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| format!("its {what} must be a constant (run-time {what} is not supported)"))
    };
    let ints = |i: usize, what: &str| -> std::result::Result<Vec<i64>, String> {
        let v = konst(i, what)?;
        if !v.dtype().is_integer() {
            return Err(format!("its {what} is {}, not an integer tensor", v.dtype()));
        }
        Ok(v.to_f64_vec().into_iter().map(|x| x as i64).collect())
    };
    let known_rank = |i: usize| rank(i).ok_or_else(|| "its input's rank must be known".to_string());
    let usizes = |v: Vec<i64>, what: &str| -> std::result::Result<Vec<usize>, String> {
        v.into_iter().map(|x| usize::try_from(x).map_err(|_| format!("{what} has {x}"))).collect()
    };
    let op = match n.op.as_str() {
        "Placeholder" => (Op::Placeholder { dtype: a.dtype("dtype")?, shape: a.shape("shape")? }, 0),
        "Const" => (Op::Const { value: a.tensor("value")? }, 0),
        "PlaceholderWithDefault" => (Op::PlaceholderWithDefault, 1),
        "Identity" | "Snapshot" => (Op::Identity, 1),
        "StopGradient" => (Op::StopGradient, 1),
        "ZerosLike" => (Op::ZerosLike, 1),
        "OnesLike" => (Op::OnesLike, 1),
        "Softmax" => (Op::Softmax, 1),
        "LogSoftmax" => (Op::LogSoftmax, 1),
        "NoOp" => (Op::NoOp, 0),
        "MatMul" => (
            Op::MatMul { transpose_a: a.bool_or("transpose_a", false)?, transpose_b: a.bool_or("transpose_b", false)? },
            2,
        ),
        "BiasAdd" => {
            nhwc(&a)?;
            (Op::BiasAdd, 2)
        }
        "AddN" => (Op::AddN, specs.len()),
        "SelectV2" => (Op::Select, 3),
        "LeakyRelu" => (Op::LeakyRelu { alpha: a.float("alpha").unwrap_or(0.2) }, 1),
        "Cast" => (Op::Cast { to: a.dtype("DstT")? }, 1),
        "Sum" | "Mean" | "Max" | "Min" => {
            let op = match n.op.as_str() {
                "Sum" => ReduceOp::Sum,
                "Mean" => ReduceOp::Mean,
                "Max" => ReduceOp::Max,
                _ => ReduceOp::Min,
            };
            let r = known_rank(0)?;
            let mut axes = ints(1, "reduction_indices")?
                .into_iter()
                .map(|x| axis(x, r))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            axes.sort_unstable();
            axes.dedup();
            (Op::Reduce { op, axes, keep_dims: a.bool_or("keep_dims", false)? }, 1)
        }
        "ArgMax" => {
            let d = ints(1, "dimension")?;
            let d = *d.first().ok_or("its dimension is empty")?;
            let output_type = a.dtype("output_type").unwrap_or(DType::I64);
            (Op::ArgMax { axis: axis(d, known_rank(0)?)?, output_type }, 1)
        }
        "SparseSoftmaxCrossEntropyWithLogits" => (Op::SparseSoftmaxCrossEntropyWithLogits, 2),
        "InTopKV2" => {
            let k = ints(2, "k")?;
            (Op::InTopKV2 { k: usizes(k, "k")?.first().copied().ok_or("its k is empty")? }, 2)
        }
        "Conv2D" => {
            nhwc(&a)?;
            let attrs = ConvAttrs {
                strides: four(a.ints_or("strides", &[])?, "strides")?,
                dilations: four(a.ints_or("dilations", &[1, 1, 1, 1])?, "dilations")?,
                padding: padding(&a)?,
            };
            (Op::Conv2D(attrs), 2)
        }
        "MaxPool" | "AvgPool" => {
            nhwc(&a)?;
            let attrs = PoolAttrs {
                ksize: four(a.ints_or("ksize", &[])?, "ksize")?,
                strides: four(a.ints_or("strides", &[])?, "strides")?,
                padding: padding(&a)?,
            };
            (if n.op == "MaxPool" { Op::MaxPool(attrs) } else { Op::AvgPool(attrs) }, 1)
        }
        "Reshape" => (Op::Reshape { shape: ints(1, "shape")? }, 1),
        "Transpose" => (Op::Transpose { perm: usizes(ints(1, "perm")?, "perm")? }, 1),
        "ExpandDims" => {
            let d = *ints(1, "dim")?.first().ok_or("its dim is empty")?;
            (Op::ExpandDims { axis: axis(d, known_rank(0)? + 1)? }, 1)
        }
        "Squeeze" => {
            let r = known_rank(0)?;
            let dims = a.ints_or("squeeze_dims", &[])?;
            let axes = if dims.is_empty() {
                let s = &specs[0].shape;
                (0..r).filter(|&i| s.dims()[i] == Some(1)).collect()
            } else {
                dims.into_iter().map(|x| axis(x, r)).collect::<std::result::Result<Vec<_>, _>>()?
            };
            (Op::Squeeze { axes }, 1)
        }
        "ConcatV2" => {
            let k = specs.len().checked_sub(1).filter(|&k| k > 0).ok_or("ConcatV2 needs values and an axis")?;
            let ax = *ints(k, "axis")?.first().ok_or("its axis is empty")?;
            (Op::ConcatV2 { axis: axis(ax, known_rank(0)?)? }, k)
        }
        "Slice" => (Op::Slice { begin: usizes(ints(1, "begin")?, "begin")?, size: ints(2, "size")? }, 1),
        "Pad" => {
            let p = usizes(ints(1, "paddings")?, "paddings")?;
            (Op::Pad { paddings: p.chunks(2).map(|c| (c[0], c.get(1).copied().unwrap_or(0))).collect() }, 1)
        }
        "OneHot" => {
            if a.int("axis").unwrap_or(-1) != -1 {
                return Err("only axis -1 is supported".into());
            }
            let depth = usizes(ints(1, "depth")?, "depth")?.first().copied().ok_or("its depth is empty")?;
            let scalar = |i: usize, what: &str| -> std::result::Result<f64, String> {
                konst(i, what)?.scalar_f64().ok_or_else(|| format!("its {what} is not a scalar"))
            };
            let (on_value, off_value) = (scalar(2, "on_value")?, scalar(3, "off_value")?);
            (Op::OneHot { depth, on_value, off_value, dtype: a.dtype("T")? }, 1)
        }
        "Fill" => {
            let shape = usizes(ints(0, "dims")?, "dims")?;
            let value = konst(1, "value")?;
            let v = value.scalar_f64().ok_or("its value is not a scalar")?;
            (Op::Fill { dtype: value.dtype(), shape, value: v }, 0)
        }
        "Size" => (Op::Size { axes: None, dtype: a.dtype("out_type").unwrap_or(DType::I32) }, 1),
        "Shape" => (Op::Shape { dtype: a.dtype("out_type").unwrap_or(DType::I32) }, 1),
        "VariableV2" => {
            let shape = a.shape("shape")?;
            let dims = shape
                .dims()
                .iter()
                .map(|d| d.ok_or("a variable's shape must be fully known"))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            (Op::VariableV2 { dtype: a.dtype("dtype")?, shape: dims }, 0)
        }
        "Assign" => (Op::Assign, 2),
        "AssignAdd" => (Op::AssignAdd, 2),
        "AssignSub" => (Op::AssignSub, 2),
        other => match (unary(other), binary(other)) {
            (Some(u), _) => (Op::Unary(u), 1),
            (_, Some(b)) => (Op::Binary(b), 2),
            _ => return Err(format!("op {other} is not supported by tensorgraph")),
        },
    };
    Ok(op)
}

/// Builds a graph from a TF `GraphDef` (`what` names it in errors): every node under its own
/// name, constant arguments folded into the ops that take them (their `Const` nodes are not
/// made unless something else reads them). Errors name the node and its
/// op: one tensorgraph lacks, a run-time argument where a constant is needed, a dangling input.
pub fn from_graph_def(def: &GraphDef, what: &str) -> Result<Graph> {
    let g = Graph::new();
    let by_name: HashMap<&str, usize> = def.node.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    let bad = |n: &NodeDef, detail: String| Error::BadFile {
        path: what.to_string(),
        detail: format!("node {} ({}): {detail}", n.name, n.op),
    };
    let parse = |s: &str| -> (bool, String, usize) {
        let (control, s) = match s.strip_prefix('^') {
            Some(r) => (true, r),
            None => (false, s),
        };
        match s.rsplit_once(':').and_then(|(n, k)| Some((n, k.parse::<usize>().ok()?))) {
            Some((n, k)) => (control, n.to_string(), k),
            None => (control, s.to_string(), 0),
        }
    };
    // Topological order over data and control inputs (a GraphDef need not be sorted).
    let mut order = Vec::with_capacity(def.node.len());
    let mut state = vec![0u8; def.node.len()]; // 0 new, 1 on the stack, 2 done
    for root in 0..def.node.len() {
        let mut stack = vec![(root, 0usize)];
        while let Some((i, k)) = stack.pop() {
            if k == 0 {
                if state[i] == 2 {
                    continue;
                }
                state[i] = 1;
            }
            let n = &def.node[i];
            if let Some(input) = n.input.get(k) {
                stack.push((i, k + 1));
                let (_, name, _) = parse(input);
                let Some(&j) = by_name.get(name.as_str()) else {
                    return Err(bad(n, format!("input {input} names no node")));
                };
                match state[j] {
                    1 => return Err(bad(n, "the graph has a cycle through it (loops are not supported)".into())),
                    0 => stack.push((j, 0)),
                    _ => {}
                }
            } else {
                state[i] = 2;
                order.push(i);
            }
        }
    }
    // `Const` nodes are made when first read as data; one read only as an op's constant
    // argument (a reshape's shape) is folded into that op and not made at all.
    let mut made: HashMap<usize, tensorgraph_graph::Operation> = HashMap::new();
    let location =
        |i: usize| tensorgraph_graph::SourceLocation { file: what.to_string(), line: i as u32 + 1, column: 0 };
    let make_const = |j: usize, made: &mut HashMap<usize, tensorgraph_graph::Operation>| -> Result<()> {
        if made.contains_key(&j) {
            return Ok(());
        }
        let n = &def.node[j];
        let value = Attrs(n).tensor("value").map_err(|d| bad(n, d))?;
        let controls: Vec<tensorgraph_graph::Operation> =
            n.input.iter().filter_map(|i| i.strip_prefix('^')).map(|c| made[&by_name[c]].clone()).collect();
        let control_refs: Vec<&tensorgraph_graph::Operation> = controls.iter().collect();
        let op = g.add_node(Op::Const { value }, &[], &control_refs, Some(&format!("{}/", n.name)), location(j))?;
        made.insert(j, op);
        Ok(())
    };
    let mut folded = std::collections::HashSet::new();
    for &i in order.iter().filter(|&&i| def.node[i].op != "Const") {
        let n = &def.node[i];
        // Data inputs: a made tensor, or a constant not made (yet), with its spec and value.
        let mut data: Vec<(usize, usize)> = Vec::new();
        let mut controls = Vec::new();
        for input in &n.input {
            let (control, name, slot) = parse(input);
            let j = by_name[name.as_str()];
            if control {
                if def.node[j].op == "Const" {
                    make_const(j, &mut made)?;
                }
                controls.push(made[&j].clone());
            } else {
                data.push((j, slot));
            }
        }
        let mut specs = Vec::with_capacity(data.len());
        let mut consts = Vec::with_capacity(data.len());
        for &(j, slot) in &data {
            if def.node[j].op == "Const" {
                let value = Attrs(&def.node[j]).tensor("value").map_err(|d| bad(&def.node[j], d))?;
                specs.push(tensorgraph_graph::TensorSpec::new(value.dtype(), Shape::known(value.shape())));
                consts.push(Some(value));
            } else {
                let t = made[&j]
                    .output(slot)
                    .map_err(|_| bad(n, format!("input {}:{slot} names a missing output", def.node[j].name)))?;
                specs.push(t.spec());
                consts.push(None);
            }
        }
        let const_refs: Vec<Option<&Value>> = consts.iter().map(Option::as_ref).collect();
        let (op, n_data) = op_of(n, &specs, &const_refs).map_err(|d| bad(n, d))?;
        let mut inputs = Vec::with_capacity(n_data);
        for (k, &(j, slot)) in data.iter().enumerate() {
            if k < n_data {
                if def.node[j].op == "Const" {
                    make_const(j, &mut made)?;
                }
                inputs.push(made[&j].output(slot).map_err(|_| bad(n, format!("input {k} names a missing output")))?);
            } else {
                folded.insert(j);
            }
        }
        let input_refs: Vec<&tensorgraph_graph::Tensor> = inputs.iter().collect();
        let control_refs: Vec<&tensorgraph_graph::Operation> = controls.iter().collect();
        let node = g.add_node(op, &input_refs, &control_refs, Some(&format!("{}/", n.name)), location(i))?;
        made.insert(i, node);
    }
    // Constants nothing reads, or read as data only after they were folded elsewhere.
    for &j in order.iter().filter(|&&j| def.node[j].op == "Const" && !folded.contains(&j)) {
        make_const(j, &mut made)?;
    }
    Ok(g)
}

/// The nodes `outputs` need (through data and control inputs), in graph order.
fn needed(g: &Graph, outputs: &[tensorgraph_graph::Tensor]) -> std::collections::HashSet<NodeIndex> {
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

/// TF's `convert_variables_to_constants`: the graph pruned to what `outputs` need, each
/// variable a `Const` (same name) holding its value in `sess`. What TF's `import_graph_def`
/// loads and runs without a checkpoint; `outputs` empty keeps every node.
pub fn freeze(g: &Graph, sess: &crate::Session, outputs: &[tensorgraph_graph::Tensor]) -> Result<GraphDef> {
    let keep = needed(g, outputs);
    let all = outputs.is_empty();
    let filter = |i: NodeIndex| all || keep.contains(&i);
    let mut def = to_graph_def_where(g, &filter)?;
    let values: HashMap<String, Value> = g
        .global_variables()
        .iter()
        .filter(|v| all || keep.contains(&v.var_ref().endpoint().node))
        .map(|v| {
            let value = sess
                .variable_value(v)?
                .ok_or_else(|| Error::UninitializedVariable { node: v.var_ref().op().info() })?;
            Ok((v.name(), value))
        })
        .collect::<Result<_>>()?;
    for n in &mut def.node {
        if n.op == "VariableV2" {
            let value = values
                .get(&n.name)
                .ok_or_else(|| Error::NotFound { what: "value of variable", name: n.name.clone() })?;
            n.op = "Const".into();
            n.attr = [
                ("dtype".to_string(), ty(value.dtype())),
                ("value".to_string(), attr(Attr::Tensor(tensor_proto(value)))),
            ]
            .into_iter()
            .collect();
        }
    }
    Ok(def)
}
