//! Shape manipulation: reshape targets, transpose, concat, one-hot, broadcast.

use crate::{kbail, Arith, KResult};
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

/// Joins along `axis`. Row-major inputs are copied as blocks: for each index of the
/// dimensions before `axis`, each input's contiguous run in turn (an LSTM step's `[x, h]`).
pub fn concat<T: Clone>(xs: &[ArrayViewD<T>], axis: usize) -> KResult<ArrayD<T>> {
    let bad = || {
        let shapes: Vec<String> = xs.iter().map(|x| fmt_shape(x.shape())).collect();
        crate::KernelError(format!("cannot concatenate {} on axis {axis}", shapes.join(", ")))
    };
    let (Some(first), true) = (xs.first(), xs.iter().all(|x| x.is_standard_layout())) else {
        return ndarray::concatenate(Axis(axis), xs).map_err(|_| bad());
    };
    let (lead, rank) = (&first.shape()[..axis.min(first.ndim())], first.ndim());
    let fits = |x: &ArrayViewD<T>| {
        x.ndim() == rank
            && axis < rank
            && x.shape()[..axis] == *lead
            && x.shape()[axis + 1..] == first.shape()[axis + 1..]
    };
    if !xs.iter().all(fits) {
        return Err(bad());
    }
    let mut shape = first.shape().to_vec();
    shape[axis] = xs.iter().map(|x| x.shape()[axis]).sum();
    let outer: usize = lead.iter().product();
    let runs: Vec<(&[T], usize)> =
        xs.iter().map(|x| (x.as_slice().expect("standard layout"), x.len() / outer.max(1))).collect();
    let mut out = Vec::with_capacity(shape.iter().product());
    for o in 0..outer {
        for (data, run) in &runs {
            out.extend_from_slice(&data[o * run..(o + 1) * run]);
        }
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), out).expect("every run copied"))
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
    let mut v = x.view();
    for (i, r) in slice_ranges(x.shape(), begin, size)?.into_iter().enumerate() {
        v.slice_axis_inplace(Axis(i), ndarray::Slice::from(r));
    }
    Ok(v.to_owned())
}

