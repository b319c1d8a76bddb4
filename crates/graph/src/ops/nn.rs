//! Activations, softmax and losses (`tf.nn`).

use crate::error::Result;
use crate::graph::Tensor;
use crate::op::{BinaryOp, ConvAttrs, Op, Padding, PoolAttrs, UnaryOp};
use crate::ops::math::{binary, unary};
use crate::Named;

/// max(x, 0).
#[track_caller]
pub fn relu(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Relu, x)
}

/// 1 / (1 + e^-x).
#[track_caller]
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Sigmoid, x)
}

/// Hyperbolic tangent.
#[track_caller]
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Tanh, x)
}

/// Exponential linear unit: `x` if `x > 0`, else `e^x - 1` (`tf.nn.elu`).
#[track_caller]
pub fn elu(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Elu, x)
}

/// Scaled ELU with TF's constants (`tf.nn.selu`).
#[track_caller]
pub fn selu(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Selu, x)
}

/// `log(1 + e^x)` (`tf.nn.softplus`).
#[track_caller]
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Softplus, x)
}

/// `x / (1 + |x|)` (`tf.nn.softsign`).
#[track_caller]
pub fn softsign(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Softsign, x)
}

/// `x` if `x > 0`, else `alpha·x` (`tf.nn.leaky_relu`; TF's default alpha is 0.2).
#[track_caller]
pub fn leaky_relu(x: &Tensor, alpha: f64) -> Result<Tensor> {
    x.graph().add_op1(Op::LeakyRelu { alpha }, &[x], None)
}

/// `x·sigmoid(x)` (`tf.nn.swish`, a composite as in TF).
#[track_caller]
pub fn swish(x: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Mul, x, &sigmoid(x)?)
}

/// Gradient of relu: `gradients` where `features > 0`.
#[track_caller]
pub fn relu_grad(gradients: &Tensor, features: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::ReluGrad, gradients, features)
}

/// Gradient of sigmoid from its output `y`: `dy * y * (1 - y)`.
#[track_caller]
pub fn sigmoid_grad(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::SigmoidGrad, y, dy)
}

/// Gradient of tanh from its output `y`: `dy * (1 - y^2)`.
#[track_caller]
pub fn tanh_grad(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::TanhGrad, y, dy)
}

/// Adds a 1-D `bias` along the last dimension.
#[track_caller]
pub fn bias_add(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.graph().add_op1(Op::BiasAdd, &[x, bias], None)
}

/// Softmax over the last dimension.
#[track_caller]
pub fn softmax(logits: &Tensor) -> Result<Tensor> {
    logits.graph().add_op1(Op::Softmax, &[logits], None)
}

/// Log-softmax over the last dimension, computed stably.
#[track_caller]
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    logits.graph().add_op1(Op::LogSoftmax, &[logits], None)
}

/// Per-example cross-entropy between integer `labels` `[batch]` and `logits`
/// `[batch, classes]`, stable at extreme logits (`tf.nn.sparse_softmax_cross_entropy_with_logits`).
/// A label outside `[0, classes)` is a run-time error naming the node.
///
/// ```
/// use tensorgraph_graph::Named;
/// use tensorgraph_graph::{Graph, DType, ops::nn};
/// # fn main() -> tensorgraph_graph::Result<()> {
/// let g = Graph::new();
/// let logits = g.placeholder(DType::F32, [None, Some(10)]).named("logits")?;
/// let y = g.placeholder(DType::I64, [None]).named("y")?;
/// let xent = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits).named("xentropy")?;
/// assert_eq!(xent.shape().to_string(), "[?]");
/// # Ok(()) }
/// ```
#[track_caller]
pub fn sparse_softmax_cross_entropy_with_logits(labels: &Tensor, logits: &Tensor) -> Result<Tensor> {
    logits.graph().add_op1(Op::SparseSoftmaxCrossEntropyWithLogits, &[logits, labels], None)
}

/// Whether each `targets[i]` is among the `k` largest `predictions[i]`, as `tf.nn.in_top_k`:
/// ties at the k-th value count as in, and a row with a non-finite prediction is false.
#[track_caller]
pub fn in_top_k(predictions: &Tensor, targets: &Tensor, k: usize) -> Result<Tensor> {
    predictions.graph().add_op1(Op::InTopKV2 { k }, &[predictions, targets], None)
}

