//! Output positions whose window reads only zeros, left out of a forward convolution's product.
//!
//! Behind a ReLU much of an image can be zeros in every channel: over MNIST's black background,
//! the slides' CNN with TF's initial weights (biases zero) has 69% of conv1's outputs zero in
//! all 32 channels, and 57% of conv2's windows read nothing else. Such a position's row of the
//! product is a chain of zero terms, +0 exactly, as the dense kernels leave it (`0·w + s = s`)
//! when the filter is finite (`0·∞` is NaN, so the caller checks); the product runs over the
//! other positions alone and the skipped rows are set to +0: the same bits as the whole
//! product, the bias and activation applied after as before. A trained network keeps the
//! saving only where its biases leave the background at zero; the scan that finds out reads
//! each input once (a few percent of the product's time when nothing can be skipped).
//!
//! Only the products (filters of more than [`crate::small_conv::MAX_TAPS`] taps) skip: conv1's
//! register kernels took as long with their dead tiles skipped (6.7 µs an MNIST image), bound
//! by writing their output.

use super::Conv2dGeometry;
use crate::Float;

/// Skipping pays only when at least `1 / LEAST_SKIPPED` of a chunk's positions go: below it,
/// spreading the computed rows back costs about what the skipped ones save.
const LEAST_SKIPPED: usize = 8;

/// Whether every element of the filter is finite, the condition for skipping (see the module).
pub(super) fn finite<T: Float>(w: &[T]) -> bool {
    crate::wide::run(
        #[inline(always)]
        || w.iter().fold(true, |all, v| all & v.is_finite()),
    )
}

