//! Reductions over axes, and the broadcast-gradient reduction `sum_to_shape`.

use crate::{kbail, Arith, KResult};
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn};

/// Which reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    Sum,
    Prod,
    Max,
    Min,
}

/// Folds `x` over `axes` (sorted, unique) with `r`; keeps them as size 1 if `keep_dims`.
/// Over an empty axis, as TF: Sum gives 0, Prod 1, Max the lowest value (-inf), Min the highest.
///
/// ```
/// use ndarray::array;
/// use tensorgraph_kernels::reduce::{reduce, Reduction};
/// let x = array![[1.0f32, 5.0], [3.0, 2.0]].into_dyn();
/// assert_eq!(reduce(&x.view(), &[0], false, Reduction::Sum).unwrap(), array![4.0, 7.0].into_dyn());
/// assert_eq!(reduce(&x.view(), &[1], true, Reduction::Max).unwrap(), array![[5.0], [3.0]].into_dyn());
/// ```
pub fn reduce<T>(x: &ArrayViewD<T>, axes: &[usize], keep_dims: bool, r: Reduction) -> KResult<ArrayD<T>>
where
    T: Arith,
{
    if let Some(a) = axes.iter().find(|&&a| a >= x.ndim()) {
        kbail!("axis {a} out of range for shape {}", crate::array::fmt_shape(x.shape()));
    }
    if let Some(out) = contiguous_sum(x, axes, keep_dims, r) {
        return Ok(out);
    }
    let mut out: ArrayD<T> = if axes.is_empty() { x.to_owned() } else { fold(x.view(), axes[axes.len() - 1], r) };
    for &a in axes.iter().rev().skip(1) {
        out = fold(out.view(), a, r);
    }
    if keep_dims {
        let shape: Vec<usize> = (0..x.ndim()).map(|i| if axes.contains(&i) { 1 } else { x.shape()[i] }).collect();
        out = out.into_shape_with_order(IxDyn(&shape)).expect("same element count");
    }
    Ok(out)
}

/// Sums over leading or trailing axes of a contiguous array as row operations on its
/// `[outer, inner]` view: the bias gradient and per-example sums, without per-axis temporaries.
fn contiguous_sum<T>(x: &ArrayViewD<T>, axes: &[usize], keep_dims: bool, r: Reduction) -> Option<ArrayD<T>>
where
    T: Arith,
{
    let data = x.as_slice()?;
    let n = x.ndim();
    let k = axes.len();
    if r != Reduction::Sum || k == 0 || data.is_empty() {
        return None;
    }
    let leading = axes.iter().enumerate().all(|(i, &a)| a == i);
    let trailing = axes.iter().enumerate().all(|(i, &a)| a == n - k + i);
    let split = if leading {
        k
    } else if trailing {
        n - k
    } else {
        return None;
    };
    let inner: usize = x.shape()[split..].iter().product();
    let kept: Vec<usize> = (0..n).map(|i| if axes.contains(&i) { 1 } else { x.shape()[i] }).collect();
    let out_shape: Vec<usize> =
        if keep_dims { kept } else { (0..n).filter(|i| !axes.contains(i)).map(|i| x.shape()[i]).collect() };
    let slice_rows: usize = x.shape()[1..split].iter().product();
    let v: Vec<T> = if leading && slice_rows > 1 {
        slice_sums(data, slice_rows * inner, inner)
    } else if leading {
        leading_sum(data, inner)
    } else {
        data.chunks(inner).map(|row| row.iter().fold(T::ZERO, |a, &b| a.plus(b))).collect()
    };
    Some(ArrayD::from_shape_vec(IxDyn(&out_shape), v).expect("element count"))
}

/// Sums over several leading axes (a bias gradient's `[n, h, w, c]` over n, h and w): each slice
/// of the first axis (an image) summed over its rows, the slices in parallel, then their sums in
/// order ([`image_sums`]): the grouping of the bias gradients fused into the ops making them,
/// so a Sum gives the same bits fused or not, on any thread count.
fn slice_sums<T: Arith>(data: &[T], slice_len: usize, inner: usize) -> Vec<T> {
    use rayon::prelude::*;
    let mut partials = vec![T::ZERO; data.len() / slice_len * inner];
    partials.par_chunks_mut(inner).zip(data.par_chunks(slice_len)).for_each(|(p, slice)| column_sums(slice, p));
    image_sums(&partials, inner)
}

