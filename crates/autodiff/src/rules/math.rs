//! Gradients of matmul, element-wise math, reductions and casts.

use super::Ctx;
use tensorgraph_graph::ops::{array as a, math as m, nn};
use tensorgraph_graph::{BinaryOp, DType, ReduceOp, Result, Tensor, UnaryOp};

type Grads = Result<Vec<Option<Tensor>>>;

/// A scalar constant of `like`'s dtype.
pub(crate) fn k(like: &Tensor, v: f64) -> Result<Tensor> {
    like.graph().scalar(v, like.dtype())
}

pub(super) fn matmul(c: &Ctx, ta: bool, tb: bool) -> Grads {
    let (x, y, g) = (c.x(0), c.x(1), c.g());
    let (dx, dy) = match (ta, tb) {
        (false, false) => (m::matmul(g, y, false, true)?, m::matmul(x, g, true, false)?),
        (true, false) => (m::matmul(y, g, false, true)?, m::matmul(x, g, false, false)?),
        (false, true) => (m::matmul(g, y, false, false)?, m::matmul(g, x, true, false)?),
        (true, true) => (m::matmul(y, g, true, true)?, m::matmul(g, x, true, true)?),
    };
    Ok(vec![Some(dx), Some(dy)])
}

pub(super) fn unary(c: &Ctx, u: UnaryOp) -> Grads {
    let (x, g) = (c.x(0), c.g());
    let dx = match u {
        UnaryOp::Relu => nn::relu_grad(g, &c.y(0)?)?,
        UnaryOp::Sigmoid => nn::sigmoid_grad(&c.y(0)?, g)?,
        UnaryOp::Tanh => nn::tanh_grad(&c.y(0)?, g)?,
        UnaryOp::Exp => m::mul(g, &c.y(0)?)?,
        UnaryOp::Log => m::div(g, x)?,
        UnaryOp::Log1p => m::div(g, &m::add(x, &k(x, 1.0)?)?)?,
        // d erf(x) = 2/√π · e^(-x²)
        UnaryOp::Erf => {
            m::mul(g, &m::mul(&m::exp(&m::neg(&m::square(x)?)?)?, &k(x, std::f64::consts::FRAC_2_SQRT_PI)?)?)?
        }
        UnaryOp::Neg => m::neg(g)?,
        UnaryOp::Square => m::mul(g, &m::mul(x, &k(x, 2.0)?)?)?,
        UnaryOp::Sqrt => m::div(&m::mul(g, &k(x, 0.5)?)?, &c.y(0)?)?,
        UnaryOp::Rsqrt => {
            let y = c.y(0)?;
            let y3 = m::mul(&m::square(&y)?, &y)?;
            m::mul(&m::mul(g, &k(x, -0.5)?)?, &y3)?
        }
        UnaryOp::Abs => m::mul(g, &m::sign(x)?)?,
        UnaryOp::Sign | UnaryOp::Floor | UnaryOp::LogicalNot => return Ok(vec![None]),
        UnaryOp::Elu => {
            // d/dx = 1 where y > 0, else y + 1.
            let y = c.y(0)?;
            let pos = m::greater(&y, &k(x, 0.0)?)?.cast(x.dtype())?;
            let slope = m::add(&pos, &m::mul(&m::sub(&k(x, 1.0)?, &pos)?, &m::add(&y, &k(x, 1.0)?)?)?)?;
            m::mul(g, &slope)?
        }
        UnaryOp::Selu => {
            // d/dx = scale where x > 0, else y + scale·alpha.
            let (alpha, scale) = (UnaryOp::SELU_ALPHA, UnaryOp::SELU_SCALE);
            let y = c.y(0)?;
            let pos = m::greater(x, &k(x, 0.0)?)?.cast(x.dtype())?;
            let neg_slope = m::add(&y, &k(x, scale * alpha)?)?;
            let slope = m::add(&m::mul(&pos, &k(x, scale)?)?, &m::mul(&m::sub(&k(x, 1.0)?, &pos)?, &neg_slope)?)?;
            m::mul(g, &slope)?
        }
        UnaryOp::Softplus => m::mul(g, &nn::sigmoid(x)?)?,
        UnaryOp::Softsign => m::div(g, &m::square(&m::add(&k(x, 1.0)?, &m::abs(x)?)?)?)?,
        UnaryOp::Reciprocal => {
            let y = c.y(0)?;
            m::neg(&m::mul(g, &m::square(&y)?)?)?
        }
    };
    Ok(vec![Some(dx)])
}

