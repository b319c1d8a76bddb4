//! TF's NodeDefs as our ops.

use super::tensor_value;
use crate::proto::dtype_from_enum;
use crate::proto::tf::{Attr, FunctionDef, GraphDef, NodeDef};
use crate::{DType, Error, Func, Graph, Op, Result, Shape, TensorSpec, Value};
use std::collections::{HashMap, HashSet};
use tensorgraph_graph::{ApplyOp, BinaryOp, ConvAttrs, Padding, PoolAttrs, ReduceOp, UnaryOp};

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
    /// A float attribute; to the bit when a file of tensorgraph's keeps its f64 beside it.
    fn float(&self, name: &str) -> std::result::Result<f64, String> {
        if let Ok(Attr::I(bits)) = self.get(&format!("{}{name}", super::export::F64_PREFIX)) {
            return Ok(f64::from_bits(*bits as u64));
        }
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

/// The op a NodeDef describes, given the specs of its data inputs and the values of the `Const`
/// nodes among them (`None` where an input is not a constant). Returns the op and how many
/// leading inputs are data inputs (the rest were its constant arguments).
/// Where one of our op's inputs comes from, among the NodeDef's inputs.
pub(super) enum Src {
    /// Input `k` itself.
    In(usize),
    /// The tensor whose shape input `k` is: the input of the `Shape` node feeding it, or
    /// zeros of the shape when it is a constant (TF's ops take shapes where ours take tensors).
    ShapeOf(usize),
}

fn conv_attrs(a: &Attrs) -> std::result::Result<ConvAttrs, String> {
    nhwc(a)?;
    Ok(ConvAttrs {
        strides: four(a.ints_or("strides", &[])?, "strides")?,
        dilations: four(a.ints_or("dilations", &[1, 1, 1, 1])?, "dilations")?,
        padding: padding(a)?,
    })
}

fn pool_attrs(a: &Attrs) -> std::result::Result<PoolAttrs, String> {
    nhwc(a)?;
    Ok(PoolAttrs {
        ksize: four(a.ints_or("ksize", &[])?, "ksize")?,
        strides: four(a.ints_or("strides", &[])?, "strides")?,
        padding: padding(a)?,
    })
}

/// The op a NodeDef describes, given the specs of its inputs and the values of the `Const`
/// nodes among them (`None` where an input is not a constant), and where each of the op's
/// inputs comes from. Inputs not listed were its constant arguments (or, for the max-pool
/// gradients, TF's `orig_output`, which is recomputed here).
pub(super) fn op_of(
    n: &NodeDef,
    specs: &[tensorgraph_graph::TensorSpec],
    consts: &[Option<&Value>],
) -> std::result::Result<(Op, Vec<Src>), String> {
    use Src::{In, ShapeOf};
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
        "Switch" => (Op::Switch, 2),
        "Merge" => (Op::Merge, specs.len()),
        "SelectV2" => (Op::Select, 3),
        "LeakyRelu" => (Op::LeakyRelu { alpha: a.float("alpha").unwrap_or(0.2) }, 1),
        "Cast" => (Op::Cast { to: a.dtype("DstT")? }, 1),
        "Sum" | "Mean" | "Max" | "Min" | "Prod" => {
            let op = match n.op.as_str() {
                "Sum" => ReduceOp::Sum,
                "Mean" => ReduceOp::Mean,
                "Max" => ReduceOp::Max,
                "Prod" => ReduceOp::Prod,
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
        "ArgMax" | "ArgMin" => {
            let d = ints(1, "dimension")?;
            let d = *d.first().ok_or("its dimension is empty")?;
            let output_type = a.dtype("output_type").unwrap_or(DType::I64);
            let axis = axis(d, known_rank(0)?)?;
            let op = if n.op == "ArgMax" { Op::ArgMax { axis, output_type } } else { Op::ArgMin { axis, output_type } };
            (op, 1)
        }
        "SparseSoftmaxCrossEntropyWithLogits" => (Op::SparseSoftmaxCrossEntropyWithLogits, 2),
        "Cumsum" | "Cumprod" => {
            let d = ints(1, "axis")?;
            let axis = axis(*d.first().ok_or("its axis is empty")?, known_rank(0)?)?;
            let (exclusive, reverse) = (a.bool_or("exclusive", false)?, a.bool_or("reverse", false)?);
            let op = match n.op.as_str() {
                "Cumsum" => Op::Cumsum { axis, exclusive, reverse },
                _ => Op::Cumprod { axis, exclusive, reverse },
            };
            (op, 1)
        }
        "TopKV2" => {
            let k = usizes(ints(1, "k")?, "k")?.first().copied().ok_or("its k is empty")?;
            (Op::TopKV2 { k, sorted: a.bool_or("sorted", true)? }, 1)
        }
        "BatchMatMulV2" | "BatchMatMulV3" | "BatchMatMul" => {
            (Op::BatchMatMulV2 { adj_x: a.bool_or("adj_x", false)?, adj_y: a.bool_or("adj_y", false)? }, 2)
        }
        "InTopKV2" => {
            let k = ints(2, "k")?;
            (Op::InTopKV2 { k: usizes(k, "k")?.first().copied().ok_or("its k is empty")? }, 2)
        }
        "LSTMBlockCell" => {
            let op = Op::LSTMBlockCell {
                forget_bias: a.float("forget_bias").unwrap_or(1.0),
                cell_clip: a.float("cell_clip").unwrap_or(3.0),
                use_peephole: a.bool_or("use_peephole", false)?,
            };
            (op, 8)
        }
        "LSTMBlockCellGrad" => (Op::LSTMBlockCellGrad { use_peephole: a.bool_or("use_peephole", false)? }, 16),
        "Conv2D" => (Op::Conv2D(conv_attrs(&a)?), 2),
        "DepthwiseConv2dNative" => (Op::DepthwiseConv2dNative(conv_attrs(&a)?), 2),
        "DepthwiseConv2dNativeBackpropInput" => {
            return Ok((Op::DepthwiseConv2dNativeBackpropInput(conv_attrs(&a)?), vec![ShapeOf(0), In(1), In(2)]));
        }
        "DepthwiseConv2dNativeBackpropFilter" => {
            return Ok((Op::DepthwiseConv2dNativeBackpropFilter(conv_attrs(&a)?), vec![In(0), ShapeOf(1), In(2)]));
        }
        "Conv2DBackpropInput" => {
            return Ok((Op::Conv2DBackpropInput(conv_attrs(&a)?), vec![ShapeOf(0), In(1), In(2)]));
        }
        "Conv2DBackpropFilter" => {
            return Ok((Op::Conv2DBackpropFilter(conv_attrs(&a)?), vec![In(0), ShapeOf(1), In(2)]));
        }
        "MaxPool" => (Op::MaxPool(pool_attrs(&a)?), 1),
        "AvgPool" => (Op::AvgPool(pool_attrs(&a)?), 1),
        "MaxPoolGrad" => return Ok((Op::MaxPoolGrad(pool_attrs(&a)?), vec![In(0), In(2)])),
        "MaxPoolGradGrad" => return Ok((Op::MaxPoolGradGrad(pool_attrs(&a)?), vec![In(0), In(2)])),
        "AvgPoolGrad" => return Ok((Op::AvgPoolGrad(pool_attrs(&a)?), vec![ShapeOf(0), In(1)])),
        "BroadcastTo" => return Ok((Op::BroadcastTo, vec![In(0), ShapeOf(1)])),
        "RandomUniform" | "RandomStandardNormal" | "TruncatedNormal" => {
            let dtype = a.dtype("dtype")?;
            let seeds = (a.int("seed").unwrap_or(0) as u64, a.int("seed2").unwrap_or(0) as u64);
            let (seed, seed2) = seeds;
            if consts.first().copied().flatten().is_none() && n.op == "RandomUniform" {
                let op = Op::RandomUniformLike { dtype, minval: 0.0, maxval: 1.0, seed, seed2 };
                return Ok((op, vec![ShapeOf(0)]));
            }
            let shape = usizes(ints(0, "shape")?, "shape")?;
            let op = match n.op.as_str() {
                "RandomUniform" => Op::RandomUniform { dtype, shape, minval: 0.0, maxval: 1.0, seed, seed2 },
                "RandomStandardNormal" => {
                    Op::RandomStandardNormal { dtype, shape, mean: 0.0, stddev: 1.0, seed, seed2 }
                }
                _ => Op::TruncatedNormal { dtype, shape, mean: 0.0, stddev: 1.0, seed, seed2 },
            };
            (op, 0)
        }
        "ApplyGradientDescent" => (Op::Apply(ApplyOp::GradientDescent), 3),
        "ApplyMomentum" => (Op::Apply(ApplyOp::Momentum { use_nesterov: a.bool_or("use_nesterov", false)? }), 5),
        "ApplyAdagrad" => (Op::Apply(ApplyOp::Adagrad), 4),
        "ApplyRMSProp" => (Op::Apply(ApplyOp::RMSProp), 8),
        "ApplyCenteredRMSProp" => (Op::Apply(ApplyOp::CenteredRMSProp), 9),
        "ApplyAdam" => (Op::Apply(ApplyOp::Adam), 10),
        // tensorgraph's own ops, in files it wrote for itself.
        "TgSumToShape" => (Op::SumToShape, 2),
        "TgSize" => (Op::Size { axes: Some(usizes(a.ints_or("axes", &[])?, "axes")?), dtype: a.dtype("out_type")? }, 1),
        "TgFusedBatchNorm" => (Op::FusedBatchNorm { epsilon: a.float("epsilon")? }, 6),
        "TgFusedBatchNormGrad" => (Op::FusedBatchNormGrad, 6),
        "TgSliceGrad" => (Op::SliceGrad, 3),
        "Range" => (Op::Range, 3),
        // Every rank is known here: TF's `Rank` is a constant.
        "Rank" => (Op::Const { value: Value::from(ndarray::arr0(known_rank(0)? as i32)) }, 0),
        "Reshape" if consts.get(1).copied().flatten().is_none() => (Op::ReshapeDynamic, 2),
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
        "GatherV2" | "Gather" => {
            if a.int("batch_dims").unwrap_or(0) != 0 {
                return Err("only batch_dims 0 is supported".into());
            }
            let ax = if n.op == "Gather" { 0 } else { *ints(2, "axis")?.first().ok_or("its axis is empty")? };
            (Op::GatherV2 { axis: axis(ax, known_rank(0)?)? }, 2)
        }
        "UnsortedSegmentSum" => (Op::UnsortedSegmentSum, 3),
        "StridedSlice" | "StridedSliceGrad" => {
            let first = usize::from(n.op == "StridedSliceGrad");
            let spec = tensorgraph_graph::SliceSpec {
                begin: ints(first + 1, "begin")?,
                end: ints(first + 2, "end")?,
                strides: ints(first + 3, "strides")?,
                begin_mask: a.int("begin_mask").unwrap_or(0),
                end_mask: a.int("end_mask").unwrap_or(0),
                ellipsis_mask: a.int("ellipsis_mask").unwrap_or(0),
                new_axis_mask: a.int("new_axis_mask").unwrap_or(0),
                shrink_axis_mask: a.int("shrink_axis_mask").unwrap_or(0),
            };
            if first == 1 {
                return Ok((Op::StridedSliceGrad(spec), vec![In(4), ShapeOf(0)]));
            }
            (Op::StridedSlice(spec), 1)
        }
        "Tile" => (Op::Tile { multiples: usizes(ints(1, "multiples")?, "multiples")? }, 1),
        "SplitV" | "Split" => {
            let (value, dim) = if n.op == "Split" { (1, 0) } else { (0, 2) };
            let r = known_rank(value)?;
            let ax = axis(*ints(dim, "split_dim")?.first().ok_or("its split_dim is empty")?, r)?;
            let size = specs[value].shape.dims()[ax];
            let sizes = if n.op == "Split" {
                let k = usize::try_from(a.int("num_split")?).map_err(|_| "num_split is negative")?;
                match size {
                    // More pieces than elements (only possible for an empty dimension) is refused
                    // before it allocates one output per piece.
                    Some(d) if k > 0 && k <= d && d % k == 0 => vec![d / k; k],
                    _ => return Err(format!("cannot split dimension {size:?} into {k} equal pieces")),
                }
            } else {
                // One size may be -1: the rest of the dimension.
                let given = ints(1, "size_splits")?;
                let known: i64 = given.iter().filter(|&&s| s >= 0).sum();
                let fill = |s: i64| match (s, size) {
                    (-1, Some(d)) if d as i64 >= known => Ok(d as i64 - known),
                    (s, _) if s >= 0 => Ok(s),
                    _ => Err(format!("size_splits {given:?} do not fit dimension {size:?}")),
                };
                usizes(given.iter().map(|&s| fill(s)).collect::<std::result::Result<_, _>>()?, "size_splits")?
            };
            return Ok((Op::SplitV { sizes, axis: ax }, vec![In(value)]));
        }
        "Pack" => {
            let r = known_rank(0)?;
            (Op::Pack { axis: axis(a.int("axis").unwrap_or(0), r + 1)? }, specs.len())
        }
        "Unpack" => {
            let num = usize::try_from(a.int("num")?).map_err(|_| "num is negative")?;
            let ax = axis(a.int("axis").unwrap_or(0), known_rank(0)?)?;
            // One output per slice: the count must be the dimension's, known (not a file's word).
            if specs[0].shape.dims()[ax] != Some(num) {
                return Err(format!("num {num} is not the size of axis {ax} of {}", specs[0].shape));
            }
            (Op::Unpack { num, axis: ax }, 1)
        }
        "Slice" if consts.get(1).copied().flatten().is_none() || consts.get(2).copied().flatten().is_none() => {
            (Op::SliceDynamic, 3)
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
        "Fill" if consts.first().copied().flatten().is_none() => (Op::FillDims, 2),
        "Where" => (Op::Where, 1),
        "MirrorPad" | "MirrorPadGrad" => {
            let p = usizes(ints(1, "paddings")?, "paddings")?;
            let paddings = p.chunks(2).map(|c| (c[0], c.get(1).copied().unwrap_or(0))).collect();
            let symmetric = match a.string_or("mode", "REFLECT")?.as_str() {
                "REFLECT" => false,
                "SYMMETRIC" => true,
                other => return Err(format!("mode {other} is not REFLECT or SYMMETRIC")),
            };
            let op = match n.op.as_str() {
                "MirrorPad" => Op::MirrorPad { paddings, symmetric },
                _ => Op::MirrorPadGrad { paddings, symmetric },
            };
            (op, 1)
        }
        "Fill" => {
            let shape = usizes(ints(0, "dims")?, "dims")?;
            let value = konst(1, "value")?;
            let v = value.scalar_f64().ok_or("its value is not a scalar")?;
            (Op::Fill { dtype: value.dtype(), shape, value: v }, 0)
        }
        "Size" => {
            let axes = match a.get(super::export::ALL_AXES) {
                Ok(_) => Some(usizes(a.ints_or(super::export::ALL_AXES, &[])?, "axes")?),
                Err(_) => None,
            };
            (Op::Size { axes, dtype: a.dtype("out_type").unwrap_or(DType::I32) }, 1)
        }
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
        other => match (UnaryOp::from_type_name(other), BinaryOp::from_type_name(other)) {
            (Some(u), _) => (Op::Unary(u), 1),
            (_, Some(b)) => (Op::Binary(b), 2),
            _ => return Err(format!("op {other} is not supported by tensorgraph")),
        },
    };
    if specs.len() < op.1 {
        return Err(format!("{} inputs where {} takes {}", specs.len(), n.op, op.1));
    }
    Ok((op.0, (0..op.1).map(In).collect()))
}

/// Builds a graph from a TF `GraphDef` (`what` names it in errors): every node under its own
/// name, constant arguments folded into the ops that take them (their `Const` nodes, and the
/// `Shape` nodes TF's ops read where ours read the tensor itself, are not made unless
/// something else reads them), a scaled random draw as written by [`super::to_graph_def`]
/// folded back into one op. Nodes keep the file's order. Errors name the node and its op: one
/// tensorgraph lacks, a run-time argument where a constant is needed, a dangling input, a
/// cycle.
pub fn from_graph_def(def: &GraphDef, what: &str) -> Result<Graph> {
    let marked = super::marked::read_marked_ops(def);
    let def = marked.as_ref().unwrap_or(def);
    let arrays = super::tensor_arrays::rewrite_tensor_arrays(def, what)?;
    let def = arrays.as_ref().unwrap_or(def);
    let lists = super::tensor_arrays::rewrite_tensor_lists(def, what)?;
    let def = lists.as_ref().unwrap_or(def);
    let functional = super::functionalize::functionalize_loops(def, what)?;
    let def = functional.as_ref().unwrap_or(def);
    let by_name = def
        .library
        .iter()
        .flat_map(|l| &l.function)
        .filter_map(|f| Some((f.signature.as_ref()?.name.as_str(), f)))
        .collect();
    let library = Library { by_name, made: std::cell::Cell::new(0) };
    let fused = fused_draws(def);
    Ok(two_passes(def, what, &library, &fused, 0, &Graph::new)?.g)
}

/// The functions of a GraphDef's library by name, and how many function graphs were made from
/// them (each `While`/`If` imports its functions anew, twice: see [`two_passes`]).
struct Library<'a> {
    by_name: HashMap<&'a str, &'a FunctionDef>,
    made: std::cell::Cell<usize>,
}

/// TF's `DT_VARIANT`, the type of its TensorLists.
const DT_VARIANT: i32 = 21;

/// Bounds on function graphs, so a forged library whose functions call themselves or nest
/// deeply is an error, not a stack overflow or an exponential import.
const MAX_FUNCTION_DEPTH: usize = 32;
const MAX_FUNCTION_GRAPHS: usize = 16_384;

/// Imports `def` into a graph `new_graph` makes. Pass 1 makes the argument nodes only where
/// they are read as data, to learn which are read only as arguments; pass 2 makes every other
/// node in the file's order.
fn two_passes<'a>(
    def: &'a GraphDef,
    what: &'a str,
    library: &'a Library<'a>,
    fused: &'a Fused,
    depth: usize,
    new_graph: &dyn Fn() -> Graph,
) -> Result<Importer<'a>> {
    let order = topological_order(def, what)?;
    let computable = constant_computable(def, &order);
    let mut first = Importer::new(def, what, library, fused, None, new_graph());
    first.depth = depth;
    first.computable = computable.clone();
    first.run(&order)?;
    let folded: HashSet<usize> = first.folded.iter().copied().filter(|j| !first.made.contains_key(j)).collect();
    let mut second = Importer::new(def, what, library, fused, Some(folded), new_graph());
    second.depth = depth;
    second.computable = computable;
    second.run(&order)?;
    Ok(second)
}

