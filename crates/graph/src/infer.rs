//! Build-time dtype and shape inference: one function per op family, one arm per op.

use crate::op::{ApplyOp, BinaryOp, ConvAttrs, Op, Padding, PoolAttrs, ReduceOp, UnaryOp};
use crate::{DType, Dim, Shape};
use serde::{Deserialize, Serialize};

/// The static type of one tensor: dtype and (partially known) shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TensorSpec {
    pub dtype: DType,
    pub shape: Shape,
}

impl TensorSpec {
    pub fn new(dtype: DType, shape: impl Into<Shape>) -> TensorSpec {
        TensorSpec { dtype, shape: shape.into() }
    }
}

/// Why inference rejected an op; the graph turns it into an [`crate::Error`] naming the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InferError {
    Shape(String),
    DType(String),
    Invalid(String),
}

type Inferred = Result<Vec<TensorSpec>, InferError>;

/// Output specs of `op` applied to inputs of the given specs. Every known part of an output
/// shape has an element count that fits a `usize` (a bigger tensor could never be allocated).
pub fn infer(op: &Op, inputs: &[TensorSpec]) -> Inferred {
    let outputs = infer_op(op, inputs)?;
    for o in &outputs {
        let known = o.shape.0.iter().flatten().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if known.is_none_or(|n| n > isize::MAX as usize) {
            return Err(InferError::Invalid(format!("output shape {} has too many elements", o.shape)));
        }
    }
    Ok(outputs)
}