/// Gradients with the output's (broadcast) shape; autodiff reduces them to each input's shape.
pub(super) fn binary(c: &Ctx, b: BinaryOp) -> Grads {
    let (x, y, g) = (c.x(0), c.x(1), c.g());
    let mask = |t: Tensor| t.cast(x.dtype());
    let (dx, dy) = match b {
        BinaryOp::Add => (g.clone(), g.clone()),
        BinaryOp::Sub => (g.clone(), m::neg(g)?),
        BinaryOp::Mul => (m::mul(g, y)?, m::mul(g, x)?),
        BinaryOp::Div => {
            let dx = m::div(g, y)?;
            let dy = m::neg(&m::div(&m::mul(g, x)?, &m::square(y)?)?)?;
            (dx, dy)
        }
        BinaryOp::Maximum | BinaryOp::Minimum => {
            let pick_x = if b == BinaryOp::Maximum { m::greater_equal(x, y)? } else { m::less_equal(x, y)? };
            let mx = mask(pick_x)?;
            let dx = m::mul(g, &mx)?;
            let dy = m::mul(g, &m::sub(&k(x, 1.0)?, &mx)?)?;
            (dx, dy)
        }
        BinaryOp::Pow => {
            let z = c.y(0)?;
            let dx = m::mul(&m::mul(g, y)?, &m::pow(x, &m::sub(y, &k(y, 1.0)?)?)?)?;
            // d/dy x^y = x^y log x, taken as 0 where x <= 0 (as TF does).
            let pos = mask(m::greater(x, &k(x, 0.0)?)?)?;
            let safe_x = m::add(&m::mul(x, &pos)?, &m::sub(&k(x, 1.0)?, &pos)?)?;
            let dy = m::mul(&m::mul(g, &z)?, &m::log(&safe_x)?)?;
            (dx, dy)
        }
        BinaryOp::ReluGrad => return Ok(vec![Some(nn::relu_grad(g, y)?), None]),
        BinaryOp::SigmoidGrad => {
            // out = dy * s * (1 - s): d/ds = g * dy * (1 - 2s); d/d(dy) = sigmoid_grad(s, g).
            let one_minus_2s = m::sub(&k(x, 1.0)?, &m::mul(&k(x, 2.0)?, x)?)?;
            (m::mul(&m::mul(g, y)?, &one_minus_2s)?, nn::sigmoid_grad(x, g)?)
        }
        BinaryOp::TanhGrad => {
            // out = dy * (1 - t^2): d/dt = -2 g dy t; d/d(dy) = tanh_grad(t, g).
            let dt = m::mul(&m::mul(g, y)?, &m::mul(&k(x, -2.0)?, x)?)?;
            (dt, nn::tanh_grad(x, g)?)
        }
        BinaryOp::Equal
        | BinaryOp::NotEqual
        | BinaryOp::Less
        | BinaryOp::LessEqual
        | BinaryOp::Greater
        | BinaryOp::GreaterEqual
        | BinaryOp::LogicalAnd
        | BinaryOp::LogicalOr => return Ok(vec![None, None]),
    };
    Ok(vec![Some(dx), Some(dy)])
}

/// The gradient goes to the branch each element came from (autodiff reduces broadcast axes).
pub(super) fn select(c: &Ctx) -> Grads {
    let (cond, g) = (c.x(0), c.g());
    let zeros = a::zeros_like(g)?;
    Ok(vec![None, Some(m::select(cond, g, &zeros)?), Some(m::select(cond, &zeros, g)?)])
}

/// Re-inserts reduced axes (size 1) so the gradient broadcasts against the input.
fn restore_axes(t: &Tensor, axes: &[usize], keep_dims: bool) -> Result<Tensor> {
    let mut t = t.clone();
    if !keep_dims {
        for &ax in axes {
            t = a::expand_dims(&t, ax as i64)?;
        }
    }
    Ok(t)
}

pub(super) fn reduce(c: &Ctx, op: ReduceOp, axes: &[usize], keep_dims: bool) -> Grads {
    let x = c.x(0);
    let g = restore_axes(c.g(), axes, keep_dims)?;
    let dx = match op {
        ReduceOp::Sum => a::broadcast_to(&g, x)?,
        ReduceOp::Mean => {
            let n = m::size(x, Some(&axes.iter().map(|&a| a as i64).collect::<Vec<_>>()), x.dtype())?;
            m::div(&a::broadcast_to(&g, x)?, &n)?
        }
        ReduceOp::Prod => m::mul(&a::broadcast_to(&g, x)?, &product_of_others(x, axes)?)?,
        ReduceOp::Max | ReduceOp::Min => {
            // Split the gradient evenly among the elements equal to the extremum (TF's rule).
            let y = restore_axes(&c.y(0)?, axes, keep_dims)?;
            let hits = m::equal(x, &y)?.cast(x.dtype())?;
            let count = m::reduce_sum_keep_dims(&hits, Some(&axes.iter().map(|&a| a as i64).collect::<Vec<_>>()))?;
            m::div(&m::mul(&hits, &g)?, &count)?
        }
    };
    Ok(vec![Some(dx)])
}

