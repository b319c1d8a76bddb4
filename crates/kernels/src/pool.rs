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

    pub(crate) fn in_len(&self) -> usize {
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

    /// The winners of output cell (oy, ox), channel by channel: each channel's maximum into
    /// `vals` and the index of its cell in row-major window order into `arg`, the first among
    /// equal maxima (a NaN wins only as the window's first cell: `v > max` never takes one); a
    /// window entirely in the padding gets 0 and [`NO_WINNER`]. The one definition of max-pool
    /// routing (the forward's winners, MaxPoolGrad, MaxPoolGradGrad).
    #[inline(always)] // into `wide::run`'s AVX-512 copy
    fn winners<T: Float>(&self, img: &[T], oy: usize, ox: usize, vals: &mut [T], arg: &mut [i32]) {
        let c = self.channels;
        let (rows, cols) = self.window(oy, ox);
        if rows.is_empty() || cols.is_empty() {
            vals.fill(T::zero());
            arg.fill(NO_WINNER);
            return;
        }
        let cells = rows.flat_map(|y| cols.clone().map(move |x| (y * self.in_w + x) * c));
        for (k, base) in cells.enumerate() {
            let src = &img[base..base + c];
            if k == 0 {
                vals.copy_from_slice(src);
                arg.fill(0);
                continue;
            }
            // Selects rather than branches: they vectorise, and ReLU outputs (ties at zero)
            // make branches unpredictable.
            for ((m, a), &v) in vals.iter_mut().zip(arg.iter_mut()).zip(src) {
                let take = v > *m;
                *m = if take { v } else { *m };
                *a = if take { k as i32 } else { *a };
            }
        }
    }

    /// The offset in the image of cell `k` of output cell (oy, ox)'s window.
    fn cell(&self, oy: usize, ox: usize, k: usize) -> usize {
        let (rows, cols) = self.window(oy, ox);
        ((rows.start + k / cols.len()) * self.in_w + cols.start + k % cols.len()) * self.channels
    }

    /// The maximum of each channel of output cell (oy, ox) into `out` (the value
    /// [`winners`](PoolGeometry::winners) picks, without tracking where it is).
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
    let images = x.par_chunks(g.in_len().max(1));
    let scratch = || vec![T::zero(); g.channels];
    route_images(images, dy, g, alloc, image_sums, scratch, |img, oy, ox, vals, arg| {
        g.winners(img, oy, ox, vals, arg);
        if relu_of_x {
            // A window that may not route gets a winner index no cell has.
            let mask = |(a, &m): (&mut i32, &T)| *a = if m > T::zero() { *a } else { NO_WINNER };
            arg.iter_mut().zip(vals.iter()).for_each(mask);
        }
    })
}

/// [`max_pool_grad_with`] from the forward pass's winners instead of its input: `winners` as
/// [`max_pool_winners`] left them (`[n, out_h, out_w, c]`), so the pooled input need not be
/// kept or read again. The same result, bit for bit; with `relu`, masked by the maxima being
/// > 0 (the winners say which are).
///
/// ```
/// use tensorgraph_kernels::pool::{max_pool_grad_from_winners, max_pool_grad_with, max_pool_winners, PoolGeometry};
/// let x = [0.0f32, 3.0, 2.0, 3.0, 0.0, 0.0, 0.0, 0.0];
/// let g = PoolGeometry::new([1, 2, 4, 1], [2, 2], [2, 2], false);
/// let (pooled, winners) = max_pool_winners(&x, &g);
/// // Cells 1 and 1 of their windows, both maxima > 0.
/// assert_eq!((pooled.as_slice(), winners.as_slice()), ([3.0, 3.0].as_slice(), [1, 1].as_slice()));
/// let dy = [10.0f32, 20.0];
/// let dx = max_pool_grad_from_winners(&winners, &dy, &g, |n| vec![0.0; n], true, None);
/// assert_eq!(dx, [0.0, 10.0, 0.0, 20.0, 0.0, 0.0, 0.0, 0.0]);
/// assert_eq!(dx, max_pool_grad_with(&x, &dy, &g, |n| vec![0.0; n], true, None));
/// ```
///
/// # Panics
/// If `image_sums` does not hold `batch × channels` values.
pub fn max_pool_grad_from_winners<T: Float>(
    winners: &[i32],
    dy: &[T],
    g: &PoolGeometry,
    alloc: impl FnOnce(usize) -> Vec<T>,
    relu: bool,
    image_sums: Option<&mut [T]>,
) -> Vec<T> {
    let images = winners.par_chunks(g.out_len().max(1));
    route_images(images, dy, g, alloc, image_sums, Vec::new, |win, oy, ox, _, arg| decode(win, g, relu, oy, ox, arg))
}

