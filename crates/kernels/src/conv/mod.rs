//! 2-D convolution (NHWC input, HWIO filter, as TF) as a GEMM over the column matrix, and its
//! two gradients: col2im for the input, and column-matrix products for the filter.
//!
//! For f32 on AVX-512 or AVX2 the column matrix is never written: the GEMM reads each
//! (position, tap)'s channels where they lie in the image through a table of pointers, and the input gradient
//! (channels in multiples of 16) is one product per stride class of input positions, stored
//! straight onto them. Elsewhere (f64, other CPUs) im2col writes the column matrix into the
//! thread's reused scratch buffer, and col2im adds the input gradient's back.
//!
//! Work is split over chunks of images so both cores stay busy; each chunk's GEMM runs
//! single-threaded inside its rayon task.

use crate::gemm::gemm_into;
#[cfg(target_arch = "x86_64")]
use crate::gemm_tiled::{gemm, Gather, Left, Out, Strided};
use crate::pool::PoolGeometry;
#[cfg(target_arch = "x86_64")]
use crate::F32Simd;
use crate::{small_conv, zeros, Epilogue, Float, Scratch};
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

mod input_grad;
mod live;
#[cfg(target_arch = "x86_64")]
mod sparse;
pub use input_grad::{
    conv2d_backprop_input, conv2d_backprop_input_with, FilterGrad, InputGradWith, LowerFilterGrad, PooledGrad, Upstream,
};

/// TF's output size and leading padding of one spatial dimension: SAME gives `ceil(in/stride)`
/// with the odd cell of padding at the end; VALID gives `ceil((in - k_eff + 1) / stride)`.
///
/// ```
/// use tensorgraph_kernels::conv::output_and_padding;
/// assert_eq!(output_and_padding(28, 3, 2, 1, true), (14, 0)); // total padding 1: all at the end
/// assert_eq!(output_and_padding(5, 3, 2, 1, true), (3, 1));
/// assert_eq!(output_and_padding(14, 2, 2, 1, false), (7, 0));
/// ```
/// Which window sizes, strides and dilations the kernels accept: positive, and a dilated window
/// whose extent (and the input's) stays far from overflowing the index arithmetic.
pub fn check_window(input: usize, k: usize, stride: usize, dilation: usize) -> crate::KResult<()> {
    const LIMIT: usize = isize::MAX as usize / 4;
    if k == 0 || stride == 0 || dilation == 0 {
        crate::kbail!("window {k}, stride {stride} and dilation {dilation} must be positive");
    }
    match (k - 1).checked_mul(dilation) {
        Some(e) if e < LIMIT && input < LIMIT => Ok(()),
        _ => crate::kbail!("window {k} dilated by {dilation} over an input of {input} is too large"),
    }
}

/// The output size and leading padding; the sizes must pass [`check_window`].
pub fn output_and_padding(input: usize, k: usize, stride: usize, dilation: usize, same: bool) -> (usize, usize) {
    let k_eff = (k - 1) * dilation + 1;
    if same {
        let out = input.div_ceil(stride);
        let total = ((out.saturating_sub(1)) * stride + k_eff).saturating_sub(input);
        (out, total / 2)
    } else if input < k_eff {
        (0, 0)
    } else {
        ((input - k_eff) / stride + 1, 0)
    }
}

/// Every size a convolution needs, resolved from shapes and attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub out_c: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub dil_h: usize,
    pub dil_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl Conv2dGeometry {
    /// Geometry of input `[n,h,w,c]` and filter `[kh,kw,c,o]` with strides, dilations and padding.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        input: [usize; 4],
        filter: [usize; 4],
        strides: [usize; 2],
        dilations: [usize; 2],
        same: bool,
    ) -> Conv2dGeometry {
        let (out_h, pad_top) = output_and_padding(input[1], filter[0], strides[0], dilations[0], same);
        let (out_w, pad_left) = output_and_padding(input[2], filter[1], strides[1], dilations[1], same);
        Conv2dGeometry {
            batch: input[0],
            in_h: input[1],
            in_w: input[2],
            in_c: input[3],
            k_h: filter[0],
            k_w: filter[1],
            out_c: filter[3],
            stride_h: strides[0],
            stride_w: strides[1],
            dil_h: dilations[0],
            dil_w: dilations[1],
            pad_top,
            pad_left,
            out_h,
            out_w,
        }
    }

    /// Rows of the column matrix per image (output positions).
    pub fn positions(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Columns of the column matrix (filter taps times input channels).
    pub fn taps(&self) -> usize {
        self.k_h * self.k_w * self.in_c
    }

    pub(crate) fn image_len(&self) -> usize {
        self.in_h * self.in_w * self.in_c
    }

    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.out_h, self.out_w, self.out_c]
    }

    /// Images whose column matrices fit a few MiB (the im2col buffer of one task).
    fn by_memory(&self) -> usize {
        let per_image = (self.positions() * self.taps()).max(1) * std::mem::size_of::<f32>();
        ((2 << 20) / per_image).max(1)
    }

    /// Images per parallel task of the forward pass and the input gradient, whose rows do not
    /// depend on the split: a multiple of `whole` images, at most [`Self::by_memory`] (or
    /// `whole`) and at least half that, at least two tasks per thread, and among those the
    /// size whose busiest thread has the fewest images, so no thread waits long on another
    /// (conv2's 100 images on 2 threads in tasks of 9: 12 tasks, 54 images on one thread; of 5:
    /// 50 each; the forward 5% faster). The largest within 2% of that.
    fn chunk_of(&self, whole: usize) -> usize {
        let threads = rayon::current_num_threads().max(1);
        let most = self.by_memory().min(self.batch.div_ceil(2 * threads)).max(whole) / whole;
        let busiest = |c: usize| (self.batch.div_ceil(c).div_ceil(threads) * c).min(self.batch);
        // (Not below half the most, and the largest within 2% of the best: tasks cost too.)
        let sizes = (most.max(1).div_ceil(2)..=most.max(1)).map(|n| n * whole);
        let best = sizes.clone().map(busiest).min().unwrap_or(self.batch);
        sizes.filter(|&c| busiest(c) * 50 <= best * 51).max().unwrap_or(whole)
    }

    /// Images per partial sum of the filter gradient: the groups fix where the sum over the
    /// batch rounds, so they depend on the geometry alone, never on the thread count (a seed
    /// trains to the same bits on any thread count). Four images, or a multiple of four where
    /// the batch's partial sums would pass 8 MiB, so that chunks of the input gradient of a
    /// multiple of four images hold whole groups (see [`FilterGrad`]); with `im2col` (the
    /// column matrix written), at most [`Self::by_memory`].
    fn filter_group<T>(&self, im2col: bool) -> usize {
        let partial = (self.taps() * self.out_c * std::mem::size_of::<T>()).max(1);
        let groups = ((8 << 20) / partial).max(4);
        let size = self.batch.div_ceil(groups).max(1).next_multiple_of(4);
        if im2col {
            size.min(self.by_memory())
        } else {
            size
        }
    }

    /// Input row/column of tap `t` at output coordinate `o`, or `None` in the padding.
    #[inline]
    fn source(o: usize, t: usize, stride: usize, dil: usize, pad: usize, size: usize) -> Option<usize> {
        (o * stride + t * dil).checked_sub(pad).filter(|&v| v < size)
    }
}

/// Writes the column matrix `[positions, taps]` of one image.
fn im2col<T: Float>(img: &[T], g: &Conv2dGeometry, cols: &mut [T]) {
    let (c, taps) = (g.in_c, g.taps());
    let row_len = g.k_w * c;
    for oy in 0..g.out_h {
        for ox in 0..g.out_w {
            let row = &mut cols[(oy * g.out_w + ox) * taps..][..taps];
            // A filter row inside the image reads k_w·c contiguous inputs (undilated): one copy.
            let x0 = (ox * g.stride_w).checked_sub(g.pad_left).filter(|&x| g.dil_w == 1 && x + g.k_w <= g.in_w);
            for i in 0..g.k_h {
                let iy = Conv2dGeometry::source(oy, i, g.stride_h, g.dil_h, g.pad_top, g.in_h);
                if let (Some(y), Some(x)) = (iy, x0) {
                    row[i * row_len..][..row_len].copy_from_slice(&img[(y * g.in_w + x) * c..][..row_len]);
                    continue;
                }
                for j in 0..g.k_w {
                    let dst = &mut row[(i * g.k_w + j) * c..][..c];
                    match (iy, Conv2dGeometry::source(ox, j, g.stride_w, g.dil_w, g.pad_left, g.in_w)) {
                        (Some(y), Some(x)) => dst.copy_from_slice(&img[(y * g.in_w + x) * c..][..c]),
                        _ => dst.fill(T::zero()),
                    }
                }
            }
        }
    }
}

