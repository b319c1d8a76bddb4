//! Convolution without a column matrix, for filters with few taps (the first layer of an image
//! model: 3x3 over one channel is K = 9). Through im2col + GEMM such a layer is bound by writing
//! and packing a column matrix K times the size of its input, and GEMM runs at a fraction of its
//! speed at K = 9. Here each block of 8 output positions gathers its K inputs onto the stack
//! and meets 16 output channels at a time in registers: the forward pass with the bias and ReLU
//! epilogue applied before the one store, the filter gradient accumulating into a K x O sum.

use crate::conv::Conv2dGeometry;
#[cfg(target_arch = "x86_64")]
use crate::F32Simd;
use crate::{Epilogue, Float};

/// Largest filter (taps times input channels) taken by this path.
pub const MAX_TAPS: usize = 32;
/// Output positions per register block.
const POSITIONS: usize = 8;
/// Output channels per block of the portable path (loops the compiler vectorises).
const LANES: usize = 16;

/// One image: `img` `[h, w, c]` to `out` `[out_h, out_w, o]` (every element written).
pub fn conv_image<T: Float>(img: &[T], w: &[T], g: &Conv2dGeometry, out: &mut [T], epilogue: Epilogue<T>) {
    debug_assert!(g.taps() <= MAX_TAPS);
    #[cfg(target_arch = "x86_64")]
    if let Some(f32s) = F32Simd::check::<T>() {
        // SAFETY: `check` proved T is f32 (and the CPU runs the tiled kernels).
        unsafe {
            let epilogue = Epilogue { bias: epilogue.bias.map(|b| f32s.cast(b)), relu: epilogue.relu };
            return simd::conv_image(f32s.cast(img), f32s.cast(w), g, f32s.cast_mut(out), epilogue);
        }
    }
    let o = g.out_c;
    blocks(img, g, |cols, p0, n| {
        let rows = &mut out[p0 * o..(p0 + n) * o];
        for c0 in (0..o - o % LANES).step_by(LANES) {
            forward_block(cols, g.taps(), w, o, c0, rows, n, &epilogue);
        }
        forward_leftover(cols, g.taps(), w, o, rows, n, &epilogue);
    })
}

/// Adds one image's filter gradient, `sum over positions of inputs (x) dy`, to `acc` `[K, o]`.
pub fn filter_grad_image<T: Float>(img: &[T], dy: &[T], g: &Conv2dGeometry, acc: &mut [T]) {
    debug_assert!(g.taps() <= MAX_TAPS);
    #[cfg(target_arch = "x86_64")]
    if let Some(f32s) = F32Simd::check::<T>() {
        // SAFETY: `check` proved T is f32 (and the CPU runs the tiled kernels).
        return unsafe { simd::filter_grad_image(f32s.cast(img), f32s.cast(dy), g, f32s.cast_mut(acc)) };
    }
    let (k, o) = (g.taps(), g.out_c);
    blocks(img, g, |cols, p0, n| {
        for (col, row) in cols.iter().zip(dy[p0 * o..(p0 + n) * o].chunks(o)) {
            for (t, &v) in col[..k].iter().enumerate() {
                acc[t * o..][..o].iter_mut().zip(row).for_each(|(a, &d)| *a += v * d);
            }
        }
    })
}

/// Walks the image's output positions in blocks of 8, gathering each block's inputs (positions
/// past the end are zeros), and calls `f(cols, first position, positions in the block)`.
#[inline(always)]
fn blocks<T: Float>(img: &[T], g: &Conv2dGeometry, mut f: impl FnMut(&Columns<T>, usize, usize)) {
    let (k, positions) = (g.taps(), g.positions());
    let taps = TapOffsets::new(g);
    let mut cols = [[T::zero(); MAX_TAPS]; POSITIONS];
    for p0 in (0..positions).step_by(POSITIONS) {
        let n = POSITIONS.min(positions - p0);
        for (p, col) in cols.iter_mut().enumerate() {
            if p < n {
                taps.gather(img, g, p0 + p, &mut col[..k]);
            } else {
                col[..k].fill(T::zero());
            }
        }
        f(&cols, p0, n);
    }
}