fn infer_op(op: &Op, inputs: &[TensorSpec]) -> Inferred {
    check_arity(op, inputs.len())?;
    match op {
        Op::Placeholder { dtype, shape } => one(*dtype, shape.clone()),
        Op::Const { value } => one(value.dtype(), Shape::known(value.shape())),
        Op::Fill { dtype, shape, .. } | Op::VariableV2 { dtype, shape } => one(*dtype, Shape::known(shape)),
        Op::RandomUniform { dtype, shape, .. }
        | Op::TruncatedNormal { dtype, shape, .. }
        | Op::RandomStandardNormal { dtype, shape, .. } => {
            require_float(*dtype)?;
            one(*dtype, Shape::known(shape))
        }
        Op::RandomUniformLike { dtype, .. } => {
            require_float(*dtype)?;
            one(*dtype, inputs[0].shape.clone())
        }
        Op::Assign | Op::AssignAdd | Op::AssignSub => assign(op, &inputs[0], &inputs[1]),
        Op::Apply(a) => apply(*a, inputs),
        Op::Conv2D(a) => conv2d(&inputs[0], &inputs[1], a),
        Op::Conv2DBackpropInput(a) => conv2d_backprop(&inputs[0], &inputs[1], &inputs[2], a, 0),
        Op::Conv2DBackpropFilter(a) => conv2d_backprop(&inputs[0], &inputs[1], &inputs[2], a, 1),
        Op::DepthwiseConv2dNative(a) => depthwise(&inputs[0], &inputs[1], a),
        Op::DepthwiseConv2dNativeBackpropInput(a) | Op::DepthwiseConv2dNativeBackpropFilter(a) => {
            let fwd = depthwise(&inputs[0], &inputs[1], a)?;
            same_dtype(&inputs[0], &inputs[2])?;
            fwd[0].shape.merge(&inputs[2].shape).ok_or_else(|| {
                InferError::Shape(format!(
                    "out_backprop {} vs the convolution's output {}",
                    inputs[2].shape, fwd[0].shape
                ))
            })?;
            let which = if matches!(op, Op::DepthwiseConv2dNativeBackpropInput(_)) { 0 } else { 1 };
            Ok(vec![inputs[which].clone()])
        }
        Op::MaxPool(a) | Op::AvgPool(a) => pool(&inputs[0], a),
        Op::MaxPoolGrad(a) | Op::AvgPoolGrad(a) => pool_grad(&inputs[0], &inputs[1], a, false),
        Op::MaxPoolGradGrad(a) => pool_grad(&inputs[0], &inputs[1], a, true),
        Op::NoOp => Ok(vec![]),
        Op::Identity | Op::PlaceholderWithDefault | Op::StopGradient | Op::ZerosLike | Op::OnesLike => {
            Ok(vec![inputs[0].clone()])
        }
        Op::MatMul { transpose_a, transpose_b } => matmul(&inputs[0], &inputs[1], *transpose_a, *transpose_b),
        Op::Unary(u) => unary(*u, &inputs[0]),
        Op::Binary(b) => binary(*b, &inputs[0], &inputs[1]),
        Op::AddN => add_n(inputs),
        Op::Select => select(&inputs[0], &inputs[1], &inputs[2]),
        Op::BiasAdd => bias_add(&inputs[0], &inputs[1]),
        Op::Reduce { op, axes, keep_dims } => reduce(*op, &inputs[0], axes, *keep_dims),
        Op::ArgMax { axis, output_type } | Op::ArgMin { axis, output_type } => arg_max(&inputs[0], *axis, *output_type),
        Op::Cast { to } => {
            if (*to == DType::String) != (inputs[0].dtype == DType::String) {
                return Err(InferError::DType(format!("cannot cast {} to {to}", inputs[0].dtype)));
            }
            one(*to, inputs[0].shape.clone())
        }
        Op::Softmax | Op::LogSoftmax => softmax(&inputs[0]),
        Op::LeakyRelu { .. } => unary(UnaryOp::Relu, &inputs[0]),
        Op::SparseSoftmaxCrossEntropyWithLogits => sparse_xent(&inputs[0], &inputs[1]),
        Op::InTopKV2 { k } => in_top_k(&inputs[0], &inputs[1], *k),
        Op::FusedBatchNorm { .. } => batch_norm(inputs, 5),
        Op::FusedBatchNormGrad => batch_norm(inputs, 3),
        Op::Reshape { shape } => reshape(&inputs[0], shape),
        Op::Transpose { perm } => transpose(&inputs[0], perm),
        Op::ExpandDims { axis } => expand_dims(&inputs[0], *axis),
        Op::Squeeze { axes } => squeeze(&inputs[0], axes),
        Op::ConcatV2 { axis } => concat(inputs, *axis),
        Op::Slice { begin, size } => slice(&inputs[0], begin, size),
        Op::LSTMBlockCell { use_peephole, .. } => lstm_block(inputs, *use_peephole, false),
        Op::LSTMBlockCellGrad { use_peephole } => lstm_block(inputs, *use_peephole, true),
        Op::GatherV2 { axis } => gather(&inputs[0], &inputs[1], *axis),
        Op::Tile { multiples } => tile(&inputs[0], multiples),
        Op::StridedSlice(spec) => {
            let (_, out) = spec.resolve(&inputs[0].shape.0).map_err(InferError::Invalid)?;
            one(inputs[0].dtype, Shape(out))
        }
        Op::StridedSliceGrad(spec) => {
            let (_, out) = spec.resolve(&inputs[1].shape.0).map_err(InferError::Invalid)?;
            if !inputs[0].shape.0.iter().zip(&out).all(|(a, b)| a.zip(*b).is_none_or(|(a, b)| a == b))
                || inputs[0].shape.rank() != out.len()
            {
                return Err(InferError::Shape(format!(
                    "the gradient {} does not have the slice's shape {}",
                    inputs[0].shape,
                    Shape(out)
                )));
            }
            one(inputs[0].dtype, inputs[1].shape.clone())
        }
        Op::UnsortedSegmentSum => unsorted_segment_sum(&inputs[0], &inputs[1], &inputs[2]),
        Op::SplitV { sizes, axis } => split(&inputs[0], sizes, *axis),
        Op::Pack { axis } => pack(inputs, *axis),
        Op::Unpack { num, axis } => unpack(&inputs[0], *num, *axis),
        Op::Pad { paddings } => pad(&inputs[0], paddings),
        Op::MirrorPad { paddings, symmetric } => {
            for (d, &(a, b)) in inputs[0].shape.0.iter().zip(paddings) {
                let most = d.map(|n| if *symmetric { n } else { n.saturating_sub(1) });
                if most.is_some_and(|m| a > m || b > m) {
                    let mode = if *symmetric { "SYMMETRIC" } else { "REFLECT" };
                    return Err(InferError::Invalid(format!(
                        "{mode} paddings {paddings:?} exceed what {} can mirror",
                        inputs[0].shape
                    )));
                }
            }
            pad(&inputs[0], paddings)
        }
        Op::MirrorPadGrad { paddings, .. } => {
            if paddings.len() != inputs[0].shape.rank() {
                return Err(InferError::Invalid(format!("{} paddings for shape {}", paddings.len(), inputs[0].shape)));
            }
            let dims = inputs[0].shape.0.iter().zip(paddings).map(|(d, (a, b))| match d {
                Some(d) => d.checked_sub(a + b).map(Some),
                None => Some(None),
            });
            let dims = dims.collect::<Option<Vec<_>>>().ok_or_else(|| {
                InferError::Invalid(format!("paddings {paddings:?} exceed the gradient {}", inputs[0].shape))
            })?;
            one(inputs[0].dtype, Shape(dims))
        }
        Op::Range => {
            let d = inputs[0].dtype;
            if inputs.iter().any(|x| x.dtype != d || x.shape.rank() != 0) || !(d.is_float() || d.is_integer()) {
                return Err(InferError::DType(format!(
                    "range takes three numeric scalars of one dtype, got {}",
                    inputs.iter().map(|x| format!("{} {}", x.dtype, x.shape)).collect::<Vec<_>>().join(", ")
                )));
            }
            one(d, Shape(vec![None]))
        }
        Op::SliceDynamic => {
            let (x, begin, size) = (&inputs[0], &inputs[1], &inputs[2]);
            require_int(begin.dtype, "begin")?;
            require_int(size.dtype, "size")?;
            let r = x.shape.rank();
            for v in [begin, size] {
                if v.shape.rank() != 1 || v.shape.dim(0).is_some_and(|n| n != r) {
                    return Err(InferError::Shape(format!(
                        "begin and size must be vectors of {r} entries, got {}",
                        v.shape
                    )));
                }
            }
            one(x.dtype, Shape(vec![None; r]))
        }
        Op::ReshapeDynamic => {
            let shape = &inputs[1];
            require_int(shape.dtype, "shape")?;
            let Some(Some(rank)) = (shape.shape.rank() == 1).then(|| shape.shape.dim(0)) else {
                return Err(InferError::Shape(format!("shape must be a vector of known length, got {}", shape.shape)));
            };
            one(inputs[0].dtype, Shape(vec![None; rank]))
        }
        Op::SliceGrad => {
            require_int(inputs[2].dtype, "begin")?;
            same_dtype(&inputs[0], &inputs[1])?;
            if inputs[0].shape.rank() != inputs[1].shape.rank() {
                return Err(InferError::Shape(format!(
                    "dy {} and input {} differ in rank",
                    inputs[0].shape, inputs[1].shape
                )));
            }
            Ok(vec![inputs[1].clone()])
        }
        Op::Where => {
            if inputs[0].dtype == DType::String {
                return Err(InferError::DType("where of strings".into()));
            }
            one(DType::I64, Shape(vec![None, Some(inputs[0].shape.rank())]))
        }
        Op::FillDims => {
            let (dims, value) = (&inputs[0], &inputs[1]);
            require_int(dims.dtype, "dims")?;
            let (1, Some(rank)) = (dims.shape.rank(), dims.shape.dim(0)) else {
                return Err(InferError::Shape(format!("dims must be a vector of known length, got {}", dims.shape)));
            };
            if value.shape.rank() != 0 {
                return Err(InferError::Shape(format!("value must be a scalar, got {}", value.shape)));
            }
            one(value.dtype, Shape(vec![None; rank]))
        }
        Op::OneHot { depth, dtype, .. } => one_hot(&inputs[0], *depth, *dtype),
        Op::Size { axes, dtype } => size(&inputs[0], axes.as_deref(), *dtype),
        Op::Shape { dtype } => shape_of(&inputs[0], *dtype),
        Op::BroadcastTo => broadcast_to(&inputs[0], &inputs[1]),
        Op::SumToShape => sum_to_shape(&inputs[0], &inputs[1]),
        Op::Cumsum { axis, .. } | Op::Cumprod { axis, .. } => {
            require_numeric(inputs[0].dtype)?;
            if *axis >= inputs[0].shape.rank() {
                return Err(InferError::Invalid(format!("axis {axis} out of range for shape {}", inputs[0].shape)));
            }
            Ok(vec![inputs[0].clone()])
        }
        Op::TopKV2 { k, .. } => {
            let x = &inputs[0];
            require_numeric(x.dtype)?;
            let Some(Some(n)) = x.shape.0.last().map(|d| d.map(|n| n >= *k)) else {
                return Err(InferError::Shape(format!("top_k needs a vector or more, got {}", x.shape)));
            };
            if !n {
                return Err(InferError::Shape(format!("input of shape {} has fewer than k = {k} entries", x.shape)));
            }
            let mut shape = x.shape.0.clone();
            *shape.last_mut().expect("rank checked") = Some(*k);
            Ok(vec![
                TensorSpec { dtype: x.dtype, shape: Shape(shape.clone()) },
                TensorSpec { dtype: DType::I32, shape: Shape(shape) },
            ])
        }
        Op::BatchMatMulV2 { adj_x, adj_y } => batch_matmul(&inputs[0], &inputs[1], *adj_x, *adj_y),
        Op::ScalarSummary { .. } => {
            require_numeric(inputs[0].dtype)?;
            if inputs[0].shape.rank() != 0 {
                return Err(InferError::Shape(format!("a scalar summary takes a scalar, got {}", inputs[0].shape)));
            }
            one(DType::String, Shape::scalar())
        }
        Op::HistogramSummary { .. } => {
            require_numeric(inputs[0].dtype)?;
            one(DType::String, Shape::scalar())
        }
        Op::ImageSummary { .. } => {
            require_float(inputs[0].dtype)?;
            if inputs[0].shape.rank() != 4 || inputs[0].shape.dim(3).is_some_and(|c| ![1, 3, 4].contains(&c)) {
                return Err(InferError::Shape(format!(
                    "images must be [batch, height, width, 1, 3 or 4 channels], got {}",
                    inputs[0].shape
                )));
            }
            one(DType::String, Shape::scalar())
        }
        Op::MergeSummary => {
            if let Some(x) = inputs.iter().find(|x| x.dtype != DType::String) {
                return Err(InferError::DType(format!("merge takes summaries (strings), got {}", x.dtype)));
            }
            one(DType::String, Shape::scalar())
        }
        Op::While { cond, body, .. } => {
            let n = body.outputs.len();
            let (c, b) = (cond.input_specs(), body.input_specs());
            let args: Vec<&TensorSpec> = b[..n].iter().chain(&c[n..]).chain(&b[n..]).collect();
            function_inputs("StatelessWhile", inputs, &args)?;
            Ok(b[..n].to_vec())
        }
        Op::WhileGrad { cond, grad, .. } => {
            // grad: (variables, body captures, output gradients) -> (variables', captures')
            let n = grad.inputs.len() - grad.outputs.len();
            let k = grad.outputs.len() - n;
            let (c, g) = (cond.input_specs(), grad.input_specs());
            let args: Vec<&TensorSpec> = g[..n].iter().chain(&c[n..]).chain(&g[n..]).collect();
            debug_assert_eq!(g.len(), 2 * n + k);
            function_inputs("WhileGrad", inputs, &args)?;
            Ok(grad.output_specs())
        }
        Op::Switch => {
            let pred = &inputs[1];
            // TF's Switch takes a predicate of unknown shape too; it must hold one bool.
            if pred.dtype != DType::Bool
                || pred.shape.rank() > 1
                || pred.shape.dims().iter().any(|&d| d.is_some_and(|d| d != 1))
            {
                return Err(InferError::DType(format!(
                    "the predicate must be a bool scalar, got {} {}",
                    pred.dtype, pred.shape
                )));
            }
            Ok(vec![inputs[0].clone(), inputs[0].clone()])
        }
        Op::Merge => {
            let first = &inputs[0];
            let mut dims = first.shape.0.clone();
            for x in &inputs[1..] {
                if x.dtype != first.dtype || x.shape.rank() != first.shape.rank() {
                    return Err(InferError::DType(format!(
                        "Merge's inputs differ: {} {} and {} {}",
                        first.dtype, first.shape, x.dtype, x.shape
                    )));
                }
                for (d, e) in dims.iter_mut().zip(&x.shape.0) {
                    if d != e {
                        *d = None;
                    }
                }
            }
            Ok(vec![TensorSpec::new(first.dtype, Shape(dims)), TensorSpec::new(DType::I32, Shape::scalar())])
        }
        Op::If { then_branch, else_branch } => {
            let args = then_branch.input_specs();
            if inputs.len() != 1 + args.len() {
                return Err(InferError::Invalid(format!(
                    "StatelessIf takes {} inputs, got {}",
                    1 + args.len(),
                    inputs.len()
                )));
            }
            if inputs[0].dtype != DType::Bool || inputs[0].shape.rank() != 0 {
                return Err(InferError::DType(format!(
                    "the predicate must be a bool scalar, got {} {}",
                    inputs[0].dtype, inputs[0].shape
                )));
            }
            function_inputs("StatelessIf", &inputs[1..], &args.iter().collect::<Vec<_>>())?;
            let relaxed = |a: &TensorSpec, b: &TensorSpec| TensorSpec {
                dtype: a.dtype,
                shape: Shape(a.shape.0.iter().zip(&b.shape.0).map(|(x, y)| if x == y { *x } else { None }).collect()),
            };
            Ok(then_branch.output_specs().iter().zip(&else_branch.output_specs()).map(|(a, b)| relaxed(a, b)).collect())
        }
    }
}

