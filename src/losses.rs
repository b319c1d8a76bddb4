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
