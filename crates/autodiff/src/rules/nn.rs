//! Gradients of bias_add, softmax, log-softmax and the sparse softmax cross-entropy.

use super::Ctx;
use tensorgraph_graph::ops::{array as a, math as m, nn};
use tensorgraph_graph::{Result, Tensor};

type Grads = Result<Vec<Option<Tensor>>>;

pub(super) fn bias_add(c: &Ctx) -> Grads {
    let g = c.g();
    let rank = g.shape().rank() as i64;
    let axes: Vec<i64> = (0..rank - 1).collect();
    Ok(vec![Some(g.clone()), Some(m::reduce_sum(g, Some(&axes))?)])
}

/// `(g - sum(g * s, -1)) * s`: the softmax Jacobian applied to `g`.
fn softmax_backward(g: &Tensor, s: &Tensor) -> Result<Tensor> {
    let dot = m::reduce_sum_keep_dims(&m::mul(g, s)?, Some(&[-1]))?;
    m::mul(&m::sub(g, &dot)?, s)
}

/// `g` where `x > 0`, else `alpha·g`.
pub(super) fn leaky_relu(c: &Ctx, alpha: f64) -> Grads {
    let x = c.x(0);
    let pos = m::greater(x, &super::math::k(x, 0.0)?)?.cast(x.dtype())?;
    let slope = m::add(&pos, &m::mul(&m::sub(&super::math::k(x, 1.0)?, &pos)?, &super::math::k(x, alpha)?)?)?;
    Ok(vec![Some(m::mul(c.g(), &slope)?)])
}

pub(super) fn softmax(c: &Ctx) -> Grads {
    Ok(vec![Some(softmax_backward(c.g(), &c.y(0)?)?)])
}

pub(super) fn log_softmax(c: &Ctx) -> Grads {
    let g = c.g();
    let sum = m::reduce_sum_keep_dims(g, Some(&[-1]))?;
    Ok(vec![Some(m::sub(g, &m::mul(&sum, &m::exp(&c.y(0)?)?)?)?)])
}

/// Loss gradient: `g[:, None] * backprop`. When the `backprop` output itself is differentiated
/// (second order), its contribution is the softmax Jacobian, as TF's rule.
/// Gradients of `y` only: the statistics outputs feed moving averages, which are not
/// differentiated (a gradient arriving there is an error, not silently dropped).
pub(super) fn fused_batch_norm(c: &Ctx) -> Grads {
    if c.grads[1..].iter().any(Option::is_some) {
        return Err(tensorgraph_graph::Error::NoGradient { node: c.node.info() });
    }
    let Some(dy) = &c.grads[0] else { return Ok(c.none()) };
    let (x, scale, training) = (c.x(0), c.x(1), c.x(5));
    let grad = nn::fused_batch_norm_grad(dy, x, scale, &c.y(3)?, &c.y(4)?, training)?;
    Ok(vec![Some(grad[0].clone()), Some(grad[1].clone()), Some(grad[2].clone()), None, None, None])
}

pub(super) fn sparse_xent(c: &Ctx) -> Grads {
    let mut total: Option<Tensor> = None;
    if let Some(g0) = &c.grads[0] {
        total = Some(m::mul(&a::expand_dims(g0, -1)?, &c.y(1)?)?);
    }
    if let Some(g1) = &c.grads[1] {
        let s = nn::softmax(c.x(0))?;
        let extra = softmax_backward(g1, &s)?;
        total = Some(match total {
            Some(t) => m::add(&t, &extra)?,
            None => extra,
        });
    }
    Ok(vec![total, None])
}
