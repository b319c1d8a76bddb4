//! Finite-difference gradient checks of any graph, like `tf.test.compute_gradient`.

use crate::Named;
use crate::{DType, Feed, Graph, Result, Session, Tensor, Value};
use ndarray::{Array2, ArrayD, IxDyn};

/// The theoretical (autodiff) and numerical (central differences) Jacobians of `y` with respect
/// to `x` at `x_value`, each `[x.len(), y.len()]` as TF lays them out. `x` is fed (it may be
/// any tensor, e.g. a placeholder or a variable's read tensor); `feeds` supplies the rest.
pub fn compute_gradient(
    sess: &mut Session,
    x: &Tensor,
    x_value: &Value,
    y: &Tensor,
    feeds: &[(&Tensor, Feed)],
    delta: f64,
) -> Result<(Array2<f64>, Array2<f64>)> {
    let g: Graph = x.graph().clone();
    let run_y = |sess: &mut Session, xv: Value| -> Result<Value> {
        let mut f: Vec<(&Tensor, Feed)> = feeds.to_vec();
        f.push((x, xv.into()));
        Ok(sess.run(&[y], &f)?.remove(0))
    };
    let y0 = run_y(sess, x_value.clone())?;
    let (nx, ny) = (x_value.len(), y0.len());
    let dy = g.placeholder(y.dtype(), y0.shape()).named("grad_check_dy")?;
    let dx = tensorgraph_autodiff::gradients(&[y], &[x], Some(&[&dy]))?.remove(0);

    let mut theoretical = Array2::<f64>::zeros((nx, ny));
    if let Some(dx) = dx {
        for j in 0..ny {
            let mut e = vec![0.0; ny];
            e[j] = 1.0;
            let mut f: Vec<(&Tensor, Feed)> = feeds.to_vec();
            f.push((x, x_value.clone().into()));
            f.push((&dy, from_f64(y.dtype(), y0.shape(), e).into()));
            let col = sess.run(&[&dx], &f)?.remove(0).to_f64_vec();
            theoretical.column_mut(j).assign(&ndarray::Array1::from(col));
        }
    }
    let mut numerical = Array2::<f64>::zeros((nx, ny));
    let base = x_value.to_f64_vec();
    for i in 0..nx {
        let shifted = |d: f64| {
            let mut v = base.clone();
            v[i] += d;
            from_f64(x_value.dtype(), x_value.shape(), v)
        };
        let plus = run_y(sess, shifted(delta))?.to_f64_vec();
        let minus = run_y(sess, shifted(-delta))?.to_f64_vec();
        for j in 0..ny {
            numerical[[i, j]] = (plus[j] - minus[j]) / (2.0 * delta);
        }
    }
    Ok((theoretical, numerical))
}

/// The largest absolute difference between the theoretical and numerical Jacobians, like
/// `tf.test.compute_gradient_error`. Use f64 graphs for tight bounds (1e-6 and below).
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::gradient_checker::compute_gradient_error;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F64, [3]).named("x")?;
/// let y = math::mul(&x, &math::exp(&x)?)?;
/// let mut sess = Session::new(&g)?;
/// let err = compute_gradient_error(&mut sess, &x, &ndarray::array![0.5, -1.0, 2.0].into(), &y, &[])?;
/// assert!(err < 1e-7, "{err}");
/// # Ok(()) }
/// ```
pub fn compute_gradient_error(
    sess: &mut Session,
    x: &Tensor,
    x_value: &Value,
    y: &Tensor,
    feeds: &[(&Tensor, Feed)],
) -> Result<f64> {
    let delta = if x.dtype() == DType::F64 { 1e-6 } else { 1e-3 };
    let (t, n) = compute_gradient(sess, x, x_value, y, feeds, delta)?;
    Ok(t.iter().zip(n.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max))
}

fn from_f64(dtype: DType, shape: &[usize], v: Vec<f64>) -> Value {
    let a = ArrayD::from_shape_vec(IxDyn(shape), v).expect("element count matches shape");
    match dtype {
        DType::F32 => Value::from(a.mapv(|x| x as f32)),
        _ => Value::from(a),
    }
}
