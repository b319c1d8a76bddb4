//! Matrix multiply: f32 on CPUs with AVX-512 or AVX2 through this crate's own register-tiled
//! kernel (`gemm_tiled`: 1.1-2.6x matrixmultiply at the models' shapes, see BENCHMARKS.md),
//! everything else through the `matrixmultiply` crate; split into row or column blocks on rayon's pool when
//! large, shared with [`crate::pair`]'s helper thread when mid-sized. A left operand mostly
//! zeros (MNIST's pixels, a ReLU's output) has its zeros skipped (`gemm_sparse`), the same bits.

use crate::pair::Disjoint;
use crate::{kbail, zeros, Epilogue, Float, KResult, KernelError};
use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD, Axis, IxDyn};

/// Work (m·n·k) above which the multiply is split across rayon threads (blocks handed to
/// `rayon::join`, which wakes sleeping workers: tens of microseconds, paid back above this),
/// unless the pair helper gives the only other thread (see `gemm_into`).
const PAR_WORK: usize = 1 << 24;

/// Work above which, below `PAR_WORK`, the multiply is shared with [`crate::pair`]'s helper
/// thread, which starts within microseconds: the MLP's products (1.5M-11.8M), its step
/// 0.30 -> 0.19-0.20 ms with two threads.
pub(crate) const PAIR_WORK: usize = 1 << 20;

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
    matmul_with(a, b, ta, tb, zeros, Epilogue::NONE)
}

/// [`matmul`] into a buffer from `alloc(m·n)`, whose contents it overwrites (a session passes
/// its recycled buffers), then `epilogue` on the product's rows.
pub fn matmul_with<T: Float>(
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    ta: bool,
    tb: bool,
    alloc: impl FnOnce(usize) -> Vec<T>,
    epilogue: Epilogue<T>,
) -> KResult<Array2<T>> {
    let a = if ta { a.reversed_axes() } else { a };
    let b = if tb { b.reversed_axes() } else { b };
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    if k != k2 {
        kbail!("inner dimensions differ: [{m},{k}] x [{k2},{n}] (after transposes)");
    }
    let mut c = Array2::from_shape_vec((m, n), alloc(m * n)).expect("alloc returns m·n elements");
    gemm_into(a, b, c.view_mut(), false, true);
    if n > 0 {
        epilogue.apply(c.as_slice_mut().expect("row-major"));
    }
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
    let threads = rayon::current_num_threads();
    let beta = if accumulate { T::one() } else { T::zero() };
    let c = Disjoint::new(c.as_mut_ptr());
    // Two threads in all, the caller outside rayon's pool (a session's) and the helper on
    // offer: it gives the second core for less than `rayon::join` from outside the pool, which
    // parks the caller and wakes two workers (the MLP's batch-100 step on an Intel Xeon 0.83 ->
    // 0.58 ms; with rayon it was slower than on one thread, 0.74).
    let pair_only = crate::pair::second_core();
    sparse_bits(a, b, c, beta, |bits| {
        if parallel && threads > 1 && !pair_only && m * n * k >= PAR_WORK && m >= 2 * threads {
            // A right operand with strided rows is copied by every block that reads it whole:
            // split its columns instead when there are enough (the CNN's dy·Wᵀ, 100x64x3136),
            // so each thread copies its own part.
            let by_cols = b.strides()[1] != 1 && n >= 64 * threads;
            return blocks(a, b, bits, c, n, threads, beta, by_cols);
        }
        if parallel && threads > 1 && m * n * k >= PAIR_WORK {
            return paired(a, b, bits, c, beta);
        }
        // SAFETY: see `product`.
        unsafe { product(a, b, bits, c.at(0), m, n, n, beta) };
    })
}

