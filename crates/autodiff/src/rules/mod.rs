//! Gradient rules: one arm per op, each delegating to a per-family rule function that emits
//! graph ops. Non-differentiable ops return `None` for every input; ops with effects have no
//! gradient and report it.

mod array;
mod control_flow;
mod conv;
mod math;
mod nn;

use tensorgraph_graph::{Error, Op, Operation, Result, Tensor};

/// What a rule sees: the op, its node, its inputs, and the gradient of each output.
pub(crate) struct Ctx<'a> {
    pub op: &'a Op,
    pub node: &'a Operation,
    pub inputs: &'a [Tensor],
    pub grads: &'a [Option<Tensor>],
}

impl Ctx<'_> {
    /// Input `i`.
    pub fn x(&self, i: usize) -> &Tensor {
        &self.inputs[i]
    }

    /// Output `i` of the op.
    pub fn y(&self, i: usize) -> Result<Tensor> {
        self.node.output(i)
    }

    /// The gradient of output 0 (rules of single-output ops only run when it exists).
    pub fn g(&self) -> &Tensor {
        self.grads[0].as_ref().expect("single-output ops are differentiated only with a gradient")
    }

    /// The gradient of every output, zeros where none flows (for multi-output ops whose rule
    /// needs them all: split, unstack, `While`, `If`).
    pub fn filled_grads(&self) -> Result<Vec<Tensor>> {
        (0..self.grads.len())
            .map(|i| match &self.grads[i] {
                Some(g) => Ok(g.clone()),
                None => tensorgraph_graph::ops::array::zeros_like(&self.y(i)?),
            })
            .collect()
    }

    /// `None` for every input.
    pub fn none(&self) -> Vec<Option<Tensor>> {
        vec![None; self.inputs.len()]
    }
}

