//! Max and average pooling over NHWC images, and their gradients. Padding cells never win a
//! max and are not counted in an average, as in TF.

use crate::{zeros, Float};
use rayon::prelude::*;

/// Every size a pooling op needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub channels: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl PoolGeometry {
    /// Geometry of input `[n,h,w,c]`, window `[kh,kw]`, strides and padding.
    pub fn new(input: [usize; 4], window: [usize; 2], strides: [usize; 2], same: bool) -> PoolGeometry {
        let (out_h, pad_top) = crate::conv::output_and_padding(input[1], window[0], strides[0], 1, same);
        let (out_w, pad_left) = crate::conv::output_and_padding(input[2], window[1], strides[1], 1, same);
        PoolGeometry {
            batch: input[0],
            in_h: input[1],
            in_w: input[2],
            channels: input[3],
            k_h: window[0],
            k_w: window[1],
            stride_h: strides[0],
            stride_w: strides[1],
            pad_top,
            pad_left,
            out_h,
            out_w,
        }
    }

    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.out_h, self.out_w, self.channels]
    }

    fn in_len(&self) -> usize {
        self.in_h * self.in_w * self.channels
    }

    pub(crate) fn out_len(&self) -> usize {
        self.out_h * self.out_w * self.channels
    }

    /// The valid input rows and columns of output cell (oy, ox).
    fn window(&self, oy: usize, ox: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let span = |o: usize, s: usize, pad: usize, k: usize, size: usize| {
            let start = (o * s) as isize - pad as isize;
            let lo = start.max(0) as usize;
            let hi = ((start + k as isize).max(0) as usize).min(size);
            lo..hi.max(lo)
        };
        (
            span(oy, self.stride_h, self.pad_top, self.k_h, self.in_h),
            span(ox, self.stride_w, self.pad_left, self.k_w, self.in_w),
        )
    }

    /// Flat index (within one image) of the maximum of each channel of output cell (oy, ox):
    /// the first in row-major window order among equal maxima. `vals` (scratch, one per
    /// channel) tracks the maxima so the comparisons read contiguous memory.
    fn argmax<T: Float>(&self, img: &[T], oy: usize, ox: usize, best: &mut [usize], vals: &mut [T]) {
        let c = self.channels;
        let (rows, cols) = self.window(oy, ox);
        let mut first = true;
        for y in rows {
            for x in cols.clone() {
                let base = (y * self.in_w + x) * c;
                let src = &img[base..base + c];
                if first {
                    vals.copy_from_slice(src);
                    best.iter_mut().enumerate().for_each(|(ch, b)| *b = base + ch);
                    first = false;
                    continue;
                }
                // Selects rather than branches: they vectorise, and ReLU outputs (ties at zero)
                // make branches unpredictable.
                for (ch, ((b, m), &v)) in best.iter_mut().zip(vals.iter_mut()).zip(src).enumerate() {
                    let take = v > *m;
                    *m = if take { v } else { *m };
                    *b = if take { base + ch } else { *b };
                }
            }
        }
    }

    /// The maximum of each channel of output cell (oy, ox) into `out` (the value [`argmax`]
    /// picks, without tracking where it is).
    ///
    /// [`argmax`]: PoolGeometry::argmax
    #[inline(always)] // into `wide::run`'s AVX-512 copy
    fn max_into<T: Float>(&self, img: &[T], oy: usize, ox: usize, out: &mut [T]) {
        let c = self.channels;
        let (rows, cols) = self.window(oy, ox);
        let mut first = true;
        for y in rows {
            for x in cols.clone() {
                let src = &img[(y * self.in_w + x) * c..][..c];
                if first {
                    out.copy_from_slice(src);
                    first = false;
                } else {
                    out.iter_mut().zip(src).for_each(|(m, &v)| *m = if v > *m { v } else { *m });
                }
            }
        }
        if first {
            out.fill(T::zero()); // a window entirely in the padding
        }
    }
}