/// 2-D convolution of NHWC `input` with an HWIO `filter` (`tf.nn.conv2d`); `strides` as TF's
/// 4-list `[1, sh, sw, 1]`.
///
/// ```
/// use tensorgraph_graph::Named;
/// use tensorgraph_graph::{Graph, DType, Padding, ops::nn};
/// # fn main() -> tensorgraph_graph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(28), Some(28), Some(32)]).named("x")?;
/// let w = g.placeholder(DType::F32, [3, 3, 32, 64]).named("w")?;
/// assert_eq!(nn::conv2d(&x, &w, [1, 2, 2, 1], Padding::Same)?.shape().to_string(), "[?,14,14,64]");
/// assert_eq!(nn::conv2d(&x, &w, [1, 1, 1, 1], Padding::Valid)?.shape().to_string(), "[?,26,26,64]");
/// # Ok(()) }
/// ```
#[track_caller]
pub fn conv2d(input: &Tensor, filter: &Tensor, strides: [usize; 4], padding: Padding) -> Result<Tensor> {
    conv2d_dilated(input, filter, strides, padding, [1, 1, 1, 1])
}

/// [`conv2d`] with dilations (atrous convolution), `[1, dh, dw, 1]`.
#[track_caller]
pub fn conv2d_dilated(
    input: &Tensor,
    filter: &Tensor,
    strides: [usize; 4],
    padding: Padding,
    dilations: [usize; 4],
) -> Result<Tensor> {
    input.graph().add_op1(Op::Conv2D(ConvAttrs { strides, dilations, padding }), &[input, filter], None)
}

/// The transposed convolution ("deconvolution"), as `tf.nn.conv2d_transpose(value, filter,
/// output_shape, strides, padding)`: the gradient of a [`conv2d`] of an `output_shape` input with
/// `filter` (`[kh, kw, out_channels, in_channels]`), taken at `value`. The batch of
/// `output_shape` is `None` for `value`'s own (TF passes `tf.shape(value)[0]`).
///
/// ```
/// use tensorgraph_graph::{ops::nn, DType, Graph, Padding};
/// let g = Graph::new();
/// let z = g.placeholder(DType::F32, [None, Some(7), Some(7), Some(16)]).unwrap();
/// let k = g.placeholder(DType::F32, [3, 3, 1, 16]).unwrap();
/// let up = nn::conv2d_transpose(&z, &k, [None, Some(14), Some(14), Some(1)], [1, 2, 2, 1], Padding::Same).unwrap();
/// assert_eq!(up.shape().to_string(), "[?,14,14,1]");
/// ```
#[track_caller]
pub fn conv2d_transpose(
    value: &Tensor,
    filter: &Tensor,
    output_shape: [Option<usize>; 4],
    strides: [usize; 4],
    padding: Padding,
) -> Result<Tensor> {
    let g = value.graph();
    let [batch, h, w, c] = output_shape;
    let (Some(h), Some(w), Some(c)) = (h, w, c) else {
        return Err(super::invalid(
            value,
            "Conv2DBackpropInput",
            format!("output_shape {output_shape:?} needs its height, width and channels"),
        ));
    };
    // A zero tensor of the output's shape: the op reads its input only for the shape.
    let like = match batch {
        Some(b) => super::array::zeros(g, &[b, h, w, c], value.dtype())?,
        None => {
            let per_example = super::math::reduce_sum_keep_dims(
                &super::math::mul(value, &g.scalar(0.0, value.dtype())?)?,
                Some(&[1, 2, 3]),
            )?;
            super::math::mul(&per_example, &super::array::zeros(g, &[1, h, w, c], value.dtype())?)?
        }
    };
    conv2d_backprop_input(&like, filter, value, strides, padding, [1, 1, 1, 1])
}

