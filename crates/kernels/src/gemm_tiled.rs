//! f32 GEMM in register tiles on x86-64 vector units: 12x32 tiles on AVX-512 (24 accumulators
//! of 32 registers), 6x16 on AVX2 with FMA (12 of 16), one kernel written once over [`Isa`].
//! The left operand is read in place (no packing); the right one is copied into contiguous
//! panels once per depth pass when A has enough rows to pay for it, else read in place when
//! its rows are contiguous. The left operand may also be a convolution's column matrix left in
//! the image ([`Left::Gathered`], its transpose [`Left::GatheredT`]) and C may be stored onto
//! an input gradient's positions ([`Out::Scattered`]): the same tiles, with A's rows and C's
//! rows found through tables of pointers.
//!
//! Why not a packed BLIS kernel: the left operands here are the convolutions' column matrices
//! (positions x taps, row-major) and their transposes, written moments before and resident in
//! cache. Packing them into MR-tall panels is a transpose, which matrixmultiply does with gather
//! instructions (14-16% of a CNN step in perf); broadcasting straight from the rows costs one
//! load per multiply-add pair instead. On AVX-512 each step over k does 24 FMAs for 2 vector
//! loads and 12 broadcasts (matrixmultiply's 16x16: 16 FMAs for 1 load and 16 broadcasts), on
//! AVX2 12 FMAs for 2 loads and 6 broadcasts, so two FMA pipes stay fed. Everything is blocked
//! so the right operand's panel stays in L1 and the left block in L2; the only buffers are a
//! thread's reused copies of the right operand (its panels, or rows when they are strided), so
//! a call allocates nothing once warm.
//!
//! Every element of C is one lane's chain of FMAs over k in order, in passes of `KC` added to C:
//! the tile shape does not enter the result, so both instruction sets give the same bits.

use std::arch::x86_64::*;
use std::cell::RefCell;

/// Depth of one pass: a panel of the right operand is `KC x NR` floats (40 KiB on AVX-512, 20
/// on AVX2) in L1. 320 rather than 256 runs conv2's K = 288 in one pass instead of two (C stored
/// once): its forward pass 1.97 -> 1.69 ms. Fixed rather than read from the cache size: it
/// decides where partial sums are rounded, so a seed gives the same bits on every machine.
const KC: usize = 320;

/// Steps of k in each of a product's passes: equal passes of at most [`KC`] (k = 784 runs as
/// 3 x 262, not 320 + 320 + 144). Each element of C is rounded where its passes meet.
pub(crate) fn pass_depth(k: usize) -> usize {
    k.div_ceil(k.div_ceil(KC).max(1)).max(1)
}

/// Floats of each row of a gathered left operand's next run prefetched (four lines).
const PREFETCHED: usize = 64;

/// Left-operand rows per L2 block: `MC x KC` floats in half the L2 the CPU reports (408 rows
/// on a 1 MiB L2), a multiple of both tile heights. Only the order of the tiles depends on it.
fn mc() -> usize {
    static MC: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MC.get_or_init(|| (crate::cpu::l2_bytes() / 2 / (KC * 4) / 12 * 12).clamp(48, 1536))
}

/// One x86-64 vector instruction set: its f32 vector and lane mask, and its tile kernels
/// compiled with the set enabled. Every method requires the CPU to have the set.
pub trait Isa: Copy + 'static {
    /// f32 lanes of a vector.
    const LANES: usize;
    /// Rows of a register tile (its columns are two vectors).
    const MR: usize;
    type V: Copy;
    type M: Copy;
    /// Lane offsets `0, cs, 2·cs, ...` for [`Isa::gather`].
    type Idx: Copy;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `a` where `a > b`, else `b` (MAXPS: a NaN in either gives `b`).
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// `a·b + c`, rounded once.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The first `n` lanes (`n <= LANES`).
    unsafe fn mask(n: usize) -> Self::M;
    /// The lanes under `m` from `p` (no other lane is read), zeros elsewhere.
    unsafe fn load(m: Self::M, p: *const f32) -> Self::V;
    /// Every lane from `p` (`m` is ignored: the same call shape as [`Isa::load`]).
    unsafe fn load_all(m: Self::M, p: *const f32) -> Self::V;
    /// The lanes under `m` to `p` (no other lane is written); `full` when `m` has every lane.
    unsafe fn store(m: Self::M, full: bool, p: *mut f32, v: Self::V);
    unsafe fn offsets(cs: i32) -> Self::Idx;
    /// Bit `l` set where lane `l` of the `LANES` floats at `p` is not zero (NaN included).
    unsafe fn nonzero(p: *const f32) -> u64;
    /// Lane `l` under `m` from `p + idx[l]` floats.
    unsafe fn gather(m: Self::M, idx: Self::Idx, p: *const f32) -> Self::V;
    /// A `LANES x LANES` block transposed: row `r` of `dst` (`ldd` floats apart) is column `r`
    /// of `src`'s rows (`lds` apart). In registers: on a Zen 4 a gathered vector cost 26
    /// cycles, which made copying `Wᵀ` a fifth of the LSTM's `dicfo·Wᵀ`.
    unsafe fn transpose(src: *const f32, lds: usize, dst: *mut f32, ldd: usize);
    /// [`Tile::kernel`] with `rows` rows (`1..=MR`), compiled with the set enabled.
    unsafe fn tile(t: &Tile, rows: usize);
    /// [`Row::kernel`], compiled with the set enabled.
    unsafe fn row(r: &Row);
    /// Runs `f` inside a function compiled with the set enabled (`f` `#[inline(always)]`).
    unsafe fn enabled<R>(f: impl FnOnce() -> R) -> R;
}