/// The index range [`slice()`] takes in each dimension of `shape` (`size` -1: to the end), or an
/// error when the block does not fit.
pub fn slice_ranges(shape: &[usize], begin: &[usize], size: &[i64]) -> KResult<Vec<std::ops::Range<usize>>> {
    if begin.len() != shape.len() || size.len() != shape.len() {
        kbail!("slice begin {begin:?} size {size:?} do not fit shape {}", fmt_shape(shape));
    }
    let ranges = begin.iter().zip(size).zip(shape).map(|((&b, &s), &d)| {
        let e = if s == -1 { d } else { b.saturating_add(s as usize) };
        (b <= d && e <= d && e >= b).then_some(b..e)
    });
    match ranges.collect() {
        Some(r) => Ok(r),
        None => kbail!("slice begin {begin:?} size {size:?} out of bounds for shape {}", fmt_shape(shape)),
    }
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

/// Where padded position `i` reads from in a dimension of length `n` padded by `before`
/// (TF's `MirrorPad`: REFLECT leaves the edge out of the mirror, SYMMETRIC repeats it).
fn mirrored(i: usize, before: usize, n: usize, symmetric: bool) -> usize {
    let (j, n) = (i as isize - before as isize, n as isize);
    let s = isize::from(symmetric);
    (if j < 0 {
        -j - s
    } else if j >= n {
        2 * n - 2 + s - j
    } else {
        j
    }) as usize
}

fn mirror_check(shape: &[usize], paddings: &[(usize, usize)], symmetric: bool) -> KResult<()> {
    if paddings.len() != shape.len() {
        kbail!("{} paddings for shape {}", paddings.len(), fmt_shape(shape));
    }
    for (&(a, b), &n) in paddings.iter().zip(shape) {
        let most = if symmetric { n } else { n.saturating_sub(1) };
        if a > most || b > most {
            let mode = if symmetric { "SYMMETRIC" } else { "REFLECT" };
            kbail!("paddings must be no greater than the dimension size{}: {a}, {b} greater than {most} ({mode} padding of {})", if symmetric { "" } else { " minus one" }, fmt_shape(shape));
        }
    }
    Ok(())
}

/// `x` padded with its own mirror image (TF's `MirrorPad`, modes REFLECT and SYMMETRIC).
///
/// ```
/// use ndarray::array;
/// use tensorgraph_kernels::array::mirror_pad;
/// let x = array![1, 2, 3].into_dyn();
/// assert_eq!(mirror_pad(&x.view(), &[(2, 1)], false).unwrap(), array![3, 2, 1, 2, 3, 2].into_dyn());
/// assert_eq!(mirror_pad(&x.view(), &[(2, 1)], true).unwrap(), array![2, 1, 1, 2, 3, 3].into_dyn());
/// ```
pub fn mirror_pad<T: Clone>(x: &ArrayViewD<T>, paddings: &[(usize, usize)], symmetric: bool) -> KResult<ArrayD<T>> {
    mirror_check(x.shape(), paddings, symmetric)?;
    let shape: Vec<usize> = x.shape().iter().zip(paddings).map(|(d, (a, b))| d + a + b).collect();
    // An empty input admits no padding (checked above): its output is as empty.
    let Some(first) = x.iter().next() else {
        return Ok(ArrayD::from_shape_vec(IxDyn(&shape), Vec::new()).expect("an empty input pads to an empty output"));
    };
    let mut out = try_filled(&shape, first.clone())?;
    let mut from = vec![0; shape.len()];
    for (idx, cell) in out.indexed_iter_mut() {
        for (k, f) in from.iter_mut().enumerate() {
            *f = mirrored(idx[k], paddings[k].0, x.shape()[k], symmetric);
        }
        *cell = x[IxDyn(&from)].clone();
    }
    Ok(out)
}

/// The gradient of [`mirror_pad`] (TF's `MirrorPadGrad`): each padded position's gradient added
/// to the element it copied.
pub fn mirror_pad_grad<T: Arith>(
    g: &ArrayViewD<T>,
    paddings: &[(usize, usize)],
    symmetric: bool,
) -> KResult<ArrayD<T>> {
    if paddings.len() != g.ndim() {
        kbail!("{} paddings for shape {}", paddings.len(), fmt_shape(g.shape()));
    }
    let shape = g.shape().iter().zip(paddings).map(|(d, (a, b))| d.checked_sub(a + b)).collect::<Option<Vec<_>>>();
    let Some(shape) = shape else { kbail!("paddings {paddings:?} exceed the gradient {}", fmt_shape(g.shape())) };
    mirror_check(&shape, paddings, symmetric)?;
    let mut out = try_filled(&shape, T::ZERO)?;
    let mut to = vec![0; shape.len()];
    for (idx, &v) in g.indexed_iter() {
        for (k, t) in to.iter_mut().enumerate() {
            *t = mirrored(idx[k], paddings[k].0, shape[k], symmetric);
        }
        let cell = &mut out[IxDyn(&to)];
        *cell = cell.plus(v);
    }
    Ok(out)
}

/// The coordinates of the true (non-zero) elements, one row each in row-major order (TF's
/// one-argument `Where`).
pub fn where_true<T: Copy + PartialEq + Default>(x: &ArrayViewD<T>) -> ArrayD<i64> {
    let zero = T::default();
    let rows: Vec<i64> = x
        .indexed_iter()
        .filter(|(_, &v)| v != zero)
        .flat_map(|(idx, _)| ndarray::Dimension::slice(&idx).iter().map(|&i| i as i64).collect::<Vec<_>>())
        .collect();
    let n = rows.len().checked_div(x.ndim()).unwrap_or(0);
    let n = if x.ndim() == 0 { usize::from(x.iter().any(|&v| v != zero)) } else { n };
    ArrayD::from_shape_vec(IxDyn(&[n, x.ndim()]), rows).expect("one row of rank entries per element")
}

/// `params`' slices along `axis` at `indices` (TF's `GatherV2`): the output's shape is
/// `params.shape[..axis] + indices_shape + params.shape[axis + 1..]`; an index outside
/// `[0, params.shape[axis])` is an error naming it, as TF's CPU kernel reports it.
pub fn gather<T: Clone>(params: &ArrayViewD<T>, indices: &ArrayViewD<i64>, axis: usize) -> KResult<ArrayD<T>> {
    let p = params.shape();
    if axis >= p.len() {
        kbail!("axis {axis} out of range for params of shape {}", fmt_shape(p));
    }
    let (outer, n, inner) = (p[..axis].iter().product::<usize>(), p[axis], p[axis + 1..].iter().product::<usize>());
    if let Some((k, &i)) = indices.iter().enumerate().find(|(_, &i)| !(0..n as i64).contains(&i)) {
        kbail!("indices[{k}] = {i} is not in [0, {n})");
    }
    let shape: Vec<usize> = p[..axis].iter().chain(indices.shape()).chain(&p[axis + 1..]).copied().collect();
    let params = params.as_standard_layout();
    let src = params.as_slice().expect("standard layout");
    let too_large = || crate::KernelError(format!("output shape {} is too large to allocate", fmt_shape(&shape)));
    let len = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(too_large)?;
    let mut out = Vec::new();
    out.try_reserve_exact(len).map_err(|_| too_large())?;
    for o in 0..outer {
        for &i in indices.iter() {
            let start = (o * n + i as usize) * inner;
            out.extend_from_slice(&src[start..start + inner]);
        }
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), out).expect("gathered every slice"))
}

