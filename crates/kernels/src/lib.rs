//! Pure CPU compute for tensorgraph: functions from ndarrays and attributes to ndarrays,
//! parallel with rayon where the work pays for it. No graph types here.

pub mod array;
pub mod batch_norm;
pub mod buffers;
pub mod conv;
pub mod cpu;
pub mod depthwise;
pub mod elementwise;
pub mod gemm;
#[cfg(target_arch = "x86_64")]
#[cfg(target_arch = "x86_64")]
mod gemm_sparse;
mod gemm_tiled;
pub mod lstm;
pub mod nn;
pub mod pair;
pub mod pool;
pub mod reduce;
mod small_conv;
pub mod summary;
pub mod vmath;
mod wide;

use std::fmt::Debug;

/// Proof that the element type is f32 on a CPU whose vector units run the tiled f32 kernels
/// (AVX-512 or AVX2 with FMA, as [`cpu::simd`] allows).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct F32Simd(());

#[cfg(target_arch = "x86_64")]
impl F32Simd {
    pub(crate) fn check<T: 'static>() -> Option<F32Simd> {
        let f32 = std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>();
        (f32 && gemm_tiled::available()).then_some(F32Simd(()))
    }

    /// # Safety
    /// `T` must be f32 (what `check` proved).
    pub(crate) unsafe fn cast<T>(self, s: &[T]) -> &[f32] {
        // SAFETY: T is f32, so this reinterprets nothing.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) }
    }

    /// # Safety
    /// As [`F32Simd::cast`].
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn cast_mut<T>(self, s: &mut [T]) -> &mut [f32] {
        // SAFETY: T is f32, so this reinterprets nothing.
        unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<f32>(), s.len()) }
    }
}

/// Why a kernel rejected its inputs (shapes only known at run time, out-of-range labels...).
/// The session wraps it into an error naming the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelError(pub String);

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KernelError {}

/// `Result` of a kernel.
pub type KResult<T> = Result<T, KernelError>;

/// Returns a [`KernelError`] built with `format!`.
#[macro_export]
macro_rules! kbail {
    ($($arg:tt)*) => { return Err($crate::KernelError(format!($($arg)*))) };
}

/// Element arithmetic with TF's semantics in every build profile: IEEE for floats, two's
/// complement wrap-around for integers (where Rust's operators would panic in debug builds and
/// wrap in release ones).
///
/// ```
/// use tensorgraph_kernels::Arith;
/// assert_eq!(i32::MAX.plus(1), i32::MIN);
/// assert_eq!(i64::MIN.magnitude(), i64::MIN); // as TF's Abs
/// assert!(f32::NAN.plus(1.0).is_nan());
/// ```
pub trait Arith: Copy + PartialOrd + Send + Sync + Debug + 'static {
    const ZERO: Self;
    const ONE: Self;
    /// The identity of `max` (-inf for floats): TF's max over nothing.
    const LOWEST: Self;
    /// The identity of `min` (+inf for floats).
    const HIGHEST: Self;
    fn plus(self, o: Self) -> Self;
    fn minus(self, o: Self) -> Self;
    fn times(self, o: Self) -> Self;
    fn negated(self) -> Self;
    fn magnitude(self) -> Self;
}

macro_rules! arith_float {
    ($($t:ty),*) => {$(
        impl Arith for $t {
            const ZERO: $t = 0.0;
            const ONE: $t = 1.0;
            const LOWEST: $t = <$t>::NEG_INFINITY;
            const HIGHEST: $t = <$t>::INFINITY;
            #[inline(always)]
            fn plus(self, o: $t) -> $t { self + o }
            #[inline(always)]
            fn minus(self, o: $t) -> $t { self - o }
            #[inline(always)]
            fn times(self, o: $t) -> $t { self * o }
            #[inline(always)]
            fn negated(self) -> $t { -self }
            #[inline(always)]
            fn magnitude(self) -> $t { self.abs() }
        }
    )*};
}

macro_rules! arith_int {
    ($($t:ty),*) => {$(
        impl Arith for $t {
            const ZERO: $t = 0;
            const ONE: $t = 1;
            const LOWEST: $t = <$t>::MIN;
            const HIGHEST: $t = <$t>::MAX;
            #[inline(always)]
            fn plus(self, o: $t) -> $t { self.wrapping_add(o) }
            #[inline(always)]
            fn minus(self, o: $t) -> $t { self.wrapping_sub(o) }
            #[inline(always)]
            fn times(self, o: $t) -> $t { self.wrapping_mul(o) }
            #[inline(always)]
            fn negated(self) -> $t { self.wrapping_neg() }
            #[inline(always)]
            fn magnitude(self) -> $t { self.wrapping_abs() }
        }
    )*};
}