/// Calls `f(cell, best)` for every output cell of one image: `cell` is the cell's offset in the
/// output, `best` each channel's winning input index (the one definition of max-pool routing).
fn each_window_max<T: Float>(g: &PoolGeometry, img: &[T], mut f: impl FnMut(usize, &[usize])) {
    let mut best = vec![0usize; g.channels];
    let mut vals = vec![T::zero(); g.channels];
    for oy in 0..g.out_h {
        for ox in 0..g.out_w {
            g.argmax(img, oy, ox, &mut best, &mut vals);
            f((oy * g.out_w + ox) * g.channels, &best);
        }
    }
}

/// Per image: `f(image_in, image_out)` in parallel over the batch.
fn per_image<T: Float>(input: &[T], in_len: usize, out: &mut [T], out_len: usize, f: impl Fn(&[T], &mut [T]) + Sync) {
    if in_len == 0 || out_len == 0 {
        return;
    }
    out.par_chunks_mut(out_len).zip(input.par_chunks(in_len)).for_each(|(o, i)| f(i, o));
}

/// Max pooling; returns `[n, out_h, out_w, c]`.
///
/// The pooling slide: the 4x4 grid pooled 2x2 with stride 2 gives `[[8,5],[7,9]]`.
/// ```
/// use tensorgraph_kernels::pool::{max_pool, PoolGeometry};
/// let grid = [1.0f32, 3.0, 2.0, 1.0,
///             4.0, 8.0, 5.0, 3.0,
///             7.0, 2.0, 9.0, 6.0,
///             1.0, 3.0, 4.0, 2.0];
/// let g = PoolGeometry::new([1, 4, 4, 1], [2, 2], [2, 2], false);
/// assert_eq!(max_pool(&grid, &g), [8.0, 5.0, 7.0, 9.0]);
/// ```
pub fn max_pool<T: Float>(x: &[T], g: &PoolGeometry) -> Vec<T> {
    max_pool_with(x, g, zeros)
}

/// [`max_pool`] into a buffer from `alloc(len)` (contents unspecified, all overwritten).
pub fn max_pool_with<T: Float>(x: &[T], g: &PoolGeometry, alloc: impl FnOnce(usize) -> Vec<T>) -> Vec<T> {
    let mut out = alloc(g.batch * g.out_len());
    per_image(x, g.in_len(), &mut out, g.out_len(), |img, o| max_pool_image(img, g, o));
    out
}

/// One image of [`max_pool_with`]: `img` (`in_len`) pooled into `out` (`out_len`).
pub(crate) fn max_pool_image<T: Float>(img: &[T], g: &PoolGeometry, out: &mut [T]) {
    crate::wide::run(
        #[inline(always)]
        || {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    g.max_into(img, oy, ox, &mut out[(oy * g.out_w + ox) * g.channels..][..g.channels]);
                }
            }
        },
    )
}

/// Routes each output gradient to the input cell that won the max; returns `[n, h, w, c]`.
pub fn max_pool_grad<T: Float>(x: &[T], dy: &[T], g: &PoolGeometry) -> Vec<T> {
    max_pool_grad_with(x, dy, g, zeros, false, None)
}