/// A resolved strided slice of one dimension as ndarray's `Slice`: `len` elements from `start`,
/// `step` apart (backwards when negative).
fn strided_axis((start, len, step): (usize, usize, isize)) -> ndarray::Slice {
    let (start, len) = (start as isize, len as isize);
    match (len, step > 0) {
        (0, _) => ndarray::Slice::new(0, Some(0), 1),
        (_, true) => ndarray::Slice::new(start, Some(start + (len - 1) * step + 1), step),
        // ndarray walks a negative step back from the range's end.
        (_, false) => ndarray::Slice::new(start + (len - 1) * step, Some(start + 1), step),
    }
}

fn check_parts(shape: &[usize], parts: &[(usize, usize, isize)]) -> KResult<()> {
    let fits = |&(d, &(s, n, st)): &(&usize, &(usize, usize, isize))| {
        n == 0
            || (st != 0
                && (s as isize + (n as isize - 1) * st) >= 0
                && s < *d
                && ((s as isize + (n as isize - 1) * st) as usize) < *d)
    };
    if parts.len() != shape.len() || !shape.iter().zip(parts).all(|p| fits(&p)) {
        kbail!("slice {parts:?} does not fit shape {}", fmt_shape(shape));
    }
    Ok(())
}

/// The elements of `x` at `parts` (one `(start, len, step)` per dimension, from
/// `SliceSpec::resolve`), laid out row-major as `out` (which adds new axes and drops shrunk ones).
pub fn strided<T: Clone>(x: &ArrayViewD<T>, parts: &[(usize, usize, isize)], out: &[usize]) -> KResult<ArrayD<T>> {
    check_parts(x.shape(), parts)?;
    let picked = x.slice_each_axis(|ax| strided_axis(parts[ax.axis.index()]));
    let owned = picked.as_standard_layout().into_owned();
    owned
        .into_shape_with_order(IxDyn(out))
        .map_err(|_| crate::KernelError(format!("slice into {} does not fit", fmt_shape(out))))
}

/// `dy` placed at `parts` of zeros of `shape`: the adjoint of [`strided`].
pub fn strided_grad<T: Clone + num_traits::Zero>(
    dy: &ArrayViewD<T>,
    shape: &[usize],
    parts: &[(usize, usize, isize)],
) -> KResult<ArrayD<T>> {
    check_parts(shape, parts)?;
    let mut out = try_filled(shape, T::zero())?;
    let mut target = out.slice_each_axis_mut(|ax| strided_axis(parts[ax.axis.index()]));
    let dy = dy.as_standard_layout();
    let dy = dy.view().into_shape_with_order(IxDyn(target.shape())).map_err(|_| {
        crate::KernelError(format!(
            "gradient {} does not fit the slice {}",
            fmt_shape(dy.shape()),
            fmt_shape(target.shape())
        ))
    })?;
    target.assign(&dy);
    Ok(out)
}

/// `x` repeated `multiples[i]` times along each dimension i (TF's `Tile`): `x` viewed as
/// `[1, d0, 1, d1, ...]`, broadcast to `[m0, d0, m1, d1, ...]` and laid out row-major.
pub fn tile<T: Clone>(x: &ArrayViewD<T>, multiples: &[usize]) -> KResult<ArrayD<T>> {
    if multiples.len() != x.ndim() {
        kbail!("{} multiples for shape {}", multiples.len(), fmt_shape(x.shape()));
    }
    let spread: Vec<usize> = x.shape().iter().flat_map(|&d| [1, d]).collect();
    let wide: Vec<usize> = x.shape().iter().zip(multiples).flat_map(|(&d, &m)| [m, d]).collect();
    let out: Vec<usize> = x.shape().iter().zip(multiples).map(|(&d, &m)| d * m).collect();
    let len = out.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let too_large = || crate::KernelError(format!("output shape {} is too large to allocate", fmt_shape(&out)));
    len.filter(|&n| n.checked_mul(std::mem::size_of::<T>().max(1)).is_some_and(|b| b <= isize::MAX as usize))
        .ok_or_else(too_large)?;
    let x = x.as_standard_layout();
    let spread = x.view().into_shape_with_order(IxDyn(&spread)).expect("same elements");
    let broadcast = spread.broadcast(IxDyn(&wide)).expect("ones broadcast");
    let laid_out = broadcast.as_standard_layout().into_owned();
    Ok(laid_out.into_shape_with_order(IxDyn(&out)).expect("same elements"))
}