/// Depthwise convolution, as `tf.nn.depthwise_conv2d(input, filter, strides, padding)`: filter
/// `[kh, kw, in_channels, multiplier]`, each input channel convolved with its own filters
/// (TF's `DepthwiseConv2dNative`); `in_channels * multiplier` output channels.
///
/// ```
/// use tensorgraph_graph::{ops::nn, DType, Graph, Padding};
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(28), Some(28), Some(8)]).unwrap();
/// let k = g.placeholder(DType::F32, [3, 3, 8, 2]).unwrap();
/// assert_eq!(nn::depthwise_conv2d(&x, &k, [1, 1, 1, 1], Padding::Same).unwrap().shape().to_string(), "[?,28,28,16]");
/// ```
#[track_caller]
pub fn depthwise_conv2d(input: &Tensor, filter: &Tensor, strides: [usize; 4], padding: Padding) -> Result<Tensor> {
    let op = Op::DepthwiseConv2dNative(ConvAttrs { strides, dilations: [1, 1, 1, 1], padding });
    input.graph().add_op1(op, &[input, filter], None)
}

/// The gradient of a convolution with respect to its input; `input` gives the shape.
#[track_caller]
pub fn conv2d_backprop_input(
    input: &Tensor,
    filter: &Tensor,
    out_backprop: &Tensor,
    strides: [usize; 4],
    padding: Padding,
    dilations: [usize; 4],
) -> Result<Tensor> {
    let op = Op::Conv2DBackpropInput(ConvAttrs { strides, dilations, padding });
    input.graph().add_op1(op, &[input, filter, out_backprop], None)
}

/// The gradient of a convolution with respect to its filter; `filter` gives the shape.
#[track_caller]
pub fn conv2d_backprop_filter(
    input: &Tensor,
    filter: &Tensor,
    out_backprop: &Tensor,
    strides: [usize; 4],
    padding: Padding,
    dilations: [usize; 4],
) -> Result<Tensor> {
    let op = Op::Conv2DBackpropFilter(ConvAttrs { strides, dilations, padding });
    input.graph().add_op1(op, &[input, filter, out_backprop], None)
}

/// Max pooling (`tf.nn.max_pool`), `ksize` and `strides` as `[1, h, w, 1]`.
#[track_caller]
pub fn max_pool(input: &Tensor, ksize: [usize; 4], strides: [usize; 4], padding: Padding) -> Result<Tensor> {
    input.graph().add_op1(Op::MaxPool(PoolAttrs { ksize, strides, padding }), &[input], None)
}

/// Average pooling over the valid cells of each window (`tf.nn.avg_pool`).
#[track_caller]
pub fn avg_pool(input: &Tensor, ksize: [usize; 4], strides: [usize; 4], padding: Padding) -> Result<Tensor> {
    input.graph().add_op1(Op::AvgPool(PoolAttrs { ksize, strides, padding }), &[input], None)
}

/// The gradient of [`max_pool`]: `grad` routed to each window's first maximum in `orig_input`.
#[track_caller]
pub fn max_pool_grad(
    orig_input: &Tensor,
    grad: &Tensor,
    ksize: [usize; 4],
    strides: [usize; 4],
    padding: Padding,
) -> Result<Tensor> {
    orig_input.graph().add_op1(Op::MaxPoolGrad(PoolAttrs { ksize, strides, padding }), &[orig_input, grad], None)
}

/// The gradient of [`max_pool_grad`] with respect to its `grad`.
#[track_caller]
pub fn max_pool_grad_grad(
    orig_input: &Tensor,
    grad: &Tensor,
    ksize: [usize; 4],
    strides: [usize; 4],
    padding: Padding,
) -> Result<Tensor> {
    orig_input.graph().add_op1(Op::MaxPoolGradGrad(PoolAttrs { ksize, strides, padding }), &[orig_input, grad], None)
}

/// The gradient of [`avg_pool`]; `orig_input` gives the shape.
#[track_caller]
pub fn avg_pool_grad(
    orig_input: &Tensor,
    grad: &Tensor,
    ksize: [usize; 4],
    strides: [usize; 4],
    padding: Padding,
) -> Result<Tensor> {
    orig_input.graph().add_op1(Op::AvgPoolGrad(PoolAttrs { ksize, strides, padding }), &[orig_input, grad], None)
}

