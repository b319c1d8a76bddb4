//! `C = A·B` whose left operand is mostly zeros, the zeros skipped: MNIST's pixels feeding the
//! MLP's first layer (19% nonzero) and its weight gradient `xᵀ·dy`, a max-pooled ReLU feeding
//! the CNN's dense layer (a third nonzero in training) and its `pᵀ·dy`.
//!
//! Same bits as the tiled GEMM ([`crate::gemm_tiled`]), as the convolutions' sparse gradients
//! ([`crate::conv`]'s `sparse` module) are: each element of C is one chain of FMAs over k in
//! [`pass_depth`] passes, each pass added to C where the dense kernels add it; a zero of A
//! leaves a chain as it was (`0·b + s = s` for a finite `b`), so the chains here, the same
//! terms in the same order without the zero ones, end on the same value. B must be finite
//! ([`worth_it`] checks): `0·∞` is NaN, as TF's dense product gives. So whether a product runs
//! sparse or dense never changes a digit.

use crate::gemm_tiled::{pass_depth, Isa, Strided};
use std::sync::Mutex;

/// A's nonzeros when the zeros of `a` (`m x k`) are worth skipping in a product with `b` (`k x n`,
/// rows contiguous): no more than `most` nonzeros (see [`verdict`]), and `b` finite. Fills `bits`
/// (`m` rows of [`words`]`(k)`: bit `p % 64` of word `p / 64` set where `A[i, p]` is not zero,
/// NaN included) as it scans, and stops once the nonzeros so far pass the budget by an eighth
/// of it (a dense A costs a fraction of its reads).
///
/// # Safety
/// The CPU has `I` (inlined into a function compiled with it); `a` and `b` address their
/// elements through their strides; `bits` holds `m·words(k)` words.
#[inline(always)]
pub(crate) unsafe fn worth_it<I: Isa>(
    a: Strided,
    m: usize,
    k: usize,
    b: Strided,
    n: usize,
    bits: &mut [u64],
    most: usize,
) -> Option<usize> {
    let (w, l) = (words(k), I::LANES);
    // Over budget already, `done` of the m rows scanned.
    let over = |count: usize, done: usize| count as u128 > (most as u128 * done as u128) / m as u128 + most as u128 / 8;
    let mut count = 0;
    // SAFETY (all below): rows and columns inside A and B (the caller's contract).
    unsafe {
        if a.cs == 1 {
            let whole = k / l * l;
            for (i, row) in bits.chunks_exact_mut(w).enumerate() {
                row.fill(0);
                let at = a.ptr.offset(i as isize * a.rs);
                for p in (0..whole).step_by(l) {
                    row[p / 64] |= I::nonzero(at.add(p)) << (p % 64);
                }
                for p in whole..k {
                    row[p / 64] |= u64::from(*at.add(p) != 0.0) << (p % 64);
                }
                count += row.iter().map(|x| x.count_ones() as usize).sum::<usize>();
                if over(count, i + 1) {
                    return None;
                }
            }
        } else if a.rs == 1 {
            // A transposed (`xᵀ` of a weight gradient): its columns are rows in memory, scanned
            // 64 rows of A at a time, the 64 x 64 blocks of bits then transposed.
            for i0 in (0..m).step_by(64) {
                let rows = 64.min(m - i0);
                for p0 in (0..k).step_by(64) {
                    let mut block = [0u64; 64];
                    for (p, word) in block.iter_mut().enumerate().take(64.min(k - p0)) {
                        let at = a.ptr.offset((p0 + p) as isize * a.cs).add(i0);
                        for q in (0..rows / l * l).step_by(l) {
                            *word |= I::nonzero(at.add(q)) << q;
                        }
                        for q in rows / l * l..rows {
                            *word |= u64::from(*at.add(q) != 0.0) << q;
                        }
                        count += word.count_ones() as usize;
                    }
                    transpose_bits(&mut block);
                    for (r, &word) in block.iter().enumerate().take(rows) {
                        bits[(i0 + r) * w + p0 / 64] = word;
                    }
                }
                if over(count, i0 + rows) {
                    return None;
                }
            }
        } else {
            for (i, row) in bits.chunks_exact_mut(w).enumerate() {
                row.fill(0);
                for p in 0..k {
                    row[p / 64] |= u64::from(*a.ptr.offset(i as isize * a.rs + p as isize * a.cs) != 0.0) << (p % 64);
                }
                count += row.iter().map(|x| x.count_ones() as usize).sum::<usize>();
                if over(count, i + 1) {
                    return None;
                }
            }
        }
        if count > most {
            return None;
        }
        let row = |p: usize| std::slice::from_raw_parts(b.ptr.offset(p as isize * b.rs), n);
        let finite = if b.rs == n as isize {
            crate::wide::finite(std::slice::from_raw_parts(b.ptr, k * n))
        } else {
            (0..k).all(|p| crate::wide::finite(row(p)))
        };
        finite.then_some(count)
    }
}

