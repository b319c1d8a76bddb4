//! Assignments, grouping and no-ops (`tf.assign`, `tf.group`, `tf.no_op`).

use crate::error::{Error, Result, SourceLocation};
use crate::graph::{Graph, Operation, Tensor};
use crate::op::{ApplyOp, Op};
use crate::Variable;

/// `var = value`; the output is the new value.
#[track_caller]
pub fn assign(var: &Variable, value: &Tensor) -> Result<Tensor> {
    var.graph().add_op1(Op::Assign, &[var.var_ref(), value], None)
}

/// `var += value`.
#[track_caller]
pub fn assign_add(var: &Variable, value: &Tensor) -> Result<Tensor> {
    var.graph().add_op1(Op::AssignAdd, &[var.var_ref(), value], None)
}

/// `var -= value`.
#[track_caller]
pub fn assign_sub(var: &Variable, value: &Tensor) -> Result<Tensor> {
    var.graph().add_op1(Op::AssignSub, &[var.var_ref(), value], None)
}

/// An op that does nothing but can carry control inputs (`tf.no_op`).
#[track_caller]
pub fn no_op(g: &Graph) -> Result<Operation> {
    g.add_node(Op::NoOp, &[], &[], None, SourceLocation::caller())
}

/// One op that runs all of `ops` (`tf.group`).
#[track_caller]
pub fn group(g: &Graph, ops: &[&Operation]) -> Result<Operation> {
    g.add_node(Op::NoOp, &[], ops, Some("group_deps"), SourceLocation::caller())
}

/// An optimizer's in-place update (`ApplyGradientDescent`, `ApplyMomentum`, `ApplyAdam`, ...):
/// `vars` are the variable and its slots, `rest` the other inputs in TF's order (see
/// [`ApplyOp`]). The op is named after its TF type and runs for its effect.
///
/// ```
/// use tensorgraph_graph::{ops::state, ApplyOp, DType, Graph};
/// let g = Graph::new();
/// let w = g.variable(&g.scalar(1.0, DType::F32).unwrap(), "w", true).unwrap();
/// let lr = g.scalar(0.1, DType::F32).unwrap();
/// let step = state::apply(ApplyOp::GradientDescent, &[&w], &[&lr, &g.scalar(2.0, DType::F32).unwrap()]).unwrap();
/// assert_eq!(step.name(), "ApplyGradientDescent");
/// assert!(state::apply(ApplyOp::Adagrad, &[&w], &[&lr]).is_err());
/// ```
#[track_caller]
pub fn apply(op: ApplyOp, vars: &[&Variable], rest: &[&Tensor]) -> Result<Operation> {
    // Arity is checked by inference; plan time checks that the leading inputs are variables.
    let g = match (vars.first(), rest.first()) {
        (Some(v), _) => v.graph(),
        (None, Some(t)) => t.graph(),
        (None, None) => return Err(Error::NotFound { what: "variable to update for", name: op.type_name().into() }),
    };
    let inputs: Vec<&Tensor> = vars.iter().map(|v| v.var_ref()).chain(rest.iter().copied()).collect();
    g.add_node(Op::Apply(op), &inputs, &[], Some(op.type_name()), SourceLocation::caller())
}
