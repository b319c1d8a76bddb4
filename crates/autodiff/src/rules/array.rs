//! Gradients of reshapes, transposes, concat, slice and pad.

use super::Ctx;
use tensorgraph_graph::ops::array as a;
use tensorgraph_graph::{Error, Result, Tensor};

type Grads = Result<Vec<Option<Tensor>>>;

/// Reshapes back to the input's static shape; one unknown dimension becomes -1, more are
/// read when the graph runs.
pub(super) fn reshape(c: &Ctx) -> Grads {
    let x = c.x(0);
    let shape = x.shape();
    let unknown = shape.dims().iter().filter(|d| d.is_none()).count();
    if unknown > 1 {
        return Ok(vec![Some(to_run_time_shape_of_input(c)?)]);
    }
    let target: Vec<i64> = shape.dims().iter().map(|d| d.map_or(-1, |d| d as i64)).collect();
    Ok(vec![Some(a::reshape(c.g(), &target)?)])
}

/// The gradient of a reshape to a shape known when the graph runs.
pub(super) fn reshape_dynamic(c: &Ctx) -> Grads {
    Ok(vec![Some(to_run_time_shape_of_input(c)?), None])
}

/// The gradient reshaped to the input's shape as the graph runs.
fn to_run_time_shape_of_input(c: &Ctx) -> Result<Tensor> {
    a::reshape_dynamic(c.g(), &tensorgraph_graph::ops::math::shape(c.x(0), tensorgraph_graph::DType::I32)?)
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
/// Each input's part of the gradient. Sizes along the axis known when the graph is built give
/// static slices; one input of a size known only at run time (a loop's growing accumulator) gets
/// what lies between the others, a strided slice counted from both ends.
pub(super) fn concat(c: &Ctx, axis: usize) -> Grads {
    let g = c.g();
    let rank = g.shape().rank();
    let sizes: Vec<Option<usize>> = c.inputs.iter().map(|x| x.shape().dim(axis)).collect();
    let unknown: Vec<usize> = (0..sizes.len()).filter(|&i| sizes[i].is_none()).collect();
    if let [u] = unknown[..] {
        let before: usize = sizes[..u].iter().flatten().sum();
        let after: usize = sizes[u + 1..].iter().flatten().sum();
        let mut out = Vec::with_capacity(c.inputs.len());
        let mut offset = 0i64;
        for (i, size) in sizes.iter().enumerate() {
            let range = match size {
                // Counted from the start before the unknown input, from the end after it.
                Some(n) if i < u => tensorgraph_graph::Index::Range(Some(offset), Some(offset + *n as i64), 1),
                Some(n) => {
                    let end = offset + *n as i64;
                    tensorgraph_graph::Index::Range(Some(offset), (end != 0).then_some(end), 1)
                }
                None => {
                    tensorgraph_graph::Index::Range(Some(before as i64), (after != 0).then_some(-(after as i64)), 1)
                }
            };
            offset = match size {
                None => -(after as i64),
                Some(n) => offset + *n as i64,
            };
            let mut index = vec![tensorgraph_graph::Index::All; rank];
            index[axis] = range;
            out.push(Some(a::strided_slice(g, &index)?));
        }
        return Ok(out);
    }
    let mut offset = 0;
    let mut out = Vec::with_capacity(c.inputs.len());
    for x in c.inputs {
        let Some(len) = x.shape().dim(axis) else {
            return Err(Error::InvalidArgument {
                node: c.node.info(),
                detail: format!(
                    "gradient of concat needs the size of axis {axis} of all but one input: {} (shape {}) is unknown",
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

/// The gradient's slices summed back into the rows of `params` they came from (TF densifies its
/// `IndexedSlices` the same way): repeated indices add up. The indices' dimensions are moved
/// first and flattened, which needs `params`' other dimensions known unless the indices are a
/// vector gathered along axis 0 (an embedding lookup).
pub(super) fn gather(c: &Ctx, axis: usize) -> Grads {
    use tensorgraph_graph::{ops::math as m, DType};
    let (params, indices, g) = (c.x(0), c.x(1), c.g());
    let (p, r) = (params.shape(), indices.shape().rank());
    // The number of rows, params.shape[axis], at run time.
    let rows = a::reshape(&a::slice(&m::shape(params, DType::I64)?, &[axis], &[1])?, &[])?;
    let mut perm: Vec<usize> = (axis..axis + r).chain(0..axis).chain(axis + r..p.rank() + r - 1).collect();
    let (ids, values) = if r <= 1 && axis == 0 {
        (indices.clone(), g.clone())
    } else {
        let others: Option<Vec<i64>> =
            (0..p.rank()).filter(|&i| i != axis).map(|i| p.dim(i).map(|d| d as i64)).collect();
        let Some(others) = others else {
            return Err(Error::InvalidArgument {
                node: c.node.info(),
                detail: format!(
                    "gradient of a gather along axis {axis} needs the other dimensions of params {p} known"
                ),
            });
        };
        let moved =
            if perm.iter().enumerate().all(|(i, &p)| i == p) { g.clone() } else { a::transpose(g, Some(&perm))? };
        let flat: Vec<i64> = std::iter::once(-1).chain(others).collect();
        (a::reshape(indices, &[-1])?, a::reshape(&moved, &flat)?)
    };
    let summed = m::unsorted_segment_sum(&values, &ids, &rows)?;
    // Rows are first in `summed`: put that axis back in its place.
    perm = (1..=axis).chain(std::iter::once(0)).chain(axis + 1..p.rank()).collect();
    let dparams = if axis == 0 { summed } else { a::transpose(&summed, Some(&perm))? };
    Ok(vec![Some(dparams), None])
}

/// Each slice of `data` gets the gradient of its segment's row; dropped (negative) ids get zero.
pub(super) fn unsorted_segment_sum(c: &Ctx) -> Grads {
    use tensorgraph_graph::ops::math as m;
    let (data, ids, g) = (c.x(0), c.x(1), c.g());
    let zero = ids.graph().scalar(0.0, ids.dtype())?;
    let gathered = a::gather(g, &m::maximum(ids, &zero)?, 0)?;
    let mut kept = m::greater_equal(ids, &zero)?.cast(data.dtype())?;
    for _ in ids.shape().rank()..data.shape().rank() {
        kept = a::expand_dims(&kept, -1)?;
    }
    Ok(vec![Some(m::mul(&gathered, &kept)?), None, None])
}

/// The pieces' gradients joined again; a piece nothing depends on contributes zeros.
pub(super) fn split(c: &Ctx, axis: usize) -> Grads {
    let pieces = c.filled_grads()?;
    Ok(vec![Some(a::concat(&pieces.iter().collect::<Vec<_>>(), axis as i64)?)])
}

pub(super) fn pack(c: &Ctx, axis: usize) -> Grads {
    Ok(a::unstack(c.g(), axis as i64)?.into_iter().map(Some).collect())
}

/// The slices' gradients stacked again; a slice nothing depends on contributes zeros.
pub(super) fn unpack(c: &Ctx, axis: usize) -> Grads {
    let slices = c.filled_grads()?;
    Ok(vec![Some(a::stack(&slices.iter().collect::<Vec<_>>(), axis as i64)?)])
}

/// The gradient's tiles summed: viewed as `[m0, d0, m1, d1, ...]` and summed over the
/// multiples' axes. Each input dimension must be known, or unknown and not repeated (at most
/// one such).
pub(super) fn tile(c: &Ctx, multiples: &[usize]) -> Grads {
    use tensorgraph_graph::ops::math as m;
    let x = c.x(0).shape();
    let mut target = Vec::with_capacity(2 * multiples.len());
    for (i, &k) in multiples.iter().enumerate() {
        let d = match (x.dim(i), k) {
            (Some(d), _) => d as i64,
            (None, 1) if !target.contains(&-1) => -1,
            _ => {
                return Err(Error::InvalidArgument {
                    node: c.node.info(),
                    detail: format!("gradient of a tile of {x} by {multiples:?} needs dimension {i} known"),
                })
            }
        };
        target.extend([k as i64, d]);
    }
    let axes: Vec<i64> = (0..multiples.len() as i64).map(|i| 2 * i).collect();
    Ok(vec![Some(m::reduce_sum(&a::reshape(c.g(), &target)?, Some(&axes))?)])
}