/// Adds a column matrix back into one image's gradient (the adjoint of [`im2col`]).
fn col2im<T: Float>(cols: &[T], g: &Conv2dGeometry, img: &mut [T]) {
    let (c, taps) = (g.in_c, g.taps());
    for oy in 0..g.out_h {
        for ox in 0..g.out_w {
            let row = &cols[(oy * g.out_w + ox) * taps..][..taps];
            for i in 0..g.k_h {
                let Some(y) = Conv2dGeometry::source(oy, i, g.stride_h, g.dil_h, g.pad_top, g.in_h) else { continue };
                for j in 0..g.k_w {
                    let Some(x) = Conv2dGeometry::source(ox, j, g.stride_w, g.dil_w, g.pad_left, g.in_w) else {
                        continue;
                    };
                    let dst = &mut img[(y * g.in_w + x) * c..][..c];
                    for (d, &s) in dst.iter_mut().zip(&row[(i * g.k_w + j) * c..][..c]) {
                        *d += s;
                    }
                }
            }
        }
    }
}

/// f32 on AVX-512 or AVX2: the column matrix of the `nb` images from `images` left in place.
/// Calls `f` with a table of pointers to each (output position, tap)'s channels (see
/// `gemm_tiled::Gather`), so the GEMM reads the images where they are: the same products in
/// the same order as on the written column matrix (bit-identical results), without writing and
/// re-reading it (9x the image for a 3x3 filter). The padding's pointers address zeros. With
/// `live`, only those rows (positions of the `nb` images, in order) are in the table.
#[cfg(target_arch = "x86_64")]
fn gathered<R>(
    images: *const f32,
    g: &Conv2dGeometry,
    nb: usize,
    live: Option<&[usize]>,
    f: impl FnOnce(Gather) -> R,
) -> R {
    thread_local! {
        static TABLE: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
        static ZEROS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let (c, len, segs) = (g.in_c, g.image_len(), g.k_h * g.k_w);
    let per_image = g.positions() * segs;
    crate::scratch(&ZEROS, c, |pad| {
        let zero = pad.as_mut_ptr() as usize;
        crate::scratch(&TABLE, nb * per_image, |table| {
            let first = &mut table[..per_image];
            let img = images as usize;
            let mut t = 0;
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    for i in 0..g.k_h {
                        let iy = Conv2dGeometry::source(oy, i, g.stride_h, g.dil_h, g.pad_top, g.in_h);
                        for j in 0..g.k_w {
                            let ix = Conv2dGeometry::source(ox, j, g.stride_w, g.dil_w, g.pad_left, g.in_w);
                            first[t] = match (iy, ix) {
                                (Some(y), Some(x)) => img + (y * g.in_w + x) * c * std::mem::size_of::<f32>(),
                                _ => zero,
                            };
                            t += 1;
                        }
                    }
                }
            }
            // The other images: the same taps one image further on (padding stays on the zeros).
            let step = len * std::mem::size_of::<f32>();
            for bi in 1..nb {
                let (done, next) = table.split_at_mut(bi * per_image);
                let prev = &done[(bi - 1) * per_image..];
                for (n, &p) in next[..per_image].iter_mut().zip(prev) {
                    *n = if p == zero { zero } else { p + step };
                }
            }
            // Only the live rows, in order (row r to row i <= r).
            for (i, &r) in live.unwrap_or_default().iter().enumerate() {
                table.copy_within(r * segs..(r + 1) * segs, i * segs);
            }
            f(Gather { table: table.as_ptr().cast(), seg: c, segs })
        })
    })
}

/// A product's operands, shared by the parts of one image's convolution (see [`conv2d_with`]).
#[derive(Clone, Copy)]
struct Operands {
    t: Gather,
    w: Strided,
    c: *mut f32,
}

// SAFETY: the parts read the table and `w` and write disjoint rows of `c`, all of which outlive
// the job (`pair::for_each` returns when every part has run).
unsafe impl Sync for Operands {}

impl Operands {
    /// A copy (a method, so closures capture the whole value and not its raw-pointer fields).
    fn get(&self) -> Operands {
        *self
    }
}

fn mat<T>(s: &[T], rows: usize, cols: usize) -> ArrayView2<'_, T> {
    ArrayView2::from_shape((rows, cols), s).expect("caller sized the slice")
}

fn mat_mut<T>(s: &mut [T], rows: usize, cols: usize) -> ArrayViewMut2<'_, T> {
    ArrayViewMut2::from_shape((rows, cols), s).expect("caller sized the slice")
}

/// Forward convolution: `x` is `[n,h,w,c]`, `w` is `[kh,kw,c,o]` (both row-major); returns
/// `[n,out_h,out_w,o]`.
pub fn conv2d<T: Float>(x: &[T], w: &[T], g: &Conv2dGeometry) -> Vec<T> {
    conv2d_with(x, w, g, zeros, Epilogue::NONE)
}

/// [`conv2d`] into a buffer from `alloc(len)` (contents unspecified, all overwritten), with
/// `epilogue` applied to each chunk of output rows right after it is computed.
pub fn conv2d_with<T: Float>(
    x: &[T],
    w: &[T],
    g: &Conv2dGeometry,
    alloc: impl FnOnce(usize) -> Vec<T>,
    epilogue: Epilogue<T>,
) -> Vec<T> {
    conv2d_pool_with(x, w, g, alloc, epilogue, None)
}

/// Where [`conv2d_pool_with`] leaves a max-pooling of its output.
pub struct PoolInto<'a, T> {
    /// The pooling, of `[n, out_h, out_w, o]`.
    pub geometry: &'a PoolGeometry,
    /// `[n, ph, pw, o]`, every element written.
    pub pooled: &'a mut [T],
    /// With it (`[n, ph, pw, o]`), each pooled element's winning cell too, what
    /// [`crate::pool::max_pool_grad_from_winners`] takes instead of the convolution's output.
    pub winners: Option<&'a mut [i32]>,
    /// Whether the convolution's output is wanted as well: without it each chunk of images is
    /// made in a scratch buffer and pooled there, never written out (an empty vector returns).
    pub keep_output: bool,
}

/// [`conv2d_with`], and with `pool` also its output max-pooled: each chunk of images pooled
/// right after its epilogue, while in cache, instead of in another pass over a layer-sized
/// tensor (TF's MaxPool after a convolution; the same values).
///
/// ```
/// use tensorgraph_kernels::conv::{conv2d, conv2d_pool_with, Conv2dGeometry, PoolInto};
/// use tensorgraph_kernels::pool::{max_pool_winners, PoolGeometry};
/// use tensorgraph_kernels::Epilogue;
/// let g = Conv2dGeometry::new([2, 6, 6, 1], [3, 3, 1, 4], [1, 1], [1, 1], true);
/// let x: Vec<f32> = (0..72).map(|i| (i % 7) as f32 - 3.0).collect();
/// let w: Vec<f32> = (0..36).map(|i| (i % 5) as f32 - 2.0).collect();
/// let geometry = &PoolGeometry::new([2, 6, 6, 4], [2, 2], [2, 2], false);
/// let (mut pooled, mut winners) = (vec![0.0; 2 * 3 * 3 * 4], vec![0; 2 * 3 * 3 * 4]);
/// let pool = PoolInto { geometry, pooled: &mut pooled, winners: Some(&mut winners), keep_output: true };
/// let out = conv2d_pool_with(&x, &w, &g, |n| vec![0.0; n], Epilogue::NONE, Some(pool));
/// assert_eq!(out, conv2d(&x, &w, &g));
/// assert_eq!((pooled, winners), max_pool_winners(&out, geometry));
/// ```
///
/// # Panics
/// If the pooling's input is not the convolution's output, or `pooled` (or `winners`) is not
/// its result's size.
pub fn conv2d_pool_with<T: Float>(
    x: &[T],
    w: &[T],
    g: &Conv2dGeometry,
    alloc: impl FnOnce(usize) -> Vec<T>,
    epilogue: Epilogue<T>,
    pool: Option<PoolInto<'_, T>>,
) -> Vec<T> {
    forward(Images::Given(x), w, g, alloc, epilogue, pool, true)
}

