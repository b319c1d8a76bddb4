//! f32 GEMM on AVX-512: 12x32 register tiles (24 accumulators), the left operand read in place
//! (no packing), the right one read in place when its rows are contiguous. The left operand may
//! also be a convolution's column matrix left in the image ([`Left::Gathered`], its transpose
//! [`Left::GatheredT`]) and C may be stored onto an input gradient's positions
//! ([`Out::Scattered`]): the same tiles, with A's rows and C's rows found through tables of
//! pointers.
//!
//! Why not a packed BLIS kernel: the left operands here are the convolutions' column matrices
//! (positions x taps, row-major) and their transposes, written moments before and resident in
//! cache. Packing them into MR-tall panels is a transpose, which matrixmultiply does with gather
//! instructions (14-16% of a CNN step in perf); broadcasting straight from the rows costs one
//! load per multiply-add pair instead. Tiles are 12 rows x 32 columns so each step over k does
//! 24 FMAs for 2 vector loads and 12 broadcasts (matrixmultiply's 16x16: 16 FMAs for 1 load and
//! 16 broadcasts), and Zen's two 512-bit FMA pipes stay fed. Everything here is blocked so the
//! right operand's 32-column panel stays in L1 and the left block in L2; the only buffer is a
//! thread's reused copy of a right operand whose rows are strided, so a call allocates nothing
//! once warm.

use std::arch::x86_64::*;
use std::cell::RefCell;

/// Rows of a register tile.
const MR: usize = 12;
/// Columns of a register tile: two 16-lane registers.
const NR: usize = 32;
/// Depth of one pass: a 32-column panel of the right operand is `KC x 32` floats (40 KiB) in
/// L1 (48 KiB on Zen 4/5). 320 rather than 256 runs conv2's K = 288 in one pass instead of two
/// (C stored once): its forward pass 1.97 -> 1.69 ms, no change at the MLP's shapes.
const KC: usize = 320;
/// Left-operand rows per L2 block (`MC x KC` floats, 480 KiB).
const MC: usize = 384;

