//! One instance of every op, for the tests that walk the op table (`tests/op_table.rs`,
//! `tests/gradients.rs`). `variant` is an exhaustive match, so a new op does not compile here
//! until it is listed.
#![allow(dead_code)]

use ndarray::array;
use tensorgraph::{ApplyOp, ConvAttrs, DType, Op, Padding, PoolAttrs, Shape};
use tensorgraph_graph::{BinaryOp, ReduceOp, UnaryOp};

/// Variants of `Op` (each `UnaryOp`, `BinaryOp`, `ReduceOp` and `ApplyOp` is listed too).
pub const N_VARIANTS: usize = 89;

/// The variant's position in `Op` (exhaustive: a new variant is a compile error here).
pub fn variant(op: &Op) -> usize {
    match op {
        Op::Placeholder { .. } => 0,
        Op::Const { .. } => 1,
        Op::PlaceholderWithDefault => 2,
        Op::Fill { .. } => 3,
        Op::RandomUniform { .. } => 4,
        Op::RandomUniformLike { .. } => 5,
        Op::RandomStandardNormal { .. } => 6,
        Op::TruncatedNormal { .. } => 7,
        Op::VariableV2 { .. } => 8,
        Op::Assign => 9,
        Op::AssignAdd => 10,
        Op::AssignSub => 11,
        Op::Apply(_) => 12,
        Op::NoOp => 13,
        Op::Identity => 14,
        Op::StopGradient => 15,
        Op::MatMul { .. } => 16,
        Op::Unary(_) => 17,
        Op::Binary(_) => 18,
        Op::AddN => 19,
        Op::Select => 20,
        Op::BiasAdd => 21,
        Op::Reduce { .. } => 22,
        Op::ArgMax { .. } => 23,
        Op::Cast { .. } => 24,
        Op::LeakyRelu { .. } => 25,
        Op::Softmax => 26,
        Op::LogSoftmax => 27,
        Op::SparseSoftmaxCrossEntropyWithLogits => 28,
        Op::FusedBatchNorm { .. } => 29,
        Op::FusedBatchNormGrad => 30,
        Op::InTopKV2 { .. } => 31,
        Op::Conv2D(_) => 32,
        Op::Conv2DBackpropInput(_) => 33,
        Op::Conv2DBackpropFilter(_) => 34,
        Op::MaxPool(_) => 35,
        Op::MaxPoolGrad(_) => 36,
        Op::MaxPoolGradGrad(_) => 37,
        Op::AvgPool(_) => 38,
        Op::AvgPoolGrad(_) => 39,
        Op::Reshape { .. } => 40,
        Op::Transpose { .. } => 41,
        Op::ExpandDims { .. } => 42,
        Op::Squeeze { .. } => 43,
        Op::ConcatV2 { .. } => 44,
        Op::Slice { .. } => 45,
        Op::Pad { .. } => 46,
        Op::OneHot { .. } => 47,
        Op::ZerosLike => 48,
        Op::OnesLike => 49,
        Op::Size { .. } => 50,
        Op::BroadcastTo => 51,
        Op::SumToShape => 52,
        Op::Shape { .. } => 53,
        Op::GatherV2 { .. } => 54,
        Op::UnsortedSegmentSum => 55,
        Op::SplitV { .. } => 56,
        Op::Pack { .. } => 57,
        Op::Unpack { .. } => 58,
        Op::LSTMBlockCell { .. } => 59,
        Op::LSTMBlockCellGrad { .. } => 60,
        Op::Tile { .. } => 61,
        Op::StridedSlice(_) => 62,
        Op::StridedSliceGrad(_) => 63,
        Op::ArgMin { .. } => 64,
        Op::While { .. } => 65,
        Op::If { .. } => 66,
        Op::WhileGrad { .. } => 67,
        Op::ScalarSummary { .. } => 68,
        Op::HistogramSummary { .. } => 69,
        Op::ImageSummary { .. } => 70,
        Op::MergeSummary => 71,
        Op::Cumsum { .. } => 72,
        Op::Cumprod { .. } => 73,
        Op::TopKV2 { .. } => 74,
        Op::BatchMatMulV2 { .. } => 75,
        Op::MirrorPad { .. } => 76,
        Op::MirrorPadGrad { .. } => 77,
        Op::Where => 78,
        Op::FillDims => 79,
        Op::Range => 80,
        Op::SliceDynamic => 81,
        Op::SliceGrad => 82,
        Op::DepthwiseConv2dNative(_) => 83,
        Op::DepthwiseConv2dNativeBackpropInput(_) => 84,
        Op::DepthwiseConv2dNativeBackpropFilter(_) => 85,
        Op::Switch => 86,
        Op::Merge => 87,
        Op::ReshapeDynamic => 88,
    }
}

