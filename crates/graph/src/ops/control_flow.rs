//! Control flow with run-time decisions: `tf.while_loop` and `tf.cond`, as TF 2's functional
//! `While` and `If` ops whose bodies and branches are function graphs (see
//! [`crate::function`]). Why functional rather than TF1's Switch/Merge/Enter/Exit frames: the
//! executor stays a DAG runner that calls a sub-plan, a body is planned once and rerun per
//! iteration, nesting is a graph inside a graph, and the gradient of a loop is again one op.
//!
//! ```
//! use tensorgraph_graph::{ops::{control_flow, math}, DType, Graph, Named, Shape};
//! # fn main() -> tensorgraph_graph::Result<()> {
//! let g = Graph::new();
//! let n = g.placeholder(DType::I32, Shape::scalar()).named("n")?;
//! let x = g.placeholder(DType::F32, [2]).named("x")?;
//! let i0 = g.scalar(0.0, DType::I32)?;
//! // i, x = 0, x; while i < n: i, x = i + 1, 2 * x
//! let out = control_flow::while_loop(
//!     |v| math::less(&v[0], &n),
//!     |v| Ok(vec![math::add(&v[0], &v[0].graph().scalar(1.0, DType::I32)?)?, math::mul(&v[1], &v[1].graph().scalar(2.0, DType::F32)?)?]),
//!     &[&i0, &x],
//!     None,
//! )?;
//! assert_eq!((out[1].op().op_type(), out[1].shape().to_string()), ("StatelessWhile", "[2]".to_string()));
//! # Ok(()) }
//! ```

use crate::error::Result;
use crate::function::{invalid, Func};
use crate::graph::{Endpoint, Graph, Tensor};
use crate::op::Op;
use crate::{DType, Shape, SourceLocation};

/// Repeats `body` while `cond` holds, as `tf.while_loop(cond, body, loop_vars,
/// maximum_iterations=...)`: both take the current loop variables (tensors of the loop's
/// function graphs); `body` returns their next values, of the same dtypes and of shapes
/// compatible with the initial ones. Returns the final values. The trip count is decided when
/// the graph runs (zero iterations return `loop_vars`); `maximum_iterations` caps it.
/// Tensors of the graph around the loop are read where used (captured), and gradients flow
/// back through every iteration to the initial values and to every captured tensor.
#[track_caller]
pub fn while_loop(
    cond: impl FnOnce(&[Tensor]) -> Result<Tensor>,
    body: impl FnOnce(&[Tensor]) -> Result<Vec<Tensor>>,
    loop_vars: &[&Tensor],
    maximum_iterations: Option<u64>,
) -> Result<Vec<Tensor>> {
    while_loop_with_shapes(cond, body, loop_vars, None, maximum_iterations)
}

