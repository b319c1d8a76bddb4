//! Shape manipulation: reshape targets, transpose, concat, one-hot, broadcast.

use crate::{kbail, KResult};
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn};

/// `[2,3]`: shapes in messages print as in the graph.
pub fn fmt_shape(s: &[usize]) -> String {
    let parts: Vec<String> = s.iter().map(usize::to_string).collect();
    format!("[{}]", parts.join(","))
}

/// Resolves a reshape target (one entry may be -1) for an input of `len` elements.
pub fn reshape_target(input: &[usize], target: &[i64]) -> KResult<Vec<usize>> {
    let len: usize = input.iter().product();
    let bad = || crate::KernelError(format!("cannot reshape {} ({len} elements) into {target:?}", fmt_shape(input)));
    let known = target.iter().filter(|&&d| d >= 0).try_fold(1usize, |acc, &d| acc.checked_mul(d as usize));
    let known = known.ok_or_else(bad)?;
    let dims: Vec<usize> = target
        .iter()
        .map(|&d| match d {
            -1 if known > 0 && len.is_multiple_of(known) => Ok(len / known),
            -1 if known == 0 && len == 0 => Ok(0),
            d if d >= 0 => Ok(d as usize),
            _ => Err(bad()),
        })
        .collect::<KResult<_>>()?;
    if dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) != Some(len) {
        return Err(bad());
    }
    Ok(dims)
}

/// Reshapes in row-major order, copying only if `x` is not contiguous.
pub fn reshape<T: Clone>(x: ArrayD<T>, shape: &[usize]) -> KResult<ArrayD<T>> {
    let from = fmt_shape(x.shape());
    let x = if x.is_standard_layout() { x } else { x.as_standard_layout().into_owned() };
    x.into_shape_with_order(IxDyn(shape))
        .map_err(|_| crate::KernelError(format!("cannot reshape {from} into {}", fmt_shape(shape))))
}

/// Permutes axes and lays the result out row-major.
pub fn transpose<T: Clone>(x: &ArrayViewD<T>, perm: &[usize]) -> KResult<ArrayD<T>> {
    if perm.len() != x.ndim() {
        kbail!("perm {perm:?} does not fit shape {}", fmt_shape(x.shape()));
    }
    Ok(x.view().permuted_axes(IxDyn(perm)).as_standard_layout().into_owned())
}

/// Joins along `axis`.
pub fn concat<T: Clone>(xs: &[ArrayViewD<T>], axis: usize) -> KResult<ArrayD<T>> {
    ndarray::concatenate(Axis(axis), xs).map_err(|_| {
        let shapes: Vec<String> = xs.iter().map(|x| fmt_shape(x.shape())).collect();
        crate::KernelError(format!("cannot concatenate {} on axis {axis}", shapes.join(", ")))
    })
}

/// An array of `shape` filled with `x`; a shape too large to allocate is an error, not an abort.
pub fn try_filled<T: Clone>(shape: &[usize], x: T) -> KResult<ArrayD<T>> {
    let too_large = || crate::KernelError(format!("output shape {} is too large to allocate", fmt_shape(shape)));
    let n = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(too_large)?;
    let bytes = n.checked_mul(std::mem::size_of::<T>().max(1)).filter(|&b| b <= isize::MAX as usize);
    let mut v = Vec::new();
    bytes.and_then(|_| v.try_reserve_exact(n).ok()).ok_or_else(too_large)?;
    v.resize(n, x);
    Ok(ArrayD::from_shape_vec(IxDyn(shape), v).expect("n elements"))
}

/// One-hot rows along a new last axis; out-of-range indices give all `off`.
pub fn one_hot<T: Copy>(indices: &ArrayViewD<i64>, depth: usize, on: T, off: T) -> KResult<ArrayD<T>> {
    let mut shape = indices.shape().to_vec();
    shape.push(depth);
    let mut out = try_filled(&shape, off)?;
    let flat = out.as_slice_mut().expect("fresh array is contiguous");
    for (row, &i) in indices.iter().enumerate() {
        if (0..depth as i64).contains(&i) {
            flat[row * depth + i as usize] = on;
        }
    }
    Ok(out)
}

/// Broadcasts `x` to `shape`.
pub fn broadcast_to<T: Clone>(x: &ArrayViewD<T>, shape: &[usize]) -> KResult<ArrayD<T>> {
    match x.broadcast(IxDyn(shape)) {
        Some(v) => Ok(v.to_owned()),
        None => kbail!("cannot broadcast {} to {}", fmt_shape(x.shape()), fmt_shape(shape)),
    }
}

/// A static slice; `size[i] == -1` runs to the end.
pub fn slice<T: Clone>(x: &ArrayViewD<T>, begin: &[usize], size: &[i64]) -> KResult<ArrayD<T>> {
    if begin.len() != x.ndim() || size.len() != x.ndim() {
        kbail!("slice begin {begin:?} size {size:?} do not fit shape {}", fmt_shape(x.shape()));
    }
    let mut v = x.view();
    for (i, (&b, &s)) in begin.iter().zip(size).enumerate() {
        let d = x.shape()[i];
        let e = if s == -1 { d } else { b.saturating_add(s as usize) };
        if b > d || e > d || e < b {
            kbail!("slice begin {begin:?} size {size:?} out of bounds for shape {}", fmt_shape(x.shape()));
        }
        v.slice_axis_inplace(Axis(i), ndarray::Slice::from(b..e));
    }
    Ok(v.to_owned())
}

/// Zero padding with `(before, after)` per dimension.
pub fn pad<T: Clone + num_traits::Zero>(x: &ArrayViewD<T>, paddings: &[(usize, usize)]) -> KResult<ArrayD<T>> {
    if paddings.len() != x.ndim() {
        kbail!("{} paddings for shape {}", paddings.len(), fmt_shape(x.shape()));
    }
    let shape = x.shape().iter().zip(paddings).map(|(d, (a, b))| d.checked_add(*a)?.checked_add(*b));
    let Some(shape) = shape.collect::<Option<Vec<usize>>>() else {
        kbail!("paddings {paddings:?} of {} overflow", fmt_shape(x.shape()));
    };
    let mut out = try_filled(&shape, T::zero())?;
    let mut v = out.view_mut();
    for (i, (&(a, _), &d)) in paddings.iter().zip(x.shape()).enumerate() {
        v.slice_axis_inplace(Axis(i), ndarray::Slice::from(a..a + d));
    }
    v.assign(x);
    Ok(out)
}