/// Which output of a node an input names: `node:k` in a graph, `node:output_arg:index` inside
/// a function (resolved against the op's output arguments once the node is made).
#[derive(Clone, Copy, Debug)]
pub(super) enum Slot<'s> {
    Index(usize),
    Arg(&'s str, usize),
}

/// Makes unknown each dimension of `specs` that `results` (a loop body's) has otherwise; whether
/// any was. Each call that relaxes makes a dimension unknown, so a loop over it ends.
fn relax(specs: &mut [TensorSpec], results: &[TensorSpec]) -> bool {
    let mut relaxed = false;
    for (spec, got) in specs.iter_mut().zip(results) {
        if got.shape.rank() == spec.shape.rank() && got.shape != spec.shape {
            let dims = spec.shape.dims().iter().zip(got.shape.dims());
            let shape = Shape::from(dims.map(|(&a, &b)| if a == b { a } else { None }).collect::<Vec<_>>());
            relaxed |= shape != spec.shape;
            spec.shape = shape;
        }
    }
    relaxed
}

/// `(control, node name, output)` of a NodeDef input string.
pub(super) fn parse_input(s: &str) -> (bool, &str, Slot<'_>) {
    let (control, s) = match s.strip_prefix('^') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let Some((rest, k)) = s.rsplit_once(':').and_then(|(n, k)| Some((n, k.parse::<usize>().ok()?))) else {
        return (control, s, Slot::Index(0));
    };
    match rest.rsplit_once(':') {
        Some((node, arg)) => (control, node, Slot::Arg(arg, k)),
        None => (control, rest, Slot::Index(k)),
    }
}