/// `$body` with the type `$isa` naming the instruction set [`crate::cpu::simd`] picks (AVX-512,
/// else AVX2), compiled with it enabled: callers check [`available`] first; what `$body` calls
/// must be `#[inline(always)]` to be compiled there too.
macro_rules! on_simd {
    ($isa:ident => $body:expr) => {
        match $crate::cpu::simd() {
            $crate::cpu::Simd::Avx512 => {
                type $isa = $crate::gemm_tiled::Avx512;
                // SAFETY: `simd` detected the set (the caller checked `available`). (The
                // body's own unsafe blocks stay: they say what it relies on.)
                #[allow(unused_unsafe)]
                let out = unsafe {
                    <$isa as $crate::gemm_tiled::Isa>::enabled(
                        #[inline(always)]
                        || $body,
                    )
                };
                out
            }
            _ => {
                type $isa = $crate::gemm_tiled::Avx2;
                // SAFETY: as above.
                #[allow(unused_unsafe)]
                let out = unsafe {
                    <$isa as $crate::gemm_tiled::Isa>::enabled(
                        #[inline(always)]
                        || $body,
                    )
                };
                out
            }
        }
    };
}
pub(crate) use on_simd;

/// Stamps out an instruction set's tile kernels, one per (rows, way of reading A) so each is a
/// single loop with its accumulators in registers (sharing one function between the four ways
/// of reading A cost 3-8% at every GEMM shape).
macro_rules! tiles {
    ($isa:ty, $feature:literal, $($r:literal)*) => {
        unsafe fn tile(t: &Tile, rows: usize) {
            #[target_feature(enable = $feature)]
            unsafe fn kernel<const R: usize, const MODE: u8>(t: &Tile) {
                // SAFETY: forwarded; compiled with the set the caller checked.
                unsafe { t.kernel::<$isa, R, MODE>() }
            }
            macro_rules! by_rows {
                ($mode:literal) => {
                    match rows {
                        // SAFETY: forwarded; `rows` is the tile's row count.
                        $($r => unsafe { kernel::<$r, $mode>(t) },)*
                        _ => unreachable!("1..=MR rows"),
                    }
                };
            }
            match t.a {
                Left::Strided(Strided { cs: 1, .. }) => by_rows!(0),
                Left::Gathered(_) => by_rows!(1),
                Left::Strided(Strided { rs: 1, .. }) => by_rows!(4),
                Left::Strided(_) => by_rows!(2),
                Left::GatheredT(_) => by_rows!(3),
            }
        }

        unsafe fn row(r: &Row) {
            #[target_feature(enable = $feature)]
            unsafe fn kernel(r: &Row) {
                // SAFETY: forwarded; compiled with the set the caller checked.
                unsafe { r.kernel::<$isa>() }
            }
            // SAFETY: forwarded.
            unsafe { kernel(r) }
        }

        unsafe fn enabled<R>(f: impl FnOnce() -> R) -> R {
            #[target_feature(enable = $feature)]
            unsafe fn run<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            // SAFETY: the caller's contract (the CPU has the set).
            unsafe { run(f) }
        }
    };
}

/// AVX-512 F, BW, DQ and VL (16 lanes, mask registers; the tiles need only F, the
/// portable loops [`crate::wide::run`] compiles here use the others).
#[derive(Clone, Copy)]
pub struct Avx512;

