//! Learning-rate schedules driven by a `global_step` variable (`tf.train.exponential_decay`,
//! `tf.train.piecewise_constant`), which `apply_gradients(.., Some(&global_step))` increments.

use crate::Named;
use crate::{DType, Error, Graph, Initializer, Result, Tensor, Variable};

/// The graph's `global_step` (an int64 scalar, not trainable, starting at 0), created on first
/// use, as `tf.train.get_or_create_global_step`.
///
/// ```
/// use tensorgraph::prelude::*;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let step = train::get_or_create_global_step(&g)?;
/// assert_eq!((step.name().as_str(), step.dtype()), ("global_step", DType::I64));
/// assert_eq!(train::get_or_create_global_step(&g)?.name(), "global_step");
/// # Ok(()) }
/// ```
#[track_caller]
pub fn get_or_create_global_step(g: &Graph) -> Result<Variable> {
    match g.global_variables().into_iter().find(|v| v.name() == "global_step") {
        Some(v) => Ok(v),
        None => g.new_variable("global_step", &[], DType::I64, &Initializer::Zeros, false),
    }
}

/// `learning_rate · decay_rate^(global_step / decay_steps)`, with the exponent floored when
/// `staircase` (TF's `exponential_decay`, float32, in name scope `ExponentialDecay`).
///
/// ```
/// use tensorgraph::prelude::*;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let step = train::get_or_create_global_step(&g)?;
/// let lr = train::exponential_decay(0.1, &step, 10, 0.5, false)?;
/// let mut sess = Session::new(&g)?;
/// sess.run(&g.global_variables_initializer()?, &[])?;
/// sess.run(&state::assign(&step, &g.scalar(5.0, DType::I64)?)?.op(), &[])?;
/// let v: f32 = sess.run(&lr, &[])?.try_into()?;
/// assert!((v - 0.1 * 0.5f32.powf(0.5)).abs() < 1e-7);
/// # Ok(()) }
/// ```
#[track_caller]
pub fn exponential_decay(
    learning_rate: f64,
    global_step: &Tensor,
    decay_steps: u64,
    decay_rate: f64,
    staircase: bool,
) -> Result<Tensor> {
    use crate::math::{cast, div, floor, mul, pow};
    if decay_steps == 0 {
        return Err(Error::InvalidArgument {
            node: global_step.op().info(),
            detail: "exponential_decay needs decay_steps > 0".into(),
        });
    }
    let g = global_step.graph();
    let _scope = g.enter_name_scope("ExponentialDecay");
    let lr = crate::math::identity(&g.scalar(learning_rate, DType::F32)?).named("learning_rate")?;
    let mut p = div(&cast(global_step, DType::F32)?, &g.scalar(decay_steps as f64, DType::F32)?)?;
    if staircase {
        p = floor(&p)?;
    }
    mul(&lr, &pow(&g.scalar(decay_rate, DType::F32)?, &p)?)
}

/// `values[0]` while `x <= boundaries[0]`, `values[i]` while `boundaries[i-1] < x <=
/// boundaries[i]`, and the last value after the last boundary (TF's `piecewise_constant`;
/// float32 values, boundaries in `x`'s dtype).
///
/// ```
/// use tensorgraph::prelude::*;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let step = train::get_or_create_global_step(&g)?;
/// let lr = train::piecewise_constant(&step, &[1000.0, 2000.0], &[0.1, 0.01, 0.001])?;
/// assert!(train::piecewise_constant(&step, &[1000.0], &[0.1])
///     .unwrap_err().to_string().contains("one more value than boundaries"));
/// let mut sess = Session::new(&g)?;
/// sess.run(&g.global_variables_initializer()?, &[])?;
/// let v: f32 = sess.run(&lr, &[])?.try_into()?;
/// assert_eq!(v, 0.1);
/// # Ok(()) }
/// ```
#[track_caller]
pub fn piecewise_constant(x: &Tensor, boundaries: &[f64], values: &[f64]) -> Result<Tensor> {
    if values.len() != boundaries.len() + 1 || boundaries.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::InvalidArgument {
            node: x.op().info(),
            detail: format!(
                "piecewise_constant needs increasing boundaries and one more value than boundaries, got {} and {}",
                boundaries.len(),
                values.len()
            ),
        });
    }
    let g = x.graph();
    let _scope = g.enter_name_scope("PiecewiseConstant");
    let mut out = g.scalar(values[boundaries.len()], DType::F32)?;
    for (b, v) in boundaries.iter().zip(values).rev() {
        let below = crate::math::less_equal(x, &g.scalar(*b, x.dtype())?)?;
        out = crate::math::select(&below, &g.scalar(*v, DType::F32)?, &out)?;
    }
    Ok(out)
}