/// A function of `n` f32 `[2,2]` arguments returning its first argument `m` times, or a bool
/// scalar when `m` is 0.
pub fn func(n: usize, m: usize) -> tensorgraph::Func {
    let g = tensorgraph::Graph::new();
    let args: Vec<_> = (0..n).map(|_| g.placeholder(DType::F32, [2, 2]).unwrap()).collect();
    let outputs = match m {
        0 => vec![g.scalar(1.0, DType::Bool).unwrap().endpoint()],
        m => vec![args[0].endpoint(); m],
    };
    tensorgraph::Func { graph: g, inputs: args.iter().map(|a| a.endpoint()).collect(), outputs }
}

/// The number of inputs a functional op takes (`None` for other ops).
pub fn function_arity(op: &Op) -> Option<usize> {
    match op {
        Op::While { cond, body, .. } => Some(cond.inputs.len() + body.inputs.len() - body.outputs.len()),
        Op::If { then_branch, .. } => Some(1 + then_branch.inputs.len()),
        // Variables, captures and output gradients: as many as the cond's inputs and grad's outputs.
        Op::WhileGrad { cond, grad, .. } => Some(cond.inputs.len() + grad.outputs.len()),
        _ => None,
    }
}

pub fn every_op() -> Vec<Op> {
    let (w, s) = ([1, 2, 2, 1], [1, 1, 1, 1]);
    let mut ops = vec![
        Op::Placeholder { dtype: DType::F32, shape: Shape::from([None, Some(3)]) },
        Op::Const { value: array![1.0f32].into_dyn().into() },
        Op::PlaceholderWithDefault,
        Op::Fill { dtype: DType::F32, shape: vec![2], value: 1.0 },
        Op::RandomUniform { dtype: DType::F32, shape: vec![2], minval: 0.0, maxval: 1.0, seed: 1, seed2: 2 },
        Op::RandomUniformLike { dtype: DType::F32, minval: 0.0, maxval: 1.0, seed: 1, seed2: 2 },
        Op::RandomStandardNormal { dtype: DType::F32, shape: vec![2], mean: 0.0, stddev: 1.0, seed: 1, seed2: 2 },
        Op::TruncatedNormal { dtype: DType::F32, shape: vec![2], mean: 0.0, stddev: 1.0, seed: 1, seed2: 2 },
        Op::VariableV2 { dtype: DType::F32, shape: vec![2] },
        Op::Assign,
        Op::AssignAdd,
        Op::AssignSub,
        Op::NoOp,
        Op::Identity,
        Op::StopGradient,
        Op::MatMul { transpose_a: false, transpose_b: true },
        Op::AddN,
        Op::Select,
        Op::BiasAdd,
        Op::ArgMax { axis: 1, output_type: DType::I64 },
        Op::ArgMin { axis: 1, output_type: DType::I64 },
        Op::Cast { to: DType::I32 },
        Op::LeakyRelu { alpha: 0.2 },
        Op::Softmax,
        Op::LogSoftmax,
        Op::SparseSoftmaxCrossEntropyWithLogits,
        Op::FusedBatchNorm { epsilon: 1e-3 },
        Op::FusedBatchNormGrad,
        Op::InTopKV2 { k: 1 },
        Op::Conv2D(ConvAttrs { strides: s, dilations: s, padding: Padding::Same }),
        Op::Conv2DBackpropInput(ConvAttrs { strides: s, dilations: s, padding: Padding::Same }),
        Op::Conv2DBackpropFilter(ConvAttrs { strides: s, dilations: s, padding: Padding::Valid }),
        Op::MaxPool(PoolAttrs { ksize: w, strides: w, padding: Padding::Valid }),
        Op::MaxPoolGrad(PoolAttrs { ksize: w, strides: w, padding: Padding::Valid }),
        Op::MaxPoolGradGrad(PoolAttrs { ksize: w, strides: w, padding: Padding::Valid }),
        Op::AvgPool(PoolAttrs { ksize: w, strides: w, padding: Padding::Same }),
        Op::AvgPoolGrad(PoolAttrs { ksize: w, strides: w, padding: Padding::Same }),
        Op::Reshape { shape: vec![-1, 4] },
        Op::Transpose { perm: vec![1, 0] },
        Op::ExpandDims { axis: 0 },
        Op::Squeeze { axes: vec![0] },
        Op::ConcatV2 { axis: 0 },
        Op::Slice { begin: vec![0], size: vec![-1] },
        Op::Pad { paddings: vec![(1, 2)] },
        Op::OneHot { depth: 3, on_value: 1.0, off_value: 0.0, dtype: DType::F32 },
        Op::ZerosLike,
        Op::OnesLike,
        Op::Size { axes: Some(vec![0]), dtype: DType::I32 },
        Op::Shape { dtype: DType::I32 },
        Op::BroadcastTo,
        Op::SumToShape,
        Op::GatherV2 { axis: 0 },
        Op::UnsortedSegmentSum,
        Op::SplitV { sizes: vec![1, 1], axis: 0 },
        Op::Pack { axis: 0 },
        Op::Unpack { num: 2, axis: 0 },
        Op::LSTMBlockCell { forget_bias: 1.0, cell_clip: -1.0, use_peephole: false },
        Op::LSTMBlockCellGrad { use_peephole: false },
        Op::Tile { multiples: vec![2] },
        Op::StridedSlice(tensorgraph::SliceSpec::from_indices(&[tensorgraph::Index::At(0)])),
        Op::StridedSliceGrad(tensorgraph::SliceSpec::from_indices(&[tensorgraph::Index::At(0)])),
    ];
    use UnaryOp::*;
    let unary = UnaryOp::ALL;
    // A variant added to UnaryOp stops this match from compiling until it is in UnaryOp::ALL too.
    let listed = |u: UnaryOp| match u {
        Relu | Sigmoid | Tanh | Exp | Log | Log1p | Neg | Square | Sqrt | Rsqrt | Abs | Sign | Reciprocal | Elu
        | Selu | Softplus | Softsign | Floor | Erf | LogicalNot => unary.contains(&u),
    };
    assert!(unary.iter().all(|&u| listed(u)));
    ops.extend(unary.map(Op::Unary));
    use BinaryOp::*;
    // A variant added to BinaryOp stops this match from compiling until it is in BinaryOp::ALL too.
    let listed = |b: BinaryOp| match b {
        Add | Sub | Mul | Div | Maximum | Minimum | Pow | ReluGrad | SigmoidGrad | TanhGrad | Equal | NotEqual
        | Less | LessEqual | Greater | GreaterEqual | LogicalAnd | LogicalOr => BinaryOp::ALL.contains(&b),
    };
    assert!(BinaryOp::ALL.iter().all(|&b| listed(b)));
    ops.extend(BinaryOp::ALL.map(Op::Binary));
    ops.extend([
        Op::Cumsum { axis: 0, exclusive: true, reverse: false },
        Op::Cumprod { axis: 0, exclusive: false, reverse: true },
        Op::TopKV2 { k: 1, sorted: true },
        Op::BatchMatMulV2 { adj_x: false, adj_y: true },
        Op::MirrorPad { paddings: vec![(1, 0)], symmetric: false },
        Op::MirrorPadGrad { paddings: vec![(1, 0)], symmetric: true },
        Op::Where,
        Op::FillDims,
        Op::Range,
        Op::SliceDynamic,
        Op::SliceGrad,
        Op::ReshapeDynamic,
        Op::DepthwiseConv2dNative(ConvAttrs { strides: s, dilations: s, padding: Padding::Same }),
        Op::DepthwiseConv2dNativeBackpropInput(ConvAttrs { strides: w, dilations: s, padding: Padding::Valid }),
        Op::DepthwiseConv2dNativeBackpropFilter(ConvAttrs { strides: s, dilations: s, padding: Padding::Same }),
        Op::Switch,
        Op::Merge,
    ]);
    for r in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min, ReduceOp::Prod] {
        ops.push(Op::Reduce { op: r, axes: vec![0], keep_dims: true });
    }
    for a in [
        ApplyOp::GradientDescent,
        ApplyOp::Momentum { use_nesterov: true },
        ApplyOp::Adagrad,
        ApplyOp::RMSProp,
        ApplyOp::CenteredRMSProp,
        ApplyOp::Adam,
    ] {
        ops.push(Op::Apply(a));
    }
    // A loop over one variable with one captured tensor in its body; branches of two arguments.
    ops.push(Op::While { cond: func(1, 0), body: func(2, 1), maximum_iterations: Some(3) });
    ops.push(Op::If { then_branch: func(2, 1), else_branch: func(2, 1) });
    ops.push(Op::ScalarSummary { tags: "loss".into() });
    ops.push(Op::HistogramSummary { tag: "w".into() });
    ops.push(Op::ImageSummary { tag: "x".into(), max_images: 3 });
    ops.push(Op::MergeSummary);
    ops.push(Op::WhileGrad { cond: func(1, 0), body: func(2, 1), grad: func(3, 2), maximum_iterations: None });
    ops
}