/// Window (oy, ox)'s winners in `arg` from one image's stored `win` (see [`max_pool_winners`]).
#[inline(always)]
fn decode(win: &[i32], g: &PoolGeometry, relu: bool, oy: usize, ox: usize, arg: &mut [i32]) {
    let win = &win[(oy * g.out_w + ox) * g.channels..][..g.channels];
    for (a, &w) in arg.iter_mut().zip(win) {
        *a = match w {
            0.. => w,
            _ if relu || w == EMPTY => NO_WINNER,
            _ => !w,
        };
    }
}

/// One image of [`max_pool_grad_from_winners`]: its `winners` and `dy` (`out_len` each) routed
/// into `d` (`in_len`, contents unspecified), summed into `sums` (`channels`, or empty: not
/// asked for); `arg` is scratch of `channels`.
pub(crate) fn route_image_from_winners<T: Float>(
    winners: &[i32],
    dy: &[T],
    g: &PoolGeometry,
    relu: bool,
    d: &mut [T],
    sums: &mut [T],
    arg: &mut [i32],
) {
    route_image(g, dy, d, sums, &mut [], arg, |oy, ox, _, arg| decode(winners, g, relu, oy, ox, arg))
}

/// Max pooling that also says where each maximum is: `(pooled, winners)`, what
/// [`max_pool_grad_from_winners`] takes. A winner is its channel's cell `k` in its window
/// (row-major window order, the first among equal maxima), stored as `k` when the maximum is
/// > 0 and as `!k` (negative) when not, so a ReLU's gradient needs nothing else.
pub fn max_pool_winners<T: Float>(x: &[T], g: &PoolGeometry) -> (Vec<T>, Vec<i32>) {
    let (mut out, mut winners) = (vec![T::zero(); g.batch * g.out_len()], vec![0; g.batch * g.out_len()]);
    if g.in_len() > 0 && g.out_len() > 0 {
        let images = out.par_chunks_mut(g.out_len()).zip(winners.par_chunks_mut(g.out_len()));
        images.zip(x.par_chunks(g.in_len())).for_each(|((o, w), img)| max_pool_image_winners(img, g, o, w));
    }
    (out, winners)
}

/// One image of [`max_pool_winners`]: `img` (`in_len`) pooled into `out` and `winners`
/// (`out_len` each).
pub(crate) fn max_pool_image_winners<T: Float>(img: &[T], g: &PoolGeometry, out: &mut [T], winners: &mut [i32]) {
    crate::wide::run(
        #[inline(always)]
        || {
            let cells = out.chunks_mut(g.channels).zip(winners.chunks_mut(g.channels)).enumerate();
            for (cell, (vals, arg)) in cells {
                g.winners(img, cell / g.out_w, cell % g.out_w, vals, arg);
                for (a, &m) in arg.iter_mut().zip(vals.iter()) {
                    *a = if *a == NO_WINNER {
                        EMPTY
                    } else if m > T::zero() {
                        *a
                    } else {
                        !*a
                    };
                }
            }
        },
    )
}

/// Each image's gradient routed to its windows' winners, which `winners(image, oy, ox, vals,
/// arg)` puts in `arg` (see [`PoolGeometry::winners`], [`NO_WINNER`] where nothing routes),
/// `vals` its scratch of `scratch()`.
fn route_images<T: Float, I: Sync + Send>(
    images: impl IndexedParallelIterator<Item = I>,
    dy: &[T],
    g: &PoolGeometry,
    alloc: impl FnOnce(usize) -> Vec<T>,
    image_sums: Option<&mut [T]>,
    scratch: impl Fn() -> Vec<T> + Sync + Send,
    winners: impl Fn(&I, usize, usize, &mut [T], &mut [i32]) + Sync,
) -> Vec<T> {
    let mut dx = alloc(g.batch * g.in_len());
    if g.in_len() == 0 || g.out_len() == 0 {
        dx.fill(T::zero());
        image_sums.into_iter().for_each(|s| s.fill(T::zero()));
        return dx;
    }
    let mut sums = crate::conv::PerImage::new(image_sums, g.channels, 1, g.batch);
    let scratch = || (scratch(), vec![0i32; g.channels]);
    let parts = dx.par_chunks_mut(g.in_len()).zip(images).zip(dy.par_chunks(g.out_len()));
    parts.zip(sums.chunks()).for_each_init(scratch, |(vals, arg), (((d, image), gy), part)| {
        route_image(g, gy, d, part, vals, arg, |oy, ox, vals, arg| winners(&image, oy, ox, vals, arg))
    });
    dx
}