/// Rows summed per group of rows in parallel, the groups' sums then added in order. The groups
/// are fixed by the size alone (not the thread count), so results do not depend on scheduling.
/// The bias gradient of the CNN's first convolution sums 10 MB: one core's memory stream took
/// 0.55 ms of each 10 ms step.
fn leading_sum<T>(data: &[T], inner: usize) -> Vec<T>
where
    T: Arith,
{
    use rayon::prelude::*;
    const GROUP_BYTES: usize = 1 << 20;
    let rows = data.len() / inner;
    let group = (GROUP_BYTES / (inner * std::mem::size_of::<T>()).max(1)).clamp(1, rows.max(1));
    let add_rows = |rows: &[T]| {
        let mut acc = vec![T::ZERO; inner];
        crate::wide::run(
            #[inline(always)]
            || {
                for row in rows.chunks(inner) {
                    acc.iter_mut().zip(row).for_each(|(a, &b)| *a = a.plus(b));
                }
            },
        );
        acc
    };
    if rows <= group {
        return add_rows(data);
    }
    let partials: Vec<Vec<T>> = data.par_chunks(group * inner).map(add_rows).collect();
    let mut parts = partials.into_iter();
    let mut acc = parts.next().expect("at least one group");
    for p in parts {
        acc.iter_mut().zip(&p).for_each(|(a, &b)| *a = a.plus(b));
    }
    acc
}

/// Adds each of the `sums.len()` columns of `rows` (row-major) to `sums`, one chain of adds
/// per column in row order. For a layer's rows while they are in cache (a fused bias
/// gradient, see [`image_sums`]): the sums stay in registers, every column of a row in one
/// pass when there are at most 128 (blocks of 32 columns in passes of their own cost twice the
/// memory traffic on rows from memory: a prefetched line of the next block is gone by its pass).
///
/// ```
/// let mut sums = [0.0f32; 2];
/// tensorgraph_kernels::reduce::column_sums(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &mut sums);
/// assert_eq!(sums, [9.0, 12.0]);
/// ```
pub fn column_sums<T: Arith>(rows: &[T], sums: &mut [T]) {
    /// Columns `c0..c0 + W` over every row, in registers.
    #[inline(always)]
    fn block<T: Arith, const W: usize>(rows: &[T], inner: usize, c0: usize, out: &mut [T]) {
        let mut a: [T; W] = out.try_into().expect("W columns");
        for row in rows.chunks_exact(inner) {
            let row: &[T; W] = row[c0..c0 + W].try_into().expect("W columns");
            a.iter_mut().zip(row).for_each(|(a, &b)| *a = a.plus(b));
        }
        out.copy_from_slice(&a);
    }
    let inner = sums.len();
    crate::wide::run(
        #[inline(always)]
        || match inner {
            0 => {}
            16 => block::<T, 16>(rows, inner, 0, sums),
            32 => block::<T, 32>(rows, inner, 0, sums),
            64 => block::<T, 64>(rows, inner, 0, sums),
            128 => block::<T, 128>(rows, inner, 0, sums),
            _ => {
                const W: usize = 32;
                let whole = inner / W * W;
                for (c0, out) in (0..whole).step_by(W).zip(sums.chunks_exact_mut(W)) {
                    block::<T, W>(rows, inner, c0, out);
                }
                for row in rows.chunks_exact(inner) {
                    sums[whole..].iter_mut().zip(&row[whole..]).for_each(|(a, &b)| *a = a.plus(b));
                }
            }
        },
    )
}

/// A batch's bias gradient (the sum over images, rows and columns of each channel) from the
/// sums of each image's rows (`partials`, `[batch, channels]`, see [`column_sums`]), added in
/// image order: the same bits on any thread count, however the images were shared out.
///
/// ```
/// use tensorgraph_kernels::reduce::image_sums;
/// assert_eq!(image_sums(&[1.0f32, 2.0, 10.0, 20.0], 2), [11.0, 22.0]);
/// ```
pub fn image_sums<T: Arith>(partials: &[T], channels: usize) -> Vec<T> {
    let mut sums = vec![T::ZERO; channels];
    column_sums(partials, &mut sums);
    sums
}

