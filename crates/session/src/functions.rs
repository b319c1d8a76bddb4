//! Running function graphs: the `While`, `If` and `WhileGrad` steps. Each function graph gets
//! a session of its own, made on first use and kept by the session that calls it, so a loop
//! body is planned once and its buffers are reused from iteration to iteration.

use crate::exec;
use crate::session::Session;
use std::sync::Arc;
use tensorgraph_graph::{BinaryOp, Error, Feed, Func, NodeInfo, Op, Result, Tensor, Value};
use tensorgraph_kernels::buffers::BufferPool;

type Values = Vec<Arc<Value>>;

impl Session {
    /// Calls `f` on `args` (one value per argument).
    fn call(&self, f: &Func, args: &[&Arc<Value>]) -> Result<Values> {
        let sub = self.function_session(&f.graph);
        let (inputs, outputs): (Vec<Tensor>, Vec<Tensor>) = (f.input_tensors(), f.output_tensors());
        let feeds: Vec<(&Tensor, Feed)> = inputs.iter().zip(args).map(|(t, v)| (t, Feed::from(&***v))).collect();
        let fetches: Vec<&Tensor> = outputs.iter().collect();
        Ok(sub.run_with(&fetches, &[], &feeds)?.into_iter().map(Arc::new).collect())
    }

    /// Whether the loop goes on: under `maximum_iterations`, and `cond` holds.
    fn keep_looping(
        &self,
        cond: &Func,
        max: Option<u64>,
        done: u64,
        vars: &Values,
        caps: &[Arc<Value>],
        info: &NodeInfo,
    ) -> Result<bool> {
        if max.is_some_and(|m| done >= m) {
            return Ok(false);
        }
        let args: Vec<&Arc<Value>> = vars.iter().chain(caps).collect();
        let p = self.call(cond, &args)?;
        exec::bool_scalar(&p[0]).map_err(|e| Error::Runtime { node: info.clone(), inputs: String::new(), detail: e.0 })
    }

    /// Runs a `While`, `If` or `WhileGrad` step; `None` for any other op.
    pub(crate) fn run_function_op(
        &self,
        op: &Op,
        inputs: &[Option<Arc<Value>>],
        info: &NodeInfo,
        pool: &mut BufferPool,
    ) -> Option<Result<Values>> {
        if !matches!(op, Op::While { .. } | Op::If { .. } | Op::WhileGrad { .. }) {
            return None;
        }
        let values: Values = inputs.iter().map(|v| v.clone().expect("functional ops take values")).collect();
        Some(match op {
            Op::While { cond, body, maximum_iterations } => {
                let n = body.outputs.len();
                let (vars, caps) = values.split_at(n);
                let (c_caps, b_caps) = caps.split_at(cond.inputs.len() - n);
                let mut vars = vars.to_vec();
                let mut done = 0;
                (|| {
                    while self.keep_looping(cond, *maximum_iterations, done, &vars, c_caps, info)? {
                        let args: Vec<&Arc<Value>> = vars.iter().chain(b_caps).collect();
                        vars = self.call(body, &args)?;
                        done += 1;
                    }
                    Ok(vars)
                })()
            }
            Op::If { then_branch, else_branch } => (|| {
                let taken = match exec::bool_scalar(&values[0]) {
                    Ok(true) => then_branch,
                    Ok(false) => else_branch,
                    Err(e) => return Err(Error::Runtime { node: info.clone(), inputs: String::new(), detail: e.0 }),
                };
                self.call(taken, &values[1..].iter().collect::<Vec<_>>())
            })(),
            Op::WhileGrad { cond, body, grad, maximum_iterations } => (|| {
                let n = grad.inputs.len() - grad.outputs.len();
                let k = grad.outputs.len() - n;
                let (vars, rest) = values.split_at(n);
                let (c_caps, rest) = rest.split_at(cond.inputs.len() - n);
                let (b_caps, douts) = rest.split_at(k);
                // Forward again, keeping each iteration's variables (the body's inputs).
                let mut history: Vec<Values> = vec![vars.to_vec()];
                let b_fwd = &b_caps[..body.inputs.len() - n];
                while self.keep_looping(
                    cond,
                    *maximum_iterations,
                    history.len() as u64 - 1,
                    &history[history.len() - 1],
                    c_caps,
                    info,
                )? {
                    let args: Vec<&Arc<Value>> = history[history.len() - 1].iter().chain(b_fwd).collect();
                    let next = self.call(body, &args)?;
                    history.push(next);
                }
                history.pop();
                // Backward through the iterations, summing the captures' gradients.
                let mut g: Values = douts.to_vec();
                let mut d_caps: Option<Values> = None;
                let runtime = |e: tensorgraph_kernels::KernelError| Error::Runtime {
                    node: info.clone(),
                    inputs: String::new(),
                    detail: e.0,
                };
                for vars in history.iter().rev() {
                    let args: Vec<&Arc<Value>> = vars.iter().chain(b_caps).chain(&g).collect();
                    let mut out = self.call(grad, &args)?;
                    let dc = out.split_off(n);
                    g = out;
                    d_caps = Some(match d_caps {
                        None => dc,
                        Some(sum) => sum
                            .iter()
                            .zip(&dc)
                            .map(|(a, b)| {
                                let v = exec::compute(&Op::Binary(BinaryOp::Add), &[a, b], pool).map_err(runtime)?;
                                Ok(Arc::new(v.into_iter().next().expect("one output")))
                            })
                            .collect::<Result<_>>()?,
                    });
                }
                let d_caps = match d_caps {
                    Some(d) => d,
                    None => b_caps
                        .iter()
                        .map(|c| {
                            let v = exec::compute(&Op::ZerosLike, &[c], pool).map_err(runtime)?;
                            Ok(Arc::new(v.into_iter().next().expect("one output")))
                        })
                        .collect::<Result<_>>()?,
                };
                Ok(g.into_iter().chain(d_caps).collect())
            })(),
            _ => return None,
        })
    }
}
