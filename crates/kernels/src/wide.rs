//! Portable loops run through a copy compiled for AVX-512. The crate's baseline target is
//! x86-64 (SSE2): its loops vectorise 4 lanes wide, and a select without SSE4.1's blends turns
//! into branches around scalar stores (perf on MaxPoolGrad's routing in training: 4-lane
//! compares, `pextrw` and a branch per lane). [`run`] calls a closure inside a function with
//! AVX-512 enabled when the CPU has it; the closure itself and what it calls must be
//! `#[inline(always)]` to be compiled there too. (An unmarked closure is inlined or not at the
//! optimiser's whim: an unrelated change in the session crate, where the kernels are
//! instantiated, once left MaxPoolGrad's routing outside, at SSE2 width: 0.23 -> 0.50 s per
//! CNN epoch.)

/// Runs `f`, compiled with AVX-512 (F, BW, DQ, VL) where the CPU has them: pass
/// `#[inline(always)] || ...`.
#[inline(always)]
pub(crate) fn run<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the features `with_avx512` enables were detected just now.
        return unsafe { with_avx512(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    use std::arch::is_x86_feature_detected as has;
    has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}