pub(super) fn bad_node(what: &str, n: &NodeDef, detail: String) -> Error {
    Error::BadFile { path: what.to_string(), detail: format!("node {} ({}): {detail}", n.name, n.op) }
}

/// The nodes in an order where inputs (data and control) come first, the file's order where
/// it allows (a GraphDef need not be sorted).
fn topological_order(def: &GraphDef, what: &str) -> Result<Vec<usize>> {
    topological_order_skipping(def, what, &|_, _| false, "the graph has a cycle through it (loops are not supported)")
}

/// [`topological_order`] not following an input for which `skip(reader, input)` holds (a TF1
/// loop's back edge); `cycle` is the error's words for a cycle.
pub(super) fn topological_order_skipping(
    def: &GraphDef,
    what: &str,
    skip: &dyn Fn(&NodeDef, &NodeDef) -> bool,
    cycle: &str,
) -> Result<Vec<usize>> {
    let mut by_name = HashMap::new();
    for (i, n) in def.node.iter().enumerate() {
        if by_name.insert(n.name.as_str(), i).is_some() {
            return Err(bad_node(what, n, "a second node of that name".into()));
        }
    }
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
                let (_, name, _) = parse_input(input);
                let Some(&j) = by_name.get(name) else {
                    return Err(bad_node(what, n, format!("input {input} names no node")));
                };
                if skip(n, &def.node[j]) {
                    continue;
                }
                match state[j] {
                    1 => return Err(bad_node(what, n, cycle.into())),
                    0 => stack.push((j, 0)),
                    _ => {}
                }
            } else {
                state[i] = 2;
                order.push(i);
            }
        }
    }
    Ok(order)
}