/// [`while_loop`] with TF's `shape_invariants`: the shape each loop variable keeps through the
/// iterations, less specific than its initial one where it changes (a growing `[?, n]`
/// accumulator, say), compatible with it; `None` keeps the initial shapes.
///
/// ```
/// use ndarray::array;
/// use tensorgraph_graph::{ops::{array, control_flow, math}, DType, Graph, Shape};
/// # fn main() -> tensorgraph_graph::Result<()> {
/// let g = Graph::new();
/// let row = g.constant(array![[1.0f32, 2.0]])?;
/// // Doubles the rows three times: [1, 2] becomes [8, 2].
/// let out = control_flow::while_loop_with_shapes(
///     |v| math::less(&math::size(&v[0], None, DType::I32)?, &v[0].graph().scalar(16.0, DType::I32)?),
///     |v| Ok(vec![array::concat(&[&v[0], &v[0]], 0)?]),
///     &[&row],
///     Some(&[Shape::from([None, Some(2)])]),
///     None,
/// )?;
/// assert_eq!(out[0].shape().to_string(), "[?,2]");
/// # Ok(()) }
/// ```
#[track_caller]
pub fn while_loop_with_shapes(
    cond: impl FnOnce(&[Tensor]) -> Result<Tensor>,
    body: impl FnOnce(&[Tensor]) -> Result<Vec<Tensor>>,
    loop_vars: &[&Tensor],
    shape_invariants: Option<&[Shape]>,
    maximum_iterations: Option<u64>,
) -> Result<Vec<Tensor>> {
    let location = SourceLocation::caller();
    let Some(first) = loop_vars.first() else {
        return Err(invalid("While", "while", &location, "while_loop needs at least one loop variable".into()));
    };
    let g = first.graph().clone();
    let shapes: Vec<Shape> = match shape_invariants {
        None => loop_vars.iter().map(|v| v.shape()).collect(),
        Some(s) if s.len() == loop_vars.len() => s.to_vec(),
        Some(s) => {
            let detail = format!("{} shape invariants for {} loop variables", s.len(), loop_vars.len());
            return Err(invalid("While", "while", &location, detail));
        }
    };
    for (i, (v, s)) in loop_vars.iter().zip(&shapes).enumerate() {
        // Compatible is enough (TF wants it no more specific): the shape an initial value has at
        // run time is checked against the invariant when the loop runs.
        if v.shape().merge(s).is_none() {
            let detail = format!("loop variable {i} of shape {} does not fit its shape invariant {s}", v.shape());
            return Err(invalid("While", "while", &location, detail));
        }
    }
    g.name_scope("while", || {
        let args = |f: &Graph| -> Result<Vec<Tensor>> {
            loop_vars.iter().zip(&shapes).map(|(v, s)| argument(f, &v.spec().dtype, s.clone(), &v.op_name())).collect()
        };
        let c = g.new_function_graph();
        let c_args = args(&c)?;
        let pred = c.building(|| cond(&c_args))?;
        let pred = c.capture(&pred)?;
        let spec = pred.spec();
        if spec.dtype != DType::Bool || spec.shape.rank() != 0 {
            let detail = format!("the loop condition must be a bool scalar, got {} {}", spec.dtype, spec.shape);
            return Err(invalid("While", &g.current_name_scope(), &location, detail));
        }
        let b = g.new_function_graph();
        let b_args = args(&b)?;
        let next = b.building(|| body(&b_args))?;
        if next.len() != loop_vars.len() {
            let detail = format!("the body returns {} tensors for {} loop variables", next.len(), loop_vars.len());
            return Err(invalid("While", &g.current_name_scope(), &location, detail));
        }
        let mut outputs = Vec::with_capacity(next.len());
        for (i, (t, arg)) in next.iter().zip(&b_args).enumerate() {
            let t = b.capture(t)?;
            let (got, want) = (t.spec(), arg.spec());
            // Every dimension the loop variable's shape fixes, the body's result has (TF's rule).
            let fits = got.shape.rank() == want.shape.rank()
                && want.shape.0.iter().zip(&got.shape.0).all(|(w, g)| w.is_none() || w == g);
            if got.dtype != want.dtype || !fits {
                let detail = format!(
                    "loop variable {i} enters as {} {} but the body returns {} {} (give a less specific \
                     shape invariant for it)",
                    want.dtype, want.shape, got.dtype, got.shape
                );
                return Err(invalid("While", &g.current_name_scope(), &location, detail));
            }
            outputs.push(t.endpoint());
        }
        let func = |f: &Graph, args: &[Tensor], outputs: Vec<Endpoint>| Func {
            graph: f.clone(),
            inputs: args.iter().map(Tensor::endpoint).chain(f.capture_placeholders()).collect(),
            outputs,
        };
        let op = Op::While {
            cond: func(&c, &c_args, vec![pred.endpoint()]),
            body: func(&b, &b_args, outputs),
            maximum_iterations,
        };
        let captured: Vec<Tensor> = c.captured().into_iter().chain(b.captured()).collect();
        let inputs: Vec<&Tensor> = loop_vars.iter().copied().chain(&captured).collect();
        let node = g.add_node(op, &inputs, &[], Some("While"), location)?;
        (0..loop_vars.len()).map(|i| node.output(i)).collect()
    })
}

