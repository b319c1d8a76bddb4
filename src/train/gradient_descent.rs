//! Plain gradient descent, as `tf.train.GradientDescentOptimizer`.

use super::{apply_rule, GradAndVar, LearningRate, Optimizer, Rule};
use crate::{ApplyOp, Operation, Result, Variable};

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
/// sess.run(&g.global_variables_initializer()?, &[])?;
/// sess.run(&train, &[])?; // w = 3 - 0.25 * 6
/// let w_val: f32 = sess.run(&w, &[])?.try_into()?;
/// assert_eq!(w_val, 1.5);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct GradientDescent {
    pub learning_rate: LearningRate,
}

impl GradientDescent {
    /// An optimizer with a fixed or scheduled learning rate.
    pub fn new(learning_rate: impl Into<LearningRate>) -> GradientDescent {
        GradientDescent { learning_rate: learning_rate.into() }
    }
}

impl Optimizer for GradientDescent {
    fn name(&self) -> &str {
        "GradientDescent"
    }

    fn apply_gradients(&self, grads_and_vars: &[GradAndVar], global_step: Option<&Variable>) -> Result<Operation> {
        let rule = Rule {
            name: self.name(),
            op: ApplyOp::GradientDescent,
            slots: &[],
            hyper: &|g, dtype| Ok(vec![self.learning_rate.tensor(g, dtype, "learning_rate")?]),
            arrange: |h, grad| vec![h[0].clone(), grad.clone()],
            after: None,
        };
        apply_rule(&rule, grads_and_vars, global_step)
    }
}