arith_float!(f32, f64);
arith_int!(i32, i64);

/// The float element types kernels compute in: f32 (training) and f64 (gradient checks).
pub trait Float:
    num_traits::Float
    + Arith
    + num_traits::FromPrimitive
    + num_traits::AsPrimitive<f64>
    + ndarray::ScalarOperand
    + ndarray::LinalgScalar
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + Send
    + Sync
    + Debug
    + Default
    + buffers::Pooled
    + 'static
{
    /// Conversion from f64 (attributes are stored as f64).
    fn of(x: f64) -> Self;

    /// e^x; for f32 [`vmath::exp_f32`] (vectorisable), for f64 the standard library's.
    fn exponential(self) -> Self;

    /// The logistic sigmoid `1 / (1 + e^-x)`, computed without overflow.
    fn sigmoid(self) -> Self;

    /// tanh x; for f32 [`vmath::tanh_f32`] (vectorisable), for f64 the standard library's.
    fn hyperbolic_tangent(self) -> Self;

    /// The error function erf x (libm's).
    fn error_function(self) -> Self;

    /// [`Float::sigmoid`] over a slice in place (for f32 in the CPU's widest vectors).
    fn sigmoid_slice(x: &mut [Self]) {
        x.iter_mut().for_each(|v| *v = v.sigmoid());
    }

    /// [`Float::hyperbolic_tangent`] over a slice in place (for f32 in the CPU's widest vectors).
    fn tanh_slice(x: &mut [Self]) {
        x.iter_mut().for_each(|v| *v = v.hyperbolic_tangent());
    }

    /// Runs `f` on this thread's scratch buffer `slot` of `len` elements, reused from call to
    /// call so per-step work buffers (the convolutions' column matrices) are not allocated
    /// anew. Its contents are unspecified: `f` must write before it reads. A nested call on
    /// the same slot gets a fresh buffer.
    fn with_scratch_in<R>(slot: Scratch, len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;

    /// [`Float::with_scratch_in`] the [`Scratch::Work`] slot.
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
        Self::with_scratch_in(Scratch::Work, len, f)
    }

    /// [`Float::with_scratch_in`] the [`Scratch::Result`] slot.
    fn with_result_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
        Self::with_scratch_in(Scratch::Result, len, f)
    }

    /// `C = alpha·A·B + beta·C` on raw strided matrices (matrixmultiply's sgemm/dgemm).
    ///
    /// # Safety
    /// The pointers must address `m×k`, `k×n` and `m×n` matrices with the given row and column
    /// strides inside live allocations, and `c` must not overlap `a` or `b`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

impl Float for f32 {
    fn with_scratch_in<R>(slot: Scratch, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
        thread_local! {
            static SCRATCH: [std::cell::RefCell<Vec<f32>>; Scratch::SLOTS] =
                const { [const { std::cell::RefCell::new(Vec::new()) }; Scratch::SLOTS] };
        }
        SCRATCH.with(|slots| scratch_cell(&slots[slot as usize], len, f))
    }

    fn of(x: f64) -> f32 {
        x as f32
    }

    #[inline(always)]
    fn exponential(self) -> f32 {
        vmath::exp_f32(self)
    }

    #[inline(always)]
    fn sigmoid(self) -> f32 {
        vmath::sigmoid_f32(self)
    }

    #[inline(always)]
    fn error_function(self) -> f32 {
        libm::erff(self)
    }

    fn hyperbolic_tangent(self) -> f32 {
        vmath::tanh_f32(self)
    }

    fn sigmoid_slice(x: &mut [f32]) {
        vmath::sigmoid_slice(x)
    }