/// What the export wrote as several TF nodes for one op of ours, to be read back as that op:
/// a scaled draw, `N = AddV2(N/mul, N/shift)` with `N/mul = Mul(N/<draw>, N/scale)`
/// (`N -> (draw, scale, shift)`), and a float count, `N = Cast(N/Size)` (`N -> size`); the
/// helpers read by nothing else.
struct Fused {
    draws: HashMap<usize, (usize, f64, f64)>,
    counts: HashMap<usize, usize>,
    /// `N = Reshape(N/sum, N/like_shape)` over `Sum(grad, BroadcastGradientArgs(...))`:
    /// `N -> (the Sum, the like_shape Shape)`.
    sums: HashMap<usize, (usize, usize)>,
    parts: HashSet<usize>,
}

fn fused_draws(def: &GraphDef) -> Fused {
    let by_name: HashMap<&str, usize> = def.node.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for n in &def.node {
        for input in &n.input {
            *readers.entry(parse_input(input).1).or_default() += 1;
        }
    }
    let scalar = |name: &str| -> Option<f64> {
        let n = &def.node[*by_name.get(name)?];
        (n.op == "Const" && readers.get(name) == Some(&1)).then_some(())?;
        Attrs(n).tensor("value").ok()?.scalar_f64()
    };
    // The nodes an input names (`node`, `node:1` in a graph; `node:arg:0` in a function).
    let names = |j: usize| -> Vec<&str> { def.node[j].input.iter().map(|s| parse_input(s).1).collect() };
    let mut fused =
        Fused { draws: HashMap::new(), counts: HashMap::new(), sums: HashMap::new(), parts: HashSet::new() };
    for (i, n) in def.node.iter().enumerate() {
        if n.op == "Reshape" {
            let named = |s: &str| format!("{}/{s}", n.name);
            let [gs, ls, args, sum] = ["grad_shape", "like_shape", "args", "sum"].map(named);
            let node = |name: &str, op: &str| by_name.get(name).copied().filter(|&j| def.node[j].op == op);
            let parts =
                (node(&gs, "Shape"), node(&ls, "Shape"), node(&args, "BroadcastGradientArgs"), node(&sum, "Sum"));
            if let (Some(g), Some(l), Some(a), Some(s)) = parts {
                let shape_ok = names(a) == [ls.as_str(), gs.as_str()]
                    && names(s).get(1) == Some(&args.as_str())
                    && def.node[s].input.first() == def.node[g].input.first()
                    && names(i).starts_with(&[sum.as_str(), ls.as_str()])
                    && [(gs.as_str(), 1), (args.as_str(), 1), (sum.as_str(), 1), (ls.as_str(), 2)]
                        .iter()
                        .all(|(name, k)| readers.get(name) == Some(k));
                if shape_ok {
                    fused.sums.insert(i, (s, l));
                    fused.parts.extend([g, l, a, s]);
                    continue;
                }
            }
        }
        let size = format!("{}/Size", n.name);
        if n.op == "Cast" && names(i) == [size.as_str()] && readers.get(size.as_str()) == Some(&1) {
            if let Some(&j) = by_name.get(size.as_str()).filter(|&&j| def.node[j].op == "Size") {
                fused.counts.insert(i, j);
                fused.parts.insert(j);
            }
            continue;
        }
        let (mul, shift) = (format!("{}/mul", n.name), format!("{}/shift", n.name));
        if n.op != "AddV2" || names(i) != [mul.as_str(), shift.as_str()] || readers.get(mul.as_str()) != Some(&1) {
            continue;
        }
        let Some(&m) = by_name.get(mul.as_str()) else { continue };
        let scale = format!("{}/scale", n.name);
        let draw = names(m).first().and_then(|d| by_name.get(d)).copied();
        let Some(draw) = draw else { continue };
        let is_draw = ["RandomUniform", "RandomStandardNormal", "TruncatedNormal"]
            .contains(&def.node[draw].op.as_str())
            && def.node[draw].name == format!("{}/{}", n.name, def.node[draw].op)
            && readers.get(def.node[draw].name.as_str()) == Some(&1);
        let mul_ok = def.node[m].op == "Mul" && names(m).get(1) == Some(&scale.as_str());
        if let (true, true, Some(sc), Some(sh)) = (is_draw, mul_ok, scalar(&scale), scalar(&shift)) {
            fused.draws.insert(i, (draw, sc, sh));
            fused.parts.extend([draw, m, by_name[scale.as_str()], by_name[shift.as_str()]]);
        }
    }
    fused
}

/// One pass of the import (see [`from_graph_def`]).
struct Importer<'a> {
    def: &'a GraphDef,
    what: &'a str,
    library: &'a Library<'a>,
    by_name: HashMap<&'a str, usize>,
    fused: &'a Fused,
    /// Pass 2: the argument nodes not to make.
    skip: Option<HashSet<usize>>,
    g: Graph,
    made: HashMap<usize, tensorgraph_graph::Operation>,
    /// Nodes whose TF outputs are other tensors than our op's (TF's batch norm): output `k`
    /// of node `i` is `tf_outputs[i][k]`, `None` where it has no counterpart here.
    tf_outputs: HashMap<usize, Vec<Option<tensorgraph_graph::Tensor>>>,
    /// How many functions deep this graph is (0: the file's graph).
    depth: usize,
    /// Nodes read as an argument (folded into their reader) at least once.
    folded: HashSet<usize>,
    /// Values of the computed constants asked for ([`Importer::const_value`]).
    constants: HashMap<usize, Option<Value>>,
    /// Nodes of [`FOLDED_OPS`] computed from constants only ([`constant_computable`]).
    computable: HashSet<usize>,
}