/// What decides, for a product of this kind, how many nonzeros of A are worth skipping the
/// zeros for: B's width, A's layout, and A's rows up to 48 (four AVX-512 register tiles: fewer
/// rows leave the dense tiles part empty, the sparse rows not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub rows: usize,
    pub k: usize,
    pub n: usize,
    pub transposed: bool,
}

impl Shape {
    pub(crate) fn new(m: usize, k: usize, n: usize, transposed: bool) -> Shape {
        Shape { rows: m.min(48), k, n, transposed }
    }
}

/// How a product of a [`Shape`] is to run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Sparse while at most this fraction of A is nonzero: the dense product's time per
    /// element of A over the sparse one's per nonzero, as measured on this machine.
    Budget(f64),
    /// Not measured enough yet: run both ways and [`note`] their times.
    Trial,
}

/// Trials per shape (each runs both ways); the faster time of each way counts.
pub(crate) const TRIALS: u32 = 2;
/// Shapes measured per process; past them a shape takes the nearest measured one's budget.
const SHAPES: usize = 64;

struct Measured {
    shape: Shape,
    trials: u32,
    /// Fastest dense time per element of A and sparse time per nonzero, in seconds.
    dense: f64,
    sparse: f64,
}

static MEASURED: Mutex<Vec<Measured>> = Mutex::new(Vec::new());

