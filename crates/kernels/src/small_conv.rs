//! Convolution without a column matrix, for filters with few taps (the first layer of an image
//! model: 3x3 over one channel is K = 9). Through im2col + GEMM such a layer is bound by writing
//! and packing a column matrix K times the size of its input, and GEMM runs at a fraction of its
//! speed at K = 9. Here each block of 8 output positions gathers its K inputs onto the stack
//! and meets 16 output channels at a time in registers: the forward pass with the bias and ReLU
//! epilogue applied before the one store, the filter gradient accumulating into a K x O sum.

use crate::conv::Conv2dGeometry;
#[cfg(target_arch = "x86_64")]
use crate::F32Avx512;
use crate::{Epilogue, Float};

/// Largest filter (taps times input channels) taken by this path.
pub const MAX_TAPS: usize = 32;
/// Output positions per register block.
const POSITIONS: usize = 8;
/// Output channels per register block (one AVX-512 register of f32).
const LANES: usize = 16;

/// One image: `img` `[h, w, c]` to `out` `[out_h, out_w, o]` (every element written).
pub fn conv_image<T: Float>(img: &[T], w: &[T], g: &Conv2dGeometry, out: &mut [T], epilogue: Epilogue<T>) {
    debug_assert!(g.taps() <= MAX_TAPS);
    #[cfg(target_arch = "x86_64")]
    if let Some(f32s) = F32Avx512::check::<T>() {
        // SAFETY: `check` proved T is f32 and the CPU has AVX-512F.
        unsafe {
            let epilogue = Epilogue { bias: epilogue.bias.map(|b| f32s.cast(b)), relu: epilogue.relu };
            return avx512::conv_image(f32s.cast(img), f32s.cast(w), g, f32s.cast_mut(out), epilogue);
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
    if let Some(f32s) = F32Avx512::check::<T>() {
        // SAFETY: `check` proved T is f32 and the CPU has AVX-512F.
        return unsafe { avx512::filter_grad_image(f32s.cast(img), f32s.cast(dy), g, f32s.cast_mut(acc)) };
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
mod avx512 {
    use super::{blocks, forward_leftover, Columns, LANES, POSITIONS};
    use crate::conv::Conv2dGeometry;
    use crate::Epilogue;
    use std::arch::x86_64::*;

    /// [`super::conv_image`] for f32 with 8x16 accumulators in AVX-512 registers.
    #[target_feature(enable = "avx512f")]
    pub fn conv_image(img: &[f32], w: &[f32], g: &Conv2dGeometry, out: &mut [f32], epilogue: Epilogue<f32>) {
        let (k, o) = (g.taps(), g.out_c);
        blocks(img, g, |cols, p0, n| {
            let rows = &mut out[p0 * o..(p0 + n) * o];
            for c0 in (0..o - o % LANES).step_by(LANES) {
                forward_block(cols, k, w, o, c0, rows, n, &epilogue);
            }
            forward_leftover(cols, k, w, o, rows, n, &epilogue);
        })
    }

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    fn forward_block(
        cols: &Columns<f32>,
        k: usize,
        w: &[f32],
        o: usize,
        c0: usize,
        rows: &mut [f32],
        n: usize,
        epilogue: &Epilogue<f32>,
    ) {
        let mut acc = [_mm512_setzero_ps(); POSITIONS];
        for t in 0..k {
            let wt = load(&w[t * o + c0..]);
            for (a, col) in acc.iter_mut().zip(cols) {
                *a = _mm512_fmadd_ps(_mm512_set1_ps(col[t]), wt, *a);
            }
        }
        let bias = epilogue.bias.map(|b| load(&b[c0..]));
        for (p, mut v) in acc.into_iter().take(n).enumerate() {
            if let Some(b) = bias {
                v = _mm512_add_ps(v, b);
            }
            if epilogue.relu {
                // max(v, 0) returns the second operand unless v > 0: NaN and -0 give +0, as
                // `if v > 0 { v } else { 0 }`.
                // NaN in the second operand is returned as is (MAXPS), as TF's ReLU keeps NaN.
                v = _mm512_max_ps(_mm512_setzero_ps(), v);
            }
            store(&mut rows[p * o + c0..], v);
        }
    }

    /// [`super::filter_grad_image`] for f32: per 16 output channels, the block's 8 rows of dy
    /// stay in registers while every tap's running sum is updated.
    #[target_feature(enable = "avx512f")]
    pub fn filter_grad_image(img: &[f32], dy: &[f32], g: &Conv2dGeometry, acc: &mut [f32]) {
        let (k, o) = (g.taps(), g.out_c);
        blocks(img, g, |cols, p0, n| {
            let rows = &dy[p0 * o..(p0 + n) * o];
            for c0 in (0..o - o % LANES).step_by(LANES) {
                let d: [__m512; POSITIONS] =
                    std::array::from_fn(|p| if p < n { load(&rows[p * o + c0..]) } else { _mm512_setzero_ps() });
                for t in 0..k {
                    let mut a = load(&acc[t * o + c0..]);
                    for (dp, col) in d.iter().zip(cols) {
                        a = _mm512_fmadd_ps(_mm512_set1_ps(col[t]), *dp, a);
                    }
                    store(&mut acc[t * o + c0..], a);
                }
            }
            for c in o - o % LANES..o {
                for (col, row) in cols.iter().zip(rows.chunks(o)) {
                    for t in 0..k {
                        acc[t * o + c] += col[t] * row[c];
                    }
                }
            }
        })
    }

    #[inline(always)]
    fn load(s: &[f32]) -> __m512 {
        let s: &[f32; LANES] = s[..LANES].try_into().expect("16 lanes");
        // SAFETY: `s` is 16 readable f32; inlined only into AVX-512 functions.
        unsafe { _mm512_loadu_ps(s.as_ptr()) }
    }

    #[inline(always)]
    fn store(d: &mut [f32], v: __m512) {
        let d: &mut [f32; LANES] = (&mut d[..LANES]).try_into().expect("16 lanes");
        // SAFETY: `d` is 16 writable f32; inlined only into AVX-512 functions.
        unsafe { _mm512_storeu_ps(d.as_mut_ptr(), v) }
    }
}