/// Runs `f` with A's nonzeros as bits (see [`crate::gemm_sparse`]) when the product skips A's
/// zeros: f32 on the tiled kernels (whose bits it has), B's rows contiguous, A sparse enough
/// for this shape on this machine and B finite; else with `None`. A shape's first products
/// are its trials: this thread runs them both ways, the sparse one into a copy of C (`beta`:
/// whether C is accumulated into), and `f` is not called.
fn sparse_bits<T: Float>(a: ArrayView2<T>, b: ArrayView2<T>, c: Disjoint<T>, beta: T, f: impl FnOnce(Option<&[u64]>)) {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::gemm_sparse::{note, verdict, words, worth_it, Shape, Verdict};
        thread_local! {
            static BITS: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let ((m, k), n) = (a.dim(), b.ncols());
        // (Where `product` runs the tiled kernels; wide enough that a nonzero's loads of B
        // pay for finding it.)
        if tiled::<T>(&a) && b.strides()[1] == 1 && n >= 16 && k >= 16 {
            let (av, bv) = (strided(&a), strided(&b));
            let shape = Shape::new(m, k, n, av.rs == 1 && av.cs != 1);
            let verdict = verdict(shape);
            // Under a sixteenth nonzero the sparse rows win on any shape measured (at most a
            // nonzero's cost of 16 dense multiply-adds of a vector: 3-6 here, 2-7 by the Zen 4's
            // fit), and a trial there would mostly time writing C.
            let obvious = m * k / 16;
            let most = match verdict {
                Verdict::Budget(fraction) => ((fraction * (m * k) as f64) as usize).max(obvious),
                Verdict::Trial => m * k / 2, // (over half nonzero, a trial would only confirm the dense product)
            };
            return crate::scratch(&BITS, m * words(k), |bits| {
                // SAFETY: the views address A and B through their strides; T is f32 and the
                // CPU runs the tiled kernels (checked).
                let worth = crate::gemm_tiled::on_simd!(I => unsafe { worth_it::<I>(av, m, k, bv, n, bits, most) });
                let Some(nonzeros) = worth.filter(|&nz| verdict == Verdict::Trial && nz > obvious && 2 * nz <= m * k)
                else {
                    return f(worth.map(|_| &*bits));
                };
                // Each way twice, alternating, the faster counted: the first touch of C and of
                // the copy (page faults on fresh memory) and of B is not the product's cost.
                let mut copy: Vec<T> = vec![T::zero(); m * n];
                let (mut dense, mut sparse) = (f64::MAX, f64::MAX);
                for _ in 0..2 {
                    if beta != T::zero() {
                        // SAFETY: C holds m·n elements (`gemm_into`'s), unchanged so far.
                        copy.copy_from_slice(unsafe { c.slice(0, m * n) });
                    }
                    let started = std::time::Instant::now();
                    // SAFETY: `copy` holds m×n elements; the rest as `product`'s other callers.
                    unsafe { product(a, b, Some(&*bits), copy.as_mut_ptr(), m, n, n, beta) };
                    sparse = sparse.min(started.elapsed().as_secs_f64());
                    let started = std::time::Instant::now();
                    // SAFETY: see `product`; into the copy first, then into C (accumulated into
                    // once).
                    unsafe {
                        let out = if dense == f64::MAX { copy.as_mut_ptr() } else { c.at(0) };
                        product(a, b, None, out, m, n, n, beta)
                    };
                    dense = dense.min(started.elapsed().as_secs_f64());
                }
                note(shape, dense / (m * k) as f64, sparse / nonzeros as f64);
            });
        }
    }
    f(None)
}