/// The rows of the product over the `nb` images from `x` (rows `b·positions + position`, in
/// order) whose window reads a nonzero input (NaN included), into the front of `rows` (`nb`
/// times the positions long). Returns how many, or `None` when fewer than
/// `1 / LEAST_SKIPPED` of the rows (or of the first image's) could be left out.
pub(super) fn live_rows<T: Float>(x: &[T], g: &Conv2dGeometry, nb: usize, rows: &mut [usize]) -> Option<usize> {
    thread_local! {
        static POSITIONS: std::cell::RefCell<Vec<bool>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let (p, total) = (g.positions(), nb * g.positions());
    if g.image_len() == 0 {
        return None; // (no input channels: every window reads nothing but the padding)
    }
    let mut count = 0;
    crate::scratch(&POSITIONS, p, |live| -> Option<usize> {
        for (b, img) in x.chunks_exact(g.image_len()).take(nb).enumerate() {
            let n = live_positions(img, g, live);
            if b == 0 && !worth(n, p) {
                // The first image says the others are alike (a trained network's conv2 in
                // training: every window live): the rest are not scanned.
                return None;
            }
            for (q, _) in live.iter().enumerate().filter(|(_, &l)| l) {
                rows[count] = b * p + q;
                count += 1;
            }
        }
        worth(count, total).then_some(count)
    })
}

/// Whether `live` rows of `total` leave out enough (see [`LEAST_SKIPPED`]).
fn worth(live: usize, total: usize) -> bool {
    live * LEAST_SKIPPED <= total * (LEAST_SKIPPED - 1)
}

/// Whether each output position of the image `img` reads a nonzero input (NaN included):
/// `live[oy·out_w + ox]`. Returns how many do.
fn live_positions<T: Float>(img: &[T], g: &Conv2dGeometry, live: &mut [bool]) -> usize {
    thread_local! {
        static PIXELS: std::cell::RefCell<Vec<bool>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    crate::scratch(&PIXELS, g.in_h * g.in_w, |pixels| {
        live_pixels(img, g.in_c, pixels);
        by_bits(pixels, g, live).unwrap_or_else(|| by_taps(pixels, g, live))
    })
}

/// [`live_positions`] from the live pixels (`pixels[y·in_w + x]`), tap by tap.
fn by_taps(pixels: &[bool], g: &Conv2dGeometry, live: &mut [bool]) -> usize {
    let (row, col) = (
        |oy, i| Conv2dGeometry::source(oy, i, g.stride_h, g.dil_h, g.pad_top, g.in_h),
        |ox, j| Conv2dGeometry::source(ox, j, g.stride_w, g.dil_w, g.pad_left, g.in_w),
    );
    let mut count = 0;
    for (q, l) in live.iter_mut().enumerate().take(g.positions()) {
        let (oy, ox) = (q / g.out_w, q % g.out_w);
        *l = (0..g.k_h)
            .filter_map(|i| row(oy, i))
            .any(|y| (0..g.k_w).filter_map(|j| col(ox, j)).any(|x| pixels[y * g.in_w + x]));
        count += usize::from(*l);
    }
    count
}

/// [`by_taps`], each input row as a word of bits, when the window starts of an output row fit
/// one (MNIST's 28 pixels: shifts and ORs instead of loops over the taps, which took more
/// time than conv1's multiply-adds). `None` when they do not.
fn by_bits(pixels: &[bool], g: &Conv2dGeometry, live: &mut [bool]) -> Option<usize> {
    // Bit t of a row's word: whether a window starting at input column t - pad_left (its
    // first tap) reads a live pixel of that row.
    let starts = (g.out_w - 1) * g.stride_w + 1;
    if g.in_w > 64 || starts > 64 || g.in_h > 64 {
        return None;
    }
    let mut across = [0u64; 64];
    for (word, pixels) in across.iter_mut().zip(pixels.chunks_exact(g.in_w)) {
        let bits = pixels.iter().rev().fold(0u64, |m, &l| m << 1 | u64::from(l));
        for j in 0..g.k_w {
            // Tap j of the window starting at t reads column t + j·dil - pad_left.
            let shift = (j * g.dil_w) as isize - g.pad_left as isize;
            *word |= match shift {
                0.. => bits.checked_shr(shift as u32).unwrap_or(0),
                _ => bits.checked_shl(shift.unsigned_abs() as u32).unwrap_or(0),
            };
        }
    }
    let mut count = 0;
    for (oy, live) in live.chunks_exact_mut(g.out_w).enumerate().take(g.out_h) {
        let rows = (0..g.k_h).filter_map(|i| Conv2dGeometry::source(oy, i, g.stride_h, g.dil_h, g.pad_top, g.in_h));
        let word = rows.fold(0, |m, y| m | across[y]);
        for (ox, l) in live.iter_mut().enumerate() {
            *l = word >> (ox * g.stride_w) & 1 != 0;
            count += usize::from(*l);
        }
    }
    Some(count)
}

/// `live[i]`: whether pixel `i` of `img` (`c` channels each) has a channel that is not zero.
fn live_pixels<T: Float>(img: &[T], c: usize, live: &mut [bool]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(f32s) = crate::F32Simd::check::<T>() {
        // SAFETY: T is f32 and the CPU has the set `on_simd` picks (`check`).
        return crate::gemm_tiled::on_simd!(I => unsafe { live_pixels_on::<I>(f32s.cast(img), c, live) });
    }
    for (px, l) in img.chunks_exact(c).zip(live.iter_mut()) {
        *l = px.iter().any(|&v| v != T::zero());
    }
}

/// [`live_pixels`] for f32, a vector compare per `I::LANES` channels.
///
/// # Safety
/// The CPU has `I`; inlined into a function compiled with it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn live_pixels_on<I: crate::gemm_tiled::Isa>(img: &[f32], c: usize, live: &mut [bool]) {
    if c == 1 {
        // One channel (an input image): the pixels side by side.
        let whole = img.len() / I::LANES * I::LANES;
        for (j, l) in live.chunks_exact_mut(I::LANES).take(whole / I::LANES).enumerate() {
            // SAFETY: the vector is inside `img`.
            let m = unsafe { I::nonzero(img.as_ptr().add(j * I::LANES)) };
            l.iter_mut().enumerate().for_each(|(i, l)| *l = m >> i & 1 != 0);
        }
        img[whole..].iter().zip(&mut live[whole..]).for_each(|(&v, l)| *l = v != 0.0);
        return;
    }
    let whole = c / I::LANES * I::LANES;
    for (px, l) in img.chunks_exact(c).zip(live.iter_mut()) {
        // SAFETY: the vectors are inside the pixel's `c` floats.
        let vectors = (0..whole).step_by(I::LANES).fold(0, |m, j| m | unsafe { I::nonzero(px.as_ptr().add(j)) });
        *l = vectors != 0 || px[whole..].iter().any(|&v| v != 0.0);
    }
}

/// Moves the computed rows (the first `rows.len()` rows of `out`, `o` floats each, in the order
/// of `rows`) to the rows `rows` names, and sets every other row of `out` to +0.
pub(super) fn spread<T: Float>(out: &mut [T], rows: &[usize], o: usize) {
    // From the last row back: row i goes to rows[i] >= i, after every row still to move.
    let mut end = out.len() / o;
    for (i, &r) in rows.iter().enumerate().rev() {
        out[(r + 1) * o..end * o].fill(T::zero());
        out.copy_within(i * o..(i + 1) * o, r * o);
        end = r;
    }
    out[..end * o].fill(T::zero());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3x3 stride-2 SAME window over one live pixel: the positions whose windows reach it.
    #[test]
    fn a_pixel_makes_the_windows_over_it_live() {
        let g = Conv2dGeometry::new([2, 6, 6, 2], [3, 3, 2, 1], [2, 2], [1, 1], true);
        let mut x = vec![0.0f32; 2 * 36 * 2];
        x[(2 * 6 + 2) * 2 + 1] = -0.5; // image 0, pixel (2, 2), channel 1
        x[36 * 2 + (5 * 6 + 5) * 2] = f32::NAN; // image 1, pixel (5, 5)
        x[36 * 2 + 7] = -0.0; // a negative zero is a zero
        let mut rows = vec![0; 18];
        let n = live_rows(&x, &g, 2, &mut rows).expect("most windows are zeros");
        // Output (oy, ox) reads rows and columns 2o .. 2o + 2 (SAME pads at the end only).
        assert_eq!(&rows[..n], &[0, 1, 3, 4, 9 + 8]);
        let dense = vec![1.0f32; 2 * 36 * 2];
        assert_eq!(live_rows(&dense, &g, 2, &mut rows), None, "nothing to skip");
        let empty = Conv2dGeometry::new([2, 6, 6, 0], [3, 3, 0, 1], [2, 2], [1, 1], true);
        assert_eq!(live_rows::<f32>(&[], &empty, 2, &mut rows), None, "no channels");
    }

    proptest::proptest! {
        /// Rows as words of bits find the live positions the taps do.
        #[test]
        fn bits_and_taps_agree(
            h in 1usize..40, w in 1usize..70, k in 1usize..5, s in 1usize..4, d in 1usize..3,
            same in proptest::bool::ANY, seed in 0u64..1000, density in 0u64..8,
        ) {
            let g = Conv2dGeometry::new([1, h, w, 1], [k, k, 1, 1], [s, s], [d, d], same);
            proptest::prop_assume!(g.out_h > 0 && g.out_w > 0);
            let pixels: Vec<bool> = (0..h * w)
                .map(|i| (i as u64 ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 61 < density)
                .collect();
            let (mut a, mut b) = (vec![false; g.positions()], vec![true; g.positions()]);
            let n = by_taps(&pixels, &g, &mut a);
            match by_bits(&pixels, &g, &mut b) {
                Some(m) => proptest::prop_assert_eq!((m, b), (n, a)),
                None => proptest::prop_assert!(w > 64 || (g.out_w - 1) * s >= 64),
            }
        }
    }

    #[test]
    fn spread_moves_rows_into_place_and_zeros_the_rest() {
        let mut out: Vec<f32> = (1..=12).map(|v| v as f32).chain([f32::NAN; 6]).collect();
        spread(&mut out, &[1, 2, 5], 3);
        let want = [0., 0., 0., 1., 2., 3., 4., 5., 6., 0., 0., 0., 0., 0., 0., 7., 8., 9.];
        assert_eq!(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.map(f32::to_bits));
    }

    #[test]
    fn only_finite_filters_allow_skipping() {
        assert!(finite(&[0.0f32, -3.0, f32::MAX]));
        assert!(!finite(&[0.0f32, f32::INFINITY]));
        assert!(!finite(&[f64::NAN, 1.0]));
    }
}
