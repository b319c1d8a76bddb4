//! Gradients of reshapes, transposes, concat, slice and pad.

use super::Ctx;
use tensorgraph_graph::ops::array as a;
use tensorgraph_graph::{Error, Result, Tensor};

type Grads = Result<Vec<Option<Tensor>>>;

/// Reshapes back to the input's static shape; one unknown dimension becomes -1.
pub(super) fn reshape(c: &Ctx) -> Grads {
    let x = c.x(0);
    let shape = x.shape();
    let unknown = shape.dims().iter().filter(|d| d.is_none()).count();
    if unknown > 1 {
        return Err(Error::InvalidArgument {
            node: c.node.info(),
            detail: format!("gradient of a reshape whose input {} has more than one unknown dimension", shape),
        });
    }
    let target: Vec<i64> = shape.dims().iter().map(|d| d.map_or(-1, |d| d as i64)).collect();
    Ok(vec![Some(a::reshape(c.g(), &target)?)])
}

pub(super) fn transpose(c: &Ctx, perm: &[usize]) -> Grads {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    Ok(vec![Some(a::transpose(c.g(), Some(&inv))?)])
}

pub(super) fn expand_dims(c: &Ctx, axis: usize) -> Grads {
    Ok(vec![Some(a::squeeze(c.g(), Some(&[axis as i64]))?)])
}

pub(super) fn squeeze(c: &Ctx, axes: &[usize]) -> Grads {
    let mut g = c.g().clone();
    for &ax in axes {
        g = a::expand_dims(&g, ax as i64)?;
    }
    Ok(vec![Some(g)])
}

/// Slices the gradient back into the pieces; the pieces' sizes along `axis` must be known.
pub(super) fn concat(c: &Ctx, axis: usize) -> Grads {
    let g = c.g();
    let rank = g.shape().rank();
    let mut offset = 0;
    let mut out = Vec::with_capacity(c.inputs.len());
    for x in c.inputs {
        let Some(len) = x.shape().dim(axis) else {
            return Err(Error::InvalidArgument {
                node: c.node.info(),
                detail: format!(
                    "gradient of concat needs the size of axis {axis} of {} (shape {})",
                    x.name(),
                    x.shape()
                ),
            });
        };
        let mut begin = vec![0; rank];
        let mut size = vec![-1i64; rank];
        begin[axis] = offset;
        size[axis] = len as i64;
        out.push(Some(a::slice(g, &begin, &size)?));
        offset += len;
    }
    Ok(out)
}

/// Pads the gradient back to the input's shape with zeros.
pub(super) fn slice(c: &Ctx, begin: &[usize]) -> Grads {
    let x = c.x(0).shape();
    let out = c.y(0)?.shape();
    let paddings = (0..x.rank())
        .map(|i| match (x.dim(i), out.dim(i)) {
            (Some(d), Some(s)) => Ok((begin[i], d - begin[i] - s)),
            _ if begin[i] == 0 && x.dim(i) == out.dim(i) => Ok((0, 0)),
            _ => Err(Error::InvalidArgument {
                node: c.node.info(),
                detail: format!("gradient of a slice of {x} needs dimension {i} to be known"),
            }),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(vec![Some(a::pad(c.g(), &paddings)?)])
}

/// Slices the padding off again.
pub(super) fn pad(c: &Ctx, paddings: &[(usize, usize)]) -> Grads {
    let x = c.x(0).shape();
    let begin: Vec<usize> = paddings.iter().map(|p| p.0).collect();
    let size = (0..x.rank())
        .map(|i| match x.dim(i) {
            Some(d) => Ok(d as i64),
            None if paddings[i].1 == 0 => Ok(-1),
            None => Err(Error::InvalidArgument {
                node: c.node.info(),
                detail: format!("gradient of a pad of {x} needs dimension {i} to be known"),
            }),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(vec![Some(a::slice(c.g(), &begin, &size)?)])
}