/// The nodes of [`FOLDED_OPS`] whose data inputs are all constants or such nodes (output 0),
/// at most [`MAX_FOLDED_DEPTH`] such nodes deep (so that making one recurses so deep at most),
/// given an order where inputs come first.
fn constant_computable(def: &GraphDef, order: &[usize]) -> HashSet<usize> {
    let by_name: HashMap<&str, usize> = def.node.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    let mut depth: HashMap<usize, usize> = HashMap::new();
    for &i in order {
        let n = &def.node[i];
        if !FOLDED_OPS.contains(&n.op.as_str()) {
            continue;
        }
        let mut deepest = Some(0);
        for s in n.input.iter().filter(|s| !s.starts_with('^')) {
            let (_, name, slot) = parse_input(s);
            let d = match by_name.get(name) {
                Some(&j) if matches!(slot, Slot::Index(0)) && def.node[j].op == "Const" => Some(0),
                Some(&j) if matches!(slot, Slot::Index(0)) => depth.get(&j).copied(),
                _ => None,
            };
            deepest = deepest.zip(d).map(|(a, b)| a.max(b));
        }
        if let Some(d) = deepest.filter(|&d| d < MAX_FOLDED_DEPTH) {
            depth.insert(i, d + 1);
        }
    }
    depth.into_keys().collect()
}

/// Ops computed at import when their inputs are constants and an op reads them as an argument.
const FOLDED_OPS: [&str; 21] = [
    "ConcatV2",
    "Range",
    "Pack",
    "StridedSlice",
    "Slice",
    "Cast",
    "Add",
    "AddV2",
    "Sub",
    "Mul",
    "Maximum",
    "Minimum",
    "Reshape",
    "ExpandDims",
    "Squeeze",
    "Shape",
    "Prod",
    "Sum",
    "Identity",
    "GatherV2",
    "Neg",
];
const MAX_FOLDED_ELEMENTS: usize = 1 << 16;
/// How long a chain of computed constants may be (a forged file's could overflow the stack).
const MAX_FOLDED_DEPTH: usize = 64;

impl<'a> Importer<'a> {
    fn new(
        def: &'a GraphDef,
        what: &'a str,
        library: &'a Library<'a>,
        fused: &'a Fused,
        skip: Option<HashSet<usize>>,
        g: Graph,
    ) -> Self {
        let by_name = def.node.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
        Importer {
            def,
            what,
            library,
            by_name,
            fused,
            skip,
            g,
            made: HashMap::new(),
            tf_outputs: HashMap::new(),
            depth: 0,
            folded: HashSet::new(),
            constants: Default::default(),
            computable: HashSet::new(),
        }
    }

    fn bad(&self, i: usize, detail: String) -> Error {
        bad_node(self.what, &self.def.node[i], detail)
    }

    /// Nodes that may be arguments only: made when read as data (pass 1) or in order (pass 2).
    fn is_argument_kind(&self, i: usize) -> bool {
        matches!(self.def.node[i].op.as_str(), "Const" | "Shape") || self.computable.contains(&i)
    }

    fn run(&mut self, order: &[usize]) -> Result<()> {
        for &i in order {
            let deferred = self.skip.is_none() && self.is_argument_kind(i);
            if !(self.fused.parts.contains(&i) || deferred || self.skip.as_ref().is_some_and(|s| s.contains(&i))) {
                self.make(i)?;
            }
        }
        Ok(())
    }