/// The gathered inputs of one block of positions.
type Columns<T> = [[T; MAX_TAPS]; POSITIONS];

/// Where each of the K filter inputs sits relative to a window's top-left input: as one
/// offset, and as (row, column, channel) for windows that overlap the padding.
struct TapOffsets {
    offsets: [usize; MAX_TAPS],
    rows: [usize; MAX_TAPS],
    cols: [usize; MAX_TAPS],
    chans: [usize; MAX_TAPS],
}

impl TapOffsets {
    fn new(g: &Conv2dGeometry) -> TapOffsets {
        let mut t =
            TapOffsets { offsets: [0; MAX_TAPS], rows: [0; MAX_TAPS], cols: [0; MAX_TAPS], chans: [0; MAX_TAPS] };
        let c = g.in_c;
        for k in 0..g.taps() {
            let (i, j, q) = (k / (g.k_w * c), k / c % g.k_w, k % c);
            (t.rows[k], t.cols[k], t.chans[k]) = (i * g.dil_h, j * g.dil_w, q);
            t.offsets[k] = (t.rows[k] * g.in_w + t.cols[k]) * c + q;
        }
        t
    }

    /// The K input values (zero in the padding) of output position `pos`: one indexed load
    /// each when the window is inside the image, else tap by tap with bounds (no divisions:
    /// they made the 14% of conv1's windows on the border cost as much as the rest).
    #[inline(always)]
    fn gather<T: Float>(&self, img: &[T], g: &Conv2dGeometry, pos: usize, col: &mut [T]) {
        let (oy, ox, c) = (pos / g.out_w, pos % g.out_w, g.in_c);
        let (y0, x0) = (oy * g.stride_h, ox * g.stride_w);
        let inside = y0 >= g.pad_top
            && x0 >= g.pad_left
            && y0 - g.pad_top + (g.k_h - 1) * g.dil_h < g.in_h
            && x0 - g.pad_left + (g.k_w - 1) * g.dil_w < g.in_w;
        if inside {
            let window = &img[((y0 - g.pad_top) * g.in_w + x0 - g.pad_left) * c..];
            col.iter_mut().zip(&self.offsets).for_each(|(d, &off)| *d = window[off]);
            return;
        }
        for (t, d) in col.iter_mut().enumerate() {
            let y = (y0 + self.rows[t]).wrapping_sub(g.pad_top);
            let x = (x0 + self.cols[t]).wrapping_sub(g.pad_left);
            // Above or left of the image wraps to a huge index: one comparison each.
            *d = if y < g.in_h && x < g.in_w { img[(y * g.in_w + x) * c + self.chans[t]] } else { T::zero() };
        }
    }
}

/// Output channels `c0..c0+16` of the first `n` positions (portable form).
#[allow(clippy::too_many_arguments)]
fn forward_block<T: Float>(
    cols: &Columns<T>,
    k: usize,
    w: &[T],
    o: usize,
    c0: usize,
    rows: &mut [T],
    n: usize,
    epilogue: &Epilogue<T>,
) {
    for (p, col) in cols.iter().take(n).enumerate() {
        let mut acc = [T::zero(); LANES];
        for (t, &v) in col[..k].iter().enumerate() {
            acc.iter_mut().zip(&w[t * o + c0..][..LANES]).for_each(|(a, &w)| *a += v * w);
        }
        for (l, a) in acc.into_iter().enumerate() {
            rows[p * o + c0 + l] = epilogue.value(a, c0 + l);
        }
    }
}

