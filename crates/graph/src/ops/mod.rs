//! Graph-building functions, one module per op family, named as TF's Python API names them.
//! Every function returns `Result`: a bad shape or dtype is an error naming the node.

pub mod array;
pub mod control_flow;
pub mod math;
pub mod nn;
mod operators;
pub mod random;
pub mod state;
pub mod summary;

use crate::error::{Error, NodeInfo, Result, SourceLocation};
use crate::graph::Tensor;

/// Normalises a possibly negative `axis` against `rank` (`rank_extra` allows `axis == rank`,
/// for ops that insert a dimension).
#[track_caller]
pub(crate) fn norm_axis(x: &Tensor, axis: i64, rank_extra: usize, op: &str) -> Result<usize> {
    let rank = (x.shape().rank() + rank_extra) as i64;
    let a = if axis < 0 { axis + rank } else { axis };
    if (0..rank).contains(&a) {
        Ok(a as usize)
    } else {
        Err(invalid(x, op, format!("axis {axis} out of range for input {} of shape {}", x.name(), x.shape())))
    }
}

/// An invalid argument to the op `op` that was about to be built (in the current name scope, from
/// the caller's line) on input `x`: the error names that op, not the input.
#[track_caller]
pub(crate) fn invalid(x: &Tensor, op: &str, detail: String) -> Error {
    let scope = x.graph().current_name_scope();
    let name = if scope.is_empty() { op.to_string() } else { format!("{scope}/{op}") };
    Error::InvalidArgument { node: NodeInfo { name, op: op.to_string(), location: SourceLocation::caller() }, detail }
}

#[track_caller]
pub(crate) fn norm_axes(x: &Tensor, axes: &[i64], op: &str) -> Result<Vec<usize>> {
    let mut v = axes.iter().map(|&a| norm_axis(x, a, 0, op)).collect::<Result<Vec<_>>>()?;
    v.sort_unstable();
    v.dedup();
    Ok(v)
}
