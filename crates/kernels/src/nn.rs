//! Softmax, cross-entropy and top-k: row-wise over the last dimension.

use crate::{kbail, Float, KResult, PAR_ELEMENTS};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;

/// Applies `f(row_in, row_out)` to each last-axis row, in parallel for large inputs.
fn per_row<T: Float>(x: &ArrayViewD<T>, f: impl Fn(&[T], &mut [T]) + Sync) -> ArrayD<T> {
    let x = x.as_standard_layout();
    let n = *x.shape().last().unwrap_or(&1);
    let src = x.as_slice().expect("standard layout");
    let mut out = ArrayD::<T>::zeros(IxDyn(x.shape()));
    let dst = out.as_slice_mut().expect("fresh array");
    if n == 0 {
        return out;
    }
    if src.len() >= PAR_ELEMENTS {
        dst.par_chunks_mut(n).zip(src.par_chunks(n)).for_each(|(o, i)| f(i, o));
    } else {
        dst.chunks_mut(n).zip(src.chunks(n)).for_each(|(o, i)| f(i, o));
    }
    out
}

fn max_of<T: Float>(row: &[T]) -> T {
    row.iter().copied().fold(T::neg_infinity(), T::max)
}

/// Softmax over the last axis, shifted by the row maximum for stability.
pub fn softmax<T: Float>(x: &ArrayViewD<T>) -> ArrayD<T> {
    per_row(x, |r, o| {
        let m = max_of(r);
        let mut s = T::zero();
        for (oi, &ri) in o.iter_mut().zip(r) {
            *oi = (ri - m).exp();
            s += *oi;
        }
        o.iter_mut().for_each(|v| *v = *v / s);
    })
}

/// Log-softmax over the last axis: `x - max - log(sum(exp(x - max)))`.
pub fn log_softmax<T: Float>(x: &ArrayViewD<T>) -> ArrayD<T> {
    per_row(x, |r, o| {
        let m = max_of(r);
        let lse = r.iter().map(|&v| (v - m).exp()).sum::<T>().ln() + m;
        o.iter_mut().zip(r).for_each(|(oi, &ri)| *oi = ri - lse);
    })
}

/// Per-example loss `logsumexp(logits) - logits[label]` and its gradient `softmax - one_hot`,
/// for `[batch, classes]` logits. A label outside `[0, classes)` is an error, as in TF.
///
/// ```
/// use ndarray::array;
/// use tensorgraph_kernels::nn::sparse_softmax_cross_entropy;
/// let logits = array![[1000.0f32, 0.0], [0.0, 0.0]].into_dyn();
/// let labels = array![1i64, 0].into_dyn();
/// let (loss, _) = sparse_softmax_cross_entropy(&logits.view(), &labels.view()).unwrap();
/// assert_eq!(loss[[0]], 1000.0); // finite at extreme logits
/// assert!((loss[[1]] - 2f32.ln()).abs() < 1e-6);
/// ```
pub fn sparse_softmax_cross_entropy<T: Float>(
    logits: &ArrayViewD<T>,
    labels: &ArrayViewD<i64>,
) -> KResult<(ArrayD<T>, ArrayD<T>)> {
    let (batch, classes) = match logits.shape() {
        &[b, c] => (b, c),
        s => kbail!("logits must be [batch, classes], got {}", crate::array::fmt_shape(s)),
    };
    if labels.shape() != [batch] {
        kbail!(
            "labels {} do not match logits {}",
            crate::array::fmt_shape(labels.shape()),
            crate::array::fmt_shape(logits.shape())
        );
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l < 0 || l as usize >= classes) {
        kbail!("label {l} of example {i} is outside the valid range [0, {classes})");
    }
    let backprop = softmax(logits);
    let lsm = log_softmax(logits);
    let mut backprop = backprop;
    let mut loss = ArrayD::<T>::zeros(IxDyn(&[batch]));
    for (i, &l) in labels.iter().enumerate() {
        loss[i] = -lsm[[i, l as usize]];
        backprop[[i, l as usize]] -= T::one();
    }
    Ok((loss, backprop))
}

/// TF's `InTopKV2`: true when fewer than `k` classes score strictly higher than the target;
/// false when the target is out of range or the row has a non-finite score.
pub fn in_top_k<T: Float>(pred: &ArrayViewD<T>, targets: &ArrayViewD<i64>, k: usize) -> KResult<ArrayD<bool>> {
    let (batch, classes) = match pred.shape() {
        &[b, c] => (b, c),
        s => kbail!("predictions must be [batch, classes], got {}", crate::array::fmt_shape(s)),
    };
    if targets.shape() != [batch] {
        kbail!(
            "targets {} do not match predictions {}",
            crate::array::fmt_shape(targets.shape()),
            crate::array::fmt_shape(pred.shape())
        );
    }
    Ok(ArrayD::from_shape_fn(IxDyn(&[batch]), |i| {
        let t = targets[i[0]];
        if t < 0 || t as usize >= classes {
            return false;
        }
        let target = pred[[i[0], t as usize]];
        let row = (0..classes).map(|j| pred[[i[0], j]]);
        if !target.is_finite() || row.clone().any(|v| !v.is_finite()) {
            return false;
        }
        row.filter(|&v| v > target).count() < k
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn softmax_rows_sum_to_one_even_at_extremes() {
        let x = array![[1e4f32, -1e4, 0.0], [1.0, 2.0, 3.0]].into_dyn();
        let s = softmax(&x.view());
        for r in s.outer_iter() {
            assert!((r.sum() - 1.0).abs() < 1e-6);
        }
        assert_eq!(s[[0, 0]], 1.0);
        let l = log_softmax(&x.view());
        assert!(l.iter().all(|v| v.is_finite()));
        assert!((l[[1, 2]] - (3.0 - (1f32.exp() + 2f32.exp() + 3f32.exp()).ln())).abs() < 1e-6);
    }

    #[test]
    fn in_top_k_counts_ties_as_in() {
        let p = array![[0.1f32, 0.5, 0.5, 0.2], [0.3, 0.3, 0.3, 0.3], [f32::NAN, 1.0, 0.0, 0.0]].into_dyn();
        let t = array![2i64, 3, 1].into_dyn();
        assert_eq!(in_top_k(&p.view(), &t.view(), 1).unwrap(), array![true, true, false].into_dyn());
        let t = array![3i64, 7, 1].into_dyn();
        assert_eq!(in_top_k(&p.view(), &t.view(), 2).unwrap(), array![false, false, false].into_dyn());
        assert!(in_top_k(&p.view(), &t.view(), 3).unwrap()[[0]]);
    }

    #[test]
    fn out_of_range_label_is_an_error() {
        let logits = array![[0.0f32, 1.0]].into_dyn();
        let e = sparse_softmax_cross_entropy(&logits.view(), &array![2i64].into_dyn().view()).unwrap_err();
        assert!(e.0.contains("label 2 of example 0"), "{e}");
    }
}
