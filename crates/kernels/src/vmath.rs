//! `exp`, the logistic sigmoid and `tanh` for f32 written in plain arithmetic (no libm calls, no
//! branches), so the element-wise loops that call them vectorise: libm's `tanhf` and `expf`
//! cost 13 and 5 ns an element here, and an LSTM step spends most of its element-wise time in
//! them. Only `+ - * /`, comparisons and bit casts: the results are the same bits on every
//! machine (Rust never contracts to FMA). Accurate to a few ulp (`tests` below measure it
//! against the f64 functions).

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split so that n·LN2_HI is exact for |n| < 2^9 (Cody and Waite's reduction).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding and subtracting 1.5·2^23 rounds an f32 of magnitude below 2^22 to an integer.
const ROUND: f32 = 12_582_912.0;

/// `2^k` for an integer `k` in [-126, 127].
#[inline(always)]
fn pow2(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

/// e^x: `2^n · e^r` with `n = round(x / ln 2)`, `|r| <= ln 2 / 2` and e^r from its Taylor
/// series to r^7 (truncation below 1e-8 relative). Overflows to infinity above 88.72, flushes
/// to zero below -87.33; NaN stays NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    // Not `clamp`: max/min map to one instruction each and vectorise (NaN is handled below).
    #[allow(clippy::manual_clamp)]
    let xc = x.max(-87.33).min(88.72);
    // n rides in the low mantissa bits of t: integer arithmetic from here, which vectorises.
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    let k = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // 2^k in two factors: k reaches 128, past f32's largest exponent.
    let y = p * pow2(k >> 1) * pow2(k - (k >> 1));
    if x.is_nan() {
        x
    } else if x > 88.72 {
        f32::INFINITY
    } else if x < -87.33 {
        0.0
    } else {
        y
    }
}

/// `1 / (1 + e^-x)`, from `e^-|x|` so nothing overflows.
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    let e = exp_f32(-x.abs());
    let s = 1.0 / (1.0 + e);
    if x >= 0.0 {
        s
    } else {
        e * s
    }
}

/// tanh x: an odd Taylor polynomial below |x| = 0.3 (where `e^2x - 1` would cancel), else
/// `(e^2|x| - 1) / (e^2|x| + 1)` with the sign of x; ±1 from |x| = 9 (already 1 in f32).
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let a = x.abs().min(9.0);
    let a2 = a * a;
    let small = a
        * (1.0
            + a2 * (-1.0 / 3.0
                + a2 * (2.0 / 15.0 + a2 * (-17.0 / 315.0 + a2 * (62.0 / 2835.0 + a2 * (-1382.0 / 155_925.0))))));
    let em = exp_f32(2.0 * a) - 1.0;
    let large = em / (em + 2.0);
    let t = if a < 0.3 { small } else { large };
    if x.is_nan() {
        x
    } else {
        t.copysign(x)
    }
}

/// `f` over a slice in place as four interleaved streams (its quarters): each iteration's
/// vectors are independent chains the CPU overlaps, where one vector an iteration waits on its
/// own chain of ~30 dependent steps (the polynomial, a division).
#[inline(always)]
fn streams<F: Fn(f32) -> f32>(x: &mut [f32], f: F) {
    let q = x.len() / 4;
    let (a, rest) = x.split_at_mut(q);
    let (b, rest) = rest.split_at_mut(q);
    let (c, rest) = rest.split_at_mut(q);
    let (d, tail) = rest.split_at_mut(q);
    for (((a, b), c), d) in a.iter_mut().zip(b.iter_mut()).zip(c.iter_mut()).zip(d.iter_mut()) {
        (*a, *b, *c, *d) = (f(*a), f(*b), f(*c), f(*d));
    }
    tail.iter_mut().for_each(|v| *v = f(*v));
}

/// `f` over a slice in place, compiled for the widest vectors the CPU has (AVX-512, AVX2, or
/// the baseline): the same bits whichever runs (element-wise, no FMA contraction).
#[inline(always)]
fn dispatch<F: Fn(f32) -> f32 + Copy>(x: &mut [f32], f: F) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512<F: Fn(f32) -> f32>(x: &mut [f32], f: F) {
            streams(x, f)
        }
        #[target_feature(enable = "avx2")]
        fn avx2<F: Fn(f32) -> f32>(x: &mut [f32], f: F) {
            streams(x, f)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { avx512(x, f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { avx2(x, f) };
        }
    }
    x.iter_mut().for_each(|v| *v = f(*v));
}

/// [`sigmoid_f32`] over a slice, in place, vectorised for this CPU.
pub fn sigmoid_slice(x: &mut [f32]) {
    dispatch(x, sigmoid_f32)
}

/// [`tanh_f32`] over a slice, in place, vectorised for this CPU.
pub fn tanh_slice(x: &mut [f32]) {
    dispatch(x, tanh_f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest error in units of the last place over a dense sweep of `lo..hi`.
    fn max_ulps(lo: f32, hi: f32, f: fn(f32) -> f32, exact: fn(f64) -> f64) -> f64 {
        let mut worst = 0.0f64;
        let n = 200_000;
        for i in 0..=n {
            let x = lo + (hi - lo) * i as f32 / n as f32;
            let want = exact(x as f64);
            let ulp = (f32::EPSILON as f64) * want.abs().max(f32::MIN_POSITIVE as f64);
            worst = worst.max((f(x) as f64 - want).abs() / ulp);
        }
        worst
    }

    #[test]
    fn within_a_few_ulp_of_the_f64_functions() {
        assert!(max_ulps(-87.0, 88.0, exp_f32, f64::exp) <= 2.0, "exp");
        assert!(max_ulps(-30.0, 30.0, sigmoid_f32, |x| 1.0 / (1.0 + (-x).exp())) <= 3.0, "sigmoid");
        assert!(max_ulps(-10.0, 10.0, tanh_f32, f64::tanh) <= 3.0, "tanh");
        assert!(max_ulps(-0.01, 0.01, tanh_f32, f64::tanh) <= 2.0, "tanh near 0");
    }

    #[test]
    fn edges_as_the_std_functions() {
        assert_eq!((exp_f32(89.0), exp_f32(-90.0), exp_f32(0.0)), (f32::INFINITY, 0.0, 1.0));
        assert_eq!((sigmoid_f32(100.0), sigmoid_f32(-100.0), sigmoid_f32(0.0)), (1.0, 0.0, 0.5));
        assert_eq!(
            (tanh_f32(20.0), tanh_f32(-20.0), tanh_f32(0.0), tanh_f32(-0.0).is_sign_negative()),
            (1.0, -1.0, 0.0, true)
        );
        assert!(exp_f32(f32::NAN).is_nan() && sigmoid_f32(f32::NAN).is_nan() && tanh_f32(f32::NAN).is_nan());
        assert_eq!((exp_f32(f32::INFINITY), exp_f32(f32::NEG_INFINITY)), (f32::INFINITY, 0.0));
    }
}