impl Isa for Avx512 {
    const LANES: usize = 16;
    const MR: usize = 12;
    type V = __m512;
    type M = __mmask16;
    type Idx = __m512i;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn mask(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn load(m: __mmask16, p: *const f32) -> __m512 {
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
    #[inline(always)]
    unsafe fn load_all(_: __mmask16, p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(m: __mmask16, _full: bool, p: *mut f32, v: __m512) {
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn offsets(cs: i32) -> __m512i {
        unsafe {
            _mm512_mullo_epi32(
                _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                _mm512_set1_epi32(cs),
            )
        }
    }
    #[inline(always)]
    unsafe fn nonzero(p: *const f32) -> u64 {
        unsafe { _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(_mm512_loadu_ps(p), _mm512_setzero_ps()) as u64 }
    }
    #[inline(always)]
    unsafe fn gather(m: __mmask16, idx: __m512i, p: *const f32) -> __m512 {
        unsafe { _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), m, idx, p.cast()) }
    }
    #[inline(always)]
    unsafe fn transpose(src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
        // Four rounds over pairs of vectors: floats, pairs of floats, then 128-bit quarters
        // twice; row r's element c moves to row c, element r.
        unsafe {
            let r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(src.add(i * lds)));
            let t: [__m512; 16] = std::array::from_fn(|i| {
                let (a, b) = (r[i & !1], r[i | 1]);
                if i % 2 == 0 {
                    _mm512_unpacklo_ps(a, b)
                } else {
                    _mm512_unpackhi_ps(a, b)
                }
            });
            let u: [__m512; 16] = std::array::from_fn(|i| {
                // Rows 4q..4q+4: t[4q], t[4q+2] give u[4q], u[4q+1]; t[4q+1], t[4q+3] the rest.
                let (q, j) = (i / 4 * 4, i % 4);
                let (a, b) = (_mm512_castps_pd(t[q + j / 2]), _mm512_castps_pd(t[q + j / 2 + 2]));
                _mm512_castpd_ps(if j % 2 == 0 { _mm512_unpacklo_pd(a, b) } else { _mm512_unpackhi_pd(a, b) })
            });
            let v: [__m512; 16] = std::array::from_fn(|i| {
                let (h, j) = (i / 8 * 8, i % 8);
                let (a, b) = (u[h + j % 4], u[h + j % 4 + 4]);
                if j < 4 {
                    _mm512_shuffle_f32x4::<0x88>(a, b)
                } else {
                    _mm512_shuffle_f32x4::<0xdd>(a, b)
                }
            });
            for i in 0..16 {
                let (a, b) = (v[i % 8], v[i % 8 + 8]);
                let w = if i < 8 { _mm512_shuffle_f32x4::<0x88>(a, b) } else { _mm512_shuffle_f32x4::<0xdd>(a, b) };
                _mm512_storeu_ps(dst.add(i * ldd), w);
            }
        }
    }
    tiles!(Avx512, "avx512f,avx512bw,avx512dq,avx512vl", 1 2 3 4 5 6 7 8 9 10 11 12);
}

/// AVX2 with FMA (8 lanes; masks are vectors of all-ones lanes).
#[derive(Clone, Copy)]
pub struct Avx2;

impl Isa for Avx2 {
    const LANES: usize = 8;
    const MR: usize = 6;
    type V = __m256;
    type M = __m256i;
    type Idx = __m256i;
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn max(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn mask(n: usize) -> __m256i {
        unsafe { _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)) }
    }
    #[inline(always)]
    unsafe fn load(m: __m256i, p: *const f32) -> __m256 {
        unsafe { _mm256_maskload_ps(p, m) }
    }
    #[inline(always)]
    unsafe fn load_all(_: __m256i, p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(m: __m256i, full: bool, p: *mut f32, v: __m256) {
        // Masked stores are microcoded on AMD: whole vectors store plainly.
        unsafe {
            if full {
                _mm256_storeu_ps(p, v)
            } else {
                _mm256_maskstore_ps(p, m, v)
            }
        }
    }
    #[inline(always)]
    unsafe fn offsets(cs: i32) -> __m256i {
        unsafe { _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(cs)) }
    }
    #[inline(always)]
    unsafe fn nonzero(p: *const f32) -> u64 {
        unsafe { _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NEQ_UQ>(_mm256_loadu_ps(p), _mm256_setzero_ps())) as u64 }
    }
    #[inline(always)]
    unsafe fn gather(m: __m256i, idx: __m256i, p: *const f32) -> __m256 {
        unsafe { _mm256_mask_i32gather_ps::<4>(_mm256_setzero_ps(), p, idx, _mm256_castsi256_ps(m)) }
    }
    #[inline(always)]
    unsafe fn transpose(src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
        // Floats, pairs of floats, then 128-bit halves.
        unsafe {
            let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * lds)));
            let t: [__m256; 8] = std::array::from_fn(|i| {
                let (a, b) = (r[i & !1], r[i | 1]);
                if i % 2 == 0 {
                    _mm256_unpacklo_ps(a, b)
                } else {
                    _mm256_unpackhi_ps(a, b)
                }
            });
            let u: [__m256; 8] = std::array::from_fn(|i| {
                let (q, j) = (i / 4 * 4, i % 4);
                let (a, b) = (t[q + j / 2], t[q + j / 2 + 2]);
                if j % 2 == 0 {
                    _mm256_shuffle_ps::<0x44>(a, b)
                } else {
                    _mm256_shuffle_ps::<0xee>(a, b)
                }
            });
            for i in 0..8 {
                let (a, b) = (u[i % 4], u[i % 4 + 4]);
                let w = if i < 4 { _mm256_permute2f128_ps::<0x20>(a, b) } else { _mm256_permute2f128_ps::<0x31>(a, b) };
                _mm256_storeu_ps(dst.add(i * ldd), w);
            }
        }
    }
    tiles!(Avx2, "avx2,fma", 1 2 3 4 5 6);
}

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

/// Largest copy of a right operand a thread keeps for the next call (16 MiB; the models' largest
/// is 0.8 MB).
const KEPT_COPY: usize = 4 << 20;