    fn tanh_slice(x: &mut [f32]) {
        vmath::tanh_slice(x)
    }

    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: f32,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        rsb: isize,
        csb: isize,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
    ) {
        // SAFETY: forwarded contract of `Float::gemm_raw`.
        unsafe { matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}

impl Float for f64 {
    fn with_scratch_in<R>(slot: Scratch, len: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
        thread_local! {
            static SCRATCH: [std::cell::RefCell<Vec<f64>>; Scratch::SLOTS] =
                const { [const { std::cell::RefCell::new(Vec::new()) }; Scratch::SLOTS] };
        }
        SCRATCH.with(|slots| scratch_cell(&slots[slot as usize], len, f))
    }

    fn of(x: f64) -> f64 {
        x
    }

    fn exponential(self) -> f64 {
        self.exp()
    }

    fn sigmoid(self) -> f64 {
        let e = (-self.abs()).exp();
        let s = 1.0 / (1.0 + e);
        if self >= 0.0 {
            s
        } else {
            e * s
        }
    }

    fn error_function(self) -> f64 {
        libm::erf(self)
    }

    fn hyperbolic_tangent(self) -> f64 {
        self.tanh()
    }

    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: f64,
        a: *const f64,
        rsa: isize,
        csa: isize,
        b: *const f64,
        rsb: isize,
        csb: isize,
        beta: f64,
        c: *mut f64,
        rsc: isize,
        csc: isize,
    ) {
        // SAFETY: forwarded contract of `Float::gemm_raw`.
        unsafe { matrixmultiply::dgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
    }
}

/// What a producing kernel (convolution, matmul) applies to its output rows while they are
/// still in cache: a per-column bias, then ReLU (the ops Grappler folds into `_FusedConv2D`
/// and `_FusedMatMul`). Each element gets the same operations as the separate ops would apply,
/// so results are identical.
///
/// ```
/// use tensorgraph_kernels::Epilogue;
/// let mut rows = [1.0f32, -2.0, -3.0, 4.0];
/// Epilogue { bias: Some(&[1.0, 1.0][..]), relu: true }.apply(&mut rows);
/// assert_eq!(rows, [2.0, 0.0, 0.0, 5.0]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a, T> {
    /// Added to every row (its length is the row length).
    pub bias: Option<&'a [T]>,
    /// Then `max(v, 0)`.
    pub relu: bool,
}

impl<T: Float> Epilogue<'_, T> {
    /// Nothing to apply.
    pub const NONE: Self = Epilogue { bias: None, relu: false };

    /// Applies the epilogue to whole rows (`rows.len()` a multiple of the bias length).
    pub fn apply(&self, rows: &mut [T]) {
        let zero = T::zero();
        // NaN passes through, as in TF.
        let relu = |v: T| if v < zero { zero } else { v };
        // In AVX-512 (masked selects): at SSE2 width the ReLU's select is a branch per value.
        wide::run(
            #[inline(always)]
            || match (self.bias.filter(|b| !b.is_empty()), self.relu) {
                (Some(b), true) => {
                    rows.chunks_mut(b.len()).for_each(|r| r.iter_mut().zip(b).for_each(|(v, &b)| *v = relu(*v + b)))
                }
                (Some(b), false) => {
                    rows.chunks_mut(b.len()).for_each(|r| r.iter_mut().zip(b).for_each(|(v, &b)| *v += b))
                }
                (None, true) => rows.iter_mut().for_each(|v| *v = relu(*v)),
                (None, false) => {}
            },
        )
    }

    /// [`Epilogue::apply`] on one value of column `c` (the same operations, for kernels that
    /// finish values one at a time).
    #[inline(always)]
    pub fn value(&self, v: T, c: usize) -> T {
        let v = match self.bias {
            Some(b) => v + b[c],
            None => v,
        };
        match self.relu {
            true if v < T::zero() => T::zero(),
            _ => v,
        }
    }
}

/// The allocator of the `_with` kernel variants' plain forms: a fresh zeroed buffer.
pub fn zeros<T: Float>(len: usize) -> Vec<T> {
    vec![T::zero(); len]
}

/// Element counts at which splitting work across threads starts to pay on this machine kind
/// (below it, rayon's fork-join overhead of a few microseconds dominates).
pub const PAR_ELEMENTS: usize = 1 << 15;

/// The thread-local scratch buffers of [`Float::with_scratch_in`]: one per use that may be
/// live at once on a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scratch {
    /// A kernel's work buffer (column matrices).
    Work,
    /// A result made piece by piece around work taking the first (a convolution's output
    /// chunk, pooled and not kept).
    Result,
    /// Partial sums held by the calling thread while its tasks (also run by it) take the
    /// others (the filter gradient's groups).
    Partials,
    /// An input made piece by piece for work taking the others (a convolution's `dy` chunk
    /// routed from a pooling's gradient).
    Input,
}

impl Scratch {
    const SLOTS: usize = 4;
}

/// [`Float::with_scratch`] over one thread-local buffer.
fn scratch<T: Copy + Default + 'static, R>(
    key: &'static std::thread::LocalKey<std::cell::RefCell<Vec<T>>>,
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    key.with(|cell| scratch_cell(cell, len, f))
}

fn scratch_cell<T: Copy + Default, R>(
    cell: &std::cell::RefCell<Vec<T>>,
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, T::default());
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![T::default(); len]),
    }
}