/// `BatchMatMulV2`: `[..., m, k] x [..., k, n]` (after the adjoints), batch axes broadcast.
fn batch_matmul(x: &TensorSpec, y: &TensorSpec, adj_x: bool, adj_y: bool) -> Inferred {
    require_float(x.dtype)?;
    if x.dtype != y.dtype {
        return Err(InferError::DType(format!("matmul of {} and {}", x.dtype, y.dtype)));
    }
    let (rx, ry) = (x.shape.rank(), y.shape.rank());
    if rx < 2 || ry < 2 {
        return Err(InferError::Shape(format!("batch matmul needs rank 2 or more: {} x {}", x.shape, y.shape)));
    }
    let (xm, xk) = (x.shape.dim(rx - 2), x.shape.dim(rx - 1));
    let (m, kx) = if adj_x { (xk, xm) } else { (xm, xk) };
    let (ym, yk) = (y.shape.dim(ry - 2), y.shape.dim(ry - 1));
    let (ky, n) = if adj_y { (yk, ym) } else { (ym, yk) };
    if kx.zip(ky).is_some_and(|(a, b)| a != b) {
        return Err(InferError::Shape(format!("inner dimensions differ: {} x {}", x.shape, y.shape)));
    }
    let batch = Shape(x.shape.0[..rx - 2].to_vec())
        .broadcast(&Shape(y.shape.0[..ry - 2].to_vec()))
        .ok_or_else(|| InferError::Shape(format!("batch dimensions do not broadcast: {} x {}", x.shape, y.shape)))?;
    let mut shape = batch.0;
    shape.extend([m, n]);
    one(x.dtype, Shape(shape))
}