/// [`max_pool_grad`] into a buffer from `alloc(len)` (contents unspecified). With
/// `relu_of_x`, the result is also TF's `ReluGrad` by `x` (the pooled input is a ReLU's output):
/// a window's gradient reaches its winning cell only when the maximum is > 0. With
/// `image_sums` (`[batch, channels]`), each image's `dx` summed over its rows and columns
/// while in cache (a bias gradient's partial sums, see [`crate::reduce::image_sums`]).
///
/// # Panics
/// If `image_sums` does not hold `batch × channels` values.
pub fn max_pool_grad_with<T: Float>(
    x: &[T],
    dy: &[T],
    g: &PoolGeometry,
    alloc: impl FnOnce(usize) -> Vec<T>,
    relu_of_x: bool,
    image_sums: Option<&mut [T]>,
) -> Vec<T> {
    let mut dx = alloc(g.batch * g.in_len());
    if g.in_len() == 0 || g.out_len() == 0 {
        dx.fill(T::zero());
        image_sums.into_iter().for_each(|s| s.fill(T::zero()));
        return dx;
    }
    let mut sums = crate::conv::PerImage::new(image_sums, g.channels, 1, g.batch);
    // Windows that tile the input without overlapping (the CNN's 2x2 at stride 2) each write
    // their cells once: no zero fill and no read-modify-write of dx (a third of the op's
    // memory traffic); the cells past the last window are zeroed.
    let tiled = g.stride_h == g.k_h && g.stride_w == g.k_w;
    let scratch = || (vec![T::zero(); g.channels], vec![0u32; g.channels]);
    let images = dx.par_chunks_mut(g.in_len()).zip(x.par_chunks(g.in_len())).zip(dy.par_chunks(g.out_len()));
    images.zip(sums.chunks()).for_each_init(scratch, |(vals, arg), (((d, img), gy), part)| {
        if tiled {
            zero_uncovered(g, d);
        } else {
            d.fill(T::zero()); // accumulated below; zeroed by the thread that fills it
        }
        crate::wide::run(
            #[inline(always)]
            || route_to_max(g, img, gy, d, vals, arg, relu_of_x, tiled),
        );
        if !part.is_empty() {
            part.fill(T::zero());
            crate::reduce::column_sums(d, part);
        }
    });
    dx
}

/// Zeroes one image's cells that no window covers, for windows as large as their stride: the
/// rows below the last window and the columns right of it (the first window starts at or
/// before the first row and column).
fn zero_uncovered<T: Float>(g: &PoolGeometry, d: &mut [T]) {
    let end = |out: usize, k: usize, pad: usize, size: usize| (out * k).saturating_sub(pad).min(size);
    let (rows, cols, c) = (end(g.out_h, g.k_h, g.pad_top, g.in_h), end(g.out_w, g.k_w, g.pad_left, g.in_w), g.channels);
    let row_len = g.in_w * c;
    d[rows * row_len..].fill(T::zero());
    for row in d[..rows * row_len].chunks_mut(row_len) {
        row[cols * c..].fill(T::zero());
    }
}

/// Adds each output gradient of one image to the first cell (in window order) holding its
/// window's maximum, channel by channel: the winner of each channel is kept as its position in
/// the window, and every window cell then takes a masked add over its contiguous channels.
/// No branches or scattered writes, so it vectorises (the same routing as [`PoolGeometry::argmax`]).
/// With `positive_only`, windows whose maximum is not > 0 route nothing (ReLU's gradient).
/// With `overwrite` (windows that do not overlap), each cell is written as `0 + gradient`
/// instead of added to (the same bits as adding to a zeroed cell, -0.0 included).
#[allow(clippy::too_many_arguments)]
#[inline(always)] // into `wide::run`'s AVX-512 copy
fn route_to_max<T: Float>(
    g: &PoolGeometry,
    img: &[T],
    gy: &[T],
    d: &mut [T],
    vals: &mut [T],
    arg: &mut [u32],
    positive_only: bool,
    overwrite: bool,
) {
    let c = g.channels;
    for oy in 0..g.out_h {
        for ox in 0..g.out_w {
            let (rows, cols) = g.window(oy, ox);
            let cells = || rows.clone().flat_map(|y| cols.clone().map(move |x| (y * g.in_w + x) * c)).enumerate();
            for (k, base) in cells() {
                let src = &img[base..base + c];
                if k == 0 {
                    vals.copy_from_slice(src);
                    arg.fill(0);
                    continue;
                }
                for ((m, a), &v) in vals.iter_mut().zip(arg.iter_mut()).zip(src) {
                    let take = v > *m;
                    *m = if take { v } else { *m };
                    *a = if take { k as u32 } else { *a };
                }
            }
            if positive_only {
                // A window that may not route gets a winner index no cell has.
                let none = u32::MAX;
                arg.iter_mut().zip(vals.iter()).for_each(|(a, &m)| *a = if m > T::zero() { *a } else { none });
            }
            let s = &gy[(oy * g.out_w + ox) * c..][..c];
            for (k, base) in cells() {
                for ((dst, &a), &sv) in d[base..base + c].iter_mut().zip(arg.iter()).zip(s) {
                    *dst = if overwrite { T::zero() } else { *dst } + if a == k as u32 { sv } else { T::zero() };
                }
            }
        }
    }
}