fn fold<T>(x: ArrayViewD<T>, axis: usize, r: Reduction) -> ArrayD<T>
where
    T: Arith,
{
    let ax = Axis(axis);
    match r {
        Reduction::Sum => x.fold_axis(ax, T::ZERO, |&acc, &v| acc.plus(v)),
        Reduction::Prod => x.fold_axis(ax, T::ONE, |&acc, &v| acc.times(v)),
        Reduction::Max | Reduction::Min => {
            let start = if r == Reduction::Max { T::LOWEST } else { T::HIGHEST };
            let mut rest = x.shape().to_vec();
            rest.remove(axis);
            let mut acc = ArrayD::from_elem(IxDyn(&rest), start);
            for lane in x.axis_iter(ax) {
                acc.zip_mut_with(&lane, |a, &v| {
                    // NaN propagates, as in TF (`partial_cmp` is None only when one side is NaN).
                    let better = if r == Reduction::Max { v > *a } else { v < *a };
                    if better || v.partial_cmp(&v).is_none() {
                        *a = v;
                    }
                });
            }
            acc
        }
    }
}

/// Running sums (or products with `prod`) along `axis`, as TF's `Cumsum`/`Cumprod`: element i
/// folds elements `..=i` (`..i` if `exclusive`; counted from the end if `reverse`).
///
/// ```
/// use ndarray::array;
/// use tensorgraph_kernels::reduce::cumulative;
/// let x = array![[1, 2, 3], [4, 5, 6]].into_dyn();
/// assert_eq!(cumulative(&x.view(), 1, false, false, false), array![[1, 3, 6], [4, 9, 15]].into_dyn());
/// assert_eq!(cumulative(&x.view(), 1, true, true, true), array![[6, 3, 1], [30, 6, 1]].into_dyn());
/// ```
pub fn cumulative<T: Arith>(x: &ArrayViewD<T>, axis: usize, exclusive: bool, reverse: bool, prod: bool) -> ArrayD<T> {
    let mut out = x.to_owned();
    let (start, op): (T, fn(T, T) -> T) = if prod { (T::ONE, T::times) } else { (T::ZERO, T::plus) };
    for mut lane in out.lanes_mut(Axis(axis)) {
        let mut acc = start;
        let n = lane.len();
        for k in 0..n {
            let i = if reverse { n - 1 - k } else { k };
            let v = lane[i];
            let next = op(acc, v);
            lane[i] = if exclusive { acc } else { next };
            acc = next;
        }
    }
    out
}

/// Sums `grad` down to `shape` over the dimensions that broadcasting expanded: the adjoint of
/// broadcasting `shape` up to `grad.shape()`.
///
/// ```
/// use ndarray::array;
/// use tensorgraph_kernels::reduce::sum_to_shape;
/// let g = array![[1.0f32, 2.0], [3.0, 4.0]].into_dyn();
/// assert_eq!(sum_to_shape(&g.view(), &[2]).unwrap(), array![4.0, 6.0].into_dyn());
/// assert_eq!(sum_to_shape(&g.view(), &[2, 1]).unwrap(), array![[3.0], [7.0]].into_dyn());
/// ```
pub fn sum_to_shape<T>(grad: &ArrayViewD<T>, shape: &[usize]) -> KResult<ArrayD<T>>
where
    T: Arith,
{
    if grad.shape() == shape {
        return Ok(grad.to_owned());
    }
    let g = grad.shape();
    if shape.len() > g.len() {
        kbail!("cannot sum {} down to {}", crate::array::fmt_shape(g), crate::array::fmt_shape(shape));
    }
    let lead = g.len() - shape.len();
    let mut axes: Vec<usize> = (0..lead).collect();
    for (i, &d) in shape.iter().enumerate() {
        match (d, g[lead + i]) {
            (a, b) if a == b => {}
            (1, _) => axes.push(lead + i),
            _ => kbail!("cannot sum {} down to {}", crate::array::fmt_shape(g), crate::array::fmt_shape(shape)),
        }
    }
    let summed = reduce(grad, &axes, false, Reduction::Sum)?;
    Ok(summed.into_shape_with_order(IxDyn(shape)).expect("same element count"))
}

/// Index of the first largest element along `axis`.
pub fn argmax<T: Copy + PartialOrd>(x: &ArrayViewD<T>, axis: usize) -> KResult<ArrayD<i64>> {
    arg_best(x, axis, |v, best| v > best)
}

/// Index of the first smallest element along `axis`.
pub fn argmin<T: Copy + PartialOrd>(x: &ArrayViewD<T>, axis: usize) -> KResult<ArrayD<i64>> {
    arg_best(x, axis, |v, best| v < best)
}

