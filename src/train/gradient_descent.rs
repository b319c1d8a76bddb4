//! Plain gradient descent, as `tf.train.GradientDescentOptimizer`.

use super::{finish, GradAndVar, Optimizer};
use crate::{Operation, Result, Variable};

/// `var -= learning_rate * grad`, applied in place by `ApplyGradientDescent` ops.
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::train::{GradientDescent, Optimizer};
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let w = g.variable(&g.scalar(3.0, DType::F32)?, "w", true)?;
/// let loss = math::square(&w)?;
/// let train = g.name_scope("train", || GradientDescent::new(0.25).minimize(&loss))?;
/// assert_eq!(train.name(), "train/GradientDescent");
/// let mut sess = Session::new(&g)?;
/// sess.run_targets(&[&g.global_variables_initializer()?], &[])?;
/// sess.run_targets(&[&train], &[])?; // w = 3 - 0.25 * 6
/// assert_eq!(sess.run(&[&w], &[])?[0].scalar_f64(), Some(1.5));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct GradientDescent {
    learning_rate: f64,
}

impl GradientDescent {
    /// An optimizer with a fixed learning rate.
    pub fn new(learning_rate: f64) -> GradientDescent {
        GradientDescent { learning_rate }
    }
}

impl Optimizer for GradientDescent {
    fn name(&self) -> &str {
        "GradientDescent"
    }

    fn apply_gradients(&self, grads_and_vars: &[GradAndVar], global_step: Option<&Variable>) -> Result<Operation> {
        let Some((_, first)) = grads_and_vars.first() else {
            return Err(crate::Error::NotFound { what: "gradient to apply", name: self.name().into() });
        };
        let g = first.graph().clone();
        let scope = g.enter_name_scope(self.name());
        let full = g.current_name_scope();
        let lr = g.scalar(self.learning_rate, first.dtype())?;
        let lr = crate::math::identity(&lr, "learning_rate")?;
        let mut updates = Vec::new();
        for (grad, var) in grads_and_vars {
            let Some(grad) = grad else { continue };
            let _update = g.enter_name_scope(&format!("update_{}", var.name()));
            let lr = if lr.dtype() == var.dtype() { lr.clone() } else { lr.cast(var.dtype())? };
            updates.push(crate::state::apply_gradient_descent(var, &lr, grad)?);
        }
        drop(scope);
        finish(&full, &updates, global_step)
    }
}