/// Sums `data`'s slices into `num_segments` rows by `segment_ids` (TF's `UnsortedSegmentSum`):
/// `segment_ids` has the shape of `data`'s leading dimensions; negative ids are dropped, ids
/// from `num_segments` on are an error. Sums in the order of the ids, so results are the same
/// on any thread count.
pub fn unsorted_segment_sum<T: Copy + num_traits::Zero>(
    data: &ArrayViewD<T>,
    segment_ids: &ArrayViewD<i64>,
    num_segments: usize,
) -> KResult<ArrayD<T>> {
    let (d, ids) = (data.shape(), segment_ids.shape());
    if ids.len() > d.len() || d[..ids.len()] != *ids {
        kbail!("segment_ids of shape {} do not match the leading dimensions of data {}", fmt_shape(ids), fmt_shape(d));
    }
    if let Some((k, &i)) = segment_ids.iter().enumerate().find(|(_, &i)| i >= num_segments as i64) {
        kbail!("segment_ids[{k}] = {i} is out of range [0, {num_segments})");
    }
    let mut shape = vec![num_segments];
    shape.extend_from_slice(&d[ids.len()..]);
    let inner: usize = d[ids.len()..].iter().product();
    let mut out = try_filled(&shape, T::zero())?;
    let dst = out.as_slice_mut().expect("fresh array is contiguous");
    let data = data.as_standard_layout();
    let src = data.as_slice().expect("standard layout");
    for (k, &i) in segment_ids.iter().enumerate() {
        if i >= 0 {
            let row = &mut dst[i as usize * inner..(i as usize + 1) * inner];
            for (a, &b) in row.iter_mut().zip(&src[k * inner..(k + 1) * inner]) {
                *a = *a + b;
            }
        }
    }
    Ok(out)
}

/// Pieces of `sizes` along `axis` (TF's `SplitV`), each copied as contiguous runs.
pub fn split<T: Clone>(x: &ArrayViewD<T>, sizes: &[usize], axis: usize) -> KResult<Vec<ArrayD<T>>> {
    if axis >= x.ndim() || sizes.iter().sum::<usize>() != x.shape()[axis] {
        kbail!("cannot split axis {axis} of shape {} into sizes {sizes:?}", fmt_shape(x.shape()));
    }
    let x = x.as_standard_layout();
    let data = x.as_slice().expect("standard layout");
    let (outer, inner) = (x.shape()[..axis].iter().product::<usize>(), x.shape()[axis + 1..].iter().product::<usize>());
    let row = x.shape()[axis] * inner;
    let mut start = 0;
    Ok(sizes
        .iter()
        .map(|&n| {
            let run = n * inner;
            let mut out = Vec::with_capacity(outer * run);
            for o in 0..outer {
                out.extend_from_slice(&data[o * row + start..o * row + start + run]);
            }
            start += run;
            let mut shape = x.shape().to_vec();
            shape[axis] = n;
            ArrayD::from_shape_vec(IxDyn(&shape), out).expect("every run copied")
        })
        .collect())
}

/// Stacks arrays of one shape along a new `axis` (TF's `Pack`).
pub fn stack<T: Clone>(xs: &[ArrayViewD<T>], axis: usize) -> KResult<ArrayD<T>> {
    ndarray::stack(Axis(axis), xs).map_err(|_| {
        let shapes: Vec<String> = xs.iter().map(|x| fmt_shape(x.shape())).collect();
        crate::KernelError(format!("cannot stack {} on axis {axis}: the shapes differ", shapes.join(", ")))
    })
}

/// The `num` slices along `axis` (TF's `Unpack`).
pub fn unstack<T: Clone>(x: &ArrayViewD<T>, num: usize, axis: usize) -> KResult<Vec<ArrayD<T>>> {
    if axis >= x.ndim() || x.shape()[axis] != num {
        kbail!("cannot unstack axis {axis} of shape {} into {num} arrays", fmt_shape(x.shape()));
    }
    Ok(x.axis_iter(Axis(axis)).map(|s| s.as_standard_layout().into_owned()).collect())
}
