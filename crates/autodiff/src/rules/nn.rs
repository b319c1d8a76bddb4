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

/// TF's gradient of `LSTMBlockCell`: the grad op gives the gates' pre-activation gradients
/// `dicfo` and `cs_prev`'s; GEMMs give `[x, h_prev]`'s and `w`'s, a column sum `b`'s. Only `cs`
/// and `h` pass gradients back (the gate outputs are there for the grad op), as in TF.
pub(super) fn lstm_block_cell(c: &Ctx, use_peephole: bool) -> Grads {
    let outputs: Vec<Tensor> = (0..6).map(|i| c.y(i)).collect::<Result<_>>()?;
    let grad_of = |k: usize| match &c.grads[k] {
        Some(g) => Ok(g.clone()),
        None => a::zeros_like(&c.y(k)?),
    };
    let (cs_grad, h_grad) = (grad_of(1)?, grad_of(6)?);
    let g = nn::lstm_block_cell_grad(c.inputs, &outputs, &cs_grad, &h_grad, use_peephole)?;
    let (x, h_prev, w) = (c.x(0), c.x(2), c.x(3));
    let Some(input) = x.shape().dim(1) else {
        return Err(tensorgraph_graph::Error::InvalidArgument {
            node: c.node.info(),
            detail: format!("the gradient of an LSTM block needs x's features known, got shape {}", x.shape()),
        });
    };
    let dicfo = &g[1];
    let xh_grad = m::matmul(dicfo, w, false, true)?;
    let x_grad = a::slice(&xh_grad, &[0, 0], &[-1, input as i64])?;
    let h_prev_grad = a::slice(&xh_grad, &[0, input], &[-1, -1])?;
    let w_grad = m::matmul(&a::concat(&[x, h_prev], 1)?, dicfo, true, false)?;
    let b_grad = m::reduce_sum(dicfo, Some(&[0]))?;
    let peep = |k: usize| use_peephole.then(|| g[k].clone());
    Ok(vec![Some(x_grad), Some(g[0].clone()), Some(h_prev_grad), Some(w_grad), peep(2), peep(3), peep(4), Some(b_grad)])
}