/// The first index along `axis` that no later element `beats`.
fn arg_best<T: Copy + PartialOrd>(
    x: &ArrayViewD<T>,
    axis: usize,
    beats: impl Fn(T, T) -> bool,
) -> KResult<ArrayD<i64>> {
    if axis >= x.ndim() || x.shape()[axis] == 0 {
        kbail!("arg max/min over axis {axis} of shape {}", crate::array::fmt_shape(x.shape()));
    }
    Ok(x.map_axis(Axis(axis), |lane| {
        let mut best = 0;
        for (i, v) in lane.iter().enumerate() {
            if beats(*v, lane[best]) {
                best = i;
            }
        }
        best as i64
    }))
}

/// The `k` largest entries of each last-axis row and their indices, largest first; among equal
/// values the lower index first (TF's `TopKV2`, sorted). NaN counts as the largest value.
///
/// ```
/// use ndarray::array;
/// use tensorgraph_kernels::reduce::top_k;
/// let (v, i) = top_k(&array![[1.0f32, 3.0, 2.0, 3.0]].into_dyn().view(), 2).unwrap();
/// assert_eq!((v, i), (array![[3.0, 3.0]].into_dyn(), array![[1, 3]].into_dyn()));
/// ```
pub fn top_k<T: Copy + PartialOrd>(x: &ArrayViewD<T>, k: usize) -> KResult<(ArrayD<T>, ArrayD<i32>)> {
    let Some(&n) = x.shape().last() else { kbail!("top_k needs a vector or more, got a scalar") };
    if k > n {
        kbail!("input of shape {} has fewer than k = {k} entries", crate::array::fmt_shape(x.shape()));
    }
    if n > i32::MAX as usize {
        kbail!("rows of {n} entries do not fit int32 indices");
    }
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("rank checked") = k;
    let rows = x.len().checked_div(n).unwrap_or(0);
    let (mut values, mut indices) = (Vec::with_capacity(rows * k), Vec::with_capacity(rows * k));
    let mut order: Vec<usize> = Vec::with_capacity(n);
    let rank = |v: T| v.partial_cmp(&v).is_none(); // NaN first
    for row in x.lanes(Axis(x.ndim() - 1)) {
        order.clear();
        order.extend(0..n);
        order.sort_by(|&i, &j| {
            let (a, b) = (row[i], row[j]);
            (rank(b).cmp(&rank(a))).then_with(|| b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal)).then(i.cmp(&j))
        });
        for &i in &order[..k] {
            values.push(row[i]);
            indices.push(i as i32);
        }
    }
    let v = ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| crate::KernelError(e.to_string()))?;
    let i = ArrayD::from_shape_vec(IxDyn(&shape), indices).map_err(|e| crate::KernelError(e.to_string()))?;
    Ok((v, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every width (the ones kept in registers in one pass, blocks of 32 and a tail) adds each
    /// column of the rows onto the given sums, exactly on integers.
    #[test]
    fn column_sums_add_every_column_of_every_width() {
        for inner in [1, 3, 16, 32, 40, 64, 100, 128, 130] {
            let rows: Vec<f32> = (0..7 * inner).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
            let mut sums: Vec<f32> = (0..inner).map(|c| c as f32).collect();
            column_sums(&rows, &mut sums);
            let want: Vec<f32> =
                (0..inner).map(|c| c as f32 + rows.iter().skip(c).step_by(inner).sum::<f32>()).collect();
            assert_eq!(sums, want, "{inner} columns");
        }
    }

    /// The contiguous fast path for leading-axes sums (bias gradients, full sums) equals the
    /// axis-by-axis fold (integer data: every order is exact).
    #[test]
    fn contiguous_sums_equal_the_plain_fold() {
        // The last two span several 1 MiB groups of rows (summed in parallel).
        for shape in [vec![300usize, 7, 32], vec![100_000], vec![70_000, 1], vec![40_000, 32], vec![5000, 3, 17]] {
            let n: usize = shape.iter().product();
            let x = ArrayD::from_shape_vec(IxDyn(&shape), (0..n).map(|i| (i % 13) as f64 - 6.0).collect()).unwrap();
            let axes: Vec<usize> = (0..shape.len().saturating_sub(1).max(1)).collect();
            let got = reduce(&x.view(), &axes, false, Reduction::Sum).unwrap();
            let mut want = x.clone();
            for &a in axes.iter().rev() {
                want = fold(want.view(), a, Reduction::Sum);
            }
            assert_eq!(got, want, "shape {shape:?}");
        }
    }
}
