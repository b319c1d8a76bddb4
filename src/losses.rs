//! Loss collections (`tf.losses`).

use crate::Named;
use crate::{collections, DType, Graph, Result, Tensor};

/// The sum of the `regularization_losses` collection (the layers' kernel penalties), or a
/// float32 zero when it is empty, as `tf.losses.get_regularization_loss`.
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::layers::{Dense, Regularizer};
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(4)]).named("x")?;
/// let _h = Dense::new(3).kernel_regularizer(Regularizer::L2(0.01)).build(&x, "hidden")?;
/// let reg = tensorgraph::losses::get_regularization_loss(&g)?;
/// assert_eq!(reg.op_name(), "total_regularization_loss");
/// # Ok(()) }
/// ```
#[track_caller]
pub fn get_regularization_loss(g: &Graph) -> Result<Tensor> {
    let losses = g.get_collection(collections::REGULARIZATION_LOSSES);
    match losses.len() {
        0 => g.scalar(0.0, DType::F32),
        _ => {
            let refs: Vec<&Tensor> = losses.iter().collect();
            let total = crate::math::add_n(&refs)?;
            crate::math::identity(&total).named("total_regularization_loss")
        }
    }
}

/// The mean of `(predictions - labels)²` over every element, added to the `losses` collection
/// (`tf.losses.mean_squared_error` with its default weight 1).
#[track_caller]
pub fn mean_squared_error(labels: &Tensor, predictions: &Tensor) -> Result<Tensor> {
    let g = labels.graph();
    let loss = crate::math::reduce_mean(&crate::math::squared_difference(predictions, labels)?, None)?;
    g.add_to_collection(collections::LOSSES, &loss);
    Ok(loss)
}

/// The mean Huber loss: `½e²` where `|e| <= delta`, `delta·(|e| - ½delta)` beyond, for
/// `e = predictions - labels`, added to the `losses` collection (`tf.losses.huber_loss`).
///
/// ```
/// use tensorgraph::prelude::*;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let labels = g.constant(ndarray::array![0.0f32, 0.0])?;
/// let predictions = g.constant(ndarray::array![0.5f32, 3.0])?;
/// let loss = tensorgraph::losses::huber_loss(&labels, &predictions, 1.0)?;
/// let value: f32 = loss.eval(&Session::new(&g)?, &[])?.try_into()?;
/// assert_eq!(value, (0.125 + 2.5) / 2.0);
/// # Ok(()) }
/// ```
#[track_caller]
pub fn huber_loss(labels: &Tensor, predictions: &Tensor, delta: f64) -> Result<Tensor> {
    use crate::math::{abs, add, minimum, mul, reduce_mean, square, sub};
    let g = labels.graph();
    let abs_error = abs(&sub(predictions, labels)?)?;
    let delta_t = g.scalar(delta, abs_error.dtype())?;
    let quadratic = minimum(&abs_error, &delta_t)?;
    let linear = sub(&abs_error, &quadratic)?;
    let half = g.scalar(0.5, abs_error.dtype())?;
    let losses = add(&mul(&half, &square(&quadratic)?)?, &mul(&delta_t, &linear)?)?;
    let loss = reduce_mean(&losses, None)?;
    g.add_to_collection(collections::LOSSES, &loss);
    Ok(loss)
}
