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
    blocks::<T, POSITIONS>(img, g, |cols, p0, n| {
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
    blocks::<T, POSITIONS>(img, g, |cols, p0, n| {
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
fn blocks<T: Float, const N: usize>(img: &[T], g: &Conv2dGeometry, mut f: impl FnMut(&Columns<T, N>, usize, usize)) {
    let (k, positions) = (g.taps(), g.positions());
    let taps = TapOffsets::new(g);
    let mut cols = [[T::zero(); MAX_TAPS]; N];
    let (mut oy, mut ox) = (0, 0);
    for p0 in (0..positions).step_by(N) {
        let n = N.min(positions - p0);
        for (p, col) in cols.iter_mut().enumerate() {
            if p < n {
                taps.gather(img, g, oy, ox, &mut col[..k]);
                ox += 1;
                if ox == g.out_w {
                    (oy, ox) = (oy + 1, 0);
                }
            } else {
                col[..k].fill(T::zero());
            }
        }
        f(&cols, p0, n);
    }
}

/// The gathered inputs of one block of `N` positions.
type Columns<T, const N: usize> = [[T; MAX_TAPS]; N];

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

    /// The K input values (zero in the padding) of output position (`oy`, `ox`): one load each
    /// when the window is inside the image, else tap by tap with bounds (no divisions: they
    /// made the 14% of conv1's windows on the border cost as much as the rest).
    #[inline(always)]
    fn gather<T: Float>(&self, img: &[T], g: &Conv2dGeometry, oy: usize, ox: usize, col: &mut [T]) {
        let c = g.in_c;
        let (y0, x0) = (oy * g.stride_h, ox * g.stride_w);
        let inside = y0 >= g.pad_top
            && x0 >= g.pad_left
            && y0 - g.pad_top + (g.k_h - 1) * g.dil_h < g.in_h
            && x0 - g.pad_left + (g.k_w - 1) * g.dil_w < g.in_w;
        if inside {
            let window = &img[((y0 - g.pad_top) * g.in_w + x0 - g.pad_left) * c..];
            debug_assert!(self.offsets[..col.len()].iter().all(|&off| off < window.len()));
            // SAFETY: the window's last row and column are inside the image (checked above), and
            // every offset is a tap's (row, column, channel) inside the window.
            col.iter_mut().zip(&self.offsets).for_each(|(d, &off)| *d = unsafe { *window.get_unchecked(off) });
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
    cols: &Columns<T, POSITIONS>,
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
    cols: &Columns<T, POSITIONS>,
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
    use super::{blocks, Columns, MAX_TAPS};
    use crate::conv::Conv2dGeometry;
    use crate::gemm_tiled::{on_simd, Isa};
    use crate::Epilogue;

    /// Output positions gathered onto the stack at a time (8 KiB of inputs at 32 taps): the
    /// filter gradient keeps its sums in registers across them.
    const CHUNK: usize = 64;
    /// Positions of a forward register tile (x two vectors of output channels).
    const TILE: usize = 4;
    /// Taps of a filter-gradient register group (x two vectors: 12 sums, as AVX2's 16
    /// registers hold beside the two dy vectors and a broadcast).
    const GROUP: usize = 6;

    /// [`super::conv_image`] for f32, on the instruction set [`crate::cpu::simd`] picks: per
    /// chunk of gathered positions, tiles of 4 positions x two vectors of output channels.
    pub fn conv_image(img: &[f32], w: &[f32], g: &Conv2dGeometry, out: &mut [f32], epilogue: Epilogue<f32>) {
        // SAFETY: `F32Simd::check` (the caller's) proved the CPU runs the tiled kernels.
        on_simd!(I => unsafe { conv_image_on::<I>(img, w, g, out, epilogue) })
    }

    /// [`super::filter_grad_image`] for f32: per chunk of gathered positions and group of up to
    /// six taps x two vectors of output channels, the sums stay in registers over the chunk.
    pub fn filter_grad_image(img: &[f32], dy: &[f32], g: &Conv2dGeometry, acc: &mut [f32]) {
        // SAFETY: as in `conv_image`.
        on_simd!(I => unsafe { filter_grad_on::<I>(img, dy, g, acc) })
    }

    /// The masks of the two vectors of output channels from `c0` (of `o`), and whether both
    /// are whole.
    #[inline(always)]
    unsafe fn masks<I: Isa>(o: usize, c0: usize) -> (I::M, I::M, bool) {
        let width = (o - c0).min(2 * I::LANES);
        // SAFETY: mask only builds a lane pattern.
        unsafe { (I::mask(width.min(I::LANES)), I::mask(width.saturating_sub(I::LANES)), width == 2 * I::LANES) }
    }

    /// Loads the lanes under `m` (all of them when `FULL`: AVX2's masked loads cost twice a
    /// plain one on Zen 3).
    #[inline(always)]
    unsafe fn load<I: Isa, const FULL: bool>(m: I::M, p: *const f32) -> I::V {
        // SAFETY: the caller's: the lanes under `m` (every lane when FULL) are readable.
        unsafe {
            if FULL {
                I::load_all(m, p)
            } else {
                I::load(m, p)
            }
        }
    }

    /// Every output as one chain of FMAs over the taps from zero, then bias and ReLU: the
    /// same roundings whatever the vector width or tile.
    #[inline(always)]
    unsafe fn conv_image_on<I: Isa>(img: &[f32], w: &[f32], g: &Conv2dGeometry, out: &mut [f32], e: Epilogue<f32>) {
        let (k, o) = (g.taps(), g.out_c);
        blocks::<f32, CHUNK>(
            img,
            g,
            #[inline(always)]
            |cols: &Columns<f32, CHUNK>, p0, n| {
                for c0 in (0..o).step_by(2 * I::LANES) {
                    // SAFETY: the lanes under the masks are channels c0.. < o of w's rows, the
                    // bias and the chunk's output rows; tiles read gathered rows < CHUNK
                    // (zeros past `n`) and store only rows < n.
                    unsafe {
                        let (m0, m1, full) = masks::<I>(o, c0);
                        for t0 in (0..n).step_by(TILE) {
                            let rows = &cols[t0..t0 + TILE];
                            let dst = out.as_mut_ptr().add((p0 + t0) * o + c0);
                            let stored = TILE.min(n - t0);
                            if full {
                                forward_tile::<I, true>(rows, k, w.as_ptr().add(c0), o, (m0, m1), e, c0, dst, stored);
                            } else {
                                forward_tile::<I, false>(rows, k, w.as_ptr().add(c0), o, (m0, m1), e, c0, dst, stored);
                            }
                        }
                    }
                }
            },
        )
    }

    /// `TILE` positions x two vectors of channels from `w` (row 0 at channel c0, rows `o`
    /// apart) into `dst` (the first position's row at c0), `stored` rows stored.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn forward_tile<I: Isa, const FULL: bool>(
        rows: &[[f32; MAX_TAPS]],
        k: usize,
        w: *const f32,
        o: usize,
        (m0, m1): (I::M, I::M),
        e: Epilogue<f32>,
        c0: usize,
        dst: *mut f32,
        stored: usize,
    ) {
        // SAFETY: the caller's (see `conv_image_on`).
        unsafe {
            let mut acc = [[I::zero(); 2]; TILE];
            for t in 0..k {
                let wt = w.add(t * o);
                let (w0, w1) = (load::<I, FULL>(m0, wt), load::<I, FULL>(m1, wt.add(I::LANES)));
                for (a, row) in acc.iter_mut().zip(rows) {
                    let x = I::splat(row[t]);
                    a[0] = I::fma(x, w0, a[0]);
                    a[1] = I::fma(x, w1, a[1]);
                }
            }
            let bias = e.bias.map(|b| {
                let b = b.as_ptr().add(c0);
                (load::<I, FULL>(m0, b), load::<I, FULL>(m1, b.add(I::LANES)))
            });
            for (p, [mut v0, mut v1]) in acc.into_iter().enumerate().take(stored) {
                if let Some((b0, b1)) = bias {
                    (v0, v1) = (I::add(v0, b0), I::add(v1, b1));
                }
                if e.relu {
                    // max(0, v) is v unless 0 > v: a NaN is kept, as TF's ReLU keeps it.
                    (v0, v1) = (I::max(I::zero(), v0), I::max(I::zero(), v1));
                }
                let d = dst.add(p * o);
                I::store(m0, FULL, d, v0);
                I::store(m1, FULL, d.add(I::LANES), v1);
            }
        }
    }

    /// Each sum `acc[t][c]` as one chain of FMAs over the image's positions in order: the same
    /// roundings whatever the vector width or grouping.
    #[inline(always)]
    unsafe fn filter_grad_on<I: Isa>(img: &[f32], dy: &[f32], g: &Conv2dGeometry, acc: &mut [f32]) {
        let (k, o) = (g.taps(), g.out_c);
        blocks::<f32, CHUNK>(
            img,
            g,
            #[inline(always)]
            |cols: &Columns<f32, CHUNK>, p0, n| {
                let rows = &cols[..n];
                for c0 in (0..o).step_by(2 * I::LANES) {
                    // SAFETY: the lanes under the masks are channels c0.. < o of the chunk's dy
                    // rows and of acc's rows t0..t0 + taps < k.
                    unsafe {
                        let (m0, m1, full) = masks::<I>(o, c0);
                        let dy = dy.as_ptr().add(p0 * o + c0);
                        for t0 in (0..k).step_by(GROUP) {
                            let at = acc.as_mut_ptr().add(t0 * o + c0);
                            macro_rules! group {
                                ($($taps:literal)*) => {
                                    match (k - t0).min(GROUP) {
                                        $(
                                            $taps if full => grad_group::<I, $taps, true>(rows, t0, dy, o, (m0, m1), at),
                                            $taps => grad_group::<I, $taps, false>(rows, t0, dy, o, (m0, m1), at),
                                        )*
                                        _ => unreachable!("1..=GROUP taps"),
                                    }
                                };
                            }
                            group!(1 2 3 4 5 6);
                        }
                    }
                }
            },
        )
    }

    /// Adds taps `t0..t0 + G` x two vectors of channels over `rows` (gathered positions, their
    /// dy rows from `dy`, `o` apart) to `acc` (row t0 at the first channel, rows `o` apart).
    #[inline(always)]
    unsafe fn grad_group<I: Isa, const G: usize, const FULL: bool>(
        rows: &[[f32; MAX_TAPS]],
        t0: usize,
        dy: *const f32,
        o: usize,
        (m0, m1): (I::M, I::M),
        acc: *mut f32,
    ) {
        // SAFETY: the caller's (see `filter_grad_on`).
        unsafe {
            let mut a: [[I::V; 2]; G] = std::array::from_fn(|j| {
                [load::<I, FULL>(m0, acc.add(j * o)), load::<I, FULL>(m1, acc.add(j * o + I::LANES))]
            });
            for (p, row) in rows.iter().enumerate() {
                let d = dy.add(p * o);
                let (d0, d1) = (load::<I, FULL>(m0, d), load::<I, FULL>(m1, d.add(I::LANES)));
                for (j, aj) in a.iter_mut().enumerate() {
                    let x = I::splat(row[t0 + j]);
                    aj[0] = I::fma(x, d0, aj[0]);
                    aj[1] = I::fma(x, d1, aj[1]);
                }
            }
            for (j, [v0, v1]) in a.into_iter().enumerate() {
                I::store(m0, FULL, acc.add(j * o), v0);
                I::store(m1, FULL, acc.add(j * o + I::LANES), v1);
            }
        }
    }
}