/// The verdict for `shape`. Where the sparse rows pay depends on the machine (with two FMA
/// pipes a dense multiply-add is twice as cheap against a nonzero's loads as with one: an
/// Intel Xeon here broke even at 0.18-0.37 nonzero by shape, where a Zen 4's fitted budget said
/// 0.15-0.34) and on the shape, so each shape's first products run both ways, timed on the
/// calling thread, and the break-even is theirs. The bits are the same either way: only speed
/// depends on the timing.
pub(crate) fn verdict(shape: Shape) -> Verdict {
    thread_local! {
        /// Final verdicts this thread has seen: products run from several threads at once
        /// (the convolutions' chunks) need not take the lock each.
        static SEEN: std::cell::RefCell<Vec<(Shape, f64)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    if let Some(fraction) = SEEN.with(|s| s.borrow().iter().find(|(s, _)| *s == shape).map(|(_, f)| *f)) {
        return Verdict::Budget(fraction);
    }
    let verdict = measured_verdict(shape);
    if let Verdict::Budget(fraction) = verdict {
        SEEN.with(|s| {
            let mut seen = s.borrow_mut();
            if seen.len() < SHAPES {
                seen.push((shape, fraction));
            }
        });
    }
    verdict
}

fn measured_verdict(shape: Shape) -> Verdict {
    let measured = MEASURED.lock().unwrap_or_else(|e| e.into_inner());
    let budget = |m: &Measured| Verdict::Budget(m.dense / m.sparse);
    if let Some(m) = measured.iter().find(|m| m.shape == shape) {
        return if m.trials < TRIALS { Verdict::Trial } else { budget(m) };
    }
    if measured.len() < SHAPES {
        return Verdict::Trial;
    }
    // Full: the measured shape of the same layout nearest in width, else any, else only the
    // caller's obvious cases sparse (a trial that cannot be noted would run every time).
    let far = |m: &&Measured| (m.shape.transposed != shape.transposed, m.shape.n.abs_diff(shape.n));
    measured.iter().filter(|m| m.trials >= TRIALS).min_by_key(far).map_or(Verdict::Budget(0.0), budget)
}

/// Notes a trial of `shape`: the dense product's time per element of A and the sparse one's
/// per nonzero, in seconds.
pub(crate) fn note(shape: Shape, dense: f64, sparse: f64) {
    if !(dense.is_finite() && sparse.is_finite() && dense > 0.0 && sparse > 0.0) {
        return; // a clock too coarse for the product: try again next time
    }
    let mut measured = MEASURED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = measured.iter_mut().find(|m| m.shape == shape) {
        m.trials += 1;
        m.dense = m.dense.min(dense);
        m.sparse = m.sparse.min(sparse);
    } else if measured.len() < SHAPES {
        measured.push(Measured { shape, trials: 1, dense, sparse });
    }
}

/// A 64 x 64 matrix of bits transposed in place: bit `b` of `x[a]` becomes bit `a` of `x[b]`
/// (the off-diagonal blocks swapped, then each block, halving).
pub(crate) fn transpose_bits(x: &mut [u64; 64]) {
    let (mut j, mut mask) = (32, 0x0000_0000_ffff_ffff_u64);
    while j != 0 {
        let mut k = 0;
        while k < 64 {
            let t = ((x[k] >> j) ^ x[k + j]) & mask;
            x[k] ^= t << j;
            x[k + j] ^= t;
            k = (k + j + 1) & !j;
        }
        j >>= 1;
        mask ^= mask << j;
    }
}

/// Words of 64 bits per row of `k` columns.
pub(crate) fn words(k: usize) -> usize {
    k.div_ceil(64)
}

/// `C = A·B` (`accumulate`: `C += A·B`) for the `m` rows of A whose [`worth_it`] bits are
/// `bits`, B `k x n` with contiguous rows, C rows `ldc` apart: for each row, blocks of up to
/// eight vectors of columns, each a chain per vector over the row's nonzeros pass by pass.
///
/// # Safety
/// The CPU has `I`; `a`, `b` and `c` address `m x k`, `k x n` and `m x n` elements (C writable,
/// aliasing neither); `bits` are A's.
pub(crate) unsafe fn rows<I: Isa>(
    a: Strided,
    bits: &[u64],
    (m, k, n): (usize, usize, usize),
    b: Strided,
    (c, ldc): (*mut f32, usize),
    accumulate: bool,
) {
    let (l, w, kc) = (I::LANES, words(k), pass_depth(k));
    let row = SparseRow { a, b, k, kc, c, acc: accumulate, bits: &[], n };
    I::enabled(
        #[inline(always)]
        || {
            for i in 0..m {
                // SAFETY: row i of A, C and the bits (the caller's contract).
                let row = unsafe {
                    SparseRow {
                        a: Strided { ptr: a.ptr.offset(i as isize * a.rs), ..a },
                        c: c.add(i * ldc),
                        bits: &bits[i * w..][..w],
                        ..row
                    }
                };
                for j0 in (0..n).step_by(8 * l) {
                    macro_rules! by_width {
                        ($($v:literal)*) => {
                            match (n - j0).div_ceil(l).min(8) {
                                // SAFETY: forwarded; the block's columns are inside B and C.
                                $($v => unsafe { row.block::<I, $v>(j0) },)*
                                _ => unreachable!("1 to 8 vectors"),
                            }
                        };
                    }
                    by_width!(1 2 3 4 5 6 7 8);
                }
            }
        },
    )
}

/// One row of [`rows`].
#[derive(Clone, Copy)]
struct SparseRow<'a> {
    a: Strided,
    b: Strided,
    k: usize,
    kc: usize,
    n: usize,
    c: *mut f32,
    acc: bool,
    bits: &'a [u64],
}