/// One image of [`route_images`]: `gy` routed into `d` (contents unspecified) and summed into
/// `part` (or empty).
#[inline(always)]
fn route_image<T: Float>(
    g: &PoolGeometry,
    gy: &[T],
    d: &mut [T],
    part: &mut [T],
    vals: &mut [T],
    arg: &mut [i32],
    winners: impl Fn(usize, usize, &mut [T], &mut [i32]),
) {
    // Windows that tile the input without overlapping (the CNN's 2x2 at stride 2) each write
    // their cells once: no zero fill and no read-modify-write of dx (a third of the op's
    // memory traffic); the cells past the last window are zeroed.
    let tiled = g.stride_h == g.k_h && g.stride_w == g.k_w;
    if tiled {
        zero_uncovered(g, d);
    } else {
        d.fill(T::zero()); // accumulated below; zeroed by the thread that fills it
    }
    crate::wide::run(
        #[inline(always)]
        || {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    winners(oy, ox, vals, arg);
                    route(g, oy, ox, arg, &gy[(oy * g.out_w + ox) * g.channels..][..g.channels], d, tiled);
                }
            }
        },
    );
    if !part.is_empty() {
        part.fill(T::zero());
        crate::reduce::column_sums(d, part);
    }
}

/// A stored winner of a window entirely in the padding (see [`max_pool_winners`]).
const EMPTY: i32 = i32::MIN;

/// A winner index no window cell has: the window routes nothing (all padding, or masked).
const NO_WINNER: i32 = -1;

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

/// Adds output cell (oy, ox)'s gradients `s` to its window's cells, each channel to its winner
/// `arg` (see [`PoolGeometry::winners`]): every window cell takes a masked add over its
/// contiguous channels, so there are no branches or scattered writes and it vectorises. With
/// `overwrite` (windows that do not overlap), each cell is written as `0 + gradient` instead of
/// added to (the same bits as adding to a zeroed cell, -0.0 included).
#[inline(always)] // into `wide::run`'s AVX-512 copy
fn route<T: Float>(g: &PoolGeometry, oy: usize, ox: usize, arg: &[i32], s: &[T], d: &mut [T], overwrite: bool) {
    let c = g.channels;
    let (rows, cols) = g.window(oy, ox);
    let cells = rows.flat_map(|y| cols.clone().map(move |x| (y * g.in_w + x) * c));
    for (k, base) in cells.enumerate() {
        for ((dst, &a), &sv) in d[base..base + c].iter_mut().zip(arg).zip(s) {
            *dst = if overwrite { T::zero() } else { *dst } + if a == k as i32 { sv } else { T::zero() };
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
    let images = out.par_chunks_mut(g.out_len()).zip(x.par_chunks(g.in_len())).zip(ddx.par_chunks(g.in_len()));
    images.for_each(|((o, img), dd)| {
        let (mut vals, mut arg) = (vec![T::zero(); g.channels], vec![0; g.channels]);
        for (cell, dst) in o.chunks_mut(g.channels).enumerate() {
            let (oy, ox) = (cell / g.out_w, cell % g.out_w);
            g.winners(img, oy, ox, &mut vals, &mut arg);
            for (ch, (d, &k)) in dst.iter_mut().zip(&arg).enumerate() {
                *d = if k == NO_WINNER { T::zero() } else { dd[g.cell(oy, ox, k as usize) + ch] };
            }
        }
    });
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

    /// The forward's winners route as the input does, bit for bit, with and without the ReLU
    /// mask and the sums, for every geometry kind, with ties (ReLU zeros), NaN as a window's
    /// first cell and later, and -0.0 against 0.0; the pooled values are [`max_pool`]'s.
    #[test]
    fn gradients_from_winners_are_the_gradients_from_the_input() {
        let x: Vec<f32> = (0..2 * 7 * 6 * 3)
            .map(|i| match i % 13 {
                0 => f32::NAN,
                5 => -0.0,
                _ => (((i * 7) % 11) as f32 - 6.0).max(0.0),
            })
            .collect();
        for (k, stride, same) in
            [(2, 2, false), (2, 2, true), (3, 3, false), (2, 1, true), (3, 2, false), (2, 3, false)]
        {
            let g = PoolGeometry::new([2, 7, 6, 3], [k, k], [stride, stride], same);
            let (pooled, winners) = max_pool_winners(&x, &g);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&pooled), bits(&max_pool(&x, &g)));
            let dy: Vec<f32> = (0..g.batch * g.out_len()).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
            for relu in [false, true] {
                let (mut s1, mut s2) = (vec![f32::NAN; 6], vec![f32::NAN; 6]);
                let want = max_pool_grad_with(&x, &dy, &g, |n| vec![f32::NAN; n], relu, Some(&mut s1));
                let got = max_pool_grad_from_winners(&winners, &dy, &g, |n| vec![f32::NAN; n], relu, Some(&mut s2));
                assert_eq!(bits(&got), bits(&want), "window {k}, stride {stride}, same {same}, relu {relu}");
                assert_eq!(bits(&s1), bits(&s2));
            }
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
