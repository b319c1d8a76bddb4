//! Adam, as `tf.train.AdamOptimizer` (TF1 semantics, defaults and variable names).

use super::{GradAndVar, Optimizer};
use crate::{Error, Initializer, Operation, Result, Variable};

/// Adam with TF1's defaults: learning rate 0.001, beta1 0.9, beta2 0.999, epsilon 1e-8.
///
/// Slots are named as TF names them: `<var>/Adam` (first moment) and `<var>/Adam_1` (second
/// moment); the bias-correction accumulators are the variables `beta1_power` and `beta2_power`,
/// multiplied by beta1 and beta2 after each step.
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::train::Adam;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let w = g.variable(&g.scalar(1.0, DType::F32)?, "w", true)?;
/// let train = g.name_scope("train", || Adam::default().minimize(&math::square(&w)?))?;
/// assert_eq!(train.name(), "train/Adam");
/// let names: Vec<String> = g.global_variables().iter().map(|v| v.name()).collect();
/// assert_eq!(names, ["w", "beta1_power", "beta2_power", "w/Adam", "w/Adam_1"]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Adam {
    pub learning_rate: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
}

impl Default for Adam {
    fn default() -> Adam {
        Adam { learning_rate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 }
    }
}

impl Adam {
    /// Adam with `learning_rate` and the other defaults.
    pub fn new(learning_rate: f64) -> Adam {
        Adam { learning_rate, ..Adam::default() }
    }
}

impl Optimizer for Adam {
    fn name(&self) -> &str {
        "Adam"
    }

    fn apply_gradients(&self, grads_and_vars: &[GradAndVar], global_step: Option<&Variable>) -> Result<Operation> {
        let live: Vec<(&crate::Tensor, &Variable)> =
            grads_and_vars.iter().filter_map(|(g, v)| g.as_ref().map(|g| (g, v))).collect();
        let Some((_, first)) = live.first() else {
            return Err(Error::NotFound { what: "gradient to apply", name: self.name().into() });
        };
        let g = first.graph().clone();
        let dtype = first.dtype();
        if let Some((_, v)) = live.iter().find(|(_, v)| v.dtype() != dtype) {
            return Err(Error::DTypeMismatch {
                node: v.op().info(),
                detail: format!(
                    "Adam updates variables of one dtype: {} is {}, {} is {dtype}",
                    v.name(),
                    v.dtype(),
                    first.name()
                ),
            });
        }
        let power = |name: &str, value: f64| g.new_variable(name, &[], dtype, &Initializer::Constant(value), false);
        let beta1_power = power("beta1_power", self.beta1)?;
        let beta2_power = power("beta2_power", self.beta2)?;
        let scope = g.enter_name_scope(self.name());
        let full = g.current_name_scope();
        let constant = |v: f64, name: &str| crate::math::identity(&g.scalar(v, dtype)?, name);
        let (lr, b1, b2, eps) = (
            constant(self.learning_rate, "learning_rate")?,
            constant(self.beta1, "beta1")?,
            constant(self.beta2, "beta2")?,
            constant(self.epsilon, "epsilon")?,
        );
        let mut updates = Vec::with_capacity(live.len());
        for (grad, var) in &live {
            let shape = var.shape().to_vec().expect("variables have known shapes");
            let m = g.new_variable(&format!("{}/Adam", var.name()), &shape, dtype, &Initializer::Zeros, false)?;
            let v = g.new_variable(&format!("{}/Adam_1", var.name()), &shape, dtype, &Initializer::Zeros, false)?;
            let _update = g.enter_name_scope(&format!("update_{}", var.name()));
            updates.push(crate::state::apply_adam(var, &m, &v, &beta1_power, &beta2_power, &lr, &b1, &b2, &eps, grad)?);
        }
        let refs: Vec<&Operation> = updates.iter().collect();
        let finish = g.control_dependencies(&refs, || {
            let a1 = crate::state::assign(&beta1_power, &crate::math::mul(&beta1_power.read_value()?, &b1)?)?;
            let a2 = crate::state::assign(&beta2_power, &crate::math::mul(&beta2_power.read_value()?, &b2)?)?;
            Ok(vec![a1.op(), a2.op()])
        })?;
        drop(scope);
        let mut all = updates;
        all.extend(finish);
        super::finish(&full, &all, global_step)
    }
}