/// Checks a functional op's inputs against its function's arguments.
fn function_inputs(op: &str, inputs: &[TensorSpec], args: &[&TensorSpec]) -> Result<(), InferError> {
    if inputs.len() != args.len() {
        return Err(InferError::Invalid(format!("{op} takes {} inputs, got {}", args.len(), inputs.len())));
    }
    for (i, (x, a)) in inputs.iter().zip(args).enumerate() {
        if x.dtype != a.dtype || x.shape.merge(&a.shape).is_none() {
            return Err(InferError::Shape(format!(
                "{op} input {i} is {} {} but the function takes {} {}",
                x.dtype, x.shape, a.dtype, a.shape
            )));
        }
    }
    Ok(())
}

/// Number of inputs an op takes: exactly `n`, or at least one for the variadic ops.
fn check_arity(op: &Op, got: usize) -> Result<(), InferError> {
    let def = op.def();
    if def.accepts(got) {
        return Ok(());
    }
    Err(InferError::Invalid(match def.inputs {
        [a] if a.kind == crate::op_def::ArgKind::Variadic => format!("{} needs at least one input", def.name),
        inputs => format!("{} takes {} inputs, got {got}", def.name, inputs.len()),
    }))
}

fn one(dtype: DType, shape: Shape) -> Inferred {
    Ok(vec![TensorSpec { dtype, shape }])
}

fn require_float(d: DType) -> Result<(), InferError> {
    if d.is_float() {
        Ok(())
    } else {
        Err(InferError::DType(format!("expected float32 or float64, got {d}")))
    }
}

fn require_bool(d: DType) -> Result<(), InferError> {
    match d {
        DType::Bool => Ok(()),
        d => Err(InferError::DType(format!("expected bool, got {d}"))),
    }
}

fn require_numeric(d: DType) -> Result<(), InferError> {
    if matches!(d, DType::Bool | DType::String) {
        Err(InferError::DType(format!("expected a numeric dtype, got {d}")))
    } else {
        Ok(())
    }
}

fn require_int(d: DType, what: &str) -> Result<(), InferError> {
    if d.is_integer() {
        Ok(())
    } else {
        Err(InferError::DType(format!("{what} must be int32 or int64, got {d}")))
    }
}

fn same_dtype(a: &TensorSpec, b: &TensorSpec) -> Result<DType, InferError> {
    if a.dtype == b.dtype {
        Ok(a.dtype)
    } else {
        Err(InferError::DType(format!("{} vs {}", a.dtype, b.dtype)))
    }
}

fn require_rank(s: &TensorSpec, rank: usize, what: &str) -> Result<(), InferError> {
    if s.shape.rank() == rank {
        Ok(())
    } else {
        Err(InferError::Shape(format!("{what} must have rank {rank}, got shape {}", s.shape)))
    }
}

fn assign(op: &Op, var: &TensorSpec, value: &TensorSpec) -> Inferred {
    same_dtype(var, value)?;
    if !matches!(op, Op::Assign) {
        require_numeric(var.dtype)?;
    }
    var.shape
        .merge(&value.shape)
        .ok_or_else(|| InferError::Shape(format!("variable {} vs value {}", var.shape, value.shape)))?;
    Ok(vec![var.clone()])
}

fn apply(op: ApplyOp, inputs: &[TensorSpec]) -> Inferred {
    let var = &inputs[0];
    require_float(var.dtype)?;
    for (i, s) in inputs.iter().enumerate().skip(1) {
        same_dtype(var, s)?;
        if i < op.num_refs() || i == op.grad_input() {
            var.shape
                .merge(&s.shape)
                .ok_or_else(|| InferError::Shape(format!("variable {} vs input {i} {}", var.shape, s.shape)))?;
        } else {
            require_rank(s, 0, "hyperparameters")?;
        }
    }
    Ok(vec![])
}

/// TF's output size of one spatial dimension (see the kernels' `output_and_padding`).
/// The window's extent must not overflow (strides and dilations are checked positive before).
fn conv_out(
    input: Option<usize>,
    k: usize,
    stride: usize,
    dilation: usize,
    padding: Padding,
) -> Result<Option<usize>, InferError> {
    let extent = k.checked_sub(1).and_then(|k| k.checked_mul(dilation)).filter(|&e| e < isize::MAX as usize / 4);
    let Some(extent) = extent else {
        return Err(InferError::Invalid(format!("window {k} dilated by {dilation} is empty or too large")));
    };
    Ok(input.map(|i| match padding {
        Padding::Same => i.div_ceil(stride),
        Padding::Valid => i.saturating_sub(extent).div_ceil(stride),
    }))
}

fn check_windows(strides: &[usize; 4], other: &[usize; 4], what: &str) -> Result<(), InferError> {
    if strides[0] != 1 || strides[3] != 1 || other[0] != 1 || other[3] != 1 {
        return Err(InferError::Invalid(format!(
            "strides {strides:?} and {what} {other:?} must be 1 in the batch and channel dimensions (NHWC)"
        )));
    }
    if strides.contains(&0) || other.contains(&0) {
        return Err(InferError::Invalid(format!("strides {strides:?} and {what} {other:?} must be positive")));
    }
    Ok(())
}

fn conv2d(x: &TensorSpec, f: &TensorSpec, attrs: &ConvAttrs) -> Inferred {
    let ConvAttrs { strides, dilations: dil, padding } = attrs;
    let padding = *padding;
    let dtype = same_dtype(x, f)?;
    require_float(dtype)?;
    check_windows(strides, dil, "dilations")?;
    if x.shape.rank() != 4 || f.shape.rank() != 4 {
        return Err(InferError::Shape(format!(
            "input must be [batch, height, width, channels] and filter [height, width, in, out], got {} and {}",
            x.shape, f.shape
        )));
    }
    let (fd, xd) = (&f.shape.0, &x.shape.0);
    if let (Some(a), Some(b)) = (xd[3], fd[2]) {
        if a != b {
            return Err(InferError::Shape(format!(
                "input {} has {a} channels but filter {} expects {b}",
                x.shape, f.shape
            )));
        }
    }
    let (Some(kh), Some(kw)) = (fd[0], fd[1]) else {
        return Err(InferError::Shape(format!("filter {} needs known spatial dimensions", f.shape)));
    };
    let oh = conv_out(xd[1], kh, strides[1], dil[1], padding)?;
    let ow = conv_out(xd[2], kw, strides[2], dil[2], padding)?;
    if oh == Some(0) || ow == Some(0) {
        return Err(InferError::Shape(format!(
            "{} padding leaves no output for input {} and filter {}",
            padding.name(),
            x.shape,
            f.shape
        )));
    }
    one(dtype, Shape(vec![xd[0], oh, ow, fd[3]]))
}