/// The convolution below another, whose output only this one reads (TF's inference graphs:
/// conv1 under conv2), computed a chunk of images at a time where [`conv2d_after_with`] needs
/// them.
#[derive(Clone, Copy)]
pub struct Below<'a, T> {
    /// Its input, `[n, h, w, c]`.
    pub x: &'a [T],
    /// Its filter.
    pub w: &'a [T],
    pub geometry: &'a Conv2dGeometry,
    pub epilogue: Epilogue<'a, T>,
}

/// [`conv2d_pool_with`] over the output of `below` (whose output shape is `g`'s input shape),
/// each chunk of images of it made where the chunk's product reads it, while in cache (the
/// CNN's conv1 writes 100 KB an image, which went out to memory and came back for conv2): the
/// same values as the two convolutions one after the other.
///
/// ```
/// use tensorgraph_kernels::conv::{conv2d, conv2d_after_with, Below, Conv2dGeometry};
/// use tensorgraph_kernels::Epilogue;
/// let g1 = Conv2dGeometry::new([2, 6, 6, 1], [3, 3, 1, 4], [1, 1], [1, 1], true);
/// let g2 = Conv2dGeometry::new([2, 6, 6, 4], [3, 3, 4, 5], [2, 2], [1, 1], true);
/// let x: Vec<f32> = (0..72).map(|i| (i % 7) as f32 - 3.0).collect();
/// let (w1, w2): (Vec<f32>, Vec<f32>) = ((0..36).map(|i| (i % 5) as f32 - 2.0).collect(), (0..180).map(|i| (i % 3) as f32).collect());
/// let below = Below { x: &x, w: &w1, geometry: &g1, epilogue: Epilogue::NONE };
/// let out = conv2d_after_with(below, &w2, &g2, |n| vec![0.0; n], Epilogue::NONE, None);
/// assert_eq!(out, conv2d(&conv2d(&x, &w1, &g1), &w2, &g2));
/// ```
///
/// # Panics
/// As [`conv2d_pool_with`]'s, and if `below`'s output is not `g`'s input.
pub fn conv2d_after_with<T: Float>(
    below: Below<'_, T>,
    w: &[T],
    g: &Conv2dGeometry,
    alloc: impl FnOnce(usize) -> Vec<T>,
    epilogue: Epilogue<T>,
    pool: Option<PoolInto<'_, T>>,
) -> Vec<T> {
    let b = below.geometry;
    assert_eq!(
        [b.batch, b.out_h, b.out_w, b.out_c],
        [g.batch, g.in_h, g.in_w, g.in_c],
        "a convolution below of another shape"
    );
    forward(Images::Below(below), w, g, alloc, epilogue, pool, true)
}

/// A forward convolution's input: given, or made a chunk at a time from the convolution below.
#[derive(Clone, Copy)]
enum Images<'a, T> {
    Given(&'a [T]),
    Below(Below<'a, T>),
}

impl<T: Float> Images<'_, T> {
    /// Runs `f` with the `nb` images from image `first`.
    fn chunk<R>(self, g: &Conv2dGeometry, first: usize, nb: usize, f: impl FnOnce(&[T]) -> R) -> R {
        let len = g.image_len();
        match self {
            Images::Given(x) => f(&x[first * len..][..nb * len]),
            Images::Below(b) => T::with_scratch_in(Scratch::Input, nb * len, |images| {
                let bg = b.geometry;
                let x = &b.x[first * bg.image_len()..][..nb * bg.image_len()];
                // (`bg`'s batch, not the chunk's: the product shares its rows with the pair
                // helper only where the chunk is the whole batch, as the separate op did.)
                if small_conv::applies(bg) {
                    small_conv::conv_images(x, b.w, bg, images, b.epilogue);
                } else {
                    product(x, b.w, bg, nb, None, images);
                    b.epilogue.apply(images);
                }
                f(images)
            }),
        }
    }
}

/// [`conv2d_pool_with`], leaving out the positions whose windows read only zeros (see [`live`])
/// when `skip_zero_windows`: the tests' check that it changes no bit.
fn forward<T: Float>(
    x: Images<'_, T>,
    w: &[T],
    g: &Conv2dGeometry,
    alloc: impl FnOnce(usize) -> Vec<T>,
    epilogue: Epilogue<T>,
    pool: Option<PoolInto<'_, T>>,
    skip_zero_windows: bool,
) -> Vec<T> {
    let (p, o) = (g.positions(), g.out_c);
    let len = g.batch * p * o;
    let keep = pool.as_ref().is_none_or(|pool| pool.keep_output);
    let mut out = if keep { alloc(len) } else { Vec::new() };
    let (pg, pooled, winners) = match pool {
        Some(PoolInto { geometry, pooled, winners, .. }) => (Some(*geometry), Some(pooled), winners),
        None => (None, None, None),
    };
    if let Some(pg) = pg {
        assert_eq!([pg.batch, pg.in_h, pg.in_w, pg.channels], [g.batch, g.out_h, g.out_w, o], "pooling another shape");
    }
    // An image's pooled outputs (and winners), pooled once its outputs are final.
    let pool_chunk = |out_chunk: &[T], pooled: &mut [T], winners: &mut [i32]| {
        let Some(pg) = pg.filter(|pg| pg.out_len() > 0) else { return };
        let images = out_chunk.chunks(p * o).zip(pooled.chunks_mut(pg.out_len()));
        if winners.is_empty() {
            images.for_each(|(img, dst)| crate::pool::max_pool_image(img, &pg, dst));
        } else {
            let images = images.zip(winners.chunks_mut(pg.out_len()));
            images.for_each(|((img, dst), win)| crate::pool::max_pool_image_winners(img, &pg, dst, win));
        }
    };
    let pool_len = pg.map_or(0, |pg| pg.out_len());
    if len == 0 {
        return out;
    }
    if small_conv::applies(g) {
        let (mut pooled, mut winners) =
            (PerImage::new(pooled, pool_len, 1, g.batch).parts(), PerImage::new(winners, pool_len, 1, g.batch).parts());
        let parts = |part| (part, pooled.next().expect("endless parts"), winners.next().expect("endless parts"));
        let images = out_chunks(&mut out, p * o, len).map(parts).enumerate();
        crate::pair::share_out(images.collect(), |(b, (out_img, pooled, winners))| {
            with_out(out_img, |out_img| {
                x.chunk(g, b, 1, |img| small_conv::conv_images(img, w, g, out_img, epilogue));
                pool_chunk(out_img, pooled, winners);
            })
        });
        return out;
    }
    let chunk = g.chunk_of(1);
    let skip = skip_zero_windows && live::finite(w);
    let (mut pooled, mut winners) = (
        PerImage::new(pooled, pool_len, chunk, g.batch).parts(),
        PerImage::new(winners, pool_len, chunk, g.batch).parts(),
    );
    let parts = |part| (part, pooled.next().expect("endless parts"), winners.next().expect("endless parts"));
    let chunks = out_chunks(&mut out, chunk * p * o, len).map(parts).enumerate();
    crate::pair::share_out(chunks.collect(), |(ci, (out_chunk, pooled, winners))| {
        with_out(out_chunk, |out_chunk| {
            thread_local! {
                static LIVE: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
            }
            let nb = out_chunk.len() / (p * o);
            x.chunk(g, ci * chunk, nb, |images| {
                crate::scratch(&LIVE, nb * p, |live| {
                    let live = if skip { live::live_rows(images, g, nb, live).map(|n| &live[..n]) } else { None };
                    product(images, w, g, nb, live, out_chunk);
                    if let Some(live) = live {
                        live::spread(out_chunk, live, o);
                    }
                })
            });
            epilogue.apply(out_chunk);
            pool_chunk(out_chunk, pooled, winners);
        })
    });
    out
}