/// Inverted dropout, as `tf.layers.dropout(x, rate, training=training)`: where the scalar bool
/// `training` is true, each element is zeroed with probability `rate` and the rest scaled by
/// `1/(1-rate)`; where it is false, `x` passes unchanged. Seeded like every random op.
///
/// ```
/// use tensorgraph_graph::Named;
/// use tensorgraph_graph::{Graph, DType, ops::nn};
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(300)]).named("x").unwrap();
/// let training = g.placeholder(DType::Bool, tensorgraph_graph::Shape::scalar()).named("training").unwrap();
/// assert_eq!(nn::dropout(&x, 0.5, &training, Some(1)).unwrap().shape().to_string(), "[?,300]");
/// ```
#[track_caller]
pub fn dropout(x: &Tensor, rate: f64, training: &Tensor, seed: Option<u64>) -> Result<Tensor> {
    use crate::ops::math::{add, cast, greater_equal, mul, sub};
    if !(0.0..1.0).contains(&rate) {
        return Err(super::invalid(x, "dropout", format!("rate must be in [0, 1), got {rate} (input {})", x.name())));
    }
    let g = x.graph();
    let _scope = g.enter_name_scope("dropout");
    let dtype = x.dtype();
    let u = crate::ops::random::random_uniform_like(x, dtype, 0.0, 1.0, seed)?;
    let keep = cast(&greater_equal(&u, &g.scalar(rate, dtype)?)?, dtype)?;
    let dropped = mul(&mul(x, &keep)?, &g.scalar(1.0 / (1.0 - rate).max(f64::MIN_POSITIVE), dtype)?)?;
    // Without a cond op, blend by the 0/1 value of `training` (the mask is drawn either way).
    let t = cast(training, dtype)?;
    add(&mul(&t, &dropped)?, &mul(&sub(&g.scalar(1.0, dtype)?, &t)?, x)?)
}

/// Mean and variance over `axes` (`tf.nn.moments`, keep_dims false): the variance is the
/// biased one, `mean((x - mean)²)`.
///
/// ```
/// use tensorgraph_graph::Named;
/// use tensorgraph_graph::{Graph, DType, ops::nn};
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(28), Some(28), Some(32)]).named("x").unwrap();
/// let (mean, variance) = nn::moments(&x, &[0, 1, 2]).unwrap();
/// assert_eq!((mean.shape().to_string(), variance.shape().to_string()), ("[32]".into(), "[32]".into()));
/// ```
#[track_caller]
pub fn moments(x: &Tensor, axes: &[i64]) -> Result<(Tensor, Tensor)> {
    use crate::ops::math::{reduce_mean, reduce_mean_keep_dims, square, sub};
    let _scope = x.graph().enter_name_scope("moments");
    let mean = reduce_mean_keep_dims(x, Some(axes)).named("mean")?;
    let variance = reduce_mean(&square(&sub(x, &mean)?)?, Some(axes)).named("variance")?;
    Ok((crate::ops::array::squeeze(&mean, Some(axes))?, variance))
}

/// Half the sum of squares, `Σx²/2` (`tf.nn.l2_loss`).
#[track_caller]
pub fn l2_loss(x: &Tensor) -> Result<Tensor> {
    use crate::ops::math::{mul, reduce_sum, square};
    mul(&reduce_sum(&square(x)?, None)?, &x.graph().scalar(0.5, x.dtype())?)
}

/// Element-wise logistic loss of `logits` against `labels` in [0, 1], computed stably as
/// `max(x, 0) - x·z + log(1 + e^-|x|)` (`tf.nn.sigmoid_cross_entropy_with_logits`).
///
/// ```
/// use tensorgraph_graph::Named;
/// use tensorgraph_graph::{Graph, DType, ops::nn};
/// let g = Graph::new();
/// let logits = g.placeholder(DType::F32, [None, Some(1)]).named("logits").unwrap();
/// let labels = g.placeholder(DType::F32, [None, Some(1)]).named("labels").unwrap();
/// let loss = nn::sigmoid_cross_entropy_with_logits(&labels, &logits).unwrap();
/// assert_eq!(loss.shape().to_string(), "[?,1]");
/// ```
#[track_caller]
pub fn sigmoid_cross_entropy_with_logits(labels: &Tensor, logits: &Tensor) -> Result<Tensor> {
    use crate::ops::math::{abs, add, mul, neg, sub};
    let _scope = logits.graph().enter_name_scope("logistic_loss");
    add(&sub(&relu(logits)?, &mul(logits, labels)?)?, &softplus(&neg(&abs(logits)?)?)?)
}