/// Gradients of the op's inputs given its output gradients.
pub(crate) fn grad(c: &Ctx) -> Result<Vec<Option<Tensor>>> {
    match c.op {
        Op::MatMul { transpose_a, transpose_b } => math::matmul(c, *transpose_a, *transpose_b),
        Op::Unary(u) => math::unary(c, *u),
        Op::Binary(b) => math::binary(c, *b),
        Op::Select => math::select(c),
        Op::AddN => Ok(vec![Some(c.g().clone()); c.inputs.len()]),
        Op::BiasAdd => nn::bias_add(c),
        Op::Reduce { op, axes, keep_dims } => math::reduce(c, *op, axes, *keep_dims),
        Op::Cast { to } => math::cast(c, *to),
        Op::Cumsum { axis, exclusive, reverse } => math::cumulative(c, *axis, *exclusive, *reverse, false),
        Op::Cumprod { axis, exclusive, reverse } => math::cumulative(c, *axis, *exclusive, *reverse, true),
        Op::TopKV2 { .. } => math::top_k(c),
        Op::BatchMatMulV2 { adj_x, adj_y } => math::batch_matmul(c, *adj_x, *adj_y),
        Op::LeakyRelu { alpha } => nn::leaky_relu(c, *alpha),
        Op::Softmax => nn::softmax(c),
        Op::LogSoftmax => nn::log_softmax(c),
        Op::SparseSoftmaxCrossEntropyWithLogits => nn::sparse_xent(c),
        Op::FusedBatchNorm { .. } => nn::fused_batch_norm(c),
        Op::LSTMBlockCell { use_peephole, .. } => nn::lstm_block_cell(c, *use_peephole),
        Op::Identity => Ok(vec![Some(c.g().clone())]),
        Op::Conv2D(a) => conv::conv2d(c, a),
        Op::Conv2DBackpropInput(a) => conv::backprop_input(c, a),
        Op::Conv2DBackpropFilter(a) => conv::backprop_filter(c, a),
        Op::DepthwiseConv2dNative(a) => {
            let (x, f, g) = (c.x(0), c.x(1), c.g());
            let graph = g.graph();
            let dx = graph.add_op1(Op::DepthwiseConv2dNativeBackpropInput(*a), &[x, f, g], None)?;
            let df = graph.add_op1(Op::DepthwiseConv2dNativeBackpropFilter(*a), &[x, f, g], None)?;
            Ok(vec![Some(dx), Some(df)])
        }
        Op::MaxPool(a) => conv::max_pool(c, a),
        Op::MaxPoolGrad(a) => conv::max_pool_grad(c, a),
        Op::MaxPoolGradGrad(a) => conv::max_pool_grad_grad(c, a),
        Op::AvgPool(a) => conv::avg_pool(c, a),
        Op::AvgPoolGrad(a) => conv::avg_pool_grad(c, a),
        Op::Reshape { .. } => array::reshape(c),
        Op::ReshapeDynamic => array::reshape_dynamic(c),
        Op::Transpose { perm } => array::transpose(c, perm),
        Op::ExpandDims { axis } => array::expand_dims(c, *axis),
        Op::Squeeze { axes } => array::squeeze(c, axes),
        Op::ConcatV2 { axis } => array::concat(c, *axis),
        Op::Slice { begin, .. } => array::slice(c, begin),
        Op::Pad { paddings } => array::pad(c, paddings),
        Op::SliceDynamic => {
            let dx = c.g().graph().add_op1(Op::SliceGrad, &[c.g(), c.x(0), c.x(1)], None)?;
            Ok(vec![Some(dx), None, None])
        }
        Op::SliceGrad => {
            let size = tensorgraph_graph::ops::math::shape(c.x(0), c.x(2).dtype())?;
            Ok(vec![Some(c.g().graph().add_op1(Op::SliceDynamic, &[c.g(), c.x(2), &size], None)?), None, None])
        }
        Op::MirrorPad { paddings, symmetric } => {
            let op = Op::MirrorPadGrad { paddings: paddings.clone(), symmetric: *symmetric };
            Ok(vec![Some(c.g().graph().add_op1(op, &[c.g()], None)?)])
        }
        Op::MirrorPadGrad { paddings, symmetric } => {
            let op = Op::MirrorPad { paddings: paddings.clone(), symmetric: *symmetric };
            Ok(vec![Some(c.g().graph().add_op1(op, &[c.g()], None)?)])
        }
        Op::GatherV2 { axis } => array::gather(c, *axis),
        Op::UnsortedSegmentSum => array::unsorted_segment_sum(c),
        Op::Tile { multiples } => array::tile(c, multiples),
        Op::StridedSlice(spec) => {
            Ok(vec![Some(tensorgraph_graph::ops::array::strided_slice_grad(c.g(), c.x(0), spec)?)])
        }
        Op::StridedSliceGrad(spec) => {
            Ok(vec![Some(c.g().graph().add_op1(Op::StridedSlice(spec.clone()), &[c.g()], None)?), None])
        }
        Op::SplitV { axis, .. } => array::split(c, *axis),
        Op::Pack { axis } => array::pack(c, *axis),
        Op::Unpack { axis, .. } => array::unpack(c, *axis),
        Op::BroadcastTo => Ok(vec![Some(tensorgraph_graph::ops::array::sum_to_shape(c.g(), c.x(0))?), None]),
        Op::SumToShape => Ok(vec![Some(tensorgraph_graph::ops::array::broadcast_to(c.g(), c.x(0))?), None]),
        Op::While { cond, body, maximum_iterations } => control_flow::while_loop(c, cond, body, *maximum_iterations),
        Op::If { then_branch, else_branch } => control_flow::cond(c, then_branch, else_branch),
        // Piecewise constant or integer-valued: no gradient flows.
        Op::StopGradient
        | Op::ArgMax { .. }
        | Op::ArgMin { .. }
        | Op::InTopKV2 { .. }
        | Op::OneHot { .. }
        | Op::ZerosLike
        | Op::OnesLike
        | Op::Size { .. }
        | Op::Shape { .. }
        | Op::Fill { .. }
        | Op::Const { .. }
        | Op::Placeholder { .. }
        | Op::PlaceholderWithDefault
        | Op::RandomUniform { .. }
        | Op::TruncatedNormal { .. }
        | Op::RandomStandardNormal { .. }
        | Op::RandomUniformLike { .. }
        | Op::VariableV2 { .. }
        | Op::Where
        | Op::Range
        | Op::FillDims
        | Op::ScalarSummary { .. }
        | Op::HistogramSummary { .. }
        | Op::ImageSummary { .. }
        | Op::MergeSummary
        | Op::NoOp => Ok(c.none()),
        // No second-order batch norm (TF has FusedBatchNormGradGrad; nothing here needs it).
        Op::Assign
        | Op::AssignAdd
        | Op::AssignSub
        | Op::Apply(_)
        | Op::FusedBatchNormGrad
        | Op::WhileGrad { .. }
        // TF1's control flow: imported graphs run, but gradients go through `tf.cond` (an `If`).
        | Op::Switch
        | Op::Merge
        | Op::DepthwiseConv2dNativeBackpropInput(_)
        | Op::DepthwiseConv2dNativeBackpropFilter(_)
        | Op::LSTMBlockCellGrad { .. } => Err(Error::NoGradient { node: c.node.info() }),
    }
}