    /// Where node `i` was built when the file says (`file:line:column`), else its place here.
    fn location(&self, i: usize) -> tensorgraph_graph::SourceLocation {
        let written = match Attrs(&self.def.node[i]).get(super::export::LOCATION) {
            Ok(Attr::S(s)) => std::str::from_utf8(s).ok().and_then(|s| {
                let mut parts = s.rsplitn(3, ':');
                let (column, line, file) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?);
                Some(tensorgraph_graph::SourceLocation { file: file.to_string(), line, column })
            }),
            _ => None,
        };
        written.unwrap_or(tensorgraph_graph::SourceLocation {
            file: self.what.to_string(),
            line: i as u32 + 1,
            column: 0,
        })
    }

    /// Output `slot` of node `j`, making the node first if it waits to be read.
    fn tensor(&mut self, j: usize, slot: Slot) -> Result<tensorgraph_graph::Tensor> {
        self.make(j)?;
        if let Some(outputs) = self.tf_outputs.get(&j) {
            let k = match slot {
                Slot::Index(k) => Some(k),
                Slot::Arg("output", index) if self.def.node[j].op == "IdentityN" => Some(index),
                Slot::Arg(arg, index) => BATCH_NORM_OUTPUTS.iter().position(|o| *o == arg).map(|p| p + index),
            };
            // Batch norms and IdentityN are listed; a training batch norm's batch variance is
            // made on first read.
            if k == Some(2) && matches!(outputs.get(2), Some(None)) {
                let unbiased = self.unbiased_variance(j)?;
                self.tf_outputs.get_mut(&j).expect("listed")[2] = Some(unbiased.clone());
                return Ok(unbiased);
            }
            let outputs = &self.tf_outputs[&j];
            return k.and_then(|k| outputs.get(k).cloned().flatten()).ok_or_else(|| match self.def.node[j].op.as_str() {
                "IdentityN" => self.bad(j, format!("it has no output {slot:?} ({} inputs)", outputs.len())),
                _ => self.bad(j, format!("its output {slot:?}, a reserve space only TF's gradient reads, has no counterpart here (TF's batch norm training gradients do not import)")),
            });
        }
        let op = &self.made[&j];
        let k = match slot {
            Slot::Index(k) => k,
            // An op with one output argument (perhaps a list) counts within it.
            Slot::Arg(arg, index) => match op.op().def().outputs {
                [_] => index,
                several => several
                    .iter()
                    .position(|o| *o == arg)
                    .map(|p| p + index)
                    .ok_or_else(|| self.bad(j, format!("it has no output argument {arg}")))?,
            },
        };
        op.output(k).map_err(|_| self.bad(j, format!("it has no output {slot:?}")))
    }

    /// The spec of output `slot` of node `j`, without making an argument node for it.
    fn spec(&mut self, j: usize, slot: Slot) -> Result<tensorgraph_graph::TensorSpec> {
        let n = &self.def.node[j];
        // A computed constant is made only when read as data.
        if self.computable.contains(&j) && !self.made.contains_key(&j) {
            if let Some(v) = self.const_value(j, slot)? {
                return Ok(tensorgraph_graph::TensorSpec::new(v.dtype(), Shape::known(v.shape())));
            }
        }
        match n.op.as_str() {
            "Const" if !self.made.contains_key(&j) => {
                let v = Attrs(n).tensor("value").map_err(|d| self.bad(j, d))?;
                Ok(tensorgraph_graph::TensorSpec::new(v.dtype(), Shape::known(v.shape())))
            }
            "Shape" if !self.made.contains_key(&j) => {
                let (x, s) = self.shape_input(j)?;
                let rank = self.spec(x, s)?.shape.rank();
                let dtype = Attrs(n).dtype("out_type").unwrap_or(DType::I32);
                Ok(tensorgraph_graph::TensorSpec::new(dtype, Shape::known(&[rank])))
            }
            _ => Ok(self.tensor(j, slot)?.spec()),
        }
    }

    /// The node and slot a `Shape` node measures.
    fn shape_input(&self, j: usize) -> Result<(usize, Slot<'a>)> {
        let def = self.def;
        let first = def.node[j].input.iter().find(|s| !s.starts_with('^'));
        let (_, name, slot) =
            first.map(|s| parse_input(s)).ok_or_else(|| self.bad(j, "a Shape without an input".into()))?;
        Ok((self.by_name[name], slot))
    }

    /// `SumToShape(grad, like)` from TF's spelling of it (see `Fused::sums`).
    fn make_sum_to_shape(&mut self, i: usize, sum: usize, like_shape: usize) -> Result<()> {
        let def = self.def;
        let first = |j: usize| -> Result<(usize, Slot)> {
            let input = def.node[j].input.first().ok_or_else(|| self.bad(j, "it has no input".into()))?;
            let (_, name, slot) = parse_input(input);
            Ok((self.by_name[name], slot))
        };
        let ((g, gs), (l, ls)) = (first(sum)?, first(like_shape)?);
        let inputs = [self.tensor(g, gs)?, self.tensor(l, ls)?];
        let mut controls = Vec::new();
        for input in self.def.node[i].input.iter().filter(|s| s.starts_with('^')) {
            let j = self.by_name[parse_input(input).1];
            self.make(j)?;
            controls.push(self.made[&j].clone());
        }
        let control_refs: Vec<&tensorgraph_graph::Operation> = controls.iter().collect();
        let name = format!("{}/", self.def.node[i].name);
        let node =
            self.g.add_node(Op::SumToShape, &[&inputs[0], &inputs[1]], &control_refs, Some(&name), self.location(i))?;
        self.made.insert(i, node);
        Ok(())
    }

    fn make(&mut self, i: usize) -> Result<()> {
        if self.made.contains_key(&i) {
            return Ok(());
        }
        if let Some(&(sum, like_shape)) = self.fused.sums.get(&i) {
            return self.make_sum_to_shape(i, sum, like_shape);
        }
        // A fused draw takes the draw's inputs and attributes, and the sum's name.
        let (src, affine) = match (self.fused.draws.get(&i), self.fused.counts.get(&i)) {
            (Some(&(draw, scale, shift)), _) => (draw, Some((scale, shift))),
            (None, Some(&size)) => (size, None),
            (None, None) => (i, None),
        };
        let nd = &self.def.node[src];
        let mut data = Vec::new();
        let mut controls = Vec::new();
        for input in &nd.input {
            let (control, name, slot) = parse_input(input);
            let j = self.by_name[name];
            if control {
                self.make(j)?;
                controls.push(self.made[&j].clone());
            } else {
                data.push((j, slot));
            }
        }
        if matches!(nd.op.as_str(), "While" | "StatelessWhile" | "If" | "StatelessIf") {
            return self.make_functional(i, &data, &controls);
        }
        if matches!(nd.op.as_str(), "FusedBatchNorm" | "FusedBatchNormV2" | "FusedBatchNormV3") {
            return self.make_batch_norm(i, &data, &controls);
        }
        if nd.op == "IdentityN" {
            return self.make_identity_n(i, &data, &controls);
        }
        let mut specs = Vec::with_capacity(data.len());
        let mut consts = Vec::with_capacity(data.len());
        for &(j, slot) in &data {
            specs.push(self.spec(j, slot)?);
            consts.push(self.const_value(j, slot)?);
        }
        let const_refs: Vec<Option<&Value>> = consts.iter().map(Option::as_ref).collect();
        let (mut op, srcs) = op_of(nd, &specs, &const_refs).map_err(|d| self.bad(src, d))?;
        if let (Op::Size { dtype, .. }, true) = (&mut op, src != i) {
            *dtype = Attrs(&self.def.node[i]).dtype("DstT").map_err(|d| self.bad(i, d))?;
        }
        if let Some((scale, shift)) = affine {
            match &mut op {
                // The f64 range a file of tensorgraph's keeps, else TF's scale and shift.
                Op::RandomUniform { minval, maxval, .. } | Op::RandomUniformLike { minval, maxval, .. } => {
                    let a = Attrs(nd);
                    *minval = a.float("minval").unwrap_or(shift);
                    *maxval = a.float("maxval").unwrap_or(shift + scale);
                }
                Op::RandomStandardNormal { mean, stddev, .. } | Op::TruncatedNormal { mean, stddev, .. } => {
                    let a = Attrs(nd);
                    *mean = a.float("mean").unwrap_or(shift);
                    *stddev = a.float("stddev").unwrap_or(scale);
                }
                _ => unreachable!("only draws are fused"),
            }
        }
        let mut inputs = Vec::with_capacity(srcs.len());
        let mut read = HashSet::new();
        for src_k in &srcs {
            let (k, shape_of) = match *src_k {
                Src::In(k) => (k, false),
                Src::ShapeOf(k) => (k, true),
            };
            // A forged node may list fewer inputs than its op takes (a MaxPoolGrad of two).
            let (j, slot) = *data.get(k).ok_or_else(|| {
                self.bad(i, format!("{} takes input {k}, but the node lists {} inputs", nd.op, data.len()))
            })?;
            if !shape_of {
                read.insert(k);
                inputs.push(self.tensor(j, slot)?);
            } else if self.def.node[j].op == "Shape" {
                let (x, s) = self.shape_input(j)?;
                inputs.push(self.tensor(x, s)?);
            } else if let Some(v) = consts[k].as_ref().filter(|v| v.dtype().is_integer()) {
                // A constant shape: zeros of it stand for the tensor ours reads the shape of.
                let dims = v.to_f64_vec().iter().map(|&d| d as usize).collect();
                let zeros = Op::Fill { dtype: DType::F32, shape: dims, value: 0.0 };
                let name = format!("{}/zeros_of_input_{k}/", self.def.node[i].name);
                inputs.push(self.g.add_node(zeros, &[], &[], Some(&name), self.location(i))?.output(0)?);
            } else {
                return Err(self.bad(i, format!("its input {k}, a shape, must be a constant or a Shape node")));
            }
        }
        for (k, &(j, _)) in data.iter().enumerate() {
            if !read.contains(&k) {
                self.folded.insert(j);
            }
        }
        let input_refs: Vec<&tensorgraph_graph::Tensor> = inputs.iter().collect();
        let control_refs: Vec<&tensorgraph_graph::Operation> = controls.iter().collect();
        let name = format!("{}/", self.def.node[i].name);
        let node = self.g.add_node(op, &input_refs, &control_refs, Some(&name), self.location(src))?;
        self.made.insert(i, node);
        Ok(())
    }

    /// The value of output `slot` of node `j` when it is a constant: a `Const`, or a small
    /// computation on constants that TF's graphs leave to TF's constant folding (the `perm`
    /// of `dynamic_rnn`'s transpose is a `ConcatV2` of a `Range` of constants), computed here
    /// with our kernels. `None` otherwise, and where computing fails.
    fn const_value(&mut self, j: usize, slot: Slot) -> Result<Option<Value>> {
        self.const_value_within(j, slot, MAX_FOLDED_DEPTH)
    }

    fn const_value_within(&mut self, j: usize, slot: Slot, depth: usize) -> Result<Option<Value>> {
        let n = &self.def.node[j];
        if n.op == "Const" {
            return Attrs(n).tensor("value").map(Some).map_err(|d| self.bad(j, d));
        }
        if !matches!(slot, Slot::Index(0)) || !self.computable.contains(&j) || depth == 0 {
            return Ok(None);
        }
        if let Some(v) = self.constants.get(&j) {
            return Ok(v.clone());
        }
        let mut node = vec![];
        let mut inputs = vec![];
        for input in n.input.iter().filter(|s| !s.starts_with('^')) {
            let (_, name, slot) = parse_input(input);
            let Some(&k) = self.by_name.get(name) else { return Ok(None) };
            let Some(v) = self.const_value_within(k, slot, depth - 1)? else { return Ok(None) };
            // Only small arguments: a shape, a permutation, an axis (a Range's result is bounded below).
            if v.len() > MAX_FOLDED_ELEMENTS {
                return Ok(None);
            }
            let name = format!("_folded_input_{}", inputs.len());
            let attr = [
                ("dtype".to_string(), super::ty(v.dtype())),
                ("value".to_string(), super::attr(Attr::Tensor(super::tensor_proto(&v)))),
            ];
            node.push(NodeDef { name: name.clone(), op: "Const".into(), attr: attr.into(), ..Default::default() });
            inputs.push(name);
        }
        if n.op == "Range" {
            let bound = |k: usize| node.get(k).and_then(|c| Attrs(c).tensor("value").ok()?.scalar_f64());
            if let (Some(a), Some(b), Some(d)) = (bound(0), bound(1), bound(2)) {
                if d == 0.0 || ((b - a) / d).abs() > MAX_FOLDED_ELEMENTS as f64 {
                    return Ok(None);
                }
            }
        }
        node.push(NodeDef { input: inputs, ..n.clone() });
        let def = GraphDef { node, ..Default::default() };
        let fused = fused_draws(&def);
        let value = (|| {
            let inner = two_passes(&def, self.what, self.library, &fused, self.depth + 1, &Graph::new).ok()?;
            let out = inner.made.get(&(def.node.len() - 1))?.output(0).ok()?;
            crate::Session::new(&inner.g).ok()?.run(&out, &[]).ok()
        })();
        if value.is_some() {
            // What only computed the constant is not made unless read as data (see two_passes).
            for input in n.input.iter().filter(|s| !s.starts_with('^')) {
                self.folded.insert(self.by_name[parse_input(input).1]);
            }
        }
        self.constants.insert(j, value.clone());
        Ok(value)
    }

    /// TF's functional `While`/`StatelessWhile` and `If`/`StatelessIf`, their functions
    /// imported from the library as function graphs. TF's loop functions take and return all
    /// of the loop's inputs: here they are all loop variables.
    fn make_functional(
        &mut self,
        i: usize,
        data: &[(usize, Slot<'a>)],
        controls: &[tensorgraph_graph::Operation],
    ) -> Result<()> {
        let nd = &self.def.node[i];
        let inputs = data.iter().map(|&(j, slot)| self.tensor(j, slot)).collect::<Result<Vec<_>>>()?;
        let mut specs: Vec<TensorSpec> = inputs.iter().map(|t| t.spec()).collect();
        let a = Attrs(nd);
        let func = |name: &str| match a.get(name) {
            Ok(Attr::Func(f)) => Ok(f.name.clone()),
            Ok(_) => Err(self.bad(i, format!("attribute {name} is not a function"))),
            Err(d) => Err(self.bad(i, d)),
        };
        let op = if nd.op.ends_with("While") {
            // The loop variables' shapes are the shape invariants TF writes, where it does.
            if let Ok(Attr::List(l)) = a.get("output_shapes") {
                if l.shape.len() == specs.len() {
                    for (spec, s) in specs.iter_mut().zip(&l.shape) {
                        if !s.unknown_rank && s.dim.len() == spec.shape.rank() {
                            spec.shape =
                                Shape::from(s.dim.iter().map(|d| usize::try_from(d.size).ok()).collect::<Vec<_>>());
                        }
                    }
                }
            }
            let (cond, body) = (func("cond")?, func("body")?);
            // A dimension the body changes is unknown (TF1's files keep no shape invariants).
            let mut body_f = self.function(i, &body, &specs)?;
            while relax(&mut specs, &body_f.output_specs()) {
                body_f = self.function(i, &body, &specs)?;
            }
            Op::While { cond: self.function(i, &cond, &specs)?, body: body_f, maximum_iterations: None }
        } else {
            let Some(args) = specs.get(1..) else {
                return Err(self.bad(i, "it has no condition input".into()));
            };
            let (then_name, else_name) = (func("then_branch")?, func("else_branch")?);
            Op::If {
                then_branch: self.function(i, &then_name, args)?,
                else_branch: self.function(i, &else_name, args)?,
            }
        };
        let input_refs: Vec<&tensorgraph_graph::Tensor> = inputs.iter().collect();
        let control_refs: Vec<&tensorgraph_graph::Operation> = controls.iter().collect();
        let name = format!("{}/", nd.name);
        let node = self.g.add_node(op, &input_refs, &control_refs, Some(&name), self.location(i))?;
        self.made.insert(i, node);
        Ok(())
    }

    /// Function `name` of the library as a function graph of this graph, its arguments of
    /// `specs`: a `Placeholder` per argument, then its nodes, imported as a graph's.
    fn function(&self, i: usize, name: &str, specs: &[TensorSpec]) -> Result<Func> {
        let f = self
            .library
            .by_name
            .get(name)
            .ok_or_else(|| self.bad(i, format!("function {name} is not in the library")))?;
        if self.depth >= MAX_FUNCTION_DEPTH {
            let detail =
                format!("functions nested more than {MAX_FUNCTION_DEPTH} deep at {name} (one calling itself?)");
            return Err(self.bad(i, detail));
        }
        let made = self.library.made.get() + 2;
        if made > MAX_FUNCTION_GRAPHS {
            let detail = format!(
                "more than {MAX_FUNCTION_GRAPHS} function graphs at {name} (functions calling each other too often)"
            );
            return Err(self.bad(i, detail));
        }
        self.library.made.set(made);
        let sig = f.signature.as_ref().expect("the library holds functions with signatures");
        if sig.input_arg.len() != specs.len() {
            let detail =
                format!("function {name} takes {} arguments, the node gives {}", sig.input_arg.len(), specs.len());
            return Err(self.bad(i, detail));
        }
        let mut node = Vec::with_capacity(specs.len() + f.node_def.len());
        for (arg, spec) in sig.input_arg.iter().zip(specs) {
            // A variant argument (TF 2's TensorList) is a tensor of the list's elements here.
            if ![0, DT_VARIANT].contains(&arg.r#type) && dtype_from_enum(arg.r#type) != Ok(spec.dtype) {
                let detail =
                    format!("argument {} of function {name} is not the {} the node gives", arg.name, spec.dtype);
                return Err(self.bad(i, detail));
            }
            let attr = [
                ("dtype".to_string(), super::ty(spec.dtype)),
                ("shape".to_string(), super::attr(Attr::Shape(super::shape_proto(&spec.shape)))),
            ];
            node.push(NodeDef {
                name: arg.name.clone(),
                op: "Placeholder".into(),
                attr: attr.into(),
                ..Default::default()
            });
        }
        node.extend(f.node_def.iter().cloned());
        let def = GraphDef { node, ..Default::default() };
        let def = super::marked::read_marked_ops(&def).unwrap_or(def);
        let what = format!("{}, function {name}", self.what);
        let fused = fused_draws(&def);
        let parent = self.g.clone();
        let mut inner = two_passes(&def, &what, self.library, &fused, self.depth + 1, &|| parent.new_function_graph())?;
        let inputs = (0..specs.len()).map(|k| Ok(inner.made[&k].output(0)?.endpoint())).collect::<Result<_>>()?;
        let mut outputs = Vec::with_capacity(sig.output_arg.len());
        for out in &sig.output_arg {
            let missing =
                || self.bad(i, format!("function {name} does not say which tensor its result {} is", out.name));
            let (_, node, slot) = parse_input(f.ret.get(&out.name).ok_or_else(missing)?);
            let j = *inner
                .by_name
                .get(node)
                .ok_or_else(|| self.bad(i, format!("function {name} returns {node}, no node of it")))?;
            outputs.push(inner.tensor(j, slot)?.endpoint());
        }
        Ok(Func { graph: inner.g.clone(), inputs, outputs })
    }

    /// TF's `IdentityN`: its outputs are its inputs; the node itself (what a control input
    /// names) a `NoOp` after them.
    fn make_identity_n(
        &mut self,
        i: usize,
        data: &[(usize, Slot<'a>)],
        controls: &[tensorgraph_graph::Operation],
    ) -> Result<()> {
        let inputs = data.iter().map(|&(j, slot)| self.tensor(j, slot)).collect::<Result<Vec<_>>>()?;
        let after: Vec<tensorgraph_graph::Operation> =
            inputs.iter().map(|t| t.op()).chain(controls.iter().cloned()).collect();
        let after: Vec<&tensorgraph_graph::Operation> = after.iter().collect();
        let name = format!("{}/", self.def.node[i].name);
        let node = self.g.add_node(Op::NoOp, &[], &after, Some(&name), self.location(i))?;
        self.tf_outputs.insert(i, inputs.into_iter().map(Some).collect());
        self.made.insert(i, node);
        Ok(())
    }

    /// TF's batch variance of our batch norm `j` in training mode: ours with Bessel's correction.
    fn unbiased_variance(&self, j: usize) -> Result<tensorgraph_graph::Tensor> {
        use tensorgraph_graph::ops::math;
        let node = &self.made[&j];
        let (x, biased) = (node.inputs().remove(0), node.output(2)?);
        self.g.name_scope(&format!("{}/batch_variance", node.name()), || {
            let axes: Vec<i64> = (0..x.shape().rank() as i64 - 1).collect();
            let count = math::size(&x, Some(&axes), x.dtype())?;
            let bessel = math::div(&count, &math::sub(&count, &self.g.scalar(1.0, x.dtype())?)?)?;
            math::mul(&biased, &bessel)
        })
    }

    /// TF's `FusedBatchNorm`/`V2`/`V3` (NHWC) as ours, its `is_training` attribute a constant
    /// input. Its outputs as TF gives them: `y`; the batch mean and the batch variance with
    /// Bessel's correction `n/(n-1)` when training (ours is biased: corrected here), the
    /// `mean` and `variance` inputs otherwise; its reserve spaces (for its gradient) are not.
    fn make_batch_norm(
        &mut self,
        i: usize,
        data: &[(usize, Slot<'a>)],
        controls: &[tensorgraph_graph::Operation],
    ) -> Result<()> {
        let nd = &self.def.node[i];
        let a = Attrs(nd);
        nhwc(&a).map_err(|d| self.bad(i, d))?;
        let training = a.bool_or("is_training", true).map_err(|d| self.bad(i, d))?;
        let epsilon = a.float("epsilon").unwrap_or(1e-4);
        if data.len() != 5 {
            return Err(self.bad(i, format!("{} inputs where it takes 5", data.len())));
        }
        let mut inputs = data.iter().map(|&(j, slot)| self.tensor(j, slot)).collect::<Result<Vec<_>>>()?;
        let (name, location) = (nd.name.clone(), self.location(i));
        let at = |s: &str| format!("{name}/{s}/");
        let add = |me: &Self, op: Op, ins: &[&tensorgraph_graph::Tensor], what: &str| {
            me.g.add_node(op, ins, &[], Some(&at(what)), location.clone())?.output(0)
        };
        // TF passes empty statistics when training; ours reads none then, but takes [C].
        for (k, what) in [(3, "mean"), (4, "variance")] {
            if training && inputs[k].shape().merge(&inputs[1].shape()).is_none() {
                inputs[k] = add(self, Op::ZerosLike, &[&inputs[1]], &format!("unused_{what}"))?;
            }
        }
        let is_training = Value::from(ndarray::arr0(training));
        inputs.push(add(self, Op::Const { value: is_training }, &[], "is_training")?);
        let input_refs: Vec<&tensorgraph_graph::Tensor> = inputs.iter().collect();
        let control_refs: Vec<&tensorgraph_graph::Operation> = controls.iter().collect();
        let node = self.g.add_node(
            Op::FusedBatchNorm { epsilon },
            &input_refs,
            &control_refs,
            Some(&format!("{name}/")),
            location.clone(),
        )?;
        let (mean, variance) = if training {
            // The corrected variance is made where it is read (`Importer::tensor`).
            (node.output(1)?, None)
        } else {
            (inputs[3].clone(), Some(inputs[4].clone()))
        };
        self.tf_outputs.insert(i, vec![Some(node.output(0)?), Some(mean), variance, None, None, None]);
        self.made.insert(i, node);
        Ok(())
    }
}

/// TF's names of the outputs of its fused batch norm.
const BATCH_NORM_OUTPUTS: [&str; 6] =
    ["y", "batch_mean", "batch_variance", "reserve_space_1", "reserve_space_2", "reserve_space_3"];