impl SparseRow<'_> {
    /// `V` vectors of columns from `j0`: each pass's chains over the row's nonzeros in it, then
    /// added to C as [`crate::gemm_tiled`]'s tiles add theirs.
    ///
    /// # Safety
    /// As [`rows`]'; inlined into a function compiled with `I`.
    #[inline(always)]
    unsafe fn block<I: Isa, const V: usize>(&self, j0: usize) {
        let l = I::LANES;
        // SAFETY (all below): columns j0.. under each mask are inside B's rows and C; every
        // set bit is a column of A.
        unsafe {
            let masks: [I::M; V] = std::array::from_fn(|u| I::mask((self.n - j0).saturating_sub(u * l).min(l)));
            let full = self.n - j0 >= V * l;
            for p0 in (0..self.k).step_by(self.kc) {
                let end = (p0 + self.kc).min(self.k);
                let mut acc = [I::zero(); V];
                for wi in p0 / 64..end.div_ceil(64) {
                    // The word's columns inside the pass.
                    let (lo, hi) = (p0.max(wi * 64) - wi * 64, end.min(wi * 64 + 64) - wi * 64);
                    let mut found = (self.bits[wi] >> lo) << lo & (u64::MAX >> (64 - hi));
                    while found != 0 {
                        let p = wi * 64 + found.trailing_zeros() as usize;
                        found &= found - 1;
                        let x = I::splat(*self.a.ptr.offset(p as isize * self.a.cs));
                        let row = self.b.ptr.offset(p as isize * self.b.rs).add(j0);
                        for (u, acc) in acc.iter_mut().enumerate() {
                            let at = row.add(u * l);
                            let y = if full { I::load_all(masks[u], at) } else { I::load(masks[u], at) };
                            *acc = I::fma(x, y, *acc);
                        }
                    }
                }
                for (u, &sum) in acc.iter().enumerate() {
                    let c = self.c.add(j0 + u * l);
                    let sum = if self.acc || p0 > 0 { I::add(sum, I::load(masks[u], c)) } else { sum };
                    I::store(masks[u], full, c, sum);
                }
            }
        }
    }
}

