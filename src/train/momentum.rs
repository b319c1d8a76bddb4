//! Momentum, as `tf.train.MomentumOptimizer` (TF1 semantics and slot names).

use super::{apply_rule, GradAndVar, LearningRate, Optimizer, Rule};
use crate::{ApplyOp, Initializer, Operation, Result, Variable};

/// Gradient descent with momentum: `accum = momentum·accum + grad`, `var -= lr·accum`; with
/// Nesterov, `var -= lr·grad + lr·momentum·accum` (TF's `ApplyMomentum`). The accumulator slot is
/// `<var>/Momentum`, starting at zero.
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::train::Momentum;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let w = g.variable(&g.scalar(1.0, DType::F32)?, "w", true)?;
/// let train = Momentum::new(0.1, 0.9).use_nesterov(true).minimize(&math::square(&w)?)?;
/// assert_eq!(train.name(), "Momentum");
/// let names: Vec<String> = g.global_variables().iter().map(|v| v.name()).collect();
/// assert_eq!(names, ["w", "w/Momentum"]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Momentum {
    pub learning_rate: LearningRate,
    pub momentum: LearningRate,
    pub use_nesterov: bool,
}

impl Momentum {
    /// Momentum without Nesterov (TF1 has no default for either rate).
    pub fn new(learning_rate: impl Into<LearningRate>, momentum: impl Into<LearningRate>) -> Momentum {
        Momentum { learning_rate: learning_rate.into(), momentum: momentum.into(), use_nesterov: false }
    }

    /// Nesterov's accelerated gradient instead of classical momentum.
    pub fn use_nesterov(mut self, on: bool) -> Momentum {
        self.use_nesterov = on;
        self
    }
}

impl Optimizer for Momentum {
    fn name(&self) -> &str {
        "Momentum"
    }

    fn apply_gradients(&self, grads_and_vars: &[GradAndVar], global_step: Option<&Variable>) -> Result<Operation> {
        let rule = Rule {
            name: self.name(),
            op: ApplyOp::Momentum { use_nesterov: self.use_nesterov },
            slots: &[(0, Initializer::Zeros)],
            hyper: &|g, dtype| {
                Ok(vec![
                    self.learning_rate.tensor(g, dtype, "learning_rate")?,
                    self.momentum.tensor(g, dtype, "momentum")?,
                ])
            },
            // TF's input order: (var, accum, lr, grad, momentum).
            arrange: |h, grad| vec![h[0].clone(), grad.clone(), h[1].clone()],
            after: None,
        };
        apply_rule(&rule, grads_and_vars, global_step)
    }
}