/// For each element of `x`, the product of the other elements of its reduction over `axes`,
/// without dividing (so zeros are right): TF's rule, the exclusive running products from both
/// ends along the reduced elements. Several axes are first moved to the front and joined into
/// one, which needs `x`'s shape known.
fn product_of_others(x: &Tensor, axes: &[usize]) -> Result<Tensor> {
    let both = |t: &Tensor, axis: i64| -> Result<Tensor> {
        m::mul(&m::cumprod(t, axis, true, false)?, &m::cumprod(t, axis, true, true)?)
    };
    match axes {
        [] => a::ones_like(x),
        [axis] => both(x, *axis as i64),
        _ => {
            let Some(shape) = x.shape().to_vec() else {
                return Err(tensorgraph_graph::Error::NoGradient { node: x.op().info() });
            };
            let rest: Vec<usize> = (0..shape.len()).filter(|i| !axes.contains(i)).collect();
            let perm: Vec<usize> = axes.iter().chain(&rest).copied().collect();
            let reduced: usize = axes.iter().map(|&i| shape[i]).product();
            let moved = a::transpose(x, Some(&perm))?;
            let joined = a::reshape(&moved, &[reduced as i64, -1])?;
            let permuted: Vec<i64> = perm.iter().map(|&i| shape[i] as i64).collect();
            let back = a::reshape(&both(&joined, 0)?, &permuted)?;
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            a::transpose(&back, Some(&inverse))
        }
    }
}

/// `Cumsum`'s gradient runs the other way; `Cumprod`'s is TF's `cumsum(y·g, reversed) / x`.
pub(super) fn cumulative(c: &Ctx, axis: usize, exclusive: bool, reverse: bool, prod: bool) -> Grads {
    let (x, g) = (c.x(0), c.g());
    let dx = if prod {
        let summed = m::cumsum(&m::mul(&c.y(0)?, g)?, axis as i64, exclusive, !reverse)?;
        m::div(&summed, x)?
    } else {
        m::cumsum(g, axis as i64, exclusive, !reverse)?
    };
    Ok(vec![Some(dx)])
}

/// Each value's gradient goes back to the place it was taken from.
pub(super) fn top_k(c: &Ctx) -> Grads {
    let (x, g) = (c.x(0), c.grads[0].as_ref());
    let Some(g) = g else { return Ok(vec![None]) };
    let Some(Some(n)) = x.shape().dims().last().copied() else {
        return Err(tensorgraph_graph::Error::NoGradient { node: c.node.info() });
    };
    let hits = a::one_hot(&c.y(1)?, n, 1.0, 0.0, x.dtype())?; // [..., k, n]
    Ok(vec![Some(m::reduce_sum(&m::mul(&hits, &a::expand_dims(g, -1)?)?, Some(&[-2]))?)])
}

/// TF's rules for each pair of adjoints, each gradient summed back over broadcast batch axes.
pub(super) fn batch_matmul(c: &Ctx, adj_x: bool, adj_y: bool) -> Grads {
    let (x, y, g) = (c.x(0), c.x(1), c.g());
    let mm = m::batch_matmul;
    let (dx, dy) = match (adj_x, adj_y) {
        (false, false) => (mm(g, y, false, true)?, mm(x, g, true, false)?),
        (false, true) => (mm(g, y, false, false)?, mm(g, x, true, false)?),
        (true, false) => (mm(y, g, false, true)?, mm(x, g, false, false)?),
        (true, true) => (mm(y, g, true, true)?, mm(g, x, true, true)?),
    };
    Ok(vec![Some(a::sum_to_shape(&dx, x)?), Some(a::sum_to_shape(&dy, y)?)])
}

pub(super) fn cast(c: &Ctx, to: DType) -> Grads {
    let from = c.x(0).dtype();
    if from.is_float() && to.is_float() {
        Ok(vec![Some(c.g().cast(from)?)])
    } else {
        Ok(vec![None])
    }
}
