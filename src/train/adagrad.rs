//! Adagrad, as `tf.train.AdagradOptimizer` (TF1 semantics, defaults and slot names).

use super::{apply_rule, GradAndVar, LearningRate, Optimizer, Rule};
use crate::{ApplyOp, Initializer, Operation, Result, Variable};

/// Adagrad: `accum += grad²`, `var -= lr·grad/√accum` (TF's `ApplyAdagrad`). The accumulator
/// slot is `<var>/Adagrad`, starting at `initial_accumulator_value` (TF1's default 0.1).
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::train::Adagrad;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let w = g.variable(&g.scalar(1.0, DType::F32)?, "w", true)?;
/// let train = Adagrad::new(0.1).minimize(&math::square(&w)?)?;
/// let mut sess = Session::new(&g)?;
/// sess.run(&g.global_variables_initializer()?, &[])?;
/// sess.run(&train, &[])?; // accum = 0.1 + 4; w = 1 - 0.1·2/√4.1
/// let w1: f32 = sess.run(&w, &[])?.try_into()?;
/// assert!((w1 - (1.0 - 0.2 / 4.1f32.sqrt())).abs() < 1e-6);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Adagrad {
    pub learning_rate: LearningRate,
    pub initial_accumulator_value: f64,
}

impl Adagrad {
    /// Adagrad with TF1's initial accumulator value, 0.1.
    pub fn new(learning_rate: impl Into<LearningRate>) -> Adagrad {
        Adagrad { learning_rate: learning_rate.into(), initial_accumulator_value: 0.1 }
    }

    /// Starts every accumulator at `value` (TF requires it positive).
    pub fn initial_accumulator_value(mut self, value: f64) -> Adagrad {
        self.initial_accumulator_value = value;
        self
    }
}

impl Optimizer for Adagrad {
    fn name(&self) -> &str {
        "Adagrad"
    }

    fn apply_gradients(&self, grads_and_vars: &[GradAndVar], global_step: Option<&Variable>) -> Result<Operation> {
        let rule = Rule {
            name: self.name(),
            op: ApplyOp::Adagrad,
            slots: &[(0, Initializer::Constant(self.initial_accumulator_value))],
            hyper: &|g, dtype| Ok(vec![self.learning_rate.tensor(g, dtype, "learning_rate")?]),
            arrange: |h, grad| vec![h[0].clone(), grad.clone()],
            after: None,
        };
        apply_rule(&rule, grads_and_vars, global_step)
    }
}
