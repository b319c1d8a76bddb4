//! The optimizers' in-place updates (TF's `Apply*` ops): one loop per rule, with TF's formulas
//! as written in its `training_ops` kernels, so results match TensorFlow to rounding.

use ndarray::{s, ArrayD, ArrayView2, ArrayViewMut2, Ix2};
use tensorgraph_graph::{fmt_dims, ApplyOp, DType, Element, Value};
use tensorgraph_kernels::pair::Disjoint;
use tensorgraph_kernels::{gemm, Float, KernelError};

/// A gradient given as the product `op(left) · op(right)` of a fused MatMul (the planner's
/// [`crate::plan::Fused::GradProduct`]); `left` is in the gradient's place among the inputs.
pub(crate) struct Product<'a> {
    pub right: &'a Value,
    pub transpose_a: bool,
    pub transpose_b: bool,
}

/// Updates `slots` (the variable, then its slot variables) from `rest`, the op's other inputs in
/// TF's order (hyperparameters and the gradient, or with `product` the gradient's left
/// operand; see [`ApplyOp`]).
pub(crate) fn apply(
    op: ApplyOp,
    slots: &mut [&mut Value],
    rest: &[&Value],
    product: Option<Product>,
) -> Result<(), KernelError> {
    match slots.first().map(|v| v.dtype()) {
        Some(DType::F32) => update::<f32>(op, slots, rest, product),
        Some(DType::F64) => update::<f64>(op, slots, rest, product),
        d => Err(KernelError(format!("{} needs a float variable, got {d:?}", op.type_name()))),
    }
}

/// The gradient's elements, or the operands (transposes applied) of the product giving them.
enum Grad<'a, T> {
    Values(&'a [T]),
    Product(ArrayView2<'a, T>, ArrayView2<'a, T>),
}

fn update<T: Float + Element>(
    op: ApplyOp,
    slots: &mut [&mut Value],
    rest: &[&Value],
    product: Option<Product>,
) -> Result<(), KernelError> {
    let err = || KernelError(format!("{} inputs differ in dtype", op.type_name()));
    let grad_pos = op.grad_input() - op.num_refs();
    let g = rest.get(grad_pos).and_then(|v| T::unwrap_ref(v)).ok_or_else(err)?;
    let mut arrays: Vec<&mut ArrayD<T>> =
        slots.iter_mut().map(|v| T::unwrap_mut(v).ok_or_else(err)).collect::<Result<_, _>>()?;
    let operands = match &product {
        Some(p) => {
            let right = T::unwrap_ref(p.right).ok_or_else(err)?;
            fn two<T>(a: &ArrayD<T>, t: bool) -> Option<ArrayView2<'_, T>> {
                let a = a.view().into_dimensionality::<Ix2>().ok()?;
                Some(if t { a.reversed_axes() } else { a })
            }
            match (two(g, p.transpose_a), two(right, p.transpose_b)) {
                (Some(a), Some(b)) if a.ncols() == b.nrows() => Some((a, b)),
                _ => {
                    return Err(KernelError(format!(
                        "MatMul (fused into the update) cannot multiply {} and {} (transposes {}, {})",
                        fmt_dims(g.shape()),
                        fmt_dims(right.shape()),
                        p.transpose_a,
                        p.transpose_b
                    )))
                }
            }
        }
        None => None,
    };
    let grad_shape = match &operands {
        Some((a, b)) => vec![a.nrows(), b.ncols()],
        None => g.shape().to_vec(),
    };
    if arrays.iter().any(|a| a.shape() != grad_shape.as_slice()) {
        let shapes: Vec<String> = arrays.iter().map(|a| fmt_dims(a.shape())).collect();
        return Err(KernelError(format!(
            "variable and slots {} differ from the gradient {}",
            shapes.join(", "),
            fmt_dims(&grad_shape)
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
    match operands {
        // A short inner dimension (a small batch's weight gradient) makes each element cheap to
        // compute and costly to write out and read back: blocks of it in cache. A long one makes
        // the product the cost, best done whole on both cores. MLP step, 2 threads, Zen 3:
        // batch 1 0.146 -> 0.121 ms in blocks; batch 50 0.531 -> 0.550 ms in blocks.
        Some((a, b)) if a.ncols() < SHORT_INNER => in_chunks(&mut arrays, Grad::Product(a, b), rule),
        Some((a, b)) => T::with_scratch(a.nrows() * b.ncols(), |g| {
            let out = ArrayViewMut2::from_shape((a.nrows(), b.ncols()), &mut *g).expect("the product's shape");
            gemm::gemm_into(a, b, out, false, true);
            in_chunks(&mut arrays, Grad::Values(g), rule)
        }),
        None => {
            let g = g.as_standard_layout();
            in_chunks(&mut arrays, Grad::Values(g.as_slice().expect("row-major")), rule)
        }
    }
    Ok(())
}

/// An update rule over one chunk: the variable's and its slots' elements, then the gradient's.
type Rule<T> = dyn Fn(&mut [&mut [T]], &[T]) + Sync;

/// Inner dimension below which a fused gradient product is computed in blocks beside the
/// update (see [`update`]).
const SHORT_INNER: usize = 32;

/// Elements per chunk when an update is shared with the second core: the MLP's first weight
/// matrix (235K) in 15 chunks, its smaller variables in one.
const CHUNK: usize = 1 << 14;

/// Runs `rule` over `arrays` (made row-major if they are not) and the gradient, in chunks on
/// both cores ([`tensorgraph_kernels::pair`]) when large. A gradient given as a product is
/// computed a block of whole rows per chunk into the thread's scratch and used at once (each
/// element is the sum the whole product would give: the bits do not change).
fn in_chunks<T: Float>(arrays: &mut [&mut ArrayD<T>], g: Grad<T>, rule: &Rule<T>) {
    for a in arrays.iter_mut() {
        if !a.is_standard_layout() {
            **a = a.as_standard_layout().into_owned();
        }
    }
    let k = arrays.len();
    assert!(k <= 4, "at most a variable and three slots");
    let base: [Disjoint<T>; 4] =
        std::array::from_fn(|j| Disjoint::new(arrays.get_mut(j).map_or(std::ptr::null_mut(), |a| a.as_mut_ptr())));
    let (n, row) = match &g {
        Grad::Values(g) => (g.len(), 1),
        Grad::Product(a, b) => (a.nrows() * b.ncols(), b.ncols().max(1)),
    };
    let size = if n >= 2 * CHUNK { CHUNK.div_ceil(row) * row } else { n.max(1) };
    tensorgraph_kernels::pair::for_each(n.div_ceil(size), &|i| {
        let (lo, hi) = (i * size, ((i + 1) * size).min(n));
        // SAFETY: each array is row-major with `n` elements (checked against the gradient's
        // shape), the arrays are distinct (separate `&mut`), and chunk i's range is its own.
        let mut parts: [&mut [T]; 4] =
            std::array::from_fn(|j| if j < k { unsafe { base[j].slice(lo, hi) } } else { &mut [][..] });
        match &g {
            Grad::Values(g) => rule(&mut parts[..k], &g[lo..hi]),
            Grad::Product(a, b) => T::with_scratch(hi - lo, |block| {
                let rows = a.slice(s![lo / row..hi / row, ..]);
                let out = ArrayViewMut2::from_shape((rows.nrows(), row), &mut *block).expect("whole rows");
                gemm::gemm_into(rows, *b, out, false, false);
                rule(&mut parts[..k], block)
            }),
        }
    });
}