/// The product of one chunk's `nb` images (`x`) and the filter into the first rows of `out`:
/// every row (output position), or only the `live` ones, in that order.
fn product<T: Float>(x: &[T], w: &[T], g: &Conv2dGeometry, nb: usize, live: Option<&[usize]>, out: &mut [T]) {
    let (p, k, o) = (g.positions(), g.taps(), g.out_c);
    let rows = live.map_or(nb * p, <[usize]>::len);
    if rows == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(f32s) = F32Simd::check::<T>().filter(|_| k > 0) {
        // SAFETY: T is f32 (checked); the table addresses `x`'s images (or zeros), `w` is
        // k x o row-major, `out` holds nb·p x o; all sizes > 0.
        unsafe {
            let (x, w, out) = (f32s.cast(x), f32s.cast(w), f32s.cast_mut(out));
            let w = Strided { ptr: w.as_ptr(), rs: o as isize, cs: 1 };
            let c = out.as_mut_ptr();
            gathered(x.as_ptr(), g, nb, live, |t| {
                if nb < g.batch || rows * k * o < crate::gemm::PAIR_WORK {
                    return gemm(rows, k, o, Left::Gathered(t), w, Out::Rows { c, ldc: o }, false);
                }
                // The whole batch in one chunk (one image being served): its positions
                // shared with the pair helper, in whole register tiles (the same bits).
                let size = (rows / 12 / 6).max(1) * 12;
                let shared = Operands { t, w, c };
                crate::pair::for_each(rows.div_ceil(size), &|i| {
                    let Operands { t, w, c } = shared.get();
                    let (r0, n) = (i * size, size.min(rows - i * size));
                    // SAFETY: rows r0..r0 + n of the table and of the output are inside
                    // them; each part writes its own rows.
                    let t = Gather { table: t.table.add(r0 * t.segs), ..t };
                    gemm(n, k, o, Left::Gathered(t), w, Out::Rows { c: c.add(r0 * o), ldc: o }, false)
                });
            });
        }
        return;
    }
    T::with_scratch(nb * p * k, |cols| {
        for bi in 0..nb {
            im2col(&x[bi * g.image_len()..][..g.image_len()], g, &mut cols[bi * p * k..][..p * k]);
        }
        for (i, &r) in live.unwrap_or_default().iter().enumerate() {
            cols.copy_within(r * k..(r + 1) * k, i * k);
        }
        gemm_into(mat(cols, rows, k), mat(w, k, o), mat_mut(&mut out[..rows * o], rows, o), false, false);
    });
}

/// A convolution's output (`len` elements) in chunks of `size`, each as its length and its part
/// of `out`, or as its length alone when the output is not kept (`out` empty).
fn out_chunks<T>(out: &mut [T], size: usize, len: usize) -> Box<dyn Iterator<Item = (usize, Option<&mut [T]>)> + '_> {
    if out.is_empty() {
        Box::new((0..len.div_ceil(size)).map(move |i| (size.min(len - i * size), None)))
    } else {
        Box::new(out.chunks_mut(size).map(|c| (c.len(), Some(c))))
    }
}

/// Runs `f` on a chunk of a convolution's output: its part of the output, or (`None`: the
/// output is not kept) `len` elements of scratch.
fn with_out<T: Float, R>((len, chunk): (usize, Option<&mut [T]>), f: impl FnOnce(&mut [T]) -> R) -> R {
    match chunk {
        Some(c) => f(c),
        None => T::with_result_scratch(len, f),
    }
}

/// Where a kernel run over chunks of a batch's images leaves a second result made image by
/// image (each image's sums, its pooled output): the caller's `[batch, per_image]`, or (not
/// asked for) an empty slice per chunk.
pub(crate) struct PerImage<'a, T> {
    sums: &'a mut [T],
    per_chunk: usize,
}

impl<'a, T: Send> PerImage<'a, T> {
    pub(crate) fn new(sums: Option<&'a mut [T]>, per_image: usize, images_per_chunk: usize, batch: usize) -> Self {
        match sums {
            Some(sums) => {
                assert_eq!(sums.len(), batch * per_image, "a side result of the wrong length");
                PerImage { sums, per_chunk: (images_per_chunk * per_image).max(1) }
            }
            None => PerImage { sums: &mut [], per_chunk: 1 },
        }
    }

    /// Each chunk's part (empty ones when not asked for, as many as there are chunks).
    pub(crate) fn chunks(&mut self) -> impl IndexedParallelIterator<Item = &mut [T]> + '_ {
        let per_chunk = self.per_chunk;
        // `zip` stops at the shorter side: endless empty slices when no sums are asked for.
        let empty = rayon::iter::repeat_n((), usize::MAX).map(|()| &mut [][..]);
        if self.sums.is_empty() {
            rayon::iter::Either::Left(empty)
        } else {
            rayon::iter::Either::Right(self.sums.par_chunks_mut(per_chunk))
        }
    }

    /// [`Self::chunks`] one after another (then endless empty parts), for work lists built
    /// before they are shared out.
    pub(crate) fn parts(self) -> impl Iterator<Item = &'a mut [T]> {
        self.sums.chunks_mut(self.per_chunk).chain(std::iter::repeat_with(|| &mut [][..]))
    }
}

/// Gradient with respect to the filter: the column matrices transposed times `dy`, summed over
/// the batch; returns `[kh,kw,c,o]`.
pub fn conv2d_backprop_filter<T: Float>(x: &[T], dy: &[T], g: &Conv2dGeometry) -> Vec<T> {
    conv2d_backprop_filter_with(x, dy, g, zeros)
}

/// [`conv2d_backprop_filter`] into a buffer from `alloc(len)` (contents unspecified, all
/// overwritten); the per-group partial sums live in the calling thread's reused scratch.
pub fn conv2d_backprop_filter_with<T: Float>(
    x: &[T],
    dy: &[T],
    g: &Conv2dGeometry,
    alloc: impl FnOnce(usize) -> Vec<T>,
) -> Vec<T> {
    let mut out = alloc(g.taps() * g.out_c);
    filter_grad_into(x, dy, g, &mut out);
    out
}

/// [`conv2d_backprop_filter`] into `out`.
fn filter_grad_into<T: Float>(x: &[T], dy: &[T], g: &Conv2dGeometry, out: &mut [T]) {
    let ko = out.len();
    if ko == 0 {
        return;
    }
    let groups = FilterGroups::new::<T>(g);
    T::with_scratch_in(Scratch::Partials, g.batch.div_ceil(groups.size).max(1) * ko, |partials| {
        partials.par_chunks_mut(ko).enumerate().for_each(|(gi, acc)| {
            let (b0, nb) = (gi * groups.size, groups.size.min(g.batch.saturating_sub(gi * groups.size)));
            groups.run(&x[b0 * g.image_len()..], &dy[b0 * g.positions() * g.out_c..], g, nb, acc);
        });
        FilterGroups::add(partials, out);
    });
}

/// The least common multiple of two sizes > 0.
fn lcm(a: usize, b: usize) -> usize {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x * b
}

/// How [`conv2d_backprop_filter_with`] splits a batch: partial sums over fixed groups of
/// images, added in group order, so the result does not depend on how rayon schedules the
/// groups (training runs are reproducible) nor on who computes them (a fused step, see
/// [`LowerFilterGrad`]).
#[derive(Clone, Copy)]
struct FilterGroups {
    /// Images per group.
    size: usize,
    small: bool,
    in_place: bool,
}

impl FilterGroups {
    fn new<T: Float>(g: &Conv2dGeometry) -> FilterGroups {
        let small = small_conv::applies(g);
        #[cfg(target_arch = "x86_64")]
        // On AVX2 the column matrix is written and its transpose packed (see `gemm::product`):
        // reading it through the table ran at 34 GFLOP/s against 49 on a Zen 3.
        let in_place = F32Simd::check::<T>().is_some() && crate::cpu::simd() == crate::cpu::Simd::Avx512;
        #[cfg(not(target_arch = "x86_64"))]
        let in_place = false;
        // (Groups of 4, 8 or 25 images cost conv2's gradient on AVX-512 the same, BENCHMARKS.md.)
        let size = g.filter_group::<T>(!small && !in_place);
        FilterGroups { size, small, in_place }
    }

