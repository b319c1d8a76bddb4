//! Gradients of `While` and `If`. Each differentiates its function graphs with
//! [`crate::gradients`] (the backward ops join the function graph) and wraps the result in a
//! function of its own: for `If`, another `If` over the two branches' gradients (what TF
//! builds); for `While`, a `WhileGrad` that reruns the loop keeping each iteration's variables
//! and applies the body's gradient from the last iteration back (back-propagation through
//! time). Only the variables at iteration boundaries are kept, not every intermediate of the
//! body: the body runs once more per iteration on the way back, for far less memory.

use super::Ctx;
use tensorgraph_graph::ops::array;
use tensorgraph_graph::{Error, Func, Graph, Op, Result, SourceLocation, Tensor};

/// The gradient function of `f` (a graph whose arguments are `args` and results `results`):
/// takes `args` then one gradient per result (placeholders shaped as `result_specs`), returns
/// one gradient per argument (zeros where none flows, or where the argument is not a float).
fn gradient_function(f: &Graph, args: &[Tensor], results: &[Tensor], result_like: &[Tensor]) -> Result<Func> {
    let captures_before = f.capture_placeholders().len();
    let douts = result_like
        .iter()
        .map(|like| {
            let op = Op::Placeholder { dtype: like.dtype(), shape: like.shape() };
            f.add_node(op, &[], &[], Some("grad_in"), SourceLocation::caller())?.output(0)
        })
        .collect::<Result<Vec<_>>>()?;
    let float = |t: &Tensor| t.dtype().is_float();
    let (ys, gys): (Vec<&Tensor>, Vec<&Tensor>) = results.iter().zip(&douts).filter(|(y, _)| float(y)).unzip();
    let xs: Vec<&Tensor> = args.iter().collect();
    let grads = crate::gradients(&ys, &xs, Some(&gys))?;
    if f.capture_placeholders().len() != captures_before {
        return Err(Error::InvalidArgument {
            node: results[0].op().info(),
            detail: "the gradient of a loop body or branch needs a tensor from outside it that its forward \
                     pass does not read"
                .into(),
        });
    }
    let outputs = args
        .iter()
        .zip(grads)
        .map(|(x, gr)| match gr {
            Some(gr) if float(x) => Ok(gr.endpoint()),
            _ => array::zeros_like(x).map(|z| z.endpoint()),
        })
        .collect::<Result<Vec<_>>>()?;
    let inputs = args.iter().chain(&douts).map(Tensor::endpoint).collect();
    Ok(Func { graph: f.clone(), inputs, outputs })
}

pub(crate) fn while_loop(c: &Ctx, cond: &Func, body: &Func, max: Option<u64>) -> Result<Vec<Option<Tensor>>> {
    let n = body.outputs.len();
    let k_cond = cond.inputs.len() - n;
    let args = body.input_tensors();
    if args.len() != n + body.graph.capture_placeholders().len() {
        return Err(Error::InvalidArgument {
            node: c.node.info(),
            detail: "the loop body reads tensors its While does not take (captured after the loop was built)".into(),
        });
    }
    let grad = gradient_function(&body.graph, &args, &body.output_tensors(), &args[..n])?;
    let douts = c.filled_grads()?;
    let inputs: Vec<&Tensor> = c.inputs.iter().chain(&douts).collect();
    let op = Op::WhileGrad { cond: cond.clone(), body: body.clone(), grad, maximum_iterations: max };
    let node = c.node.graph().add_node(op, &inputs, &[], Some("WhileGrad"), SourceLocation::caller())?;
    let mut out = Vec::with_capacity(c.inputs.len());
    for (i, x) in c.inputs.iter().enumerate() {
        let slot = match i {
            i if i < n => Some(i),
            i if i < n + k_cond => None,
            i => Some(i - k_cond),
        };
        out.push(match slot {
            Some(s) if x.dtype().is_float() => Some(node.output(s)?),
            _ => None,
        });
    }
    Ok(out)
}

pub(crate) fn cond(c: &Ctx, then_branch: &Func, else_branch: &Func) -> Result<Vec<Option<Tensor>>> {
    let outputs: Vec<Tensor> = (0..then_branch.outputs.len()).map(|i| c.y(i)).collect::<Result<_>>()?;
    let branch = |f: &Func| gradient_function(&f.graph, &f.input_tensors(), &f.output_tensors(), &outputs);
    let op = Op::If { then_branch: branch(then_branch)?, else_branch: branch(else_branch)? };
    let douts = c.filled_grads()?;
    let inputs: Vec<&Tensor> = c.inputs.iter().chain(&douts).collect();
    let node = c.node.graph().add_node(op, &inputs, &[], Some("If"), SourceLocation::caller())?;
    let mut out = vec![None];
    for (j, x) in c.inputs[1..].iter().enumerate() {
        out.push(if x.dtype().is_float() { Some(node.output(j)?) } else { None });
    }
    Ok(out)
}