/// `c = a·b + beta·c` (C row-major at `c`, rows `ldc` apart) split into `threads` blocks run by
/// `rayon::join` (the caller runs the first): blocks of rows cut at multiples of 12 (whole
/// register tiles: the MLP's 50 rows as 24 + 26, not 25 + 25 with a 1-row tile each), or with
/// `by_cols` blocks of columns cut at multiples of 32 (whole register panels).
#[allow(clippy::too_many_arguments)]
fn blocks<T: Float>(
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    bits: Option<&[u64]>,
    c: Disjoint<T>,
    ldc: usize,
    threads: usize,
    beta: T,
    by_cols: bool,
) {
    let (m, n) = (a.nrows(), b.ncols());
    let (len, unit) = if by_cols { (n, 32) } else { (m, 12) };
    if threads <= 1 || len < 2 * unit {
        // SAFETY: this block's m×n part of C (rows `ldc` apart) is written by no other block,
        // and C aliases neither a nor b (`gemm_into`'s views).
        return unsafe { product(a, b, bits, c.at(0), m, n, ldc, beta) };
    }
    let left = threads / 2;
    let cut = ((len * left / threads + unit / 2) / unit * unit).clamp(unit, len - unit);
    let ((a1, a2), (b1, b2), (bits1, bits2), offset) = if by_cols {
        ((a, a), b.split_at(ndarray::Axis(1), cut), (bits, bits), cut)
    } else {
        let bits = bits.map(|bits| bits.split_at(cut * bits.len() / m));
        (a.split_at(ndarray::Axis(0), cut), (b, b), (bits.map(|b| b.0), bits.map(|b| b.1)), cut * ldc)
    };
    // SAFETY: `offset` is the second block's first element, inside C.
    let c2 = Disjoint::new(unsafe { c.at(offset) });
    rayon::join(
        || blocks(a1, b1, bits1, c, ldc, left, beta, by_cols),
        || blocks(a2, b2, bits2, c2, ldc, threads - left, beta, by_cols),
    );
}

/// `c = a·b + beta·c` (C row-major, `n` wide) in chunks shared with [`pair`]'s helper thread:
/// column chunks (multiples of 32) when B is wide or must be copied (each chunk copies its own
/// columns), else row chunks (multiples of 12), about six of them so the two threads stay
/// balanced whoever starts first. A copied B of fewer than 12 panels of 32 columns (the LSTM's
/// `dicfo·Wᵀ`, 156 columns) cannot be dealt evenly in panels: its rows are halved and each half
/// copies B (100x512x156 on a Zen 4: 95 -> 88 µs).
fn paired<T: Float>(a: ArrayView2<T>, b: ArrayView2<T>, bits: Option<&[u64]>, c: Disjoint<T>, beta: T) {
    let (m, n) = (a.nrows(), b.ncols());
    let copied = b.strides()[1] != 1;
    // (Skipping A's zeros, every chunk finds each of its rows' nonzeros once: by rows.)
    let by_cols = bits.is_none() && if copied { n.div_ceil(32) >= 12 } else { n >= 128 };
    let (len, unit) = if by_cols { (n, 32) } else { (m, 12) };
    // Chunks of `size` (the last one short), or two halves cut at a whole tile.
    let (size, chunks) = if copied && !by_cols {
        let half = ((m / 2 + unit / 2) / unit * unit).max(unit);
        (half, if half < m { 2 } else { 1 })
    } else {
        let size = (len / unit / 6).max(1) * unit;
        (size, len.div_ceil(size))
    };
    crate::pair::for_each(chunks, &|i| {
        let (lo, hi) = (i * size, if i + 1 == chunks { len } else { (i + 1) * size });
        let (a, b, bits, offset) = if by_cols {
            (a, b.slice(ndarray::s![.., lo..hi]), bits, lo)
        } else {
            let bits = bits.map(|bits| &bits[lo * bits.len() / m..hi * bits.len() / m]);
            (a.slice(ndarray::s![lo..hi, ..]), b, bits, lo * n)
        };
        // SAFETY: chunk i writes only its own rows or columns of C (`offset` is its first
        // element), and C aliases neither a nor b (`gemm_into`'s views).
        unsafe { product(a, b, bits, c.at(offset), a.nrows(), b.ncols(), n, beta) };
    });
}