/// A matrix in memory: element (i, j) at `ptr + i*rs + j*cs`.
#[derive(Clone, Copy)]
pub struct Strided {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

/// How a product reads its left operand `A`.
#[derive(Clone, Copy)]
pub enum Left {
    /// Element (i, j) through strides.
    Strided(Strided),
    /// A convolution's column matrix left in the image (rows: output positions; columns:
    /// `segs` taps of `seg` channels): element (i, j) at `table[i*segs + j/seg] + j%seg`.
    Gathered(Gather),
    /// The transpose of [`Left::Gathered`] (the filter gradient's `colsᵀ`): element (i, j) at
    /// `table[j*segs + i/seg] + i%seg`. Tiles never straddle a multiple of `seg` rows.
    GatheredT(Gather),
}

/// Pointers to the `seg` contiguous channels of each (output position, tap): into the image,
/// or to `seg` zeros in the padding.
#[derive(Clone, Copy)]
pub struct Gather {
    pub table: *const *const f32,
    pub seg: usize,
    pub segs: usize,
}

/// Where a product's `C` goes.
#[derive(Clone, Copy)]
pub enum Out {
    /// A row-major `m x n` matrix whose rows are `ldc` apart (`ldc >= n`).
    Rows { c: *mut f32, ldc: usize },
    /// A convolution's input gradient (col2im inside the product): element (i, j) onto
    /// `table[i*segs + j/seg] + j%seg`. `seg` is a multiple of 16, so a vector of C never
    /// straddles two pointers.
    Scattered(Gather),
}

/// Whether this CPU runs [`gemm`].
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// Largest copy of a right operand a thread keeps for the next call (16 MiB; the models' largest
/// is 0.8 MB).
const KEPT_COPY: usize = 4 << 20;

thread_local! {
    /// A right operand with strided rows, copied row-major. Reused, so warm calls allocate nothing.
    static B_COPY: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `C = A·B` (or `C += A·B` when `accumulate`) for `A` `m x k`,
/// `B` `k x n`.
///
/// # Safety
/// The CPU has AVX-512F ([`available`]); `a` and `b` address `m x k` and `k x n` readable
/// elements through their strides or tables (every table pointer addresses `seg` floats), `c`
/// addresses `m x n` writable elements (through its table: distinct) that
/// alias neither; `m, n, k > 0`.
#[target_feature(enable = "avx512f")]
pub unsafe fn gemm(m: usize, k: usize, n: usize, a: Left, b: Strided, c: Out, accumulate: bool) {
    if b.cs == 1 && b.rs >= 0 {
        // SAFETY: the caller's contract.
        return unsafe { blocked(m, k, n, a, b, c, accumulate) };
    }
    B_COPY.with(|cell| {
        let mut owned = Vec::new();
        let mut borrowed = cell.try_borrow_mut();
        let buf = match borrowed.as_mut() {
            Ok(buf) => &mut **buf,
            Err(_) => &mut owned,
        };
        if buf.len() < k * n {
            buf.resize(k * n, 0.0);
        }
        // SAFETY: B's extents are the caller's contract; `buf` holds k·n floats.
        unsafe { copy_row_major(k, n, b, buf) };
        // SAFETY: the caller's contract; `buf` holds B row-major.
        unsafe { blocked(m, k, n, a, Strided { ptr: buf.as_ptr(), rs: n as isize, cs: 1 }, c, accumulate) };
        if buf.len() > KEPT_COPY {
            *buf = Vec::new(); // one huge product must not pin its copy in every thread
        }
    })
}

/// Copies `B` (`k x n`, any strides) row-major into `buf`. A transposed row-major matrix
/// (`rs == 1`: a weight matrix in `dy · Wᵀ`) is read 16 of its rows at a time, each 16-float
/// output vector gathered from them (their lines stay in L1 while every k is copied): scalar
/// element-by-element transposing cost as much as the product at 100x64x3136.
///
/// # Safety
/// `b` addresses `k x n` readable elements through its strides; `buf` holds at least `k·n`.
#[target_feature(enable = "avx512f")]
unsafe fn copy_row_major(k: usize, n: usize, b: Strided, buf: &mut [f32]) {
    let lanes_apart = b.cs.checked_mul(15).filter(|&d| d <= i32::MAX as isize);
    if b.rs == 1 && b.cs > 0 && lanes_apart.is_some() {
        let idx = _mm512_mullo_epi32(
            _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
            _mm512_set1_epi32(b.cs as i32),
        );
        for j0 in (0..n).step_by(16) {
            let mask = lanes((n - j0).min(16));
            for p in 0..k {
                // SAFETY: lanes j0..j0+16 under `mask` are columns of B, row p inside it; the
                // store writes the same columns of the copy's row p.
                unsafe {
                    let src = b.ptr.offset(j0 as isize * b.cs + p as isize);
                    let v = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, idx, src.cast());
                    _mm512_mask_storeu_ps(buf.as_mut_ptr().add(p * n + j0), mask, v);
                }
            }
        }
        return;
    }
    for p in 0..k {
        for j in 0..n {
            // SAFETY: (p, j) is inside B.
            buf[p * n + j] = unsafe { *b.ptr.offset(p as isize * b.rs + j as isize * b.cs) };
        }
    }
}

/// The cache blocking around [`Tile`]: depth passes of at most `KC`, row blocks of `MC`, then
/// 32-column panels (each reused from L1 by every 12-row tile of the block).
#[target_feature(enable = "avx512f")]
unsafe fn blocked(m: usize, k: usize, n: usize, a: Left, b: Strided, c: Out, accumulate: bool) {
    debug_assert!(b.cs == 1 && b.rs >= 0);
    let (b, ldb) = (b.ptr, b.rs as usize);
    // Equal passes (k = 784 runs as 3 x 262, not 320 + 320 + 144).
    let passes = k.div_ceil(KC);
    let kc = k.div_ceil(passes);
    for p0 in (0..k).step_by(kc) {
        let depth = kc.min(k - p0);
        let acc = accumulate || p0 > 0;
        for i0 in (0..m).step_by(MC) {
            let rows = MC.min(m - i0);
            for j0 in (0..n).step_by(NR) {
                let cols = NR.min(n - j0);
                // SAFETY (all pointer arithmetic below): offsets stay inside A, B and C by the
                // loop bounds and the caller's contract.
                let bp = unsafe { b.add(p0 * ldb + j0) };
                let mut r0 = i0;
                while r0 < i0 + rows {
                    let mut tile_rows = MR.min(i0 + rows - r0);
                    if let Left::GatheredT(g) = a {
                        tile_rows = tile_rows.min(g.seg - r0 % g.seg);
                    }
                    let t = Tile { r0, p0, depth, a, b: bp, ldb, c, j0, cols, acc };
                    unsafe { t.run(tile_rows) };
                    r0 += tile_rows;
                }
            }
        }
    }
}

/// One register tile: up to 12 rows x 32 columns of C (from row `r0` of A) over `depth` steps
/// of k from `p0`.
struct Tile {
    r0: usize,
    p0: usize,
    depth: usize,
    a: Left,
    b: *const f32,
    ldb: usize,
    c: Out,
    /// The tile's first column.
    j0: usize,
    cols: usize,
    acc: bool,
}

impl Tile {
    /// Dispatches on the row count (a compile-time constant in the kernel, so the accumulators
    /// live in registers) and on how A's rows lie in memory.
    #[target_feature(enable = "avx512f")]
    unsafe fn run(&self, rows: usize) {
        // One kernel per way of reading A, so each holds a single loop (sharing one function
        // between the four cost 3-8% at every GEMM shape).
        macro_rules! by_rows {
            ($mode:literal, $($r:literal)*) => {
                match rows {
                    // SAFETY: forwarded; `rows` is the tile's row count.
                    $($r => unsafe { self.kernel::<$r, $mode>() },)*
                    _ => unreachable!("1..=MR rows"),
                }
            };
        }
        match self.a {
            Left::Strided(Strided { cs: 1, .. }) => by_rows!(0, 1 2 3 4 5 6 7 8 9 10 11 12),
            Left::Gathered(_) => by_rows!(1, 1 2 3 4 5 6 7 8 9 10 11 12),
            Left::Strided(_) => by_rows!(2, 1 2 3 4 5 6 7 8 9 10 11 12),
            Left::GatheredT(_) => by_rows!(3, 1 2 3 4 5 6 7 8 9 10 11 12),
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn kernel<const R: usize, const MODE: u8>(&self) {
        let m0: __mmask16 = lanes(self.cols.min(16));
        let m1: __mmask16 = lanes(self.cols.saturating_sub(16));
        let mut lo = [_mm512_setzero_ps(); R];
        let mut hi = [_mm512_setzero_ps(); R];
        // One step over k: two vectors of B's row `p` (relative to the pass), R broadcasts of A.
        macro_rules! step {
            ($p:expr, |$i:ident| $a:expr) => {{
                let b = self.b.add($p * self.ldb);
                let (b0, b1) = (_mm512_maskz_loadu_ps(m0, b), _mm512_maskz_loadu_ps(m1, b.add(16)));
                for $i in 0..R {
                    let v = _mm512_set1_ps($a);
                    lo[$i] = _mm512_fmadd_ps(v, b0, lo[$i]);
                    hi[$i] = _mm512_fmadd_ps(v, b1, hi[$i]);
                }
            }};
        }
        let (r0, p0, depth) = (self.r0, self.p0, self.depth);
        // SAFETY (loads): row r0 + i (i < R) and step p0 + p (p < depth) are inside A, reached
        // through its strides or table; the masked loads read only the tile's columns of B.
        unsafe {
            match (MODE, self.a) {
                (0, Left::Strided(Strided { ptr: a, rs, .. })) => {
                    // Rows of A contiguous in k (a row-major column matrix): R streams.
                    let rows: [*const f32; R] = std::array::from_fn(|i| a.offset((r0 + i) as isize * rs + p0 as isize));
                    for p in 0..depth {
                        step!(p, |i| *rows[i].add(p));
                    }
                }
                (1, Left::Gathered(Gather { table, seg, segs })) => {
                    // As above, in runs of one tap's channels, each row from its own pointer.
                    let mut p = 0;
                    while p < depth {
                        let (s, off) = ((p0 + p) / seg, (p0 + p) % seg);
                        let run = (seg - off).min(depth - p);
                        let rows: [*const f32; R] = std::array::from_fn(|i| (*table.add((r0 + i) * segs + s)).add(off));
                        for q in 0..run {
                            step!(p + q, |i| *rows[i].add(q));
                        }
                        p += run;
                    }
                }
                (2, Left::Strided(Strided { ptr: a, rs, cs })) => {
                    // Any other layout; a transposed row-major matrix (`rs == 1`) reads R
                    // consecutive floats per step.
                    let a = a.offset(r0 as isize * rs + p0 as isize * cs);
                    for p in 0..depth {
                        let ap = a.offset(p as isize * cs);
                        step!(p, |i| *ap.offset(i as isize * rs));
                    }
                }
                (3, Left::GatheredT(Gather { table, seg, segs })) => {
                    // R consecutive channels of one tap (the tile does not straddle taps).
                    let (s, off) = (r0 / seg, r0 % seg);
                    for p in 0..depth {
                        let ap = (*table.add((p0 + p) * segs + s)).add(off);
                        step!(p, |i| *ap.add(i));
                    }
                }
                _ => unreachable!("`run` picks MODE from `a`"),
            }
            // SAFETY (stores): the tile's rows and columns of C, through the caller's table
            // for Scattered (`seg % 16 == 0`: each masked vector stays inside one tap).
            let store = |c0: *mut f32, c1: *mut f32, v0: __m512, v1: __m512| {
                let (mut v0, mut v1) = (v0, v1);
                if self.acc {
                    v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, c0));
                    v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, c1));
                }
                _mm512_mask_storeu_ps(c0, m0, v0);
                _mm512_mask_storeu_ps(c1, m1, v1);
            };
            match self.c {
                Out::Rows { c, ldc } => {
                    for i in 0..R {
                        let c = c.add((r0 + i) * ldc + self.j0);
                        store(c, c.add(16), lo[i], hi[i]);
                    }
                }
                Out::Scattered(Gather { table, seg, segs }) => {
                    let j1 = (self.j0 + 16).min(self.j0 + self.cols - 1); // unused when m1 is empty
                    for i in 0..R {
                        let row = table.add((r0 + i) * segs);
                        let at = |j: usize| (*row.add(j / seg)).add(j % seg).cast_mut();
                        store(at(self.j0), at(j1), lo[i], hi[i]);
                    }
                }
            }
        }
    }
}

/// A mask of the first `n` of 16 lanes.
#[inline(always)]
fn lanes(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}
