//! Batch normalization over every axis but the last (`x` as `[rows, channels]`), fused: two
//! passes forward (statistics, then the affine map) and two backward, in parallel over rows.
//! Each task of at most `ROWS_PER_TASK` rows sums in the element type (so the loops
//! vectorise); the tasks' sums add up in f64, and values are shifted by a per-channel reference
//! (the first row) before squaring, so the variance does not cancel when the mean is large.

use crate::Float;
use rayon::prelude::*;

/// Rows per parallel task: enough work to amortise a task, few enough that an f32 sum over
/// them keeps its precision.
const ROWS_PER_TASK: usize = 1024;

/// Per-channel sums of `f(channel, a, b)` (two sums) over the rows of `a` and `b`, which share
/// one `[rows, c]` layout.
fn channel_sums<T: Float>(a: &[T], b: &[T], c: usize, f: impl Fn(usize, T, T) -> (T, T) + Sync) -> [Vec<f64>; 2] {
    let zero = || [vec![0.0; c], vec![0.0; c]];
    let chunk = (ROWS_PER_TASK * c).max(1);
    a.par_chunks(chunk)
        .zip(b.par_chunks(chunk))
        .fold(zero, |[mut s, mut t], (ac, bc)| {
            let (mut sc, mut tc) = (vec![T::zero(); c], vec![T::zero(); c]);
            for (ar, br) in ac.chunks_exact(c).zip(bc.chunks_exact(c)) {
                for (j, (((sj, tj), &x), &y)) in sc.iter_mut().zip(tc.iter_mut()).zip(ar).zip(br).enumerate() {
                    let (u, w) = f(j, x, y);
                    *sj += u;
                    *tj += w;
                }
            }
            s.iter_mut().zip(&sc).for_each(|(x, &y)| *x += y.as_());
            t.iter_mut().zip(&tc).for_each(|(x, &y)| *x += y.as_());
            [s, t]
        })
        .reduce(zero, |[mut s, mut t], [u, w]| {
            s.iter_mut().zip(u).for_each(|(x, y)| *x += y);
            t.iter_mut().zip(w).for_each(|(x, y)| *x += y);
            [s, t]
        })
}

/// `out[r, j] = a[j]·x[r, j] + b[j]·z[r, j] + c[j]` over all rows, in parallel.
fn affine_rows<T: Float>(x: &[T], z: &[T], c: usize, a: &[T], b: &[T], k: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    let chunk = (ROWS_PER_TASK * c).max(1);
    out.par_chunks_mut(chunk).zip(x.par_chunks(chunk)).zip(z.par_chunks(chunk)).for_each(|((oc, xc), zc)| {
        for ((or, xr), zr) in oc.chunks_exact_mut(c).zip(xc.chunks_exact(c)).zip(zc.chunks_exact(c)) {
            for (((((o, &x), &z), &a), &b), &k) in or.iter_mut().zip(xr).zip(zr).zip(a).zip(b).zip(k) {
                *o = a * x + b * z + k;
            }
        }
    });
    out
}

/// What the forward pass returns besides `y`.
pub struct BatchNormStats<T> {
    /// The batch's mean and biased variance per channel (zeros for an empty batch, whose
    /// `y` is empty too).
    pub batch_mean: Vec<T>,
    pub batch_variance: Vec<T>,
    /// The mean and `1/√(variance + ε)` that normalised `x` (batch or moving statistics).
    pub mean: Vec<T>,
    pub inv_std: Vec<T>,
}

/// `y = (x - mean)·inv_std·scale + offset` with the batch's statistics when `training`, else
/// with `moving_mean` and `moving_variance`. Every per-channel slice has `c` entries.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm<T: Float>(
    x: &[T],
    c: usize,
    scale: &[T],
    offset: &[T],
    moving_mean: &[T],
    moving_variance: &[T],
    epsilon: f64,
    training: bool,
) -> (Vec<T>, BatchNormStats<T>) {
    // No channels or no rows: nothing to normalise (and no row to split into channels).
    let rows = x.len().checked_div(c).unwrap_or(0);
    if rows == 0 {
        let zeros = vec![T::zero(); c];
        let stats = BatchNormStats {
            batch_mean: zeros.clone(),
            batch_variance: zeros.clone(),
            mean: zeros.clone(),
            inv_std: zeros,
        };
        return (x.to_vec(), stats);
    }
    let shift = &x[..c];
    let [sum, sum_sq] = channel_sums(x, x, c, |j, v, _| {
        let d = v - shift[j];
        (d, d * d)
    });
    let n = rows as f64;
    let shift_mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let batch_variance: Vec<f64> = sum_sq.iter().zip(&shift_mean).map(|(s, m)| (s / n - m * m).max(0.0)).collect();
    let batch_mean: Vec<f64> = shift_mean.iter().zip(shift).map(|(m, &k)| m + k.as_()).collect();
    let (mean, variance): (Vec<f64>, Vec<f64>) = if training {
        (batch_mean.clone(), batch_variance.clone())
    } else {
        (moving_mean.iter().map(|v| v.as_()).collect(), moving_variance.iter().map(|v| v.as_()).collect())
    };
    let inv_std: Vec<f64> = variance.iter().map(|v| 1.0 / (v + epsilon).sqrt()).collect();
    // y = x·a + b per channel.
    let a: Vec<T> = (0..c).map(|j| T::of(inv_std[j] * scale[j].as_())).collect();
    let b: Vec<T> = (0..c).map(|j| T::of(offset[j].as_() - mean[j] * inv_std[j] * scale[j].as_())).collect();
    let y = affine_rows(x, x, c, &a, &vec![T::zero(); c], &b);
    let cast = |v: &[f64]| v.iter().map(|&u| T::of(u)).collect::<Vec<T>>();
    let stats = BatchNormStats {
        batch_mean: cast(&batch_mean),
        batch_variance: cast(&batch_variance),
        mean: cast(&mean),
        inv_std: cast(&inv_std),
    };
    (y, stats)
}