/// A depthwise convolution: [`conv2d`]'s window arithmetic, `in * multiplier` output channels.
fn depthwise(x: &TensorSpec, f: &TensorSpec, attrs: &ConvAttrs) -> Inferred {
    let mut out = conv2d(x, f, attrs)?;
    let channels = match x.shape.dim(3).zip(f.shape.dim(3)) {
        Some((c, m)) => {
            Some(c.checked_mul(m).ok_or_else(|| InferError::Invalid(format!("{c} x {m} channels overflow")))?)
        }
        None => None,
    };
    *out[0].shape.0.last_mut().expect("rank 4") = channels;
    Ok(out)
}

/// Both conv gradients: output 0 is shaped like the input, 1 like the filter.
fn conv2d_backprop(x: &TensorSpec, f: &TensorSpec, dy: &TensorSpec, attrs: &ConvAttrs, which: usize) -> Inferred {
    let fwd = conv2d(x, f, attrs)?;
    same_dtype(x, dy)?;
    fwd[0].shape.merge(&dy.shape).ok_or_else(|| {
        InferError::Shape(format!("out_backprop {} vs the convolution's output {}", dy.shape, fwd[0].shape))
    })?;
    Ok(vec![if which == 0 { x.clone() } else { f.clone() }])
}

fn pool(x: &TensorSpec, attrs: &PoolAttrs) -> Inferred {
    let PoolAttrs { ksize, strides, padding } = attrs;
    let padding = *padding;
    require_float(x.dtype)?;
    check_windows(strides, ksize, "ksize")?;
    require_rank(x, 4, "input (NHWC)")?;
    let d = &x.shape.0;
    let oh = conv_out(d[1], ksize[1], strides[1], 1, padding)?;
    let ow = conv_out(d[2], ksize[2], strides[2], 1, padding)?;
    if oh == Some(0) || ow == Some(0) {
        return Err(InferError::Shape(format!(
            "{} padding leaves no output for input {} and ksize {ksize:?}",
            padding.name(),
            x.shape
        )));
    }
    one(x.dtype, Shape(vec![d[0], oh, ow, d[3]]))
}

/// Pool gradients: `grad` is shaped like the pool's output (or, for the grad-grad, its input).
fn pool_grad(x: &TensorSpec, grad: &TensorSpec, attrs: &PoolAttrs, grad_grad: bool) -> Inferred {
    let fwd = pool(x, attrs)?;
    same_dtype(x, grad)?;
    let (expect, result) = if grad_grad { (x, &fwd[0]) } else { (&fwd[0], x) };
    expect
        .shape
        .merge(&grad.shape)
        .ok_or_else(|| InferError::Shape(format!("grad {} vs expected {}", grad.shape, expect.shape)))?;
    Ok(vec![result.clone()])
}

fn matmul(a: &TensorSpec, b: &TensorSpec, ta: bool, tb: bool) -> Inferred {
    let dtype = same_dtype(a, b)?;
    require_numeric(dtype)?;
    let mismatch = || {
        let t = |s: &Shape, t: bool| if t { format!("{s}^T") } else { s.to_string() };
        InferError::Shape(format!("{} x {}", t(&a.shape, ta), t(&b.shape, tb)))
    };
    if a.shape.rank() != 2 || b.shape.rank() != 2 {
        return Err(mismatch());
    }
    let (m, ka) = if ta { (a.shape.0[1], a.shape.0[0]) } else { (a.shape.0[0], a.shape.0[1]) };
    let (kb, n) = if tb { (b.shape.0[1], b.shape.0[0]) } else { (b.shape.0[0], b.shape.0[1]) };
    if let (Some(x), Some(y)) = (ka, kb) {
        if x != y {
            return Err(mismatch());
        }
    }
    one(dtype, Shape(vec![m, n]))
}

fn unary(u: UnaryOp, x: &TensorSpec) -> Inferred {
    match u {
        UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Square | UnaryOp::Sign => require_numeric(x.dtype)?,
        UnaryOp::LogicalNot => require_bool(x.dtype)?,
        _ => require_float(x.dtype)?,
    }
    Ok(vec![x.clone()])
}

fn binary(b: BinaryOp, x: &TensorSpec, y: &TensorSpec) -> Inferred {
    let dtype = same_dtype(x, y)?;
    match b {
        BinaryOp::Equal | BinaryOp::NotEqual => {}
        BinaryOp::LogicalAnd | BinaryOp::LogicalOr => require_bool(dtype)?,
        BinaryOp::ReluGrad | BinaryOp::SigmoidGrad | BinaryOp::TanhGrad | BinaryOp::Pow | BinaryOp::Div => {
            require_float(dtype)?
        }
        _ => require_numeric(dtype)?,
    }
    let shape = x
        .shape
        .broadcast(&y.shape)
        .ok_or_else(|| InferError::Shape(format!("cannot broadcast {} with {}", x.shape, y.shape)))?;
    one(if b.is_comparison() { DType::Bool } else { dtype }, shape)
}

fn select(c: &TensorSpec, t: &TensorSpec, e: &TensorSpec) -> Inferred {
    if c.dtype != DType::Bool {
        return Err(InferError::DType(format!("condition must be bool, got {}", c.dtype)));
    }
    let dtype = same_dtype(t, e)?;
    let shape = c.shape.broadcast(&t.shape).and_then(|s| s.broadcast(&e.shape)).ok_or_else(|| {
        InferError::Shape(format!("cannot broadcast condition {}, then {} and else {}", c.shape, t.shape, e.shape))
    })?;
    one(dtype, shape)
}

fn add_n(inputs: &[TensorSpec]) -> Inferred {
    let mut shape = inputs[0].shape.clone();
    for s in &inputs[1..] {
        same_dtype(&inputs[0], s)?;
        shape =
            shape.merge(&s.shape).ok_or_else(|| InferError::Shape(format!("{} vs {}", inputs[0].shape, s.shape)))?;
    }
    require_numeric(inputs[0].dtype)?;
    one(inputs[0].dtype, shape)
}

