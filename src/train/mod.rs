//! Optimizers with TF1's semantics: `compute_gradients`, `apply_gradients`, `minimize`.

mod adam;
mod gradient_descent;

pub use adam::Adam;
pub use gradient_descent::GradientDescent;

use crate::{Error, Operation, Result, Tensor, Variable};

/// A gradient (if the loss depends on the variable) paired with its variable.
pub type GradAndVar = (Option<Tensor>, Variable);

/// The optimizer interface of TF1's `tf.train.Optimizer`.
pub trait Optimizer {
    /// The default name scope of the update ops, like `GradientDescent`.
    fn name(&self) -> &str;

    /// Appends ops applying `grads_and_vars`; the returned op runs all updates and, if given,
    /// increments `global_step` after them.
    fn apply_gradients(&self, grads_and_vars: &[GradAndVar], global_step: Option<&Variable>) -> Result<Operation>;

    /// Gradients of `loss` for `var_list` (default: the trainable variables), under a
    /// `gradients` name scope.
    fn compute_gradients(&self, loss: &Tensor, var_list: Option<&[Variable]>) -> Result<Vec<GradAndVar>> {
        let vars = match var_list {
            Some(v) => v.to_vec(),
            None => loss.graph().trainable_variables(),
        };
        if vars.is_empty() {
            return Err(Error::NotFound { what: "variable to optimize", name: loss.name() });
        }
        let xs: Vec<&Tensor> = vars.iter().map(|v| v.value()).collect();
        let grads = tensorgraph_autodiff::gradients(&[loss], &xs, None)?;
        Ok(grads.into_iter().zip(vars).collect())
    }

    /// `compute_gradients` then `apply_gradients`, like `optimizer.minimize(loss)`.
    fn minimize(&self, loss: &Tensor) -> Result<Operation> {
        self.minimize_with(loss, None, None)
    }

    /// [`Optimizer::minimize`] with an explicit `var_list` and `global_step`.
    fn minimize_with(
        &self,
        loss: &Tensor,
        var_list: Option<&[Variable]>,
        global_step: Option<&Variable>,
    ) -> Result<Operation> {
        let gv = self.compute_gradients(loss, var_list)?;
        if gv.iter().all(|(g, _)| g.is_none()) {
            return Err(Error::NotFound { what: "gradient for any variable of the loss", name: loss.name() });
        }
        self.apply_gradients(&gv, global_step)
    }
}

/// Shared tail of every optimizer's `apply_gradients`: groups `updates` into one op named after
/// the optimizer's scope (`train/GradientDescent`), incrementing `global_step` if given.
pub(crate) fn finish(scope: &str, updates: &[Operation], global_step: Option<&Variable>) -> Result<Operation> {
    let g = match updates.first() {
        Some(u) => u.graph().clone(),
        None => return Err(Error::NotFound { what: "gradient to apply", name: scope.to_string() }),
    };
    let refs: Vec<&Operation> = updates.iter().collect();
    let name = format!("{scope}/");
    match global_step {
        Some(step) => g.control_dependencies(&refs, || {
            let one = g.scalar(1.0, step.dtype())?;
            Ok(crate::state::assign_add(step, &one)?.op())
        }),
        None => crate::state::group(&g, &refs, &name),
    }
}