/// Batch normalization over every axis but the last, in one op (see [`Op::FusedBatchNorm`]):
/// returns `y`, the batch mean, the batch's biased variance, and the mean and `1/√(var + ε)`
/// used. Models want `tensorgraph::layers::batch_normalization`, built on this.
#[track_caller]
pub fn fused_batch_norm(
    x: &Tensor,
    scale: &Tensor,
    offset: &Tensor,
    mean: &Tensor,
    variance: &Tensor,
    training: &Tensor,
    epsilon: f64,
) -> Result<Vec<Tensor>> {
    let op = x.graph().add_node(
        Op::FusedBatchNorm { epsilon },
        &[x, scale, offset, mean, variance, training],
        &[],
        None,
        crate::SourceLocation::caller(),
    )?;
    (0..5).map(|i| op.output(i)).collect()
}

/// The gradients `dx`, `dscale`, `doffset` of [`fused_batch_norm`].
#[track_caller]
pub fn fused_batch_norm_grad(
    dy: &Tensor,
    x: &Tensor,
    scale: &Tensor,
    mean: &Tensor,
    inv_std: &Tensor,
    training: &Tensor,
) -> Result<Vec<Tensor>> {
    let op = x.graph().add_node(
        Op::FusedBatchNormGrad,
        &[dy, x, scale, mean, inv_std, training],
        &[],
        None,
        crate::SourceLocation::caller(),
    )?;
    (0..3).map(|i| op.output(i)).collect()
}

/// The rows of `params` at `ids` (`tf.nn.embedding_lookup` with one params tensor): a gather
/// along axis 0, whose gradient adds up the rows of repeated ids.
///
/// ```
/// use tensorgraph_graph::{ops::nn, DType, Graph};
/// let g = Graph::new();
/// let embeddings = g.placeholder(DType::F32, [Some(100), Some(16)]).unwrap();
/// let ids = g.placeholder(DType::I32, [None, Some(20)]).unwrap();
/// assert_eq!(nn::embedding_lookup(&embeddings, &ids).unwrap().shape().to_string(), "[?,20,16]");
/// ```
#[track_caller]
pub fn embedding_lookup(params: &Tensor, ids: &Tensor) -> Result<Tensor> {
    crate::ops::array::gather(params, ids, 0)
}

/// `x / √max(Σx², epsilon)` over `axes` (`tf.nn.l2_normalize`; TF's epsilon is 1e-12).
#[track_caller]
pub fn l2_normalize(x: &Tensor, axes: &[i64], epsilon: f64) -> Result<Tensor> {
    use crate::ops::math::{maximum, mul, reduce_sum_keep_dims, rsqrt, square};
    let square_sum = reduce_sum_keep_dims(&square(x)?, Some(axes))?;
    mul(x, &rsqrt(&maximum(&square_sum, &x.graph().scalar(epsilon, x.dtype())?)?)?)
}

/// Cross-entropy of `logits` against a distribution `labels` over the last axis (dense or soft
/// labels), as `tf.nn.softmax_cross_entropy_with_logits` (v2): `-Σ labels·log_softmax(logits)`.
/// Gradients flow into both, the labels' being `-log_softmax(logits)` as TF's v2 op gives.
///
/// ```
/// use tensorgraph_graph::{ops::nn, DType, Graph};
/// let g = Graph::new();
/// let logits = g.placeholder(DType::F32, [None, Some(10)]).unwrap();
/// let labels = g.placeholder(DType::F32, [None, Some(10)]).unwrap();
/// assert_eq!(nn::softmax_cross_entropy_with_logits(&labels, &logits).unwrap().shape().to_string(), "[?]");
/// ```
#[track_caller]
pub fn softmax_cross_entropy_with_logits(labels: &Tensor, logits: &Tensor) -> Result<Tensor> {
    use crate::ops::math::{mul, neg, reduce_sum};
    neg(&reduce_sum(&mul(labels, &log_softmax(logits)?)?, Some(&[-1]))?)
}