fn bias_add(x: &TensorSpec, bias: &TensorSpec) -> Inferred {
    let dtype = same_dtype(x, bias)?;
    require_numeric(dtype)?;
    require_rank(bias, 1, "bias")?;
    let r = x.shape.rank();
    if r < 2 {
        return Err(InferError::Shape(format!("input must have rank >= 2, got shape {}", x.shape)));
    }
    match (x.shape.0[r - 1], bias.shape.0[0]) {
        (Some(a), Some(b)) if a != b => Err(InferError::Shape(format!(
            "bias of shape {} does not match the last dimension of input {}",
            bias.shape, x.shape
        ))),
        _ => {
            let mut shape = x.shape.clone();
            shape.0[r - 1] = shape.0[r - 1].or(bias.shape.0[0]);
            one(dtype, shape)
        }
    }
}

fn check_axes(shape: &Shape, axes: &[usize]) -> Result<(), InferError> {
    match axes.iter().find(|&&a| a >= shape.rank()) {
        Some(a) => Err(InferError::Invalid(format!("axis {a} out of range for shape {shape}"))),
        None => Ok(()),
    }
}

fn reduce(op: ReduceOp, x: &TensorSpec, axes: &[usize], keep_dims: bool) -> Inferred {
    require_numeric(x.dtype)?;
    if op == ReduceOp::Mean {
        require_float(x.dtype)?;
    }
    check_axes(&x.shape, axes)?;
    let dims = x.shape.0.iter().enumerate().filter_map(|(i, &d)| match (axes.contains(&i), keep_dims) {
        (false, _) => Some(d),
        (true, true) => Some(Some(1)),
        (true, false) => None,
    });
    one(x.dtype, Shape(dims.collect()))
}

fn arg_max(x: &TensorSpec, axis: usize, output_type: DType) -> Inferred {
    require_numeric(x.dtype)?;
    require_int(output_type, "output_type")?;
    check_axes(&x.shape, &[axis])?;
    let mut dims = x.shape.0.clone();
    dims.remove(axis);
    one(output_type, Shape(dims))
}

fn softmax(x: &TensorSpec) -> Inferred {
    require_float(x.dtype)?;
    if x.shape.rank() == 0 {
        return Err(InferError::Shape("softmax needs rank >= 1, got a scalar".into()));
    }
    Ok(vec![x.clone()])
}

/// `[batch, classes]` logits and `[batch]` labels: the 2-D case TF's op supports.
fn batch_and_classes(logits: &TensorSpec, labels: &TensorSpec) -> Result<Shape, InferError> {
    require_int(labels.dtype, "labels")?;
    if logits.shape.rank() != 2 || labels.shape.rank() != 1 {
        return Err(InferError::Shape(format!(
            "logits must be [batch, classes] and labels [batch], got {} and {}",
            logits.shape, labels.shape
        )));
    }
    Shape(vec![logits.shape.0[0]])
        .merge(&labels.shape)
        .ok_or_else(|| InferError::Shape(format!("logits {} vs labels {}", logits.shape, labels.shape)))
}

fn sparse_xent(logits: &TensorSpec, labels: &TensorSpec) -> Inferred {
    require_float(logits.dtype)?;
    let batch = batch_and_classes(logits, labels)?;
    let backprop = Shape(vec![batch.0[0], logits.shape.0[1]]);
    Ok(vec![TensorSpec::new(logits.dtype, batch), TensorSpec::new(logits.dtype, backprop)])
}

/// `FusedBatchNorm` (inputs x, 4 per-channel vectors, training; outputs y and 4 vectors) and
/// its gradient (inputs dy, x, 3 vectors, training; outputs dx and 2 vectors).
fn batch_norm(inputs: &[TensorSpec], n_out: usize) -> Inferred {
    let grad = n_out == 3;
    let x = &inputs[usize::from(grad)];
    require_float(x.dtype)?;
    if x.shape.rank() < 2 {
        return Err(InferError::Shape(format!("batch norm needs rank >= 2, got {}", x.shape)));
    }
    let training = &inputs[5];
    if training.dtype != DType::Bool || training.shape.rank() != 0 {
        return Err(InferError::DType(format!(
            "training must be a bool scalar, got {} {}",
            training.dtype, training.shape
        )));
    }
    let mut channels = Shape(vec![x.shape.0[x.shape.rank() - 1]]);
    let vectors = if grad { &inputs[2..5] } else { &inputs[1..5] };
    for v in vectors {
        same_dtype(x, v)?;
        channels = channels.merge(&v.shape).ok_or_else(|| {
            InferError::Shape(format!(
                "per-channel inputs must be [{}], got {}",
                x.shape.0[x.shape.rank() - 1].map_or("?".into(), |d| d.to_string()),
                v.shape
            ))
        })?;
    }
    if grad {
        x.shape
            .merge(&inputs[0].shape)
            .ok_or_else(|| InferError::Shape(format!("dy {} vs x {}", inputs[0].shape, x.shape)))?;
    }
    let vector = TensorSpec::new(x.dtype, channels);
    Ok(std::iter::once(x.clone()).chain(std::iter::repeat_n(vector, n_out - 1)).collect())
}

fn in_top_k(predictions: &TensorSpec, targets: &TensorSpec, k: usize) -> Inferred {
    require_numeric(predictions.dtype)?;
    if k == 0 {
        return Err(InferError::Invalid("k must be at least 1".into()));
    }
    let batch = batch_and_classes(predictions, targets)?;
    one(DType::Bool, batch)
}