    /// One group's partial sum into `acc` (`k x o`): `x` and `dy` start at its first image,
    /// `nb` images.
    fn run<T: Float>(&self, x: &[T], dy: &[T], g: &Conv2dGeometry, nb: usize, acc: &mut [T]) {
        let (p, k, o, len) = (g.positions(), g.taps(), g.out_c, g.image_len());
        acc.fill(T::zero());
        if self.small {
            small_conv::filter_grad_images(&x[..nb * len], &dy[..nb * p * o], g, acc);
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(f32s) = F32Simd::check::<T>() {
            // SAFETY: T is f32 (checked).
            let (xf, dyf, accf) = unsafe { (f32s.cast(x), f32s.cast(dy), f32s.cast_mut(acc)) };
            if sparse::try_filter_grad(xf, dyf, g, nb, accf) {
                return;
            }
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(f32s) = F32Simd::check::<T>().filter(|_| self.in_place && nb * p > 0) {
            // SAFETY: T is f32 (checked); the table addresses this group's images (or zeros),
            // dy's rows are nb·p x o row-major, `acc` is k x o; all sizes > 0.
            unsafe {
                let (x, dy, acc) = (f32s.cast(x), f32s.cast(dy), f32s.cast_mut(acc));
                let dy = Strided { ptr: dy.as_ptr(), rs: o as isize, cs: 1 };
                gathered(x.as_ptr(), g, nb, None, |t| {
                    gemm(k, nb * p, o, Left::GatheredT(t), dy, Out::Rows { c: acc.as_mut_ptr(), ldc: o }, true)
                });
            }
            return;
        }
        T::with_scratch(nb * p * k, |cols| {
            for bi in 0..nb {
                im2col(&x[bi * len..][..len], g, &mut cols[bi * p * k..][..p * k]);
            }
            let colst = mat(cols, nb * p, k).reversed_axes();
            gemm_into(colst, mat(&dy[..nb * p * o], nb * p, o), mat_mut(acc, k, o), true, false);
        });
    }

    /// The groups' partial sums (`k x o` each) added in order into `out`, in parallel over
    /// its elements (conv2's 25 groups of 18,432).
    fn add<T: Float>(partials: &[T], out: &mut [T]) {
        let ko = out.len();
        out.par_chunks_mut(4096).enumerate().for_each(|(i, out)| {
            let at = i * 4096;
            out.copy_from_slice(&partials[at..][..out.len()]);
            for part in partials.chunks(ko).skip(1) {
                out.iter_mut().zip(&part[at..]).for_each(|(a, &b)| *a += b);
            }
        });
    }
}

/// Direct convolution by definition, for tests of the im2col path.
pub fn conv2d_naive(x: &[f64], w: &[f64], g: &Conv2dGeometry) -> Vec<f64> {
    let mut out = vec![0.0; g.batch * g.positions() * g.out_c];
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                for oc in 0..g.out_c {
                    let mut s = 0.0;
                    for i in 0..g.k_h {
                        for j in 0..g.k_w {
                            let iy = (oy * g.stride_h + i * g.dil_h) as isize - g.pad_top as isize;
                            let ix = (ox * g.stride_w + j * g.dil_w) as isize - g.pad_left as isize;
                            if iy < 0 || ix < 0 || iy >= g.in_h as isize || ix >= g.in_w as isize {
                                continue;
                            }
                            for c in 0..g.in_c {
                                let xv = x[((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c + c];
                                s += xv * w[((i * g.k_w + j) * g.in_c + c) * g.out_c + oc];
                            }
                        }
                    }
                    out[((b * g.out_h + oy) * g.out_w + ox) * g.out_c + oc] = s;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool;
    use proptest::prelude::*;

    fn data(n: usize, salt: usize) -> Vec<f64> {
        (0..n).map(|i| ((i * 37 + salt * 11) % 17) as f64 - 8.0).collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(160))]

        /// Both paths (register kernels up to 32 taps, im2col + GEMM above) equal the
        /// convolution by definition; the two gradients are its adjoints
        /// (<conv(x), dy> == <x, dx(dy)> == <w, dw(x, dy)>).
        #[test]
        fn every_path_matches_direct_convolution(
            batch in 1usize..4, h in 1usize..9, w in 1usize..9, c in 1usize..8, o in 1usize..4,
            kh in 1usize..4, kw in 1usize..4, sh in 1usize..4, sw in 1usize..4,
            dh in 1usize..3, dw in 1usize..3, same in any::<bool>(),
        ) {
            let g = Conv2dGeometry::new([batch, h, w, c], [kh, kw, c, o], [sh, sw], [dh, dw], same);
            prop_assume!(g.out_h > 0 && g.out_w > 0);
            let x = data(batch * h * w * c, 1);
            let f = data(kh * kw * c * o, 2);
            let got = conv2d(&x, &f, &g);
            prop_assert_eq!(&got, &conv2d_naive(&x, &f, &g));
            let dy = data(got.len(), 3);
            let dx = conv2d_backprop_input(&f, &dy, &g);
            let df = conv2d_backprop_filter(&x, &dy, &g);
            let lhs = dot(&got, &dy);
            prop_assert!((lhs - dot(&x, &dx)).abs() < 1e-9 * lhs.abs().max(1.0));
            prop_assert!((lhs - dot(&f, &df)).abs() < 1e-9 * lhs.abs().max(1.0));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Leaving out the positions whose windows read only zeros changes no bit: images with
        /// zero blocks (every channel of a pixel), non-integer values (so that every rounding
        /// shows), a NaN or ∞ in the images or the filter, both element types, fused bias and ReLU,
        /// no channels at all.
        #[test]
        fn skipping_zero_windows_changes_no_bit(
            batch in 1usize..4, h in 1usize..16, w in 1usize..16, c in 0usize..40, o in 1usize..40,
            k in 1usize..4, s in 1usize..3, same in any::<bool>(), relu in any::<bool>(),
            block in (0usize..16, 0usize..16, 0usize..16, 0usize..16), bad in 0usize..4, seed in 0u64..1000,
        ) {
            let g = Conv2dGeometry::new([batch, h, w, c], [k, k, c, o], [s, s], [1, 1], same);
            prop_assume!(g.out_h > 0 && g.out_w > 0);
            let value = |i: usize, salt: u64| {
                let v = (i as u64 ^ salt.wrapping_mul(0x9e37_79b9)).wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
                v as f64 / (1 << 23) as f64 - 1.0
            };
            let (y0, x0, hh, ww) = block;
            let mut x: Vec<f64> = (0..batch * h * w * c).map(|i| value(i, seed)).collect();
            for (i, v) in x.iter_mut().enumerate() {
                let (py, px) = (i / c / w % h, i / c % w);
                // Zero outside one block of each image, so most windows read zeros.
                if !(y0..y0 + hh).contains(&py) || !(x0..x0 + ww).contains(&px) {
                    *v = if i % 7 == 0 { -0.0 } else { 0.0 };
                }
            }
            let mut f: Vec<f64> = (0..k * k * c * o).map(|i| value(i, seed + 1)).collect();
            let b: Vec<f64> = (0..o).map(|i| value(i, seed + 2)).collect();
            let (nx, nf) = (x.len(), f.len());
            match bad {
                1 if nx > 0 => x[nx / 2] = f64::NAN,
                2 if nf > 0 => f[nf / 3] = f64::INFINITY,
                _ => {}
            }
            let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let (x32, f32_, b32) = (to32(&x), to32(&f), to32(&b));
            let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            let run = |skip| forward(Images::Given(&x32), &f32_, &g, zeros, Epilogue { bias: Some(&b32[..]), relu }, None, skip);
            prop_assert_eq!(bits(run(true)), bits(run(false)));
            let run = |skip| forward(Images::Given(&x), &f, &g, zeros, Epilogue { bias: Some(&b[..]), relu }, None, skip);
            let bits = |v: Vec<f64>| v.into_iter().map(f64::to_bits).collect::<Vec<_>>();
            prop_assert_eq!(bits(run(true)), bits(run(false)));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Both element types and every path (register kernels for K <= 32 taps, im2col above,
        /// on AVX-512 the GEMM reading f32 images in place; 16-channel blocks and leftover
        /// channels; channels spanning several 12-row tiles of the filter gradient) give the
        /// exact result on integer data, with the fused bias and ReLU equal to applying them
        /// afterwards.
        #[test]
        fn f32_and_f64_paths_agree_exactly(
            batch in 1usize..3, h in 1usize..12, w in 1usize..12, c in 1usize..30, o in 1usize..40,
            k in 1usize..4, s in 1usize..3, d in 1usize..3, same in any::<bool>(), relu in any::<bool>(),
        ) {
            let g = Conv2dGeometry::new([batch, h, w, c], [k, k, c, o], [s, s], [d, d], same);
            prop_assume!(g.out_h > 0 && g.out_w > 0);
            let (x, f, b) = (data(batch * h * w * c, 1), data(k * k * c * o, 2), data(o, 4));
            let mut want = conv2d_naive(&x, &f, &g);
            let dy = data(want.len(), 3);
            let mut df_want = vec![0.0; f.len()];
            let g1 = Conv2dGeometry { batch: 1, ..g };
            for (img, d) in x.chunks(h * w * c).zip(dy.chunks(want.len() / batch)) {
                // dW = sum over positions of inputs (x) dy: the naive conv of unit filters.
                for (t, dw) in df_want.chunks_mut(o).enumerate() {
                    let mut unit = vec![0.0; f.len()];
                    (0..o).for_each(|j| unit[t * o + j] = 1.0);
                    let y = conv2d_naive(img, &unit, &g1);
                    dw.iter_mut().enumerate().for_each(|(j, v)| *v += y.iter().zip(d).skip(j).step_by(o).map(|(a, b)| a * b).sum::<f64>());
                }
            }
            let epi = Epilogue { bias: Some(&b[..]), relu };
            want.iter_mut().enumerate().for_each(|(i, v)| { *v += b[i % o]; if relu && *v <= 0.0 { *v = 0.0 } });
            let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let b32 = to32(&b);
            let epi32 = Epilogue { bias: Some(&b32[..]), relu };
            prop_assert_eq!(conv2d_with(&x, &f, &g, zeros, epi), want.clone());
            let got32 = conv2d_with(&to32(&x), &to32(&f), &g, zeros, epi32);
            prop_assert_eq!(got32, to32(&want));
            prop_assert_eq!(conv2d_backprop_filter(&x, &dy, &g), df_want.clone());
            prop_assert_eq!(conv2d_backprop_filter(&to32(&x), &to32(&dy), &g), to32(&df_want));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        /// A max pooling folded into the convolution (each chunk of images pooled after its
        /// epilogue) equals pooling the whole output afterwards, on every path and over
        /// several chunks, with its winners and with or without the output kept; the
        /// convolution's own output is unchanged.
        #[test]
        fn a_folded_max_pool_equals_pooling_afterwards(
            batch in 1usize..30, h in 2usize..12, w in 2usize..12, c in prop::sample::select(vec![1usize, 3, 16, 32]),
            o in 1usize..40, k in 1usize..4, s in 1usize..3, pk in 1usize..4, ps in 1usize..3, same in any::<bool>(),
            keep_output in any::<bool>(),
        ) {
            let g = Conv2dGeometry::new([batch, h, w, c], [k, k, c, o], [s, s], [1, 1], true);
            let geometry = &PoolGeometry::new([batch, g.out_h, g.out_w, o], [pk, pk], [ps, ps], same);
            prop_assume!(geometry.out_h > 0 && geometry.out_w > 0);
            let (x, f, b) = (data(batch * h * w * c, 1), data(k * k * c * o, 2), data(o, 4));
            let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let (x32, f32s, b32) = (to32(&x), to32(&f), to32(&b));
            let epi = Epilogue { bias: Some(&b32[..]), relu: true };
            let want = conv2d_with(&x32, &f32s, &g, zeros, epi);
            let n = batch * geometry.out_h * geometry.out_w * o;
            let (mut pooled, mut winners) = (vec![f32::NAN; n], vec![i32::MIN; n]);
            let pool = PoolInto { geometry, pooled: &mut pooled, winners: Some(&mut winners), keep_output };
            let out = conv2d_pool_with(&x32, &f32s, &g, zeros, epi, Some(pool));
            prop_assert_eq!(&out, if keep_output { &want } else { &[][..] });
            prop_assert_eq!((pooled, winners), crate::pool::max_pool_winners(&want, geometry));
            let mut pooled64 = vec![f64::NAN; n];
            let pool = PoolInto { geometry, pooled: &mut pooled64, winners: None, keep_output };
            let out64 = conv2d_pool_with(&x, &f, &g, zeros, Epilogue::NONE, Some(pool));
            prop_assert_eq!(out64.is_empty(), !keep_output);
            prop_assert_eq!(pooled64, crate::pool::max_pool(&conv2d(&x, &f, &g), geometry));
        }

        /// The input gradient with channels in multiples of 16 (on AVX-512, one product per
        /// stride class stored onto dx's positions; strides above the dilated filter leave
        /// classes no tap reaches) is exact on integer data in f32, as in f64 (col2im), with and
        /// without the ReLU mask, over several chunks.
        #[test]
        fn input_gradient_by_stride_class_is_exact(
            batch in 1usize..12, h in 1usize..10, w in 1usize..10, c16 in 1usize..3, o in 1usize..40,
            k in 1usize..4, sh in 1usize..4, sw in 1usize..4, d in 1usize..3, same in any::<bool>(),
            relu in any::<bool>(),
        ) {
            let c = 16 * c16;
            let g = Conv2dGeometry::new([batch, h, w, c], [k, k, c, o], [sh, sw], [d, d], same);
            prop_assume!(g.out_h > 0 && g.out_w > 0);
            let f = data(k * k * c * o, 2);
            let dy = data(batch * g.positions() * o, 3);
            let feats = data(batch * h * w * c, 5);
            let relu = relu.then_some(&feats[..]);
            let want = conv2d_backprop_input_with(&f, dy[..].into(), &g, zeros, InputGradWith { relu_features: relu, ..Default::default() });
            let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let feats32 = to32(&feats);
            let mut sums = vec![f32::NAN; batch * c];
            let with = InputGradWith {
                relu_features: relu.map(|_| &feats32[..]),
                image_sums: Some(&mut sums),
                ..Default::default()
            };
            let got = conv2d_backprop_input_with(&to32(&f), to32(&dy)[..].into(), &g, zeros, with);
            prop_assert_eq!(&got, &to32(&want));
            // Each image's sums over its rows (integers: exact in any order), whatever chunks
            // the images ran in.
            let by_image: Vec<f32> = (0..batch * c).map(|i| {
                let (b, ch) = (i / c, i % c);
                got[b * h * w * c..][..h * w * c].iter().skip(ch).step_by(c).sum()
            }).collect();
            prop_assert_eq!(sums, by_image);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        /// The filter gradients of the convolution below, made from each chunk of the (masked)
        /// input gradient, and of the convolution itself, from each chunk of `dy`, have the
        /// bits of [`conv2d_backprop_filter`] on the whole tensors, for every way the lower
        /// convolution runs (register kernels for one input channel, in place, im2col in f64)
        /// and batches over several chunks; the input gradient and its sums are unchanged,
        /// kept or not; `dy` routed chunk by chunk from a max-pooling's gradient (tiling
        /// windows with the ReLU mask, overlapping SAME windows without) is the routed whole.
        #[test]
        fn folded_filter_gradients_have_the_bits_of_the_separate_ones(
            batch in 1usize..40, hw in 3usize..12, c in prop::sample::select(vec![1usize, 3, 4, 16]), mid16 in 1usize..3,
            o in 1usize..20, s in 1usize..3, keep in any::<bool>(), own in any::<bool>(), pooling in 0usize..3,
        ) {
            let mid = 16 * mid16;
            let lower = Conv2dGeometry::new([batch, hw, hw, c], [3, 3, c, mid], [1, 1], [1, 1], true);
            let upper = Conv2dGeometry::new([batch, hw, hw, mid], [3, 3, mid, o], [s, s], [1, 1], true);
            let fractions = |n: usize, salt: usize| -> Vec<f64> {
                (0..n).map(|i| (((i * 37 + salt * 11) % 17) as f64 - 8.0) / 7.0).collect()
            };
            let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let (x, w) = (fractions(batch * hw * hw * c, 1), fractions(9 * mid * o, 2));
            // The upper convolution's output, pooled: its winners and the pooled gradient.
            let relu = pooling == 1;
            let pool = match pooling {
                1 => Some(PoolGeometry::new(upper.output_shape(), [2, 2], [2, 2], false)),
                2 => Some(PoolGeometry::new(upper.output_shape(), [3, 3], [2, 2], true)),
                _ => None,
            };
            let winners = pool.as_ref().map(|pg| pool::max_pool_winners(&to32(&fractions(batch * upper.positions() * o, 6)), pg).1);
            let pooled_grad = pool.as_ref().map(|pg| fractions(batch * pg.out_len(), 3));
            let mut routed_sums = vec![0.0f32; batch * o];
            let (dy, dy32) = match (&pool, &winners, &pooled_grad) {
                (Some(pg), Some(win), Some(pgr)) => (
                    pool::max_pool_grad_from_winners(win, pgr, pg, zeros, relu, None),
                    pool::max_pool_grad_from_winners(win, &to32(pgr), pg, zeros, relu, Some(&mut routed_sums)),
                ),
                _ => {
                    let dy = fractions(batch * upper.positions() * o, 3);
                    let dy32 = to32(&dy);
                    (dy, dy32)
                }
            };
            let pooled_grad32 = pooled_grad.as_deref().map(to32);
            let feats = fractions(batch * hw * hw * mid, 4);
            let (x32, w32, feats32) = (to32(&x), to32(&w), to32(&feats));
            let mut sums = vec![0.0f32; batch * mid];
            let with = InputGradWith { relu_features: Some(&feats32), image_sums: Some(&mut sums), ..Default::default() };
            let dx = conv2d_backprop_input_with(&w32, dy32[..].into(), &upper, zeros, with);
            let want = conv2d_backprop_filter(&x32, &dx, &lower);
            // The upper convolution's input: the features (a ReLU's output) or another tensor.
            let h = if own { feats.clone() } else { fractions(feats.len(), 5) };
            let h32 = to32(&h);
            let want_own = conv2d_backprop_filter(&h32, &dy32, &upper);
            let (mut got, mut got_sums) = (vec![f32::NAN; want.len()], vec![f32::NAN; sums.len()]);
            let (mut got_own, mut got_routed) = (vec![f32::NAN; want_own.len()], vec![f32::NAN; batch * o]);
            let with = InputGradWith {
                relu_features: Some(&feats32),
                image_sums: Some(&mut got_sums),
                lower: Some(LowerFilterGrad { x: &x32, geometry: &lower, out: &mut got, keep_input_grad: keep }),
                filter: Some(FilterGrad { x: &h32, out: &mut got_own }),
            };
            let upstream = match (&pool, &winners, &pooled_grad32) {
                (Some(geometry), Some(winners), Some(grad)) => {
                    Upstream::Pooled(PooledGrad { winners, grad, geometry, relu, image_sums: Some(&mut got_routed) })
                }
                _ => dy32[..].into(),
            };
            let dx2 = conv2d_backprop_input_with(&w32, upstream, &upper, zeros, with);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&got), bits(&want));
            prop_assert_eq!(bits(&got_own), bits(&want_own));
            prop_assert_eq!(bits(&got_sums), bits(&sums));
            if pool.is_some() {
                prop_assert_eq!(bits(&got_routed), bits(&routed_sums));
            }
            prop_assert_eq!(&dx2, if keep { &dx } else { &[][..] });
            let dx64 = conv2d_backprop_input(&w, &dy, &upper);
            let (mut got64, mut own64) = (vec![f64::NAN; want.len()], vec![f64::NAN; want_own.len()]);
            let with = InputGradWith {
                lower: Some(LowerFilterGrad { x: &x, geometry: &lower, out: &mut got64, keep_input_grad: keep }),
                filter: Some(FilterGrad { x: &h, out: &mut own64 }),
                ..Default::default()
            };
            let upstream64 = match (&pool, &winners, &pooled_grad) {
                (Some(geometry), Some(winners), Some(grad)) => {
                    Upstream::Pooled(PooledGrad { winners, grad, geometry, relu, image_sums: None })
                }
                _ => dy[..].into(),
            };
            conv2d_backprop_input_with(&w, upstream64, &upper, zeros, with);
            prop_assert_eq!(got64, conv2d_backprop_filter(&x, &dx64, &lower));
            prop_assert_eq!(own64, conv2d_backprop_filter(&h, &dy, &upper));
        }
    }

    /// An empty batch, or no output channels, gives zero filter gradients, folded or not.
    #[test]
    fn folded_filter_gradients_of_empty_shapes_are_zeros() {
        for (batch, o) in [(0, 3), (2, 0)] {
            let g = Conv2dGeometry::new([batch, 5, 5, 16], [3, 3, 16, o], [2, 2], [1, 1], true);
            let (x, w, dy) = (vec![1.0f32; batch * 400], vec![1.0f32; 144 * o], vec![1.0f32; batch * 9 * o]);
            let mut dw = vec![f32::NAN; 144 * o];
            let with = InputGradWith { filter: Some(FilterGrad { x: &x, out: &mut dw }), ..Default::default() };
            let dx = conv2d_backprop_input_with(&w, dy[..].into(), &g, zeros, with);
            assert_eq!((dx, dw), (vec![0.0; batch * 400], vec![0.0; 144 * o]));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// A convolution over the one below it, made a chunk at a time, has the bits of the two
        /// one after the other: register-kernel and product paths below, bias and ReLU on both,
        /// a folded pooling above, zero regions (the zero-window scan).
        #[test]
        fn a_convolution_over_the_one_below_has_the_bits_of_both(
            batch in 1usize..12, h in 1usize..14, c in 1usize..5, m in 1usize..40, o in 1usize..20,
            k in 1usize..4, s in 1usize..3, pooled in any::<bool>(), zeros_from in 0usize..14, seed in 0u64..1000,
        ) {
            let g1 = Conv2dGeometry::new([batch, h, h, c], [k, k, c, m], [1, 1], [1, 1], true);
            let g2 = Conv2dGeometry::new([batch, h, h, m], [3, 3, m, o], [s, s], [1, 1], true);
            let value = |i: usize, salt: u64| {
                let v = (i as u64 ^ salt.wrapping_mul(0x9e37_79b9)).wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
                v as f32 / (1 << 23) as f32 - 1.0
            };
            let mut x: Vec<f32> = (0..batch * h * h * c).map(|i| value(i, seed)).collect();
            x.iter_mut().enumerate().filter(|(i, _)| i / c % h >= zeros_from).for_each(|(_, v)| *v = 0.0);
            let (w1, w2): (Vec<f32>, Vec<f32>) =
                ((0..k * k * c * m).map(|i| value(i, seed + 1)).collect(), (0..9 * m * o).map(|i| value(i, seed + 2)).collect());
            let (b1, b2): (Vec<f32>, Vec<f32>) = ((0..m).map(|i| value(i, seed + 3)).collect(), (0..o).map(|i| value(i, seed + 4)).collect());
            let (e1, e2) = (Epilogue { bias: Some(&b1[..]), relu: true }, Epilogue { bias: Some(&b2[..]), relu: true });
            let pg = PoolGeometry::new(g2.output_shape(), [2, 2], [2, 2], false);
            prop_assume!(!pooled || pg.out_len() > 0);
            let (mut p1, mut p2) = (vec![0.0; batch * pg.out_len()], vec![0.0; batch * pg.out_len()]);
            fn pool<'a>(on: bool, geometry: &'a PoolGeometry, pooled: &'a mut [f32]) -> Option<PoolInto<'a, f32>> {
                on.then_some(PoolInto { geometry, pooled, winners: None, keep_output: true })
            }
            let mid = conv2d_with(&x, &w1, &g1, zeros, e1);
            let want = conv2d_pool_with(&mid, &w2, &g2, zeros, e2, pool(pooled, &pg, &mut p1));
            let below = Below { x: &x, w: &w1, geometry: &g1, epilogue: e1 };
            let got = conv2d_after_with(below, &w2, &g2, zeros, e2, pool(pooled, &pg, &mut p2));
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&got), bits(&want));
            prop_assert_eq!(bits(&p2), bits(&p1));
        }
    }

    /// No input channels: every output is the bias (the zero-window scan has nothing to read).
    #[test]
    fn no_input_channels_give_the_bias() {
        let g = Conv2dGeometry::new([2, 5, 5, 0], [3, 3, 0, 40], [2, 2], [1, 1], true);
        let bias: Vec<f32> = (0..40).map(|i| i as f32 - 20.0).collect();
        let out = conv2d_with(&[], &[], &g, zeros, Epilogue { bias: Some(&bias), relu: false });
        assert_eq!(out, bias.repeat(2 * 3 * 3));
    }

    /// The column matrices live in reused scratch; stale contents (here NaN) must never leak.
    #[test]
    fn stale_scratch_contents_do_not_leak_into_results() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        pool.install(|| {
            let g = Conv2dGeometry::new([2, 5, 5, 2], [3, 3, 2, 3], [1, 1], [1, 1], true);
            let (x, f) = (data(2 * 25 * 2, 6), data(18 * 3, 7));
            let dy = data(2 * 25 * 3, 8);
            let clean = (conv2d(&x, &f, &g), conv2d_backprop_input(&f, &dy, &g), conv2d_backprop_filter(&x, &dy, &g));
            f64::with_scratch(1 << 16, |s| s.fill(f64::NAN));
            assert_eq!(conv2d(&x, &f, &g), clean.0);
            f64::with_scratch(1 << 16, |s| s.fill(f64::NAN));
            assert_eq!(conv2d_backprop_input(&f, &dy, &g), clean.1);
            f64::with_scratch(1 << 16, |s| s.fill(f64::NAN));
            assert_eq!(conv2d_backprop_filter(&x, &dy, &g), clean.2);
            assert_eq!(clean.0, conv2d_naive(&x, &f, &g));
        });
    }

    /// Chunks share a batch's images evenly between the threads: conv2's 100 images on 2
    /// threads in 20 tasks of 5 (not 12 of 9, one thread's 54 images); in groups of 4, 25
    /// tasks of 4 (not 13 of 8); 1000 images in the largest chunks, whose split is even anyway.
    #[test]
    fn chunks_share_the_images_evenly() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.install(|| {
            let conv2 = |n| Conv2dGeometry::new([n, 28, 28, 32], [3, 3, 32, 64], [2, 2], [1, 1], true);
            assert_eq!(conv2(100).by_memory(), 9);
            assert_eq!((conv2(100).chunk_of(1), conv2(100).chunk_of(4)), (5, 4));
            assert_eq!((conv2(1000).chunk_of(1), conv2(1).chunk_of(1), conv2(3).chunk_of(4)), (9, 1, 4));
        });
    }

    #[test]
    fn large_batch_uses_several_chunks_and_agrees() {
        // 36 taps: the im2col path (or the in-place one), not the register kernels.
        let g = Conv2dGeometry::new([37, 9, 9, 4], [3, 3, 4, 5], [2, 2], [1, 1], true);
        assert!(g.taps() > small_conv::MAX_TAPS);
        let x = data(37 * 81 * 4, 4);
        let f = data(36 * 5, 5);
        assert!(g.chunk_of(1) > 1 && g.chunk_of(1) < 37);
        let want = conv2d_naive(&x, &f, &g);
        assert_eq!(conv2d(&x, &f, &g), want);
        // f32 (on AVX-512 the in-place path, whose pointer table spans a chunk's images).
        let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        assert_eq!(conv2d(&to32(&x), &to32(&f), &g), to32(&want));
        let dy = data(want.len(), 6);
        let df = conv2d_backprop_filter(&x, &dy, &g);
        assert_eq!(conv2d_backprop_filter(&to32(&x), &to32(&dy), &g), to32(&df));
    }

    /// A seed trains to the same bits on any machine: all three products of a batch give the
    /// same bits on 1, 2, 3 and 8 threads (the filter gradient's partial sums round where the
    /// geometry says, not where the thread count would split the batch).
    #[test]
    fn every_thread_count_gives_the_same_bits() {
        // (40 images: the one-pass backward in chunks of 20 on one thread, of 4 on more.)
        const N: usize = 40;
        let g = Conv2dGeometry::new([N, 14, 14, 32], [3, 3, 32, 16], [2, 2], [1, 1], true);
        let frac =
            |n: usize, s: usize| (0..n).map(|i| ((i * 7919 + s) % 1000) as f32 / 997.0 - 0.4).collect::<Vec<_>>();
        let (x, f) = (frac(N * g.image_len(), 1), frac(g.taps() * 16, 2));
        let dy = frac(N * g.positions() * 16, 3);
        let lower = Conv2dGeometry::new([N, 14, 14, 3], [3, 3, 3, 32], [1, 1], [1, 1], true);
        let pg = PoolGeometry::new(g.output_shape(), [2, 2], [2, 2], false);
        let (_, winners) = pool::max_pool_winners(&dy, &pg);
        let (images, pooled_grad) = (frac(N * 14 * 14 * 3, 4), frac(N * 9 * 16, 5));
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let bits = |v: &[f32]| v.iter().map(|a| a.to_bits()).collect::<Vec<_>>();
                let df = bits(&conv2d_backprop_filter(&x, &dy, &g));
                // The one-pass backward, chunked by the thread count: routed dy, the mask and
                // sums, both filter gradients.
                let (mut lower_dw, mut dw, mut sums, mut pool_sums) =
                    (vec![0.0; 27 * 32], vec![0.0; g.taps() * 16], vec![0.0; N * 32], vec![0.0; N * 16]);
                let upstream = Upstream::Pooled(PooledGrad {
                    winners: &winners,
                    grad: &pooled_grad,
                    geometry: &pg,
                    relu: true,
                    image_sums: Some(&mut pool_sums),
                });
                let with = InputGradWith {
                    relu_features: Some(&x),
                    image_sums: Some(&mut sums),
                    lower: Some(LowerFilterGrad {
                        x: &images,
                        geometry: &lower,
                        out: &mut lower_dw,
                        keep_input_grad: true,
                    }),
                    filter: Some(FilterGrad { x: &x, out: &mut dw }),
                };
                let dx = conv2d_backprop_input_with(&f, upstream, &g, zeros, with);
                let fused = [dx, lower_dw, dw, sums, pool_sums].map(|v| bits(&v));
                (bits(&conv2d(&x, &f, &g)), bits(&conv2d_backprop_input(&f, &dy, &g)), df, fused)
            })
        };
        let one = run(1);
        for threads in [2, 3, 8] {
            assert!(run(threads) == one, "{threads} threads");
        }
    }

    /// One image alone (its positions shared with the pair helper) gives the bits it has in a
    /// batch, on one thread or two.
    #[test]
    fn one_image_split_by_positions_agrees_with_the_batch() {
        let batch = Conv2dGeometry::new([3, 28, 28, 32], [3, 3, 32, 64], [2, 2], [1, 1], true);
        let one = Conv2dGeometry { batch: 1, ..batch };
        let x: Vec<f32> = data(3 * 28 * 28 * 32, 7).iter().map(|&v| v as f32).collect();
        let f: Vec<f32> = data(9 * 32 * 64, 8).iter().map(|&v| v as f32 * 0.1).collect();
        let all = conv2d(&x, &f, &batch);
        let len = one.positions() * one.out_c;
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            for b in 0..3 {
                let image = &x[b * one.image_len()..][..one.image_len()];
                let got = pool.install(|| conv2d(image, &f, &one));
                assert!(got == all[b * len..][..len], "image {b}, {threads} threads");
            }
        }
    }
}