/// The gradient of [`max_pool_grad`] with respect to its `dy`: picks `ddx` at each window's
/// winning cell; returns `[n, out_h, out_w, c]` (TF's `MaxPoolGradGrad`).
pub fn max_pool_grad_grad<T: Float>(x: &[T], ddx: &[T], g: &PoolGeometry) -> Vec<T> {
    let mut out = vec![T::zero(); g.batch * g.out_len()];
    if g.in_len() == 0 || g.out_len() == 0 {
        return out;
    }
    out.par_chunks_mut(g.out_len()).zip(x.par_chunks(g.in_len())).zip(ddx.par_chunks(g.in_len())).for_each(
        |((o, img), dd)| {
            each_window_max(g, img, |cell, best| {
                o[cell..][..g.channels].iter_mut().zip(best).for_each(|(d, &b)| *d = dd[b]);
            })
        },
    );
    out
}

/// Average pooling over the valid cells of each window; returns `[n, out_h, out_w, c]`.
pub fn avg_pool<T: Float>(x: &[T], g: &PoolGeometry) -> Vec<T> {
    let mut out = vec![T::zero(); g.batch * g.out_len()];
    per_image(x, g.in_len(), &mut out, g.out_len(), |img, o| {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let (rows, cols) = g.window(oy, ox);
                let count = T::of((rows.len() * cols.len()).max(1) as f64);
                let dst = &mut o[(oy * g.out_w + ox) * g.channels..][..g.channels];
                for y in rows {
                    for x in cols.clone() {
                        let src = &img[(y * g.in_w + x) * g.channels..][..g.channels];
                        dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
                    }
                }
                dst.iter_mut().for_each(|d| *d = *d / count);
            }
        }
    });
    out
}

