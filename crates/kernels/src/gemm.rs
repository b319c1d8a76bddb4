//! Matrix multiply through the `gemm` crate (chosen by measurement; see BENCHMARKS.md).

use crate::{kbail, Float, KResult};
use ndarray::{Array2, ArrayView2};
use std::any::TypeId;

/// Work (m·n·k) above which the multiply is split across rayon threads.
const PAR_WORK: usize = 1 << 18;

/// `C = op(A) · op(B)` where `op` transposes when asked. Any strides are accepted (a transposed
/// view is read in place, not copied).
///
/// ```
/// use ndarray::array;
/// let a = array![[1.0f32, 2.0], [3.0, 4.0]];
/// let b = array![[5.0f32, 6.0], [7.0, 8.0]];
/// let c = tensorgraph_kernels::gemm::matmul(a.view(), b.view(), false, true).unwrap();
/// assert_eq!(c, array![[17.0, 23.0], [39.0, 53.0]]);
/// ```
pub fn matmul<T: Float>(a: ArrayView2<T>, b: ArrayView2<T>, ta: bool, tb: bool) -> KResult<Array2<T>> {
    let a = if ta { a.reversed_axes() } else { a };
    let b = if tb { b.reversed_axes() } else { b };
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    if k != k2 {
        kbail!("inner dimensions differ: [{m},{k}] x [{k2},{n}] (after transposes)");
    }
    let mut c = Array2::<T>::zeros((m, n));
    gemm_into(a, b, c.view_mut(), false, true);
    Ok(c)
}

/// `C (+)= A · B` into an existing row-major `c` (accumulates when `accumulate`). Splits the work
/// across rayon threads when `parallel` and the product is large enough; callers that already
/// run on every thread (the convolutions, per batch chunk) pass `false`.
pub fn gemm_into<T: Float>(
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    mut c: ndarray::ArrayViewMut2<T>,
    accumulate: bool,
    parallel: bool,
) {
    let (m, k) = a.dim();
    let n = b.dim().1;
    assert_eq!((b.dim().0, c.dim()), (k, (m, n)), "gemm_into: shapes checked by callers");
    assert!(c.is_standard_layout(), "gemm_into: c is row-major");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(T::zero());
        }
        return;
    }
    let par = if parallel && m * n * k >= PAR_WORK && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    let (sa, sb) = (a.strides(), b.strides());
    debug_assert!(TypeId::of::<T>() == TypeId::of::<f32>() || TypeId::of::<T>() == TypeId::of::<f64>());
    // SAFETY: every pointer comes from a live ndarray view or array whose extents are exactly
    // (m,k), (k,n) and (m,n) with the strides passed alongside, so every element gemm reads or
    // writes lies inside its allocation; `c` is borrowed mutably and does not alias `a` or `b`.
    // T is f32 or f64, both supported by gemm. Exercised by this module's tests with
    // transposed (non-unit column stride) views.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            sa[1],
            sa[0],
            b.as_ptr(),
            sb[1],
            sb[0],
            T::one(),
            T::one(),
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    fn naive(a: ArrayView2<f64>, b: ArrayView2<f64>) -> Array2<f64> {
        let (m, k) = a.dim();
        let n = b.dim().1;
        Array2::from_shape_fn((m, n), |(i, j)| (0..k).map(|p| a[[i, p]] * b[[p, j]]).sum())
    }

    #[test]
    fn matches_naive_with_every_transpose_combination() {
        let a = Array::from_shape_fn((37, 19), |(i, j)| (i * 7 + j * 3) as f64 % 11.0 - 5.0);
        let b = Array::from_shape_fn((19, 23), |(i, j)| (i * 5 + j * 2) as f64 % 13.0 - 6.0);
        let want = naive(a.view(), b.view());
        let at = a.t().to_owned();
        let bt = b.t().to_owned();
        assert_eq!(matmul(a.view(), b.view(), false, false).unwrap(), want);
        assert_eq!(matmul(at.view(), b.view(), true, false).unwrap(), want);
        assert_eq!(matmul(a.view(), bt.view(), false, true).unwrap(), want);
        assert_eq!(matmul(at.view(), bt.view(), true, true).unwrap(), want);
    }

    #[test]
    fn large_parallel_product_matches_naive() {
        let a = Array::from_shape_fn((130, 70), |(i, j)| ((i + 2 * j) % 9) as f32 - 4.0);
        let b = Array::from_shape_fn((70, 90), |(i, j)| ((3 * i + j) % 7) as f32 - 3.0);
        let c = matmul(a.view(), b.view(), false, false).unwrap();
        let want = naive(a.mapv(f64::from).view(), b.mapv(f64::from).view());
        assert_eq!(c.mapv(f64::from), want);
    }

    #[test]
    fn mismatched_inner_dimensions_are_an_error() {
        let a = Array2::<f32>::zeros((2, 3));
        let e = matmul(a.view(), a.view(), false, false).unwrap_err();
        assert!(e.0.contains("[2,3] x [2,3]"), "{e}");
    }

    #[test]
    fn empty_inner_dimension_gives_zeros() {
        let a = Array2::<f32>::zeros((2, 0));
        let b = Array2::<f32>::zeros((0, 3));
        assert_eq!(matmul(a.view(), b.view(), false, false).unwrap(), Array2::zeros((2, 3)));
    }
}
