//! The optimizers' in-place updates (TF's `Apply*` ops): one loop per rule, with TF's formulas
//! as written in its `training_ops` kernels, so results match TensorFlow to rounding.

use ndarray::{ArrayD, Zip};
use tensorgraph_graph::{fmt_dims, ApplyOp, DType, Element, Value};
use tensorgraph_kernels::{Float, KernelError};

/// Updates `slots` (the variable, then its slot variables) from `rest`, the op's other inputs in
/// TF's order (hyperparameters and the gradient; see [`ApplyOp`]).
pub(crate) fn apply(op: ApplyOp, slots: &mut [&mut Value], rest: &[&Value]) -> Result<(), KernelError> {
    match slots.first().map(|v| v.dtype()) {
        Some(DType::F32) => update::<f32>(op, slots, rest),
        Some(DType::F64) => update::<f64>(op, slots, rest),
        d => Err(KernelError(format!("{} needs a float variable, got {d:?}", op.type_name()))),
    }
}

fn update<T: Float + Element>(op: ApplyOp, slots: &mut [&mut Value], rest: &[&Value]) -> Result<(), KernelError> {
    let err = || KernelError(format!("{} inputs differ in dtype", op.type_name()));
    let grad_pos = op.grad_input() - op.num_refs();
    let g = rest.get(grad_pos).and_then(|v| T::unwrap_ref(v)).ok_or_else(err)?;
    let mut arrays: Vec<&mut ArrayD<T>> =
        slots.iter_mut().map(|v| T::unwrap_mut(v).ok_or_else(err)).collect::<Result<_, _>>()?;
    if arrays.iter().any(|a| a.shape() != g.shape()) {
        let shapes: Vec<String> = arrays.iter().map(|a| fmt_dims(a.shape())).collect();
        return Err(KernelError(format!(
            "variable and slots {} differ from the gradient {}",
            shapes.join(", "),
            fmt_dims(g.shape())
        )));
    }
    let h: Vec<T> = rest
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != grad_pos)
        .map(|(_, v)| T::unwrap_ref(v).and_then(|a| a.iter().next().copied()).ok_or_else(err))
        .collect::<Result<_, _>>()?;
    let one = T::one();
    match (op, &mut arrays[..]) {
        (ApplyOp::GradientDescent, [w]) => {
            let lr = h[0];
            Zip::from(&mut **w).and(g).for_each(|w, &g| *w -= lr * g);
        }
        (ApplyOp::Momentum { use_nesterov }, [w, acc]) => {
            let (lr, momentum) = (h[0], h[1]);
            Zip::from(&mut **w).and(&mut **acc).and(g).for_each(|w, a, &g| {
                *a = *a * momentum + g;
                *w -= if use_nesterov { g * lr + *a * momentum * lr } else { *a * lr };
            });
        }
        (ApplyOp::Adagrad, [w, acc]) => {
            let lr = h[0];
            Zip::from(&mut **w).and(&mut **acc).and(g).for_each(|w, a, &g| {
                *a += g * g;
                *w -= g * lr / a.sqrt();
            });
        }
        (ApplyOp::RMSProp, [w, ms, mom]) => {
            let [lr, rho, momentum, eps] = h[..] else { return Err(err()) };
            Zip::from(&mut **w).and(&mut **ms).and(&mut **mom).and(g).for_each(|w, ms, mom, &g| {
                *ms += (g * g - *ms) * (one - rho);
                *mom = *mom * momentum + g * lr / (*ms + eps).sqrt();
                *w -= *mom;
            });
        }
        (ApplyOp::CenteredRMSProp, [w, mg, ms, mom]) => {
            let [lr, rho, momentum, eps] = h[..] else { return Err(err()) };
            Zip::from(&mut **w).and(&mut **mg).and(&mut **ms).and(&mut **mom).and(g).for_each(|w, mg, ms, mom, &g| {
                *mg += (g - *mg) * (one - rho);
                *ms += (g * g - *ms) * (one - rho);
                *mom = *mom * momentum + g * lr / (*ms - *mg * *mg + eps).sqrt();
                *w -= *mom;
            });
        }
        (ApplyOp::Adam, [w, m, v]) => {
            let [b1p, b2p, lr, b1, b2, eps] = h[..] else { return Err(err()) };
            let lr_t = lr * (one - b2p).sqrt() / (one - b1p);
            Zip::from(&mut **w).and(&mut **m).and(&mut **v).and(g).for_each(|w, m, v, &g| {
                *m += (g - *m) * (one - b1);
                *v += (g * g - *v) * (one - b2);
                *w -= lr_t * *m / (v.sqrt() + eps);
            });
        }
        _ => {
            return Err(KernelError(format!(
                "{} takes {} variables, got {}",
                op.type_name(),
                op.num_refs(),
                arrays.len()
            )))
        }
    }
    Ok(())
}