/// The dims of a reshape target with `-1` resolved when the input's size is known.
pub fn reshape_dims(input: &Shape, target: &[i64]) -> Result<Shape, InferError> {
    let bad = || InferError::Shape(format!("cannot reshape {input} into {target:?}"));
    if target.iter().filter(|&&d| d == -1).count() > 1 || target.iter().any(|&d| d < -1) {
        return Err(InferError::Invalid(format!("bad reshape target {target:?}: at most one -1, no other negatives")));
    }
    let known = target.iter().filter(|&&d| d >= 0).try_fold(1usize, |acc, &d| acc.checked_mul(d as usize));
    let Some(known) = known else {
        return Err(InferError::Invalid(format!("reshape target {target:?} has too many elements")));
    };
    let total = input.num_elements();
    let dims = target
        .iter()
        .map(|&d| {
            if d >= 0 {
                return Ok(Some(d as usize));
            }
            match total {
                Some(t) if known == 0 || t % known != 0 => Err(bad()),
                Some(t) => Ok(Some(t / known)),
                None => Ok(None),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let (Some(t), false) = (total, target.contains(&-1)) {
        if t != known {
            return Err(bad());
        }
    }
    Ok(Shape(dims))
}

fn reshape(x: &TensorSpec, target: &[i64]) -> Inferred {
    one(x.dtype, reshape_dims(&x.shape, target)?)
}

fn transpose(x: &TensorSpec, perm: &[usize]) -> Inferred {
    let mut seen = vec![false; x.shape.rank()];
    let valid =
        perm.len() == x.shape.rank() && perm.iter().all(|&p| p < seen.len() && !std::mem::replace(&mut seen[p], true));
    if !valid {
        return Err(InferError::Invalid(format!("perm {perm:?} is not a permutation for shape {}", x.shape)));
    }
    one(x.dtype, Shape(perm.iter().map(|&p| x.shape.0[p]).collect()))
}

fn expand_dims(x: &TensorSpec, axis: usize) -> Inferred {
    if axis > x.shape.rank() {
        return Err(InferError::Invalid(format!("axis {axis} out of range for shape {}", x.shape)));
    }
    let mut dims = x.shape.0.clone();
    dims.insert(axis, Some(1));
    one(x.dtype, Shape(dims))
}

fn squeeze(x: &TensorSpec, axes: &[usize]) -> Inferred {
    check_axes(&x.shape, axes)?;
    if let Some(&a) = axes.iter().find(|&&a| x.shape.0[a].is_some_and(|d| d != 1)) {
        return Err(InferError::Shape(format!("cannot squeeze axis {a} of shape {}: not 1", x.shape)));
    }
    let dims = x.shape.0.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d);
    one(x.dtype, Shape(dims.collect()))
}

fn concat(inputs: &[TensorSpec], axis: usize) -> Inferred {
    let first = &inputs[0];
    check_axes(&first.shape, &[axis])?;
    let mut dims = first.shape.0.clone();
    for s in &inputs[1..] {
        same_dtype(first, s)?;
        let mismatch =
            || InferError::Shape(format!("cannot concatenate {} and {} on axis {axis}", first.shape, s.shape));
        if s.shape.rank() != first.shape.rank() {
            return Err(mismatch());
        }
        for (i, d) in dims.iter_mut().enumerate() {
            let o = s.shape.0[i];
            *d = if i == axis {
                match d.zip(o) {
                    Some((a, b)) => Some(a.checked_add(b).ok_or_else(mismatch)?),
                    None => None,
                }
            } else {
                match (*d, o) {
                    (Some(a), Some(b)) if a != b => return Err(mismatch()),
                    (a, b) => a.or(b),
                }
            };
        }
    }
    one(first.dtype, Shape(dims))
}

/// The shapes of an LSTM block step: x `[batch, input]`, cs_prev and h_prev `[batch, cell]`,
/// w `[input + cell, 4·cell]`, the peepholes `[cell]`, b `[4·cell]`; the gradient op also takes
/// the six forward outputs and the two gradients, each `[batch, cell]`.
fn lstm_block(inputs: &[TensorSpec], use_peephole: bool, grad: bool) -> Inferred {
    let dtype = inputs[0].dtype;
    require_float(dtype)?;
    if let Some(s) = inputs.iter().find(|s| s.dtype != dtype) {
        return Err(InferError::DType(format!("LSTM block inputs mix {dtype} and {}", s.dtype)));
    }
    let dims = |i: usize, rank: usize| -> Result<&[Dim], InferError> {
        match &inputs[i].shape.0 {
            d if d.len() == rank => Ok(d),
            _ => Err(InferError::Shape(format!("input {i} must have rank {rank}, got shape {}", inputs[i].shape))),
        }
    };
    let (x, w, b) = (dims(0, 2)?, dims(3, 2)?, dims(7, 1)?);
    let cell = dims(1, 2)?[1].or(dims(2, 2)?[1]).or(b[0].map(|n| n / 4)).or(w[1].map(|n| n / 4));
    let batch = x[0].or(dims(1, 2)?[0]).or(dims(2, 2)?[0]);
    let fits = |d: Dim, want: Option<usize>| d.zip(want).is_none_or(|(a, b)| a == b);
    let four = cell.map(|c| 4 * c);
    let mut ok = fits(w[1], four) && fits(b[0], four) && fits(w[0], x[1].zip(cell).map(|(i, c)| i + c));
    for i in [1, 2] {
        ok &= fits(dims(i, 2)?[0], batch) && fits(dims(i, 2)?[1], cell);
    }
    if use_peephole {
        for i in 4..7 {
            ok &= fits(dims(i, 1)?[0], cell);
        }
    }
    if grad {
        for i in 8..16 {
            ok &= fits(dims(i, 2)?[0], batch) && fits(dims(i, 2)?[1], cell);
        }
    }
    if !ok {
        let shapes: Vec<String> = inputs.iter().map(|s| s.shape.to_string()).collect();
        return Err(InferError::Shape(format!("LSTM block input shapes do not fit: {}", shapes.join(", "))));
    }
    let spec = |dims: Vec<Dim>| TensorSpec { dtype, shape: Shape(dims) };
    Ok(match grad {
        false => vec![spec(vec![batch, cell]); 7],
        true => {
            let mut out = vec![spec(vec![batch, cell]), spec(vec![batch, four])];
            out.extend(vec![spec(vec![cell]); 3]);
            out
        }
    })
}

fn gather(params: &TensorSpec, indices: &TensorSpec, axis: usize) -> Inferred {
    require_int(indices.dtype, "indices")?;
    check_axes(&params.shape, &[axis])?;
    let p = &params.shape.0;
    let dims = p[..axis].iter().chain(&indices.shape.0).chain(&p[axis + 1..]).copied();
    one(params.dtype, Shape(dims.collect()))
}

fn tile(x: &TensorSpec, multiples: &[usize]) -> Inferred {
    if multiples.len() != x.shape.rank() {
        return Err(InferError::Invalid(format!("{} multiples for shape {}", multiples.len(), x.shape)));
    }
    let dims = x.shape.0.iter().zip(multiples).map(|(d, &m)| match d {
        Some(d) => d.checked_mul(m).map(Some),
        None => Some(None),
    });
    let dims = dims.collect::<Option<Vec<_>>>();
    let dims = dims.ok_or_else(|| InferError::Invalid(format!("tiling {} by {multiples:?} overflows", x.shape)))?;
    one(x.dtype, Shape(dims))
}

fn unsorted_segment_sum(data: &TensorSpec, ids: &TensorSpec, num: &TensorSpec) -> Inferred {
    require_numeric(data.dtype)?;
    require_int(ids.dtype, "segment_ids")?;
    require_int(num.dtype, "num_segments")?;
    if num.shape.rank() != 0 {
        return Err(InferError::Shape(format!("num_segments must be a scalar, got shape {}", num.shape)));
    }
    let (d, i) = (&data.shape.0, &ids.shape.0);
    let prefix_fits = i.len() <= d.len() && d.iter().zip(i).all(|(a, b)| a.zip(*b).is_none_or(|(a, b)| a == b));
    if !prefix_fits {
        return Err(InferError::Shape(format!(
            "segment_ids of shape {} do not match the leading dimensions of data {}",
            ids.shape, data.shape
        )));
    }
    one(data.dtype, Shape(std::iter::once(None).chain(d[i.len()..].iter().copied()).collect()))
}

fn split(x: &TensorSpec, sizes: &[usize], axis: usize) -> Inferred {
    check_axes(&x.shape, &[axis])?;
    let total = sizes.iter().try_fold(0usize, |a, &b| a.checked_add(b));
    if sizes.is_empty() || x.shape.0[axis].is_some_and(|d| Some(d) != total) {
        return Err(InferError::Shape(format!("cannot split axis {axis} of shape {} into sizes {sizes:?}", x.shape)));
    }
    let piece = |n: usize| {
        let mut dims = x.shape.0.clone();
        dims[axis] = Some(n);
        TensorSpec { dtype: x.dtype, shape: Shape(dims) }
    };
    Ok(sizes.iter().map(|&n| piece(n)).collect())
}

fn pack(inputs: &[TensorSpec], axis: usize) -> Inferred {
    let first = &inputs[0];
    if axis > first.shape.rank() {
        return Err(InferError::Invalid(format!("axis {axis} out of range to stack shape {}", first.shape)));
    }
    let mut shape = first.shape.clone();
    for s in &inputs[1..] {
        same_dtype(first, s)?;
        shape = shape.merge(&s.shape).ok_or_else(|| {
            InferError::Shape(format!("cannot stack shapes {} and {}: they differ", first.shape, s.shape))
        })?;
    }
    shape.0.insert(axis, Some(inputs.len()));
    one(first.dtype, shape)
}

fn unpack(x: &TensorSpec, num: usize, axis: usize) -> Inferred {
    check_axes(&x.shape, &[axis])?;
    if x.shape.0[axis].is_some_and(|d| d != num) {
        return Err(InferError::Shape(format!("cannot unstack axis {axis} of shape {} into {num} tensors", x.shape)));
    }
    let mut dims = x.shape.0.clone();
    dims.remove(axis);
    Ok(vec![TensorSpec { dtype: x.dtype, shape: Shape(dims) }; num])
}

fn slice(x: &TensorSpec, begin: &[usize], size: &[i64]) -> Inferred {
    let r = x.shape.rank();
    if begin.len() != r || size.len() != r || size.iter().any(|&s| s < -1) {
        return Err(InferError::Invalid(format!("slice begin {begin:?} size {size:?} do not fit shape {}", x.shape)));
    }
    let dims = (0..r)
        .map(|i| {
            let d = x.shape.0[i];
            let end =
                match size[i] {
                    -1 => d,
                    s => Some(begin[i].checked_add(s as usize).ok_or_else(|| {
                        InferError::Invalid(format!("slice begin {begin:?} size {size:?} overflows"))
                    })?),
                };
            match (d, end) {
                (Some(d), Some(e)) if e > d || begin[i] > d => Err(InferError::Shape(format!(
                    "slice begin {begin:?} size {size:?} out of bounds for shape {}",
                    x.shape
                ))),
                (_, e) => Ok(e.map(|e| e - begin[i])),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    one(x.dtype, Shape(dims))
}

fn pad(x: &TensorSpec, paddings: &[(usize, usize)]) -> Inferred {
    if paddings.len() != x.shape.rank() {
        return Err(InferError::Invalid(format!("{} paddings for shape {}", paddings.len(), x.shape)));
    }
    let dims = x.shape.0.iter().zip(paddings).map(|(d, (a, b))| match d {
        Some(d) => d.checked_add(*a).and_then(|n| n.checked_add(*b)).map(Some),
        None => a.checked_add(*b).map(|_| None),
    });
    let dims = dims.collect::<Option<Vec<_>>>();
    let dims = dims.ok_or_else(|| InferError::Invalid(format!("paddings {paddings:?} of {} overflow", x.shape)))?;
    one(x.dtype, Shape(dims))
}

fn one_hot(indices: &TensorSpec, depth: usize, dtype: DType) -> Inferred {
    require_int(indices.dtype, "indices")?;
    let mut dims = indices.shape.0.clone();
    dims.push(Some(depth));
    one(dtype, Shape(dims))
}

fn size(x: &TensorSpec, axes: Option<&[usize]>, dtype: DType) -> Inferred {
    if let Some(axes) = axes {
        check_axes(&x.shape, axes)?;
    }
    require_numeric(dtype)?;
    one(dtype, Shape::scalar())
}

fn shape_of(x: &TensorSpec, dtype: DType) -> Inferred {
    if !matches!(dtype, DType::I32 | DType::I64) {
        return Err(InferError::DType(format!("a shape is int32 or int64, not {dtype}")));
    }
    one(dtype, Shape::known(&[x.shape.rank()]))
}

fn broadcast_to(x: &TensorSpec, like: &TensorSpec) -> Inferred {
    let shape = x
        .shape
        .broadcast(&like.shape)
        .and_then(|b| b.merge(&like.shape))
        .ok_or_else(|| InferError::Shape(format!("cannot broadcast {} to {}", x.shape, like.shape)))?;
    one(x.dtype, shape)
}

fn sum_to_shape(grad: &TensorSpec, like: &TensorSpec) -> Inferred {
    require_numeric(grad.dtype)?;
    like.shape
        .broadcast(&grad.shape)
        .ok_or_else(|| InferError::Shape(format!("cannot sum {} down to {}", grad.shape, like.shape)))?;
    one(grad.dtype, like.shape.clone())
}
