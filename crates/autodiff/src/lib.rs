//! Reverse-mode automatic differentiation for tensorgraph, as `tf.gradients`.
//!
//! [`gradients`] walks the graph backwards from `ys` and appends the backward ops to the same
//! graph under a `gradients/` name scope. Gradient rules emit graph ops (never closures over
//! values), so the result can be differentiated again.
//!
//! ```
//! use tensorgraph_graph::Named;
//! use tensorgraph_graph::{Graph, DType, ops::math};
//! # fn main() -> tensorgraph_graph::Result<()> {
//! let g = Graph::new();
//! let x = g.placeholder(DType::F64, [3]).named("x")?;
//! let y = math::reduce_sum(&math::square(&x)?, None).named("y")?;
//! let dx = tensorgraph_autodiff::gradients(&[&y], &[&x], None)?;
//! assert_eq!(dx[0].as_ref().unwrap().op_name(), "gradients/Square_grad/Mul_1");
//! # Ok(()) }
//! ```

mod rules;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use tensorgraph_graph::ops::{array, math};
use tensorgraph_graph::{EdgeKind, Endpoint, Error, Graph, NodeIndex, Op, Result, Tensor};

/// Symbolic partial derivatives of `sum(ys)` with respect to each of `xs`, as `tf.gradients`.
///
/// `grad_ys` weights each `y` (default: ones, i.e. the gradient of the plain sum). The result
/// has one entry per `x`: `None` when no `y` depends on it through differentiable ops.
pub fn gradients(ys: &[&Tensor], xs: &[&Tensor], grad_ys: Option<&[&Tensor]>) -> Result<Vec<Option<Tensor>>> {
    let Some(first) = ys.first() else { return Ok(vec![None; xs.len()]) };
    let g = first.graph().clone();
    if let Some(gy) = grad_ys {
        if gy.len() != ys.len() {
            return Err(Error::NotFound { what: "grad_ys entry for each y (lengths differ)", name: String::new() });
        }
    }
    g.name_scope("gradients", || backprop(&g, ys, xs, grad_ys))
}

/// Nodes on a path from some `x` to some `y`, through data edges.
fn between(g: &Graph, ys: &[&Tensor], xs: &[&Tensor]) -> BTreeSet<NodeIndex> {
    g.read(|d| {
        let mut forward: BTreeSet<NodeIndex> = BTreeSet::new();
        let mut stack: Vec<NodeIndex> = xs.iter().map(|x| x.endpoint().node).collect();
        while let Some(n) = stack.pop() {
            if forward.insert(n) {
                stack.extend(
                    d.dag
                        .edges_directed(n, petgraph::Direction::Outgoing)
                        .filter(|e| matches!(e.weight(), EdgeKind::Data { .. }))
                        .map(|e| petgraph::visit::EdgeRef::target(&e)),
                );
            }
        }
        let mut result = BTreeSet::new();
        let mut stack: Vec<NodeIndex> = ys.iter().map(|y| y.endpoint().node).collect();
        while let Some(n) = stack.pop() {
            if forward.contains(&n) && result.insert(n) {
                stack.extend(d.node(n).inputs.iter().map(|e| e.node));
            }
        }
        result
    })
}

/// Sums the gradient contributions to one tensor: the single place where fan-out is handled.
fn sum_grads(mut grads: Vec<Tensor>) -> Result<Option<Tensor>> {
    Ok(match grads.len() {
        0 => None,
        1 => grads.pop(),
        _ => Some(math::add_n(&grads.iter().collect::<Vec<_>>())?),
    })
}

fn backprop(g: &Graph, ys: &[&Tensor], xs: &[&Tensor], grad_ys: Option<&[&Tensor]>) -> Result<Vec<Option<Tensor>>> {
    let nodes = between(g, ys, xs);
    let mut pending: HashMap<Endpoint, Vec<Tensor>> = HashMap::new();
    for (i, y) in ys.iter().enumerate() {
        let gy = match grad_ys {
            Some(gy) => gy[i].clone(),
            None => match y.shape().to_vec() {
                Some(shape) => array::fill(g, &shape, y.dtype(), 1.0)?,
                None => array::ones_like(y)?,
            },
        };
        pending.entry(y.endpoint()).or_default().push(gy);
    }
    let x_eps: BTreeSet<Endpoint> = xs.iter().map(|x| x.endpoint()).collect();
    let mut done: BTreeMap<Endpoint, Option<Tensor>> = BTreeMap::new();
    // Node indices follow creation order and inputs exist before their consumers, so
    // descending index order is a reverse topological order.
    for &n in nodes.iter().rev() {
        let (op, n_out, name, inputs, float_inputs) = g.read(|d| {
            let node = d.node(n);
            let floats: Vec<bool> = node.inputs.iter().map(|&e| d.spec(e).dtype.is_float()).collect();
            (node.op.clone(), node.outputs.len(), node.name.clone(), node.inputs.clone(), floats)
        });
        let grads_per_slot: Vec<Vec<Tensor>> =
            (0..n_out).map(|slot| pending.remove(&Endpoint { node: n, slot }).unwrap_or_default()).collect();
        if grads_per_slot.iter().all(Vec::is_empty) {
            continue;
        }
        // One scope per differentiated op, as TF's `gradients/<op name>_grad/`.
        let _scope = g.enter_name_scope(&format!("{name}_grad"));
        let mut out_grads = Vec::with_capacity(n_out);
        for (slot, grads) in grads_per_slot.into_iter().enumerate() {
            let summed = sum_grads(grads)?;
            let ep = Endpoint { node: n, slot };
            if x_eps.contains(&ep) {
                done.insert(ep, summed.clone());
            }
            out_grads.push(summed);
        }
        if inputs.is_empty() {
            continue;
        }
        let op_handle = g.operation_by_name(&name)?;
        let in_tensors: Vec<Tensor> =
            inputs.iter().map(|&e| Tensor::from_endpoint(g, e).expect("input exists")).collect();
        let ctx = rules::Ctx { op: &op, node: &op_handle, inputs: &in_tensors, grads: &out_grads };
        let raw = rules::grad(&ctx)?;
        // Broadcasting ops: reduce each input's gradient back to its shape, in one place.
        let in_grads: Vec<Option<Tensor>> = if matches!(op, Op::Binary(_) | Op::Select) {
            raw.into_iter()
                .zip(&in_tensors)
                .map(|(gr, x)| gr.map(|gr| unbroadcast(gr, x)).transpose())
                .collect::<Result<_>>()?
        } else {
            raw
        };
        for ((gr, e), is_float) in in_grads.into_iter().zip(inputs).zip(float_inputs) {
            if let (Some(gr), true) = (gr, is_float) {
                if nodes.contains(&e.node) {
                    pending.entry(e).or_default().push(gr);
                }
            }
        }
    }
    xs.iter()
        .map(|x| match done.get(&x.endpoint()) {
            Some(grad) => Ok(grad.clone()),
            // An x that is also reached only as a y (or not at all).
            None => sum_grads(pending.remove(&x.endpoint()).unwrap_or_default()),
        })
        .collect()
}

/// Sums `grad` down to `x`'s shape unless both are statically equal and fully known.
fn unbroadcast(grad: Tensor, x: &Tensor) -> Result<Tensor> {
    let (gs, xs) = (grad.shape(), x.shape());
    if gs == xs && xs.is_fully_defined() {
        Ok(grad)
    } else {
        array::sum_to_shape(&grad, x)
    }
}