/// `c = a·b + beta·c` for a row-major `c` of `m×n` at `c_ptr`, rows `ldc` apart.
///
/// # Safety
/// `c_ptr` must address `m×n` writable row-major elements (rows `ldc >= n` apart) that alias
/// neither `a` nor `b`. The views carry their own extents and strides, so every read is inside
/// their allocations. Exercised by this module's tests with transposed views (non-unit column
/// strides) and by the parallel row- and column-block paths.
#[allow(clippy::too_many_arguments)]
unsafe fn product<T: Float>(
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    bits: Option<&[u64]>,
    c_ptr: *mut T,
    m: usize,
    n: usize,
    ldc: usize,
    beta: T,
) {
    let k = a.dim().1;
    let (sa, sb) = (a.strides(), b.strides());
    debug_assert_eq!((a.dim().0, b.dim()), (m, (k, n)));
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bits; // (never found there)
    #[cfg(target_arch = "x86_64")]
    if let Some(bits) = bits {
        let (av, bv) = (strided(&a), strided(&b));
        // SAFETY: `sparse_bits` found T f32, the tiled kernels and B's rows contiguous; the
        // bits are these rows of A's; the caller's contract covers the extents.
        let c = (c_ptr.cast::<f32>(), ldc);
        return crate::gemm_tiled::on_simd!(I => unsafe {
            crate::gemm_sparse::rows::<I>(av, bits, (m, k, n), bv, c, beta != T::zero())
        });
    }
    #[cfg(target_arch = "x86_64")]
    if tiled::<T>(&a) {
        use crate::gemm_tiled::{gemm, Left, Out};
        // SAFETY: T is f32 (checked) and the CPU runs the tiled kernels; the caller's contract
        // covers the extents, and m, n, k > 0 (`gemm_into` returns early otherwise).
        return unsafe {
            gemm(
                m,
                k,
                n,
                Left::Strided(strided(&a)),
                strided(&b),
                Out::Rows { c: c_ptr.cast::<f32>(), ldc },
                beta != T::zero(),
            )
        };
    }
    // SAFETY: the caller's contract; T is f32 or f64, which matrixmultiply supports.
    unsafe {
        T::gemm_raw(m, k, n, T::one(), a.as_ptr(), sa[0], sa[1], b.as_ptr(), sb[0], sb[1], beta, c_ptr, ldc as isize, 1)
    }
}

/// Whether [`product`] runs the tiled kernels for this left operand: f32 on AVX-512, or on
/// AVX2 with A's rows contiguous (a transposed A goes to matrixmultiply there: six-row tiles
/// use a quarter of each line of A they load per step, and packing wins: conv2's filter
/// gradient on a Zen 3, 49 GFLOP/s packed, 44 tiled).
#[cfg(target_arch = "x86_64")]
fn tiled<T: 'static>(a: &ArrayView2<T>) -> bool {
    crate::F32Simd::check::<T>().is_some()
        && match crate::cpu::simd() {
            crate::cpu::Simd::Avx512 => true,
            crate::cpu::Simd::Avx2 => a.strides()[1] == 1,
            crate::cpu::Simd::Portable => false,
        }
}

/// A view as the tiled kernels' f32 operand (T must be f32: [`tiled`] checked).
#[cfg(target_arch = "x86_64")]
fn strided<T>(v: &ArrayView2<T>) -> crate::gemm_tiled::Strided {
    let s = v.strides();
    crate::gemm_tiled::Strided { ptr: v.as_ptr().cast::<f32>(), rs: s[0], cs: s[1] }
}