#[cfg(test)]
/// Fractions whose sums round (equal bits only for equal orders of rounding), a `density`
/// of them nonzero; some exact zeros of either sign.
pub(crate) fn test_values(len: usize, density: f64, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|i| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            if u < density {
                ((s >> 20) % 2000) as f32 / 997.0 - 1.0
            } else if i % 3 == 0 {
                -0.0
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm_tiled::{available, gemm, Left, Out};
    use proptest::prelude::*;
    use test_values as values;

    /// `A·B` (`C` starting as `c0`) by the tiled GEMM and, where [`worth_it`] says so, by
    /// [`rows`]: `None` when it declined.
    fn both(
        a: Strided,
        (m, k, n): (usize, usize, usize),
        b: Strided,
        c0: &[f32],
        acc: bool,
        most: usize,
    ) -> (Vec<f32>, Option<Vec<f32>>) {
        let (mut dense, mut sparse) = (c0.to_vec(), c0.to_vec());
        let mut bits = vec![0; m * words(k)];
        // SAFETY: the tests' views address their matrices; the CPU runs the tiled kernels.
        unsafe {
            gemm(m, k, n, Left::Strided(a), b, Out::Rows { c: dense.as_mut_ptr(), ldc: n }, acc);
            let worth = crate::gemm_tiled::on_simd!(I => worth_it::<I>(a, m, k, b, n, &mut bits, most));
            if worth.is_none() {
                return (dense, None);
            }
            crate::gemm_tiled::on_simd!(I => rows::<I>(a, &bits, (m, k, n), b, (sparse.as_mut_ptr(), n), acc));
        }
        (dense, Some(sparse))
    }

    fn bits_of(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn a_shape_is_tried_then_judged_by_its_fastest_times() {
        let shape = Shape::new(5, 17, 9999, false); // no product has it
        assert_eq!(verdict(shape), Verdict::Trial);
        note(shape, 2e-9, 1e-8);
        assert_eq!(verdict(shape), Verdict::Trial);
        note(shape, f64::NAN, 0.0); // an unreadable clock is not a trial
        assert_eq!(verdict(shape), Verdict::Trial);
        note(shape, 3e-9, 8e-9);
        assert_eq!(verdict(shape), Verdict::Budget(2e-9 / 8e-9));
    }

    /// Bit (a, b) goes to (b, a).
    #[test]
    fn bits_transpose() {
        let mut x: [u64; 64] = std::array::from_fn(|a| (a as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let want: [u64; 64] = std::array::from_fn(|b| (0..64).map(|a| (x[a] >> b & 1) << a).sum());
        transpose_bits(&mut x);
        assert_eq!(x, want);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The sparse rows have the tiled GEMM's bits: A row-major or transposed, several
        /// passes (`k` past 320), `n` past eight vectors and not a multiple of one, B's rows
        /// apart by more than `n`, C accumulated or not; declined only when dense enough.
        #[test]
        fn sparse_rows_have_the_dense_bits(
            m in 1usize..40, k in 16usize..800, n in 16usize..300, pad in 0usize..3,
            transposed in any::<bool>(), acc in any::<bool>(), density in 0.0f64..0.5, seed in 0u64..1000,
        ) {
            if !available() {
                return Ok(());
            }
            let x = values(m * k, density, seed);
            let a = if transposed {
                Strided { ptr: x.as_ptr(), rs: 1, cs: m as isize }
            } else {
                Strided { ptr: x.as_ptr(), rs: k as isize, cs: 1 }
            };
            let ldb = n + pad;
            let y = values(k * ldb, 1.0, seed + 1);
            let b = Strided { ptr: y.as_ptr(), rs: ldb as isize, cs: 1 };
            let c0 = values(m * n, 1.0, seed + 2);
            let most = m * k / 3;
            let (dense, sparse) = both(a, (m, k, n), b, &c0, acc, most);
            let nonzero = x.iter().filter(|v| **v != 0.0).count();
            match sparse {
                Some(sparse) => prop_assert_eq!(bits_of(&sparse), bits_of(&dense)),
                // (Declined early where the first rows are denser than the budget.)
                None => prop_assert!(2 * nonzero > most, "declined at {nonzero} of {}", m * k),
            }
        }
    }

    /// An ∞ in B makes the product dense, so its zeros of A give TF's NaN.
    #[test]
    fn an_infinite_right_operand_is_not_skipped() {
        if !available() {
            return;
        }
        let (m, k, n) = (8, 64, 256);
        let x = values(m * k, 0.1, 5);
        let mut y = values(k * n, 1.0, 6);
        let a = Strided { ptr: x.as_ptr(), rs: k as isize, cs: 1 };
        let b = Strided { ptr: y.as_ptr(), rs: n as isize, cs: 1 };
        assert!(both(a, (m, k, n), b, &vec![0.0; m * n], false, m * k).1.is_some(), "sparse when finite");
        y[5 * n + 3] = f32::INFINITY;
        let b = Strided { ptr: y.as_ptr(), rs: n as isize, cs: 1 };
        let (dense, sparse) = both(a, (m, k, n), b, &vec![0.0; m * n], false, m * k);
        assert!(sparse.is_none());
        assert!(dense.iter().any(|v| v.is_nan()), "TF's 0·∞");
    }
}
