//! Portable loops run through a copy compiled for the CPU's vector instructions. The crate's
//! baseline target is x86-64 (SSE2): its loops vectorise 4 lanes wide, and a select without
//! SSE4.1's blends turns into branches around scalar stores (perf on MaxPoolGrad's routing in
//! training: 4-lane compares, `pextrw` and a branch per lane). [`run`] calls a closure inside a
//! function with AVX-512 or AVX2 enabled, as [`crate::cpu::simd`] says; the closure itself and
//! what it calls must be `#[inline(always)]` to be compiled there too. (An unmarked closure is
//! inlined or not at the optimiser's whim: an unrelated change in the session crate, where the
//! kernels are instantiated, once left MaxPoolGrad's routing outside, at SSE2 width: 0.23 ->
//! 0.50 s per CNN epoch.) Rust never contracts `a * b + c` into an FMA, so every copy gives the
//! same bits.

/// Runs `f`, compiled with AVX-512 (F, BW, DQ, VL) or AVX2 where the CPU has them: pass
/// `#[inline(always)] || ...`.
#[inline(always)]
pub(crate) fn run<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if crate::gemm_tiled::available() {
        return crate::gemm_tiled::on_simd!(I => f());
    }
    f()
}

/// Whether every value is finite (no ∞, no NaN): where a product skips the zeros of one
/// operand, the other must be (`0·∞` is NaN, which the dense product gives).
pub(crate) fn finite(x: &[f32]) -> bool {
    run(
        #[inline(always)]
        || x.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff)) < 0x7f80_0000,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ∞ or NaN is not finite.
    #[test]
    fn finite_sees_infinities_and_nans() {
        assert!(finite(&[0.0, -1.5, f32::MAX, f32::MIN_POSITIVE]));
        assert!(finite(&[]));
        for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
            let mut x = vec![1.0; 100];
            x[77] = bad;
            assert!(!finite(&x));
        }
    }
}
