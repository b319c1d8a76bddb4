//! Gradients of convolution and pooling. The backward ops are ops of their own and have rules
//! too, so gradients flow through them again (second order), as TF's rules do.

use super::Ctx;
use tensorgraph_graph::ops::nn;
use tensorgraph_graph::{ConvAttrs, PoolAttrs, Result, Tensor};

type Grads = Result<Vec<Option<Tensor>>>;

/// Conv2D(x, w): dx = Conv2DBackpropInput(x, w, g); dw = Conv2DBackpropFilter(x, w, g).
pub(super) fn conv2d(c: &Ctx, a: &ConvAttrs) -> Grads {
    let (x, w, g) = (c.x(0), c.x(1), c.g());
    let (s, p, d) = (a.strides, a.padding, a.dilations);
    Ok(vec![Some(nn::conv2d_backprop_input(x, w, g, s, p, d)?), Some(nn::conv2d_backprop_filter(x, w, g, s, p, d)?)])
}

/// Conv2DBackpropInput(x_shape, w, dy) is linear in w and dy: G (shaped like x) flows to the
/// filter as BackpropFilter(G, w, dy) and to dy as Conv2D(G, w).
pub(super) fn backprop_input(c: &Ctx, a: &ConvAttrs) -> Grads {
    let (w, dy, g) = (c.x(1), c.x(2), c.g());
    let (s, p, d) = (a.strides, a.padding, a.dilations);
    Ok(vec![None, Some(nn::conv2d_backprop_filter(g, w, dy, s, p, d)?), Some(nn::conv2d_dilated(g, w, s, p, d)?)])
}

/// Conv2DBackpropFilter(x, w_shape, dy) is linear in x and dy: G (shaped like w) flows to x as
/// BackpropInput(x, G, dy) and to dy as Conv2D(x, G).
pub(super) fn backprop_filter(c: &Ctx, a: &ConvAttrs) -> Grads {
    let (x, dy, g) = (c.x(0), c.x(2), c.g());
    let (s, p, d) = (a.strides, a.padding, a.dilations);
    Ok(vec![Some(nn::conv2d_backprop_input(x, g, dy, s, p, d)?), None, Some(nn::conv2d_dilated(x, g, s, p, d)?)])
}

pub(super) fn max_pool(c: &Ctx, a: &PoolAttrs) -> Grads {
    let (k, s, p) = (a.ksize, a.strides, a.padding);
    Ok(vec![Some(nn::max_pool_grad(c.x(0), c.g(), k, s, p)?)])
}

/// MaxPoolGrad(x, dy) is linear in dy: G picks its value at each window's maximum. The routing
/// is piecewise constant in x, so x gets no gradient (as in TF).
pub(super) fn max_pool_grad(c: &Ctx, a: &PoolAttrs) -> Grads {
    let (k, s, p) = (a.ksize, a.strides, a.padding);
    Ok(vec![None, Some(nn::max_pool_grad_grad(c.x(0), c.g(), k, s, p)?)])
}

/// MaxPoolGradGrad(x, ddx) is linear in ddx, with MaxPoolGrad as its adjoint.
pub(super) fn max_pool_grad_grad(c: &Ctx, a: &PoolAttrs) -> Grads {
    let (k, s, p) = (a.ksize, a.strides, a.padding);
    Ok(vec![None, Some(nn::max_pool_grad(c.x(0), c.g(), k, s, p)?)])
}

pub(super) fn avg_pool(c: &Ctx, a: &PoolAttrs) -> Grads {
    let (k, s, p) = (a.ksize, a.strides, a.padding);
    Ok(vec![Some(nn::avg_pool_grad(c.x(0), c.g(), k, s, p)?)])
}

/// AvgPoolGrad(x_shape, dy) is linear in dy with AvgPool as its adjoint.
pub(super) fn avg_pool_grad(c: &Ctx, a: &PoolAttrs) -> Grads {
    let (k, s, p) = (a.ksize, a.strides, a.padding);
    Ok(vec![None, Some(nn::avg_pool(c.g(), k, s, p)?)])
}
