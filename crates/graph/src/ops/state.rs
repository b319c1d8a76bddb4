//! Assignments, grouping and no-ops (`tf.assign`, `tf.group`, `tf.no_op`).

use crate::error::{Result, SourceLocation};
use crate::graph::{Graph, Operation, Tensor};
use crate::op::Op;
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
pub fn no_op(g: &Graph, name: &str) -> Result<Operation> {
    g.add_node(Op::NoOp, &[], &[], (!name.is_empty()).then_some(name), SourceLocation::caller())
}

/// One op that runs all of `ops` (`tf.group`).
#[track_caller]
pub fn group(g: &Graph, ops: &[&Operation], name: &str) -> Result<Operation> {
    g.add_node(Op::NoOp, &[], ops, Some(if name.is_empty() { "group_deps" } else { name }), SourceLocation::caller())
}

/// `var -= alpha * delta` in place (`ApplyGradientDescent`); runs for its effect.
#[track_caller]
pub fn apply_gradient_descent(var: &Variable, alpha: &Tensor, delta: &Tensor) -> Result<Operation> {
    var.graph().add_node(
        Op::ApplyGradientDescent,
        &[var.var_ref(), alpha, delta],
        &[],
        Some("ApplyGradientDescent"),
        SourceLocation::caller(),
    )
}

/// One Adam step on `var` with slots `m` and `v` (`ApplyAdam`); runs for its effect.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub fn apply_adam(
    var: &Variable,
    m: &Variable,
    v: &Variable,
    beta1_power: &Tensor,
    beta2_power: &Tensor,
    lr: &Tensor,
    beta1: &Tensor,
    beta2: &Tensor,
    epsilon: &Tensor,
    grad: &Tensor,
) -> Result<Operation> {
    var.graph().add_node(
        Op::ApplyAdam,
        &[var.var_ref(), m.var_ref(), v.var_ref(), beta1_power, beta2_power, lr, beta1, beta2, epsilon, grad],
        &[],
        Some("ApplyAdam"),
        SourceLocation::caller(),
    )
}
