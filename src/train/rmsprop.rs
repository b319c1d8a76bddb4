//! RMSProp, as `tf.train.RMSPropOptimizer` (TF1 semantics, defaults and slot names).

use super::{apply_rule, GradAndVar, LearningRate, Optimizer, Rule};
use crate::Named;
use crate::{ApplyOp, Initializer, Operation, Result, Variable};

/// RMSProp with TF1's defaults (decay 0.9, momentum 0, epsilon 1e-10, not centered):
/// `ms = ms + (grad² - ms)(1 - decay)`, `mom = momentum·mom + lr·grad/√(ms + ε)`, `var -= mom`.
/// Centered, it also tracks the mean gradient `mg` and divides by `√(ms - mg² + ε)`.
///
/// Slots as TF names them: `<var>/RMSProp` (ms, starting at one), then `<var>/RMSProp_1`
/// (momentum), or when centered `<var>/RMSProp_1` (mg) and `<var>/RMSProp_2` (momentum).
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::train::RMSProp;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let w = g.variable(&g.scalar(1.0, DType::F32)?, "w", true)?;
/// let train = RMSProp::new(0.01).momentum(0.9).centered(true).minimize(&math::square(&w)?)?;
/// assert_eq!(train.name(), "RMSProp");
/// let names: Vec<String> = g.global_variables().iter().map(|v| v.name()).collect();
/// assert_eq!(names, ["w", "w/RMSProp", "w/RMSProp_1", "w/RMSProp_2"]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RMSProp {
    pub learning_rate: LearningRate,
    pub decay: f64,
    pub momentum: f64,
    pub epsilon: f64,
    pub centered: bool,
}

impl RMSProp {
    /// RMSProp with `learning_rate` and TF1's other defaults.
    pub fn new(learning_rate: impl Into<LearningRate>) -> RMSProp {
        RMSProp { learning_rate: learning_rate.into(), decay: 0.9, momentum: 0.0, epsilon: 1e-10, centered: false }
    }

    /// The discounting factor of the squared-gradient average (TF's `decay`, the op's `rho`).
    pub fn decay(mut self, decay: f64) -> RMSProp {
        self.decay = decay;
        self
    }

    pub fn momentum(mut self, momentum: f64) -> RMSProp {
        self.momentum = momentum;
        self
    }

    pub fn epsilon(mut self, epsilon: f64) -> RMSProp {
        self.epsilon = epsilon;
        self
    }

    /// Normalises by the gradient's estimated variance instead of its second moment.
    pub fn centered(mut self, on: bool) -> RMSProp {
        self.centered = on;
        self
    }
}

impl Optimizer for RMSProp {
    fn name(&self) -> &str {
        "RMSProp"
    }

    fn apply_gradients(&self, grads_and_vars: &[GradAndVar], global_step: Option<&Variable>) -> Result<Operation> {
        let (op, slots) = if self.centered {
            (ApplyOp::CenteredRMSProp, vec![(1, Initializer::Zeros), (0, Initializer::Ones), (2, Initializer::Zeros)])
        } else {
            (ApplyOp::RMSProp, vec![(0, Initializer::Ones), (1, Initializer::Zeros)])
        };
        let rule = Rule {
            name: self.name(),
            op,
            slots: &slots,
            hyper: &|g, dtype| {
                let constant = |v: f64, name: &str| crate::math::identity(&g.scalar(v, dtype)?).named(name);
                Ok(vec![
                    self.learning_rate.tensor(g, dtype, "learning_rate")?,
                    constant(self.decay, "decay")?,
                    constant(self.momentum, "momentum")?,
                    constant(self.epsilon, "epsilon")?,
                ])
            },
            // TF's input order after the slots: (lr, rho, momentum, epsilon, grad).
            arrange: |h, grad| h.iter().chain([grad]).cloned().collect(),
            after: None,
        };
        apply_rule(&rule, grads_and_vars, global_step)
    }
}