/// Gradients `(dx, dscale, doffset)` of [`batch_norm`] given `dy`, from the `mean` and
/// `inv_std` it normalised with. In training the batch statistics depend on `x`:
/// `dx = scale·inv_std·(dy - mean(dy) - x̂·mean(dy·x̂))` with `x̂ = (x - mean)·inv_std`;
/// otherwise `dx = dy·scale·inv_std`.
pub fn batch_norm_grad<T: Float>(
    dy: &[T],
    x: &[T],
    c: usize,
    scale: &[T],
    mean: &[T],
    inv_std: &[T],
    training: bool,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let rows = x.len().checked_div(c).unwrap_or(0);
    if rows == 0 {
        return (vec![T::zero(); x.len()], vec![T::zero(); c], vec![T::zero(); c]);
    }
    // Σdy and Σdy·(x - mean) per channel; Σdy·x̂ is the second times inv_std.
    let [sum_dy, sum_dy_xc] = channel_sums(dy, x, c, |j, g, v| (g, g * (v - mean[j])));
    let n = rows as f64;
    let s: Vec<f64> = inv_std.iter().map(|v| v.as_()).collect();
    let sum_dy_xhat: Vec<f64> = sum_dy_xc.iter().zip(&s).map(|(v, s)| v * s).collect();
    // dx = a·dy + b·x + k per channel.
    let (mut a, mut b, mut k) = (vec![T::zero(); c], vec![T::zero(); c], vec![T::zero(); c]);
    for j in 0..c {
        let g = scale[j].as_() * s[j];
        a[j] = T::of(g);
        if training {
            let (mdy, mdx) = (sum_dy[j] / n, sum_dy_xhat[j] / n);
            b[j] = T::of(-g * s[j] * mdx);
            k[j] = T::of(-g * (mdy - mean[j].as_() * s[j] * mdx));
        }
    }
    let dx = affine_rows(dy, x, c, &a, &b, &k);
    let cast = |v: &[f64]| v.iter().map(|&u| T::of(u)).collect::<Vec<T>>();
    (dx, cast(&sum_dy_xhat), cast(&sum_dy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_batches_and_zero_channels_do_not_panic() {
        for (x, c) in [(vec![], 3usize), (vec![], 0)] {
            let v = vec![1.0f32; c];
            let (y, s) = batch_norm(&x, c, &v, &v, &v, &v, 1e-3, true);
            assert!(y.is_empty() && s.mean.len() == c);
            let (dx, ds, db) = batch_norm_grad(&x, &x, c, &v, &v, &v, true);
            assert!(dx.is_empty() && ds.len() == c && db.len() == c);
        }
    }

    #[test]
    fn float32_statistics_keep_their_precision_over_many_rows_with_a_large_mean() {
        // 100,000 rows: x = 1000 + (a fixed pattern with variance 2/3 around 0).
        let pattern = |i: usize| (i % 3) as f32 - 1.0;
        let x: Vec<f32> = (0..100_000).map(|i| 1000.0 + pattern(i)).collect();
        let (_, s) = batch_norm(&x, 1, &[1.0], &[0.0], &[0.0], &[1.0], 0.0, true);
        assert!((s.batch_mean[0] - 1000.0).abs() < 1e-3, "{}", s.batch_mean[0]);
        assert!((s.batch_variance[0] - 2.0 / 3.0).abs() < 1e-4, "{}", s.batch_variance[0]);
    }

    #[test]
    fn training_output_has_zero_mean_and_unit_variance_per_channel() {
        let x: Vec<f64> =
            (0..5000 * 2).map(|i| ((i * 7919) % 1013) as f64 * if i % 2 == 0 { 1.0 } else { 40.0 }).collect();
        let ones = [1.0, 1.0];
        let zeros = [0.0, 0.0];
        let (y, _) = batch_norm(&x, 2, &ones, &zeros, &zeros, &ones, 0.0, true);
        for j in 0..2 {
            let col: Vec<f64> = y.iter().skip(j).step_by(2).copied().collect();
            let mean = col.iter().sum::<f64>() / col.len() as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64;
            assert!(mean.abs() < 1e-9 && (var - 1.0).abs() < 1e-9, "channel {j}: {mean} {var}");
        }
    }
}