/// The output channels after the last whole block of 16.
fn forward_leftover<T: Float>(
    cols: &Columns<T>,
    k: usize,
    w: &[T],
    o: usize,
    rows: &mut [T],
    n: usize,
    epilogue: &Epilogue<T>,
) {
    for c in o - o % LANES..o {
        for (p, col) in cols.iter().take(n).enumerate() {
            let acc = col[..k].iter().enumerate().fold(T::zero(), |acc, (t, &v)| acc + v * w[t * o + c]);
            rows[p * o + c] = epilogue.value(acc, c);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{blocks, Columns, POSITIONS};
    use crate::conv::Conv2dGeometry;
    use crate::gemm_tiled::{on_simd, Isa};
    use crate::Epilogue;

    /// [`super::conv_image`] for f32 with 8 positions x one vector of output channels in
    /// registers, on the instruction set [`crate::cpu::simd`] picks.
    pub fn conv_image(img: &[f32], w: &[f32], g: &Conv2dGeometry, out: &mut [f32], epilogue: Epilogue<f32>) {
        // SAFETY: `F32Simd::check` (the caller's) proved the CPU runs the tiled kernels.
        on_simd!(I => unsafe { conv_image_on::<I>(img, w, g, out, epilogue) })
    }

    /// [`super::filter_grad_image`] for f32: per vector of output channels, the block's 8 rows
    /// of dy stay in registers while every tap's running sum is updated.
    pub fn filter_grad_image(img: &[f32], dy: &[f32], g: &Conv2dGeometry, acc: &mut [f32]) {
        // SAFETY: as in `conv_image`.
        on_simd!(I => unsafe { filter_grad_on::<I>(img, dy, g, acc) })
    }

    /// Every output channel through FMAs, the last vector masked: each output is the same chain
    /// of roundings whatever the vector width.
    #[inline(always)]
    unsafe fn conv_image_on<I: Isa>(img: &[f32], w: &[f32], g: &Conv2dGeometry, out: &mut [f32], e: Epilogue<f32>) {
        let (k, o) = (g.taps(), g.out_c);
        blocks(
            img,
            g,
            #[inline(always)]
            |cols: &Columns<f32>, p0, n| {
                for c0 in (0..o).step_by(I::LANES) {
                    // SAFETY: the lanes under `mask` are channels c0.. < o of w's rows, the bias and
                    // the block's output rows.
                    unsafe {
                        let width = (o - c0).min(I::LANES);
                        let (mask, full) = (I::mask(width), width == I::LANES);
                        let mut acc = [I::zero(); POSITIONS];
                        for t in 0..k {
                            let wt = I::load(mask, w.as_ptr().add(t * o + c0));
                            for (a, col) in acc.iter_mut().zip(cols) {
                                *a = I::fma(I::splat(col[t]), wt, *a);
                            }
                        }
                        let bias = e.bias.map(|b| I::load(mask, b.as_ptr().add(c0)));
                        for (p, mut v) in acc.into_iter().take(n).enumerate() {
                            if let Some(b) = bias {
                                v = I::add(v, b);
                            }
                            if e.relu {
                                // max(0, v) is v unless 0 > v: a NaN is kept, as TF's ReLU keeps it.
                                v = I::max(I::zero(), v);
                            }
                            I::store(mask, full, out.as_mut_ptr().add((p0 + p) * o + c0), v);
                        }
                    }
                }
            },
        )
    }

    #[inline(always)]
    unsafe fn filter_grad_on<I: Isa>(img: &[f32], dy: &[f32], g: &Conv2dGeometry, acc: &mut [f32]) {
        let (k, o) = (g.taps(), g.out_c);
        blocks(
            img,
            g,
            #[inline(always)]
            |cols: &Columns<f32>, p0, n| {
                for c0 in (0..o).step_by(I::LANES) {
                    // SAFETY: the lanes under `mask` are channels c0.. < o of the block's dy rows
                    // and of acc's rows.
                    unsafe {
                        let width = (o - c0).min(I::LANES);
                        let (mask, full) = (I::mask(width), width == I::LANES);
                        let d: [I::V; POSITIONS] = std::array::from_fn(|p| {
                            if p < n {
                                I::load(mask, dy.as_ptr().add((p0 + p) * o + c0))
                            } else {
                                I::zero()
                            }
                        });
                        for t in 0..k {
                            let at = acc.as_mut_ptr().add(t * o + c0);
                            let mut a = I::load(mask, at);
                            for (dp, col) in d.iter().zip(cols) {
                                a = I::fma(I::splat(col[t]), *dp, a);
                            }
                            I::store(mask, full, at, a);
                        }
                    }
                }
            },
        )
    }
}