/// One LSTM step as TF's `LSTMBlockCell` op (`tf.raw_ops.LSTMBlockCell`): `x` `[batch, input]`,
/// the previous cell state and output `[batch, cell]`, the kernel `w` `[input + cell, 4·cell]`
/// over `[x, h_prev]` with gates `i, ci, f, o`, the peephole weights `[cell]` (read only with
/// `use_peephole`), the bias `[4·cell]`. Returns the outputs `i, cs, f, o, ci, co, h`; `cs` and
/// `h` are the new state. `cell_clip` < 0 does not clip.
///
/// ```
/// use tensorgraph_graph::{ops::nn, DType, Graph};
/// let g = Graph::new();
/// let f = |shape: &[usize]| g.placeholder(DType::F32, shape).unwrap();
/// let (x, c, h) = (f(&[8, 3]), f(&[8, 5]), f(&[8, 5]));
/// let (w, p, b) = (f(&[8, 20]), f(&[5]), f(&[20]));
/// let out = nn::lstm_block_cell(&x, &c, &h, &w, [&p, &p, &p], &b, 1.0, -1.0, false).unwrap();
/// assert_eq!((out.len(), out[6].shape().to_string()), (7, "[8,5]".to_string()));
/// ```
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn lstm_block_cell(
    x: &Tensor,
    cs_prev: &Tensor,
    h_prev: &Tensor,
    w: &Tensor,
    [wci, wcf, wco]: [&Tensor; 3],
    b: &Tensor,
    forget_bias: f64,
    cell_clip: f64,
    use_peephole: bool,
) -> Result<Vec<Tensor>> {
    let op = x.graph().add_node(
        Op::LSTMBlockCell { forget_bias, cell_clip, use_peephole },
        &[x, cs_prev, h_prev, w, wci, wcf, wco, b],
        &[],
        None,
        crate::SourceLocation::caller(),
    )?;
    (0..7).map(|i| op.output(i)).collect()
}

/// [`lstm_block_cell`]'s gradient op (TF's `LSTMBlockCellGrad`): `inputs` are the step's eight
/// inputs, `outputs` its first six outputs (`i, cs, f, o, ci, co`). Returns `cs_prev_grad`,
/// `dicfo` (the gates' pre-activation gradients) and the three peephole gradients.
#[track_caller]
pub fn lstm_block_cell_grad(
    inputs: &[Tensor],
    outputs: &[Tensor],
    cs_grad: &Tensor,
    h_grad: &Tensor,
    use_peephole: bool,
) -> Result<Vec<Tensor>> {
    let all: Vec<&Tensor> = inputs.iter().chain(outputs).chain([cs_grad, h_grad]).collect();
    let op = cs_grad.graph().add_node(
        Op::LSTMBlockCellGrad { use_peephole },
        &all,
        &[],
        None,
        crate::SourceLocation::caller(),
    )?;
    (0..5).map(|i| op.output(i)).collect()
}

/// The `k` largest entries of each row (last axis) and their int32 indices, largest first
/// (`tf.nn.top_k`; among equal values the lower index comes first).
///
/// ```
/// use ndarray::array;
/// use tensorgraph_graph::{ops::nn, Graph};
/// let g = Graph::new();
/// let x = g.constant(array![[1.0f32, 3.0, 2.0, 3.0]]).unwrap();
/// let (values, indices) = nn::top_k(&x, 2, true).unwrap();
/// assert_eq!((values.shape().to_string(), indices.dtype().name()), ("[1,2]".to_string(), "int32"));
/// ```
#[track_caller]
pub fn top_k(x: &Tensor, k: usize, sorted: bool) -> Result<(Tensor, Tensor)> {
    let op = x.graph().add_op(Op::TopKV2 { k, sorted }, &[x], None)?;
    Ok((op.output(0)?, op.output(1)?))
}
