//! Activations, softmax and losses (`tf.nn`).

use crate::error::Result;
use crate::graph::Tensor;
use crate::op::{BinaryOp, Op, UnaryOp};
use crate::ops::math::{binary, unary};

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
/// use tensorgraph_graph::{Graph, DType, ops::nn};
/// # fn main() -> tensorgraph_graph::Result<()> {
/// let g = Graph::new();
/// let logits = g.placeholder(DType::F32, [None, Some(10)], "logits")?;
/// let y = g.placeholder(DType::I64, [None], "y")?;
/// let xent = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits, "xentropy")?;
/// assert_eq!(xent.shape().to_string(), "[?]");
/// # Ok(()) }
/// ```
#[track_caller]
pub fn sparse_softmax_cross_entropy_with_logits(labels: &Tensor, logits: &Tensor, name: &str) -> Result<Tensor> {
    let name = (!name.is_empty()).then_some(name);
    logits.graph().add_op1(Op::SparseSoftmaxCrossEntropyWithLogits, &[logits, labels], name)
}

/// Whether each `targets[i]` is among the `k` largest `predictions[i]`, as `tf.nn.in_top_k`:
/// ties at the k-th value count as in, and a row with a non-finite prediction is false.
#[track_caller]
pub fn in_top_k(predictions: &Tensor, targets: &Tensor, k: usize) -> Result<Tensor> {
    predictions.graph().add_op1(Op::InTopKV2 { k }, &[predictions, targets], None)
}