/// `true_fn()` if `pred` (a bool scalar) holds when the graph runs, else `false_fn()`, as
/// `tf.cond`: only the branch taken runs. Both return the same number of tensors, of the same
/// dtypes; each output's static shape is what the two branches agree on.
///
/// ```
/// use tensorgraph_graph::{ops::{control_flow, math}, DType, Graph, Named, Shape};
/// # fn main() -> tensorgraph_graph::Result<()> {
/// let g = Graph::new();
/// let (p, x) = (g.placeholder(DType::Bool, Shape::scalar()).named("p")?, g.placeholder(DType::F32, [3]).named("x")?);
/// let y = control_flow::cond(&p, || Ok(vec![math::square(&x)?]), || Ok(vec![math::neg(&x)?]))?;
/// assert_eq!(y[0].op().op_type(), "StatelessIf");
/// # Ok(()) }
/// ```
#[track_caller]
pub fn cond(
    pred: &Tensor,
    true_fn: impl FnOnce() -> Result<Vec<Tensor>>,
    false_fn: impl FnOnce() -> Result<Vec<Tensor>>,
) -> Result<Vec<Tensor>> {
    let location = SourceLocation::caller();
    let g = pred.graph().clone();
    g.name_scope("cond", || {
        let spec = pred.spec();
        if spec.dtype != DType::Bool || spec.shape.rank() != 0 {
            let detail = format!("cond's predicate must be a bool scalar, got {} {}", spec.dtype, spec.shape);
            return Err(invalid("If", &g.current_name_scope(), &location, detail));
        }
        let branch = |f: Box<dyn FnOnce() -> Result<Vec<Tensor>> + '_>| -> Result<(Graph, Vec<Tensor>)> {
            let b = g.new_function_graph();
            let outs = b.building(f)?;
            let outs = outs.iter().map(|t| b.capture(t)).collect::<Result<Vec<_>>>()?;
            Ok((b, outs))
        };
        let (t, t_outs) = branch(Box::new(true_fn))?;
        let (e, e_outs) = branch(Box::new(false_fn))?;
        if t_outs.len() != e_outs.len() {
            let detail = format!("true_fn returns {} tensors, false_fn {}", t_outs.len(), e_outs.len());
            return Err(invalid("If", &g.current_name_scope(), &location, detail));
        }
        for (i, (a, b)) in t_outs.iter().zip(&e_outs).enumerate() {
            if a.dtype() != b.dtype() || a.shape().rank() != b.shape().rank() {
                let detail = format!(
                    "output {i}: true_fn returns {} {}, false_fn {} {}",
                    a.dtype(),
                    a.shape(),
                    b.dtype(),
                    b.shape()
                );
                return Err(invalid("If", &g.current_name_scope(), &location, detail));
            }
        }
        // Both branches take every tensor either one captured (as TF's `If`), in one order.
        let mut args: Vec<Tensor> = t.captured();
        for x in e.captured() {
            if !args.iter().any(|a| a.endpoint() == x.endpoint()) {
                args.push(x);
            }
        }
        let func = |b: &Graph, outs: &[Tensor]| -> Result<Func> {
            let inputs = args.iter().map(|a| b.capture(a).map(|t| t.endpoint())).collect::<Result<_>>()?;
            Ok(Func { graph: b.clone(), inputs, outputs: outs.iter().map(Tensor::endpoint).collect() })
        };
        let op = Op::If { then_branch: func(&t, &t_outs)?, else_branch: func(&e, &e_outs)? };
        let inputs: Vec<&Tensor> = std::iter::once(pred).chain(&args).collect();
        let node = g.add_node(op, &inputs, &[], Some("If"), location)?;
        (0..t_outs.len()).map(|i| node.output(i)).collect()
    })
}

/// A function argument: a placeholder of `f`, named after the tensor it stands for.
fn argument(f: &Graph, dtype: &DType, shape: Shape, name: &str) -> Result<Tensor> {
    let name = name.rsplit('/').next().unwrap_or("arg");
    let op = Op::Placeholder { dtype: *dtype, shape };
    f.add_node_here(op, &[], &[], Some(name), SourceLocation::caller())?.output(0)
}
