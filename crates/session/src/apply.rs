//! The optimizers' in-place updates (TF's `Apply*` ops): one loop per rule, with TF's formulas
//! as written in its `training_ops` kernels, so results match TensorFlow to rounding.

use ndarray::ArrayD;
use tensorgraph_graph::{fmt_dims, ApplyOp, DType, Element, Value};
use tensorgraph_kernels::pair::Disjoint;
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
    if arrays.len() != op.num_refs() {
        return Err(KernelError(format!("{} takes {} variables, got {}", op.type_name(), op.num_refs(), arrays.len())));
    }
    let one = T::one();
    // Each rule updates one chunk: the variable's and its slots' elements, and the gradient's.
    let rule: &Rule<T> = match op {
        ApplyOp::GradientDescent => {
            let lr = h[0];
            &move |s, g| s[0].iter_mut().zip(g).for_each(|(w, &g)| *w -= lr * g)
        }
        ApplyOp::Momentum { use_nesterov } => {
            let (lr, momentum) = (h[0], h[1]);
            &move |s, g| {
                let [w, acc] = s else { unreachable!("two arrays") };
                w.iter_mut().zip(acc.iter_mut()).zip(g).for_each(|((w, a), &g)| {
                    *a = *a * momentum + g;
                    *w -= if use_nesterov { g * lr + *a * momentum * lr } else { *a * lr };
                })
            }
        }
        ApplyOp::Adagrad => {
            let lr = h[0];
            &move |s, g| {
                let [w, acc] = s else { unreachable!("two arrays") };
                w.iter_mut().zip(acc.iter_mut()).zip(g).for_each(|((w, a), &g)| {
                    *a += g * g;
                    *w -= g * lr / a.sqrt();
                })
            }
        }
        ApplyOp::RMSProp => {
            let [lr, rho, momentum, eps] = h[..] else { return Err(err()) };
            &move |s, g| {
                let [w, ms, mom] = s else { unreachable!("three arrays") };
                w.iter_mut().zip(ms.iter_mut()).zip(mom.iter_mut()).zip(g).for_each(|(((w, ms), mom), &g)| {
                    *ms += (g * g - *ms) * (one - rho);
                    *mom = *mom * momentum + g * lr / (*ms + eps).sqrt();
                    *w -= *mom;
                })
            }
        }
        ApplyOp::CenteredRMSProp => {
            let [lr, rho, momentum, eps] = h[..] else { return Err(err()) };
            &move |s, g| {
                let [w, mg, ms, mom] = s else { unreachable!("four arrays") };
                let slots = mg.iter_mut().zip(ms.iter_mut()).zip(mom.iter_mut());
                w.iter_mut().zip(slots).zip(g).for_each(|((w, ((mg, ms), mom)), &g)| {
                    *mg += (g - *mg) * (one - rho);
                    *ms += (g * g - *ms) * (one - rho);
                    *mom = *mom * momentum + g * lr / (*ms - *mg * *mg + eps).sqrt();
                    *w -= *mom;
                })
            }
        }
        ApplyOp::Adam => {
            let [b1p, b2p, lr, b1, b2, eps] = h[..] else { return Err(err()) };
            let lr_t = lr * (one - b2p).sqrt() / (one - b1p);
            &move |s, g| {
                let [w, m, v] = s else { unreachable!("three arrays") };
                w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g).for_each(|(((w, m), v), &g)| {
                    *m += (g - *m) * (one - b1);
                    *v += (g * g - *v) * (one - b2);
                    *w -= lr_t * *m / (v.sqrt() + eps);
                })
            }
        }
    };
    let g = g.as_standard_layout();
    in_chunks(&mut arrays, g.as_slice().expect("row-major"), rule);
    Ok(())
}

/// An update rule over one chunk: the variable's and its slots' elements, then the gradient's.
type Rule<T> = dyn Fn(&mut [&mut [T]], &[T]) + Sync;

/// Elements per chunk when an update is shared with the second core: the MLP's first weight
/// matrix (235K) in 15 chunks, its smaller variables in one.
const CHUNK: usize = 1 << 14;

/// Runs `rule` over `arrays` (made row-major if they are not) and `g`, in chunks on both
/// cores ([`tensorgraph_kernels::pair`]) when large.
fn in_chunks<T: Float>(arrays: &mut [&mut ArrayD<T>], g: &[T], rule: &Rule<T>) {
    for a in arrays.iter_mut() {
        if !a.is_standard_layout() {
            **a = a.as_standard_layout().into_owned();
        }
    }
    let k = arrays.len();
    assert!(k <= 4, "at most a variable and three slots");
    let base: [Disjoint<T>; 4] =
        std::array::from_fn(|j| Disjoint::new(arrays.get_mut(j).map_or(std::ptr::null_mut(), |a| a.as_mut_ptr())));
    let n = g.len();
    let size = if n >= 2 * CHUNK { CHUNK } else { n.max(1) };
    tensorgraph_kernels::pair::for_each(n.div_ceil(size), &|i| {
        let (lo, hi) = (i * size, ((i + 1) * size).min(n));
        // SAFETY: each array is row-major with `n` elements (checked against g's shape), the
        // arrays are distinct (separate `&mut`), and chunk i's range is its own.
        let mut parts: [&mut [T]; 4] =
            std::array::from_fn(|j| if j < k { unsafe { base[j].slice(lo, hi) } } else { &mut [][..] });
        rule(&mut parts[..k], &g[lo..hi]);
    });
}