/// Matrix products over the last two axes, the leading (batch) axes broadcast as NumPy's
/// `matmul` (TF's `BatchMatMulV2`); `ta`/`tb` transpose the last two axes of `a`/`b` first.
///
/// ```
/// use ndarray::{array, Array3};
/// use tensorgraph_kernels::gemm::batch_matmul;
/// let a = Array3::from_shape_fn((2, 1, 2), |(b, _, j)| (b * 2 + j) as f32).into_dyn(); // [[0,1]], [[2,3]]
/// let b = array![[1.0f32], [10.0]].into_dyn(); // one matrix for both batches
/// assert_eq!(batch_matmul(&a.view(), &b.view(), false, false).unwrap(), array![[[10.0f32]], [[32.0]]].into_dyn());
/// ```
pub fn batch_matmul<T: Float>(a: &ArrayViewD<T>, b: &ArrayViewD<T>, ta: bool, tb: bool) -> KResult<ArrayD<T>> {
    let (ra, rb) = (a.ndim(), b.ndim());
    if ra < 2 || rb < 2 {
        kbail!("batch matmul needs rank 2 or more: {:?} x {:?}", a.shape(), b.shape());
    }
    let (ba, bb) = (&a.shape()[..ra - 2], &b.shape()[..rb - 2]);
    let rank = ba.len().max(bb.len());
    let pad = |s: &[usize]| -> Vec<usize> { std::iter::repeat_n(1, rank - s.len()).chain(s.iter().copied()).collect() };
    let (pa, pb) = (pad(ba), pad(bb));
    let mut batch = Vec::with_capacity(rank);
    for (&x, &y) in pa.iter().zip(&pb) {
        batch.push(match (x, y) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => kbail!("batch dimensions do not broadcast: {:?} x {:?}", a.shape(), b.shape()),
        });
    }
    let a3 = a
        .to_shape((pa.iter().product::<usize>(), a.shape()[ra - 2], a.shape()[ra - 1]))
        .map_err(|e| KernelError(e.to_string()))?;
    let b3 = b
        .to_shape((pb.iter().product::<usize>(), b.shape()[rb - 2], b.shape()[rb - 1]))
        .map_err(|e| KernelError(e.to_string()))?;
    let Some(count) = batch.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) else {
        kbail!("broadcast batch dimensions {batch:?} overflow");
    };
    let mut out_shape = batch.clone();
    let mut mats = Vec::with_capacity(count);
    for flat in 0..count {
        // The batch index in each operand (a broadcast axis stays at 0).
        let (mut ia, mut ib, mut rest) = (0, 0, flat);
        let (mut sa, mut sb) = (1, 1);
        for d in (0..rank).rev() {
            let i = rest % batch[d];
            rest /= batch[d];
            ia += if pa[d] == 1 { 0 } else { i * sa };
            ib += if pb[d] == 1 { 0 } else { i * sb };
            sa *= pa[d];
            sb *= pb[d];
        }
        let m = matmul(a3.index_axis(Axis(0), ia), b3.index_axis(Axis(0), ib), ta, tb)?;
        mats.push(m);
    }
    let (m, n) = match mats.first() {
        Some(x) => x.dim(),
        None => {
            let m = if ta { a.shape()[ra - 1] } else { a.shape()[ra - 2] };
            let n = if tb { b.shape()[rb - 2] } else { b.shape()[rb - 1] };
            (m, n)
        }
    };
    out_shape.extend([m, n]);
    let data: Vec<T> = mats.into_iter().flat_map(|x| x.into_iter()).collect();
    ArrayD::from_shape_vec(IxDyn(&out_shape), data).map_err(|e| KernelError(e.to_string()))
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

    /// Above `PAR_WORK`, on pools of 2 and 3 threads: row blocks cut at multiples of 12 rows,
    /// or column blocks at multiples of 32 when B is transposed (uneven for 3), each its own
    /// product, together exact.
    #[test]
    fn large_parallel_product_matches_naive() {
        let (m, k, n) = (301, 250, 230);
        assert!(m * k * n >= PAR_WORK);
        let a = Array::from_shape_fn((m, k), |(i, j)| ((i + 2 * j) % 9) as f32 - 4.0);
        let b = Array::from_shape_fn((k, n), |(i, j)| ((3 * i + j) % 7) as f32 - 3.0);
        let want = naive(a.mapv(f64::from).view(), b.mapv(f64::from).view());
        // B transposed (strided rows): split by columns instead.
        let bt = b.t().as_standard_layout().into_owned();
        for threads in [2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let c = pool.install(|| matmul(a.view(), b.view(), false, false).unwrap());
            assert_eq!(c.mapv(f64::from), want);
            let c = pool.install(|| matmul(a.view(), bt.view(), false, true).unwrap());
            assert_eq!(c.mapv(f64::from), want);
        }
    }

    /// Small integers, so every f32 sum below is exact whatever the summation order.
    fn ints(rows: usize, cols: usize, seed: usize) -> Array2<f32> {
        Array::from_shape_fn((rows, cols), |(i, j)| ((i * 7 + j * 13 + seed * 5) % 9) as f32 - 4.0)
    }

    /// A left operand a fifth nonzero: the shape's first products are its trials (both ways,
    /// the sparse one into a copy), the later ones judged; each adds A·B to C exactly once.
    #[test]
    fn trials_and_judged_products_add_to_c_once() {
        for ta in [false, true] {
            let (m, k, n) = (30, 211 + usize::from(ta), 70); // shapes no other test has
            let sparse =
                |i: usize, j: usize| if (i * 31 + j * 17).is_multiple_of(5) { ((i + j) % 7) as f32 - 3.0 } else { 0.0 };
            let a = if ta {
                Array::from_shape_fn((k, m), |(j, i)| sparse(i, j))
            } else {
                Array::from_shape_fn((m, k), |(i, j)| sparse(i, j))
            };
            let av = if ta { a.t() } else { a.view() };
            let b = ints(k, n, 4);
            let c0 = ints(m, n, 5);
            let want = naive(av.mapv(f64::from).view(), b.mapv(f64::from).view()) + c0.mapv(f64::from);
            for call in 0..2 * crate::gemm_sparse::TRIALS + 2 {
                let mut c = c0.clone();
                gemm_into(av, b.view(), c.view_mut(), true, false);
                assert_eq!(c.mapv(f64::from), want, "call {call}, A transposed: {ta}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]
        /// Every tile edge (1..=12 rows, masked columns), several depth passes, both layouts
        /// of each operand, reversed rows, and accumulation into an existing C.
        #[test]
        fn f32_products_are_exact_for_any_shape_and_layout(
            m in 1usize..40, k in 1usize..700, n in 1usize..80,
            ta: bool, tb: bool, reversed: bool, accumulate: bool,
        ) {
            let a = if ta { ints(k, m, 1) } else { ints(m, k, 1) };
            let mut b = if tb { ints(n, k, 2) } else { ints(k, n, 2) };
            if reversed {
                b.invert_axis(ndarray::Axis(0));
            }
            let (av, bv) = (a.view(), b.view());
            let (av, bv) = (if ta { av.reversed_axes() } else { av }, if tb { bv.reversed_axes() } else { bv });
            let mut want = naive(av.mapv(f64::from).view(), bv.mapv(f64::from).view());
            let mut c = ints(m, n, 3);
            if accumulate {
                want += &c.mapv(f64::from);
            }
            gemm_into(av, bv, c.view_mut(), accumulate, false);
            proptest::prop_assert_eq!(c.mapv(f64::from), want);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Between `PAIR_WORK` and `PAR_WORK`, on a pool of two threads: column chunks (wide B,
        /// or transposed B of 12 panels or more), row chunks, the last one short, or two halves
        /// of the rows (transposed B of fewer panels), each written where it belongs.
        #[test]
        fn paired_products_are_exact(m in 2usize..130, k in 60usize..400, n in 1usize..340, tb: bool, accumulate: bool) {
            proptest::prop_assume!((PAIR_WORK..PAR_WORK).contains(&(m * k * n)));
            let a = ints(m, k, 6);
            let b = if tb { ints(n, k, 7) } else { ints(k, n, 7) };
            let bv = if tb { b.t() } else { b.view() };
            let mut want = naive(a.mapv(f64::from).view(), bv.mapv(f64::from).view());
            let mut c = ints(m, n, 8);
            if accumulate {
                want += &c.mapv(f64::from);
            }
            let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
            pool.install(|| gemm_into(a.view(), bv, c.view_mut(), accumulate, true));
            proptest::prop_assert_eq!(c.mapv(f64::from), want);
        }
    }

    #[test]
    fn row_blocks_beyond_one_cache_block_are_exact() {
        for (m, k, n) in [(800, 300, 40), (390, 520, 33)] {
            let (a, b) = (ints(m, k, 4), ints(k, n, 5));
            let want = naive(a.mapv(f64::from).view(), b.mapv(f64::from).view());
            assert_eq!(matmul(a.view(), b.view(), false, false).unwrap().mapv(f64::from), want);
        }
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
