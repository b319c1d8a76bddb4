//! Optimizers with TF1's semantics, defaults and slot names (`compute_gradients`,
//! `apply_gradients`, `minimize`), and learning-rate schedules driven by a `global_step`.

mod adagrad;
mod adam;
mod gradient_descent;
mod momentum;
mod rmsprop;
mod schedules;

pub use adagrad::Adagrad;
pub use adam::Adam;
pub use gradient_descent::GradientDescent;
pub use momentum::Momentum;
pub use rmsprop::RMSProp;
pub use schedules::{exponential_decay, get_or_create_global_step, piecewise_constant};

use crate::Named;
use crate::{ApplyOp, DType, Error, Graph, Initializer, Operation, Result, Tensor, Variable};

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

/// A learning rate (or any optimizer hyperparameter that TF1 lets be a tensor): a number, or
/// a scalar tensor such as a decay schedule's output.
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::train::{self, Momentum};
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let step = train::get_or_create_global_step(&g)?;
/// let lr = train::exponential_decay(0.1, &step, 1000, 0.96, true)?;
/// let _fixed = Momentum::new(0.01, 0.9);
/// let _decayed = Momentum::new(&lr, 0.9);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub enum LearningRate {
    Constant(f64),
    Tensor(Tensor),
}

impl From<f64> for LearningRate {
    fn from(v: f64) -> LearningRate {
        LearningRate::Constant(v)
    }
}

impl From<Tensor> for LearningRate {
    fn from(t: Tensor) -> LearningRate {
        LearningRate::Tensor(t)
    }
}

impl From<&Tensor> for LearningRate {
    fn from(t: &Tensor) -> LearningRate {
        LearningRate::Tensor(t.clone())
    }
}

impl LearningRate {
    /// The rate as a scalar of `dtype` in the current name scope (a constant is named `name`).
    pub(crate) fn tensor(&self, g: &Graph, dtype: DType, name: &str) -> Result<Tensor> {
        match self {
            LearningRate::Constant(v) => crate::math::identity(&g.scalar(*v, dtype)?).named(name),
            LearningRate::Tensor(t) if t.dtype() == dtype => Ok(t.clone()),
            LearningRate::Tensor(t) => t.cast(dtype),
        }
    }
}

/// Builds ops that run after all of an optimizer's updates, from its hyperparameters.
pub(crate) type AfterUpdates<'a> = dyn Fn(&Graph, &[Tensor]) -> Result<Vec<Operation>> + 'a;

/// What one optimizer contributes to the shared `apply_gradients` body ([`apply_rule`]).
pub(crate) struct Rule<'a> {
    /// The name scope of the update ops, and the slot names' suffix (`w/Momentum`).
    pub name: &'a str,
    pub op: ApplyOp,
    /// The slots in the op's input order, each with its rank in TF's creation order (which
    /// names them `<var>/<name>`, `<var>/<name>_1`, ...) and its initial value.
    pub slots: &'a [(usize, Initializer)],
    /// The hyperparameters, built once inside the optimizer's name scope for the given dtype.
    pub hyper: &'a dyn Fn(&Graph, DType) -> Result<Vec<Tensor>>,
    /// The op's inputs after the slots, in TF's order, from the hyperparameters and the gradient.
    pub arrange: fn(&[Tensor], &Tensor) -> Vec<Tensor>,
    /// Ops to run after every update (Adam's beta powers), built from the hyperparameters.
    pub after: Option<&'a AfterUpdates<'a>>,
}

/// The shared body of every optimizer's `apply_gradients`: for each variable with a gradient,
/// creates its slots and an `Apply*` op in scope `<name>/update_<var>`, then groups the updates
/// (see [`finish`]). Variables of another dtype than the first get cast hyperparameters.
pub(crate) fn apply_rule(
    rule: &Rule,
    grads_and_vars: &[GradAndVar],
    global_step: Option<&Variable>,
) -> Result<Operation> {
    let live: Vec<(&Tensor, &Variable)> =
        grads_and_vars.iter().filter_map(|(g, v)| g.as_ref().map(|g| (g, v))).collect();
    let Some((_, first)) = live.first() else {
        return Err(Error::NotFound { what: "gradient to apply", name: rule.name.into() });
    };
    let g = first.graph().clone();
    let dtype = first.dtype();
    let scope = g.enter_name_scope(rule.name);
    let full = g.current_name_scope();
    let hyper = (rule.hyper)(&g, dtype)?;
    let mut updates = Vec::with_capacity(live.len() + 2);
    for (grad, var) in &live {
        let shape = var.shape().to_vec().expect("variables have known shapes");
        // Created in TF's order (by suffix), passed in the op's.
        let mut order: Vec<usize> = (0..rule.slots.len()).collect();
        order.sort_by_key(|&i| rule.slots[i].0);
        let mut slots: Vec<Option<Variable>> = vec![None; rule.slots.len()];
        for i in order {
            let name = g.unique_variable_name(&format!("{}/{}", var.name(), rule.name));
            slots[i] = Some(g.new_variable(&name, &shape, var.dtype(), &rule.slots[i].1, false)?);
        }
        let slots: Vec<Variable> = slots.into_iter().flatten().collect();
        let _update = g.enter_name_scope(&format!("update_{}", var.name()));
        let hyper = match var.dtype() {
            d if d == dtype => hyper.clone(),
            d => hyper.iter().map(|h| h.cast(d)).collect::<Result<_>>()?,
        };
        let refs: Vec<&Variable> = std::iter::once(*var).chain(&slots).collect();
        let rest = (rule.arrange)(&hyper, grad);
        updates.push(crate::state::apply(rule.op, &refs, &rest.iter().collect::<Vec<_>>())?);
    }
    if let Some(after) = rule.after {
        let refs: Vec<&Operation> = updates.iter().collect();
        let extra = g.control_dependencies(&refs, || after(&g, &hyper))?;
        updates.extend(extra);
    }
    drop(scope);
    finish(&full, &updates, global_step)
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
        None => crate::state::group(&g, &refs).named(&name),
    }
}
