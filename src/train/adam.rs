//! Adam, as `tf.train.AdamOptimizer` (TF1 semantics, defaults and variable names).

use super::{apply_rule, GradAndVar, LearningRate, Optimizer, Rule};
use crate::Named;
use crate::{ApplyOp, Initializer, Operation, Result, Variable};

/// Adam with TF1's defaults: learning rate 0.001, beta1 0.9, beta2 0.999, epsilon 1e-8.
///
/// Slots are named as TF names them: `<var>/Adam` (first moment) and `<var>/Adam_1` (second
/// moment); the bias-correction accumulators are the variables `beta1_power` and `beta2_power`,
/// multiplied by beta1 and beta2 after each step. A second Adam in the same graph gets
/// `beta1_power_1`, `<var>/Adam_2`, ..., as in TF.
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
/// let _second = Adam::default().minimize(&math::square(&w)?)?;
/// let names: Vec<String> = g.global_variables().iter().skip(5).map(|v| v.name()).collect();
/// assert_eq!(names, ["beta1_power_1", "beta2_power_1", "w/Adam_2", "w/Adam_3"]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Adam {
    pub learning_rate: LearningRate,
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
}

impl Default for Adam {
    fn default() -> Adam {
        Adam { learning_rate: LearningRate::Constant(0.001), beta1: 0.9, beta2: 0.999, epsilon: 1e-8 }
    }
}

impl Adam {
    /// Adam with `learning_rate` and the other defaults.
    pub fn new(learning_rate: impl Into<LearningRate>) -> Adam {
        Adam { learning_rate: learning_rate.into(), ..Adam::default() }
    }
}

impl Optimizer for Adam {
    fn name(&self) -> &str {
        "Adam"
    }

    fn apply_gradients(&self, grads_and_vars: &[GradAndVar], global_step: Option<&Variable>) -> Result<Operation> {
        let Some((_, first)) = grads_and_vars.iter().find(|(g, _)| g.is_some()) else {
            return Err(crate::Error::NotFound { what: "gradient to apply", name: self.name().into() });
        };
        let g = first.graph().clone();
        // Non-slot variables, created before the slots and outside the optimizer's scope (TF1).
        let power = |name: &str, value: f64| {
            let name = g.unique_variable_name(name);
            g.new_variable(&name, &[], first.dtype(), &Initializer::Constant(value), false)
        };
        let (beta1_power, beta2_power) = (power("beta1_power", self.beta1)?, power("beta2_power", self.beta2)?);
        let rule = Rule {
            name: self.name(),
            op: ApplyOp::Adam,
            slots: &[(0, Initializer::Zeros), (1, Initializer::Zeros)],
            hyper: &|g, dtype| {
                let constant = |v: f64, name: &str| crate::math::identity(&g.scalar(v, dtype)?).named(name);
                Ok(vec![
                    (*beta1_power).clone(),
                    (*beta2_power).clone(),
                    self.learning_rate.tensor(g, dtype, "learning_rate")?,
                    constant(self.beta1, "beta1")?,
                    constant(self.beta2, "beta2")?,
                    constant(self.epsilon, "epsilon")?,
                ])
            },
            arrange: |h, grad| h.iter().chain([grad]).cloned().collect(),
            // After every update: beta powers *= betas.
            after: Some(&|_, h| {
                let a1 = crate::state::assign(&beta1_power, &crate::math::mul(&beta1_power.read_value()?, &h[3])?)?;
                let a2 = crate::state::assign(&beta2_power, &crate::math::mul(&beta2_power.read_value()?, &h[4])?)?;
                Ok(vec![a1.op(), a2.op()])
            }),
        };
        apply_rule(&rule, grads_and_vars, global_step)
    }
}