/// Spreads each output gradient evenly over its window's valid cells; returns `[n, h, w, c]`.
pub fn avg_pool_grad<T: Float>(dy: &[T], g: &PoolGeometry) -> Vec<T> {
    let mut dx = vec![T::zero(); g.batch * g.in_len()];
    if g.in_len() == 0 || g.out_len() == 0 {
        return dx;
    }
    dx.par_chunks_mut(g.in_len()).zip(dy.par_chunks(g.out_len())).for_each(|(d, gy)| {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let (rows, cols) = g.window(oy, ox);
                let count = T::of((rows.len() * cols.len()).max(1) as f64);
                let src = &gy[(oy * g.out_w + ox) * g.channels..][..g.channels];
                for y in rows {
                    for x in cols.clone() {
                        let dst = &mut d[(y * g.in_w + x) * g.channels..][..g.channels];
                        dst.iter_mut().zip(src).for_each(|(dd, &s)| *dd += s / count);
                    }
                }
            }
        }
    });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each window's gradient added to its first maximal cell, by definition.
    fn routed_by_definition(x: &[f32], dy: &[f32], g: &PoolGeometry) -> Vec<f32> {
        let mut dx = vec![0.0; x.len()];
        for b in 0..g.batch {
            for (oy, ox, ch) in
                (0..g.out_h).flat_map(|oy| (0..g.out_w).flat_map(move |ox| (0..g.channels).map(move |c| (oy, ox, c))))
            {
                let (rows, cols) = g.window(oy, ox);
                let cells =
                    rows.flat_map(|y| cols.clone().map(move |x| b * g.in_len() + (y * g.in_w + x) * g.channels + ch));
                let best = cells.fold(None, |best: Option<usize>, i| match best {
                    Some(j) if x[j] >= x[i] => Some(j),
                    _ => Some(i),
                });
                if let Some(i) = best {
                    dx[i] += dy[b * g.out_len() + (oy * g.out_w + ox) * g.channels + ch];
                }
            }
        }
        dx
    }

    /// Every geometry kind (windows overlapping, tiling the input, with gaps, cells past the
    /// last window) routes as the definition does, into a recycled buffer; a gradient of -0.0
    /// arrives as +0.0, as when added to a zeroed cell.
    #[test]
    fn gradients_route_to_the_first_maximum() {
        let x: Vec<f32> = (0..2 * 7 * 6 * 3).map(|i| ((i * 7) % 11) as f32 - 6.0).collect();
        for (k, stride, same) in
            [(2, 2, false), (2, 2, true), (3, 3, false), (2, 1, true), (3, 2, false), (2, 3, false)]
        {
            let g = PoolGeometry::new([2, 7, 6, 3], [k, k], [stride, stride], same);
            let dy: Vec<f32> = (0..g.batch * g.out_len()).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
            let got = max_pool_grad_with(&x, &dy, &g, |n| vec![f32::NAN; n], false, None);
            assert_eq!(got, routed_by_definition(&x, &dy, &g), "window {k}, stride {stride}, same {same}");
            let negative_zero = max_pool_grad_with(&x, &vec![-0.0; dy.len()], &g, |n| vec![f32::NAN; n], false, None);
            assert!(negative_zero.iter().all(|v| v.to_bits() == 0), "window {k}, stride {stride}, same {same}");
        }
    }

    /// The ReLU-masked gradient equals TF's `ReluGrad(MaxPoolGrad(x, dy), x)`, with windows
    /// that are all zero (a ReLU's output), mixed, and overlapping (stride 1), and NaN in the
    /// recycled buffer.
    #[test]
    fn relu_masked_gradient_is_relu_grad_of_the_plain_one() {
        let x: Vec<f32> = (0..2 * 5 * 6 * 3).map(|i| (((i * 7) % 11) as f32 - 6.0).max(0.0)).collect();
        for (stride, same) in [(2, false), (2, true), (1, true)] {
            let g = PoolGeometry::new([2, 5, 6, 3], [2, 2], [stride, stride], same);
            let dy: Vec<f32> = (0..g.batch * g.out_len()).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
            let plain = max_pool_grad(&x, &dy, &g);
            let want: Vec<f32> = plain.iter().zip(&x).map(|(&d, &f)| if f > 0.0 { d } else { 0.0 }).collect();
            let got = max_pool_grad_with(&x, &dy, &g, |n| vec![f32::NAN; n], true, None);
            assert_eq!(got, want, "stride {stride}, same {same}");
            assert!(plain.iter().zip(&want).any(|(p, w)| p != w), "some routed gradient is masked");
        }
    }

    /// Asked for, each image's channel sums of the (masked) gradient come with it, the
    /// gradient unchanged (integers: the sums are exact in any order).
    #[test]
    fn image_sums_are_each_images_channel_sums() {
        let x: Vec<f32> = (0..3 * 5 * 6 * 3).map(|i| (((i * 7) % 11) as f32 - 6.0).max(0.0)).collect();
        for (stride, same, relu) in [(2, false, true), (2, true, false), (1, true, true)] {
            let g = PoolGeometry::new([3, 5, 6, 3], [2, 2], [stride, stride], same);
            let dy: Vec<f32> = (0..g.batch * g.out_len()).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
            let mut sums = vec![f32::NAN; 3 * 3];
            let got = max_pool_grad_with(&x, &dy, &g, |n| vec![f32::NAN; n], relu, Some(&mut sums));
            assert_eq!(got, max_pool_grad_with(&x, &dy, &g, zeros, relu, None));
            let want: Vec<f32> =
                (0..9).map(|i| got[i / 3 * g.in_len()..][..g.in_len()].iter().skip(i % 3).step_by(3).sum()).collect();
            assert_eq!(sums, want, "stride {stride}, same {same}, relu {relu}");
            assert!(want.iter().any(|&s| s != 0.0));
        }
    }
}