thread_local! {
    /// A right operand with strided rows, copied row-major. Reused, so warm calls allocate nothing.
    static B_COPY: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `f` on the thread's kept buffer `key`, or on a new one while it is in use; a buffer grown
/// past [`KEPT_COPY`] is dropped after (one huge product must not pin memory in every thread).
fn with_kept<R>(key: &'static std::thread::LocalKey<RefCell<Vec<f32>>>, f: impl FnOnce(&mut Vec<f32>) -> R) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            let out = f(&mut buf);
            if buf.len() > KEPT_COPY {
                *buf = Vec::new();
            }
            out
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// Whether this CPU runs [`gemm`] (see [`crate::cpu::simd`]).
pub fn available() -> bool {
    crate::cpu::simd() != crate::cpu::Simd::Portable
}

/// `C = A·B` (or `C += A·B` when `accumulate`) for `A` `m x k`, `B` `k x n`, on the widest
/// instruction set [`crate::cpu::simd`] allows.
///
/// # Safety
/// [`available`]; `a` and `b` address `m x k` and `k x n` readable elements through their
/// strides or tables (every table pointer addresses `seg` floats), `c` addresses `m x n`
/// writable elements (through its table: distinct) that alias neither; `m, n, k > 0`; for
/// [`Out::Scattered`], `seg` is a multiple of 16.
pub unsafe fn gemm(m: usize, k: usize, n: usize, a: Left, b: Strided, c: Out, accumulate: bool) {
    // SAFETY: the caller's contract.
    on_simd!(I => unsafe { gemm_on::<I>(m, k, n, a, b, c, accumulate) })
}

/// [`gemm`] on the instruction set `I`.
///
/// # Safety
/// As [`gemm`], and the CPU has `I`.
pub unsafe fn gemm_on<I: Isa>(m: usize, k: usize, n: usize, a: Left, b: Strided, c: Out, accumulate: bool) {
    let contiguous = b.cs == 1 && b.rs >= 0;
    if contiguous || (m > 1 && n > 2 * I::LANES) {
        // SAFETY: the caller's contract (`blocked` packs strided rows into panels).
        return unsafe { blocked::<I>(m, k, n, a, b, c, accumulate) };
    }
    with_kept(&B_COPY, |buf| {
        if buf.len() < k * n {
            buf.resize(k * n, 0.0);
        }
        // SAFETY: B's extents are the caller's contract; `buf` holds k·n floats (one panel n
        // wide is B row-major).
        unsafe {
            I::enabled(
                #[inline(always)]
                || copy_panels::<I>(k, n, n, b, buf),
            )
        };
        // SAFETY: the caller's contract; `buf` holds B row-major.
        unsafe { blocked::<I>(m, k, n, a, Strided { ptr: buf.as_ptr(), rs: n as isize, cs: 1 }, c, accumulate) };
    })
}

/// Copies `depth x n` elements of `B` (any strides) into `buf` as panels `width` columns wide,
/// each `depth x width` contiguous (the last panel's missing columns unwritten; masked loads
/// never read them); `width` is `n` (B row-major) or a multiple of the vector. A transposed
/// row-major matrix (`rs == 1`: a weight matrix in `dy · Wᵀ`) is copied in square blocks
/// transposed in registers, the edges gathered (scalar element-by-element transposing cost as
/// much as the product at 100x64x3136).
///
/// # Safety
/// The CPU has `I`; `b` addresses `depth x n` readable elements through its strides; `buf`
/// holds `n.div_ceil(width) · depth · width` floats.
#[inline(always)]
unsafe fn copy_panels<I: Isa>(depth: usize, n: usize, width: usize, b: Strided, buf: &mut [f32]) {
    let at = |p: usize, j: usize| j / width * depth * width + p * width + j % width;
    if b.cs == 1 {
        for j0 in (0..n).step_by(width) {
            let cols = width.min(n - j0);
            for p in 0..depth {
                // SAFETY: row p, columns j0..j0 + cols are inside B.
                let src = unsafe { std::slice::from_raw_parts(b.ptr.offset(p as isize * b.rs).add(j0), cols) };
                buf[at(p, j0)..][..cols].copy_from_slice(src);
            }
        }
        return;
    }
    let lanes_apart = b.cs.checked_mul(I::LANES as isize - 1).filter(|&d| d <= i32::MAX as isize);
    if b.rs == 1 && b.cs > 0 && lanes_apart.is_some() {
        // SAFETY (all below): lanes j0.. under `mask` are columns of B (a vector never
        // straddles two panels), row p inside it; the store writes the same columns of the
        // copy's row p.
        unsafe {
            let (l, idx) = (I::LANES, I::offsets(b.cs as i32));
            let whole = depth / l * l;
            for j0 in (0..n).step_by(l) {
                let w = (n - j0).min(l);
                let mask = I::mask(w);
                let src = b.ptr.offset(j0 as isize * b.cs);
                let rows = if w == l {
                    for p0 in (0..whole).step_by(l) {
                        I::transpose(src.add(p0), b.cs as usize, buf.as_mut_ptr().add(at(p0, j0)), width);
                    }
                    whole..depth
                } else {
                    0..depth
                };
                for p in rows {
                    let v = I::gather(mask, idx, src.add(p));
                    I::store(mask, w == l, buf.as_mut_ptr().add(at(p, j0)), v);
                }
            }
        }
        return;
    }
    for p in 0..depth {
        for j in 0..n {
            // SAFETY: (p, j) is inside B.
            buf[at(p, j)] = unsafe { *b.ptr.offset(p as isize * b.rs + j as isize * b.cs) };
        }
    }
}

/// The cache blocking around [`Tile`]: depth passes of at most `KC`, row blocks of [`mc`]
/// rows, then panels of two vectors' width (each reused from L1 by every tile of the block;
/// copied contiguous from [`PACK_ROWS`] rows of A or when B's rows are strided, see
/// [`copy_panels`]).
///
/// # Safety
/// As [`gemm_on`]; B's rows contiguous unless `m > 1` and `n` is wider than a panel.
unsafe fn blocked<I: Isa>(m: usize, k: usize, n: usize, a: Left, b: Strided, c: Out, accumulate: bool) {
    let nr = 2 * I::LANES;
    let row_major = b.cs == 1 && b.rs >= 0;
    let kc = pass_depth(k);
    if let (Left::Strided(a), Out::Rows { c, .. }, true) = (a, c, m == 1 && n > nr) {
        debug_assert!(row_major, "gemm_on copies a strided B for one row");
        // SAFETY: the caller's contract; the CPU has I.
        return unsafe { I::row(&Row { k, kc, n, a, b: b.ptr, ldb: b.rs as usize, c, acc: accumulate }) };
    }
    for p0 in (0..k).step_by(kc) {
        let depth = kc.min(k - p0);
        let acc = accumulate || p0 > 0;
        // SAFETY: rows p0..p0 + depth of B are inside it (the caller's contract).
        let pass = Strided { ptr: unsafe { b.ptr.offset(p0 as isize * b.rs) }, ..b };
        if (m >= PACK_ROWS || !row_major) && n > nr {
            with_kept(&PANELS, |buf| {
                let len = n.div_ceil(nr) * depth * nr;
                if buf.len() < len {
                    buf.resize(len, 0.0);
                }
                // SAFETY: the pass's extents as above; `buf` holds `len` floats.
                unsafe {
                    I::enabled(
                        #[inline(always)]
                        || copy_panels::<I>(depth, n, nr, pass, buf),
                    )
                };
                // SAFETY: the caller's contract for A and C; `buf` holds the pass's rows of B
                // as `nr`-wide panels, `depth x nr` each.
                unsafe { pass_over_rows::<I>(m, n, a, (buf.as_ptr(), depth * nr, nr), c, (p0, depth, acc)) };
            });
        } else {
            debug_assert!(row_major);
            // SAFETY: as above, B read in place (panel j starts j·nr columns on).
            unsafe { pass_over_rows::<I>(m, n, a, (pass.ptr, nr, pass.rs as usize), c, (p0, depth, acc)) };
        }
    }
}

/// Rows of A from which a pass packs B's panels: the copy is paid once for every row of A.
/// 784x300 B on a Zen 3, one thread: 50 rows 3.5% slower packed, 64 rows 2% faster, 100 and
/// 200 rows 7-8%; B of 64 columns (conv2's), 1200 rows: 15%. A panel read in place has its
/// rows `ldb` floats apart: with a row a multiple of 256 bytes (n = 64 floats, conv2's filter),
/// its lines fall on a quarter of a 64-set L1, which holds 128 of conv2's 288, so every tile
/// re-read the panel from L2.
const PACK_ROWS: usize = 64;

thread_local! {
    /// One pass of B as contiguous panels (see [`copy_panels`]). Reused.
    static PANELS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// One depth pass of [`blocked`] over every row block and panel: `b` is `(first row of the
/// pass, floats between panels, floats between rows)`, `pass` is `(p0, depth, accumulate)`.
///
/// # Safety
/// As [`blocked`]; `b` addresses the pass's `depth x n` elements as described.
unsafe fn pass_over_rows<I: Isa>(
    m: usize,
    n: usize,
    a: Left,
    (b, panel_step, ldb): (*const f32, usize, usize),
    c: Out,
    (p0, depth, acc): (usize, usize, bool),
) {
    let (nr, mc) = (2 * I::LANES, mc());
    for i0 in (0..m).step_by(mc) {
        let end = i0 + mc.min(m - i0);
        // Whole tiles, the last one short (for GatheredT, tiles never straddle taps).
        let height = |r0: usize| {
            let rows = I::MR.min(end - r0);
            match a {
                Left::GatheredT(g) => rows.min(g.seg - r0 % g.seg),
                _ => rows,
            }
        };
        let tiles = |r0: usize, rows: usize, count: usize, j0: usize| {
            // SAFETY (all pointer arithmetic below): offsets stay inside A, B and C by the
            // loop bounds and the caller's contract.
            let bp = unsafe { b.add(j0 / nr * panel_step) };
            let t = Tile { r0, count, p0, depth, a, b: bp, ldb, c, j0, cols: nr.min(n - j0), acc };
            unsafe { I::tile(&t, rows) };
        };
        for j0 in (0..n).step_by(nr) {
            let mut r0 = i0;
            while r0 < end {
                let rows = height(r0);
                // Whole tiles up to the block's end (or the tap's, for GatheredT) in one
                // call: a call per tile cost ~15% of conv2's input gradient on AVX2, whose
                // stride classes make passes of only 64-256 steps.
                let count = if rows == I::MR {
                    let room = match a {
                        Left::GatheredT(g) => (end - r0).min(g.seg - r0 % g.seg),
                        _ => end - r0,
                    };
                    room / I::MR
                } else {
                    1
                };
                tiles(r0, rows, count, j0);
                r0 += rows * count;
            }
        }
    }
}

/// A product of one row (`1 x k` by `k x n`): a tile of one row keeps two chains of dependent
/// FMAs in flight, a quarter of what two FMA pipes with a 4-cycle latency need; this runs eight
/// vectors of columns at once (a served image's 1x3136x64 dense layer on a Zen 3: 19 -> 32
/// GFLOP/s; two rows stay in tiles, which read B once: 39 GFLOP/s against 23 row by row). Each
/// element is the same chain over each pass of `kc` as in [`Tile`], added to C the same way:
/// the same bits.
pub struct Row {
    k: usize,
    kc: usize,
    n: usize,
    a: Strided,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    acc: bool,
}

impl Row {
    /// Vectors of columns per block: independent chains enough for two FMA pipes.
    const V: usize = 8;

    /// # Safety
    /// The CPU has `I`, and this is inlined into a function compiled with it; `a` addresses
    /// `k` floats through `cs`, `b` `k` rows of `n` floats `ldb` apart, `c` `n` writable floats.
    #[inline(always)]
    unsafe fn kernel<I: Isa>(&self) {
        let (l, v) = (I::LANES, Self::V);
        for j0 in (0..self.n).step_by(v * l) {
            let full = self.n - j0 >= v * l;
            // SAFETY (all below): columns j0.. under each mask are inside B's rows and C.
            unsafe {
                let masks: [I::M; Self::V] =
                    std::array::from_fn(|u| I::mask((self.n - j0).saturating_sub(u * l).min(l)));
                for p0 in (0..self.k).step_by(self.kc) {
                    let mut acc = [I::zero(); Self::V];
                    for p in p0..p0 + self.kc.min(self.k - p0) {
                        let x = I::splat(*self.a.ptr.offset(p as isize * self.a.cs));
                        let row = self.b.add(p * self.ldb + j0);
                        for u in 0..Self::V {
                            // Past the last column the mask is empty: nothing is read.
                            let at = row.wrapping_add(u * l);
                            let y = if full { I::load_all(masks[u], at) } else { I::load(masks[u], at) };
                            acc[u] = I::fma(x, y, acc[u]);
                        }
                    }
                    for (u, &sum) in acc.iter().enumerate() {
                        let c = self.c.wrapping_add(j0 + u * l);
                        let sum = if self.acc || p0 > 0 { I::add(sum, I::load(masks[u], c)) } else { sum };
                        I::store(masks[u], full, c, sum);
                    }
                }
            }
        }
    }
}

/// `count` register tiles one under the other: up to `MR` rows each x two vectors of columns of
/// C (from row `r0` of A) over `depth` steps of k from `p0`.
pub struct Tile {
    r0: usize,
    count: usize,
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
    /// The tile with `R` rows (a compile-time constant, so the accumulators live in registers),
    /// A read the way `MODE` says (see `tiles!`).
    ///
    /// # Safety
    /// The CPU has `I`, and this is inlined into a function compiled with it.
    #[inline(always)]
    unsafe fn kernel<I: Isa, const R: usize, const MODE: u8>(&self) {
        let l = I::LANES;
        let full = self.cols == 2 * l;
        let (m0, m1) = unsafe { (I::mask(self.cols.min(l)), I::mask(self.cols.saturating_sub(l))) };
        for q in 0..self.count {
            let mut lo = [unsafe { I::zero() }; R];
            let mut hi = [unsafe { I::zero() }; R];
            // One step over k: two vectors of B's row `p` (relative to the pass), R broadcasts of A.
            // `$load` is `load_all` for whole panels: masked loads cost twice a plain one on Zen 3
            // (784x50x300: 52 -> 70 GFLOP/s).
            macro_rules! step {
                ($load:ident, $p:expr, |$i:ident| $a:expr) => {{
                    let b = self.b.add($p * self.ldb);
                    let (b0, b1) = (I::$load(m0, b), I::$load(m1, b.add(l)));
                    for $i in 0..R {
                        let v = I::splat($a);
                        lo[$i] = I::fma(v, b0, lo[$i]);
                        hi[$i] = I::fma(v, b1, hi[$i]);
                    }
                }};
            }
            let (r0, p0, depth) = (self.r0 + q * R, self.p0, self.depth);
            // The steps over the pass, A read the way MODE says.
            macro_rules! pass {
                ($load:ident) => {
                    match (MODE, self.a) {
                        (0, Left::Strided(Strided { ptr: a, rs, .. })) => {
                            // Rows of A contiguous in k (a row-major column matrix): R streams.
                            let rows: [*const f32; R] =
                                std::array::from_fn(|i| a.offset((r0 + i) as isize * rs + p0 as isize));
                            for p in 0..depth {
                                step!($load, p, |i| *rows[i].add(p));
                            }
                        }
                        (1, Left::Gathered(Gather { table, seg, segs })) => {
                            // As above, in runs of one tap's channels, each row from its own pointer.
                            // The tap and the channel the pass starts at, then whole taps.
                            let (mut p, mut s, mut off) = (0, p0 / seg, p0 % seg);
                            while p < depth {
                                let run = (seg - off).min(depth - p);
                                let rows: [*const f32; R] =
                                    std::array::from_fn(|i| (*table.add((r0 + i) * segs + s)).add(off));
                                // The next run's rows (the next tap, or the next tile's first)
                                // into L1 while this one computes: they come from anywhere in
                                // the image, where no hardware prefetcher looks. conv2 on a Zen 3,
                                // 2 threads, 8 alternating pairs: forward 9.4 -> 8.4 ms, input
                                // gradient 10.6 -> 10.1.
                                let next = if s + 1 < segs {
                                    Some((r0, s + 1))
                                } else {
                                    (q + 1 < self.count).then_some((r0 + R, 0))
                                };
                                if let Some((r, t)) = next {
                                    for i in 0..R {
                                        let row = *table.add((r + i) * segs + t);
                                        for line in (0..seg.min(PREFETCHED)).step_by(16) {
                                            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(line).cast());
                                        }
                                    }
                                }
                                for q in 0..run {
                                    step!($load, p + q, |i| *rows[i].add(q));
                                }
                                (p, s, off) = (p + run, s + 1, 0);
                            }
                        }
                        (2, Left::Strided(Strided { ptr: a, rs, cs })) => {
                            // Any other layout.
                            let a = a.offset(r0 as isize * rs + p0 as isize * cs);
                            for p in 0..depth {
                                let ap = a.offset(p as isize * cs);
                                step!($load, p, |i| *ap.offset(i as isize * rs));
                            }
                        }
                        (4, Left::Strided(Strided { ptr: a, cs, .. })) => {
                            // A transposed row-major matrix (a weight gradient's xᵀ): R
                            // consecutive floats per step, at constant offsets. Through mode 2's
                            // `i·rs` the addresses took registers and 6 accumulators spilled
                            // (156x100x512 on a Zen 4: 72 GFLOP/s against 108 untransposed).
                            let a = a.offset(r0 as isize + p0 as isize * cs);
                            for p in 0..depth {
                                let ap = a.offset(p as isize * cs);
                                step!($load, p, |i| *ap.add(i));
                            }
                        }
                        (3, Left::GatheredT(Gather { table, seg, segs })) => {
                            // R consecutive channels of one tap (the tile does not straddle taps).
                            let (s, off) = (r0 / seg, r0 % seg);
                            for p in 0..depth {
                                let ap = (*table.add((p0 + p) * segs + s)).add(off);
                                step!($load, p, |i| *ap.add(i));
                            }
                        }
                        _ => unreachable!("`tile` picks MODE from `a`"),
                    }
                };
            }
            // SAFETY (loads): row r0 + i (i < R) and step p0 + p (p < depth) are inside A, reached
            // through its strides or table; the loads read only the tile's columns of B.
            unsafe {
                if full {
                    pass!(load_all);
                } else {
                    pass!(load);
                }
                // SAFETY (stores): the tile's rows and columns of C, through the caller's table
                // for Scattered (`seg` a multiple of 16: each masked vector stays inside one tap).
                let store = |c0: *mut f32, c1: *mut f32, v0: I::V, v1: I::V| {
                    let (mut v0, mut v1) = (v0, v1);
                    if self.acc {
                        v0 = I::add(v0, I::load(m0, c0));
                        v1 = I::add(v1, I::load(m1, c1));
                    }
                    I::store(m0, full || self.cols >= l, c0, v0);
                    I::store(m1, full, c1, v1);
                };
                match self.c {
                    Out::Rows { c, ldc } => {
                        for i in 0..R {
                            let c = c.add((r0 + i) * ldc + self.j0);
                            store(c, c.wrapping_add(l), lo[i], hi[i]);
                        }
                    }
                    Out::Scattered(Gather { table, seg, segs }) => {
                        let j1 = (self.j0 + l).min(self.j0 + self.cols - 1); // unused when m1 is empty
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small integers: every f32 sum is exact whatever the order.
    fn ints(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * 7 + seed * 13) % 9) as f32 - 4.0).collect()
    }

    /// Fractions whose sums round: equal bits only where the order of roundings is equal.
    fn fractions(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 997.0) - 0.4).collect()
    }

    /// Each way of reading A and storing C on instruction set `I`: `C = A·B` for row-major A
    /// (`m x k`), B (`k x n`) and C, A read in place, through its transpose (strides and
    /// `GatheredT` tables), and through `Gathered` tables of `seg`-float segments, C stored in
    /// place or through a `Scattered` table (when `n` is a multiple of 16); B also read through
    /// its transpose (copied in blocks transposed in registers and gathered edges) and through
    /// strides of two floats (copied element by element).
    fn every_way<I: Isa>(m: usize, k: usize, n: usize, a: &[f32], b: &[f32]) -> Vec<Vec<f32>> {
        let at: Vec<f32> = (0..k * m).map(|x| a[(x % m) * k + x / m]).collect();
        let bs = Strided { ptr: b.as_ptr(), rs: n as isize, cs: 1 };
        let seg = if k.is_multiple_of(4) { 4 } else { 1 };
        let rows: Vec<*const f32> = (0..m * k / seg).map(|x| a[x * seg..].as_ptr()).collect();
        let seg_t = if m.is_multiple_of(3) { 3 } else { 1 };
        let cols: Vec<*const f32> = (0..k * m / seg_t).map(|x| at[x * seg_t..].as_ptr()).collect();
        let lefts = [
            Left::Strided(Strided { ptr: a.as_ptr(), rs: k as isize, cs: 1 }),
            Left::Strided(Strided { ptr: at.as_ptr(), rs: 1, cs: m as isize }),
            Left::Gathered(Gather { table: rows.as_ptr(), seg, segs: k / seg }),
            Left::GatheredT(Gather { table: cols.as_ptr(), seg: seg_t, segs: m / seg_t }),
        ];
        let mut out = Vec::new();
        for left in lefts {
            let mut c = vec![0.0f32; m * n];
            // SAFETY: the tables and strides above address A, B and C inside their vectors.
            unsafe { gemm_on::<I>(m, k, n, left, bs, Out::Rows { c: c.as_mut_ptr(), ldc: n }, false) };
            out.push(c);
        }
        let bt: Vec<f32> = (0..n * k).map(|x| b[(x % k) * n + x / k]).collect();
        let b2: Vec<f32> = b.iter().flat_map(|&x| [x, f32::NAN]).collect();
        for right in [
            Strided { ptr: bt.as_ptr(), rs: 1, cs: k as isize },
            Strided { ptr: b2.as_ptr(), rs: 2 * n as isize, cs: 2 },
        ] {
            let mut c = vec![0.0f32; m * n];
            // SAFETY: as above; `right` addresses B's k·n elements inside its vector.
            unsafe { gemm_on::<I>(m, k, n, lefts[0], right, Out::Rows { c: c.as_mut_ptr(), ldc: n }, false) };
            out.push(c);
        }
        if n.is_multiple_of(16) {
            let mut c = vec![0.0f32; m * n];
            let base = c.as_mut_ptr();
            // SAFETY: x·16 < m·n.
            let to: Vec<*const f32> = (0..m * n / 16).map(|x| unsafe { base.add(x * 16) }.cast_const()).collect();
            let out_t = Out::Scattered(Gather { table: to.as_ptr(), seg: 16, segs: n / 16 });
            // SAFETY: as above; the table's segments of C are distinct.
            unsafe { gemm_on::<I>(m, k, n, lefts[0], bs, out_t, false) };
            out.push(c);
        }
        out
    }

    /// Runs `f` on every instruction set this CPU has, whatever `TENSORGRAPH_SIMD` says.
    fn on_each_isa(m: usize, k: usize, n: usize, a: &[f32], b: &[f32]) -> Vec<Vec<Vec<f32>>> {
        use crate::cpu::{detected, Simd};
        let mut all = Vec::new();
        if detected() >= Simd::Avx2 {
            all.push(every_way::<Avx2>(m, k, n, a, b));
        }
        if detected() >= Simd::Avx512 {
            all.push(every_way::<Avx512>(m, k, n, a, b));
        }
        all
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// A row alone (the one-row kernel) or two give the bits the same rows have in a
        /// product of five (register tiles), over several depth passes, added to C or not.
        #[test]
        fn one_or_two_rows_give_the_bits_of_tiles(k in 1usize..800, n in 17usize..140, accumulate: bool) {
            let (a, b) = (fractions(5 * k, 5), fractions(k * n, 6));
            let bs = Strided { ptr: b.as_ptr(), rs: n as isize, cs: 1 };
            let product = |rows: std::ops::Range<usize>| {
                let mut c = fractions(5 * n, 7)[rows.start * n..rows.end * n].to_vec();
                let a = Strided { ptr: a[rows.start * k..].as_ptr(), rs: k as isize, cs: 1 };
                // SAFETY: A, B and C are sized as the call says.
                unsafe { gemm(rows.len(), k, n, Left::Strided(a), bs, Out::Rows { c: c.as_mut_ptr(), ldc: n }, accumulate) };
                c.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            };
            if available() {
                let five = product(0..5);
                proptest::prop_assert_eq!(&product(0..1)[..], &five[..n]);
                proptest::prop_assert_eq!(&product(4..5)[..], &five[4 * n..]);
                proptest::prop_assert_eq!(&product(2..4)[..], &five[2 * n..4 * n]);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Every tile height and edge, several depth passes, B read in place and packed (from
        /// `PACK_ROWS` rows): exact on integers in every way on every instruction set, and on
        /// fractions the same bits in every way and set.
        #[test]
        fn every_instruction_set_and_way_gives_the_same_bits(m in 1usize..80, k in 1usize..700, n in 1usize..70) {
            let (a, b) = (ints(m * k, 1), ints(k * n, 2));
            let want: Vec<f32> = (0..m * n)
                .map(|x| (0..k).map(|p| f64::from(a[x / n * k + p]) * f64::from(b[p * n + x % n])).sum::<f64>() as f32)
                .collect();
            for ways in on_each_isa(m, k, n, &a, &b) {
                for c in ways {
                    proptest::prop_assert_eq!(&c, &want);
                }
            }
            let (a, b) = (fractions(m * k, 3), fractions(k * n, 4));
            let all: Vec<Vec<f32>> = on_each_isa(m, k, n, &a, &b).into_iter().flatten().collect();
            for c in &all[1..] {
                let same = c.iter().zip(&all[0]).all(|(x, y)| x.to_bits() == y.to_bits());
                proptest::prop_assert!(same, "bits differ at {m}x{k}x{n}");
            }
        }
    }
}
