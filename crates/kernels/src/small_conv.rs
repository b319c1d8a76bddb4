//! Convolution without a column matrix, for filters with few taps (the first layer of an image
//! model: 3x3 over one channel is K = 9). Through im2col + GEMM such a layer is bound by writing
//! and packing a column matrix K times the size of its input, and GEMM runs at a fraction of its
//! speed at K = 9. Here the image is copied once into a plane with its padding as zeros, so that
//! every window is inside it and each filter input is one load at a fixed offset from the
//! window's start; blocks of output positions meet 16 or 32 output channels at a time in
//! registers: the forward pass with the bias and ReLU epilogue applied before the one store, the
//! filter gradient accumulating into a K x O sum. (Gathering each window's inputs onto the stack
//! first, with bounds for the windows over the padding, took 4-5x the multiply-adds' time.)

use crate::conv::Conv2dGeometry;
#[cfg(target_arch = "x86_64")]
use crate::F32Simd;
use crate::{Epilogue, Float};

/// Largest filter (taps times input channels) taken by this path.
pub const MAX_TAPS: usize = 32;
/// Output channels per block of the portable path (loops the compiler vectorises).
const LANES: usize = 16;

/// Whether this path computes `g`: a filter of at most [`MAX_TAPS`] inputs, some outputs, and
/// a padded plane not much larger than the image (a dilation far wider than the image would
/// make the plane huge; im2col, bounds-checked per tap, takes those).
pub fn applies(g: &Conv2dGeometry) -> bool {
    let extent = |out: usize, stride: usize, k: usize, dil: usize| {
        out.checked_sub(1)?.checked_mul(stride)?.checked_add(k.checked_sub(1)?.checked_mul(dil)?)?.checked_add(1)
    };
    let plane = (|| {
        extent(g.out_h, g.stride_h, g.k_h, g.dil_h)?
            .checked_mul(extent(g.out_w, g.stride_w, g.k_w, g.dil_w)?)?
            .checked_mul(g.in_c)
    })();
    g.taps() <= MAX_TAPS
        && g.image_len() > 0
        && g.positions() > 0
        && plane.is_some_and(|len| len <= 4 * g.image_len() + 4096)
}

/// Where the windows read: the image in a plane with the padding as zeros (rows and columns as
/// far as the last window reaches), and each filter input's offset from its window's start.
struct Plane {
    /// Floats per row of the plane.
    row: usize,
    /// Floats between the starts of two windows side by side, and one above the other.
    step: (usize, usize),
    rows: usize,
    offsets: [usize; MAX_TAPS],
}

impl Plane {
    fn new(g: &Conv2dGeometry) -> Plane {
        let c = g.in_c;
        let width = (g.out_w - 1) * g.stride_w + (g.k_w - 1) * g.dil_w + 1;
        let row = width * c;
        let mut offsets = [0; MAX_TAPS];
        for (t, off) in offsets.iter_mut().enumerate().take(g.taps()) {
            let (i, j, q) = (t / (g.k_w * c), t / c % g.k_w, t % c);
            *off = i * g.dil_h * row + j * g.dil_w * c + q;
        }
        let rows = (g.out_h - 1) * g.stride_h + (g.k_h - 1) * g.dil_h + 1;
        Plane { row, step: (g.stride_w * c, g.stride_h * row), rows, offsets }
    }

    fn len(&self) -> usize {
        self.rows * self.row
    }

    /// Copies `img` into `plane` (`len` floats), zeros around it.
    fn fill<T: Float>(&self, img: &[T], g: &Conv2dGeometry, plane: &mut [T]) {
        let c = g.in_c;
        let width = self.row / c;
        let (x0, x1) = (g.pad_left.min(width), (g.pad_left + g.in_w).min(width));
        for (r, dst) in plane.chunks_exact_mut(self.row).enumerate() {
            match r.checked_sub(g.pad_top).filter(|&y| y < g.in_h) {
                Some(y) => {
                    dst[..x0 * c].fill(T::zero());
                    dst[x0 * c..x1 * c].copy_from_slice(&img[y * g.in_w * c..][..(x1 - x0) * c]);
                    dst[x1 * c..].fill(T::zero());
                }
                None => dst.fill(T::zero()),
            }
        }
    }

    /// Runs `f(plane, image index)` for each image of `x` (`len` floats each) copied into the
    /// calling thread's scratch plane.
    fn each_image<T: Float>(&self, x: &[T], g: &Conv2dGeometry, mut f: impl FnMut(&[T], usize)) {
        T::with_scratch(self.len(), |plane| {
            for (b, img) in x.chunks_exact(g.image_len()).enumerate() {
                self.fill(img, g, plane);
                f(plane, b);
            }
        })
    }
}

/// The images `x` (`[n, h, w, c]`; `g` as [`applies`] takes) to `out` (`[n, out_h, out_w, o]`, every element written).
pub fn conv_images<T: Float>(x: &[T], w: &[T], g: &Conv2dGeometry, out: &mut [T], epilogue: Epilogue<T>) {
    debug_assert!(applies(g));
    let plane = Plane::new(g);
    let (k, o, p) = (g.taps(), g.out_c, g.positions());
    plane.each_image(x, g, |xs, b| {
        let out = &mut out[b * p * o..][..p * o];
        #[cfg(target_arch = "x86_64")]
        if let Some(f32s) = F32Simd::check::<T>() {
            // SAFETY: `check` proved T is f32 (and the CPU runs the tiled kernels).
            unsafe {
                let e = Epilogue { bias: epilogue.bias.map(|b| f32s.cast(b)), relu: epilogue.relu };
                return simd::conv_image(f32s.cast(xs), &plane, f32s.cast(w), g, f32s.cast_mut(out), e);
            }
        }
        for (q, row) in out.chunks_exact_mut(o).enumerate() {
            let window = &xs[(q / g.out_w) * plane.step.1 + (q % g.out_w) * plane.step.0..];
            let input = |t: usize| window[plane.offsets[t]];
            for c0 in (0..o - o % LANES).step_by(LANES) {
                let mut acc = [T::zero(); LANES];
                for t in 0..k {
                    let v = input(t);
                    acc.iter_mut().zip(&w[t * o + c0..][..LANES]).for_each(|(a, &w)| *a += v * w);
                }
                for (l, a) in acc.into_iter().enumerate() {
                    row[c0 + l] = epilogue.value(a, c0 + l);
                }
            }
            for c in o - o % LANES..o {
                let acc = (0..k).fold(T::zero(), |acc, t| acc + input(t) * w[t * o + c]);
                row[c] = epilogue.value(acc, c);
            }
        }
    })
}

/// Adds the images' (`g` as [`applies`] takes) filter gradient, `sum over images and positions of inputs (x) dy`, to `acc`
/// `[K, o]`, image after image.
pub fn filter_grad_images<T: Float>(x: &[T], dy: &[T], g: &Conv2dGeometry, acc: &mut [T]) {
    debug_assert!(applies(g));
    let plane = Plane::new(g);
    let (k, o, p) = (g.taps(), g.out_c, g.positions());
    plane.each_image(x, g, |xs, b| {
        let dy = &dy[b * p * o..][..p * o];
        #[cfg(target_arch = "x86_64")]
        if let Some(f32s) = F32Simd::check::<T>() {
            // SAFETY: `check` proved T is f32 (and the CPU runs the tiled kernels).
            return unsafe { simd::filter_grad_image(f32s.cast(xs), &plane, f32s.cast(dy), g, f32s.cast_mut(acc)) };
        }
        for (q, row) in dy.chunks_exact(o).enumerate() {
            let window = &xs[(q / g.out_w) * plane.step.1 + (q % g.out_w) * plane.step.0..];
            for t in 0..k {
                let v = window[plane.offsets[t]];
                acc[t * o..][..o].iter_mut().zip(row).for_each(|(a, &d)| *a += v * d);
            }
        }
    })
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::Plane;
    use crate::conv::Conv2dGeometry;
    use crate::gemm_tiled::{on_simd, Isa};
    use crate::Epilogue;

    /// Positions of a forward register tile (x two vectors of output channels).
    const TILE: usize = 4;
    /// Taps of a filter-gradient register group (x two vectors: 12 sums, as AVX2's 16
    /// registers hold beside the two dy vectors and a broadcast).
    const GROUP: usize = 6;

    /// One image of [`super::conv_images`] for f32 (`xs` its plane), on the instruction set
    /// [`crate::cpu::simd`] picks: along each output row, tiles of 4 positions x two vectors of
    /// output channels.
    pub fn conv_image(xs: &[f32], plane: &Plane, w: &[f32], g: &Conv2dGeometry, out: &mut [f32], e: Epilogue<f32>) {
        // SAFETY: `F32Simd::check` (the caller's) proved the CPU runs the tiled kernels.
        on_simd!(I => unsafe { conv_image_on::<I>(xs, plane, w, g, out, e) })
    }

    /// One image of [`super::filter_grad_images`] for f32: per output row and group of up to
    /// six taps x two vectors of output channels, the sums stay in registers along the row.
    pub fn filter_grad_image(xs: &[f32], plane: &Plane, dy: &[f32], g: &Conv2dGeometry, acc: &mut [f32]) {
        // SAFETY: as in `conv_image`.
        on_simd!(I => unsafe { filter_grad_on::<I>(xs, plane, dy, g, acc) })
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
    unsafe fn conv_image_on<I: Isa>(
        xs: &[f32],
        plane: &Plane,
        w: &[f32],
        g: &Conv2dGeometry,
        out: &mut [f32],
        e: Epilogue<f32>,
    ) {
        let (k, o) = (g.taps(), g.out_c);
        for oy in 0..g.out_h {
            for c0 in (0..o).step_by(2 * I::LANES) {
                // SAFETY: the lanes under the masks are channels c0.. < o of w's rows, the bias
                // and the row's outputs; a tile's windows start inside the plane (those past the
                // row's end repeat its last window) and reach at most its last window's inputs.
                unsafe {
                    let (m0, m1, full) = masks::<I>(o, c0);
                    for ox in (0..g.out_w).step_by(TILE) {
                        let stored = TILE.min(g.out_w - ox);
                        let windows: [*const f32; TILE] = std::array::from_fn(|i| {
                            xs.as_ptr().add(oy * plane.step.1 + (ox + i.min(stored - 1)) * plane.step.0)
                        });
                        let dst = out.as_mut_ptr().add((oy * g.out_w + ox) * o + c0);
                        let taps = &plane.offsets[..k];
                        if full {
                            forward_tile::<I, true>(windows, taps, w.as_ptr().add(c0), o, (m0, m1), e, c0, dst, stored);
                        } else {
                            forward_tile::<I, false>(
                                windows,
                                taps,
                                w.as_ptr().add(c0),
                                o,
                                (m0, m1),
                                e,
                                c0,
                                dst,
                                stored,
                            );
                        }
                    }
                }
            }
        }
    }

    /// `TILE` positions (their windows' starts) x two vectors of channels from `w` (row 0 at
    /// channel c0, rows `o` apart) into `dst` (the first position's row at c0), `stored` rows
    /// stored.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn forward_tile<I: Isa, const FULL: bool>(
        windows: [*const f32; TILE],
        taps: &[usize],
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
            for (t, &off) in taps.iter().enumerate() {
                let wt = w.add(t * o);
                let (w0, w1) = (load::<I, FULL>(m0, wt), load::<I, FULL>(m1, wt.add(I::LANES)));
                for (a, window) in acc.iter_mut().zip(windows) {
                    let x = I::splat(*window.add(off));
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
    unsafe fn filter_grad_on<I: Isa>(xs: &[f32], plane: &Plane, dy: &[f32], g: &Conv2dGeometry, acc: &mut [f32]) {
        let (k, o) = (g.taps(), g.out_c);
        for oy in 0..g.out_h {
            // SAFETY: the row's windows start inside the plane and reach its inputs; the lanes
            // under the masks are channels c0.. < o of the row's dy rows and of acc's rows
            // t0..t0 + taps < k.
            unsafe {
                let row = xs.as_ptr().add(oy * plane.step.1);
                for c0 in (0..o).step_by(2 * I::LANES) {
                    let (m0, m1, full) = masks::<I>(o, c0);
                    let dy = dy.as_ptr().add(oy * g.out_w * o + c0);
                    for t0 in (0..k).step_by(GROUP) {
                        let at = acc.as_mut_ptr().add(t0 * o + c0);
                        let taps = &plane.offsets[t0..k];
                        let run = (row, plane.step.0, g.out_w);
                        macro_rules! group {
                            ($($taps:literal)*) => {
                                match (k - t0).min(GROUP) {
                                    $(
                                        $taps if full => grad_group::<I, $taps, true>(run, taps, dy, o, (m0, m1), at),
                                        $taps => grad_group::<I, $taps, false>(run, taps, dy, o, (m0, m1), at),
                                    )*
                                    _ => unreachable!("1..=GROUP taps"),
                                }
                            };
                        }
                        group!(1 2 3 4 5 6);
                    }
                }
            }
        }
    }

    /// Adds the first `G` of `taps` x two vectors of channels over a row of positions (`run`:
    /// the first window's start, floats between windows, positions; their dy rows from `dy`,
    /// `o` apart) to `acc` (the first tap's row at the first channel, rows `o` apart).
    #[inline(always)]
    unsafe fn grad_group<I: Isa, const G: usize, const FULL: bool>(
        (row, step, positions): (*const f32, usize, usize),
        taps: &[usize],
        dy: *const f32,
        o: usize,
        (m0, m1): (I::M, I::M),
        acc: *mut f32,
    ) {
        // SAFETY: the caller's (see `filter_grad_on`).
        unsafe {
            let taps: [usize; G] = std::array::from_fn(|j| taps[j]);
            let mut a: [[I::V; 2]; G] = std::array::from_fn(|j| {
                [load::<I, FULL>(m0, acc.add(j * o)), load::<I, FULL>(m1, acc.add(j * o + I::LANES))]
            });
            for p in 0..positions {
                let (window, d) = (row.add(p * step), dy.add(p * o));
                let (d0, d1) = (load::<I, FULL>(m0, d), load::<I, FULL>(m1, d.add(I::LANES)));
                for (aj, &off) in a.iter_mut().zip(&taps) {
                    let x = I::splat(*window.add(off));
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `a·b + c` as the kernels round it: once with the vector units' FMA, twice portably.
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if F32Simd::check::<f32>().is_some() {
            return a.mul_add(b, c);
        }
        a * b + c
    }

    /// Input `t` (tap-major, channel last) of output position (oy, ox)'s window, zero in the
    /// padding.
    fn window(img: &[f32], g: &Conv2dGeometry, oy: usize, ox: usize, t: usize) -> f32 {
        let (i, j, q) = (t / (g.k_w * g.in_c), t / g.in_c % g.k_w, t % g.in_c);
        let y = (oy * g.stride_h + i * g.dil_h).wrapping_sub(g.pad_top);
        let x = (ox * g.stride_w + j * g.dil_w).wrapping_sub(g.pad_left);
        if y < g.in_h && x < g.in_w {
            img[(y * g.in_w + x) * g.in_c + q]
        } else {
            0.0
        }
    }

    fn geometry() -> impl Strategy<Value = (Conv2dGeometry, usize)> {
        (
            1usize..13,
            1usize..13,
            1usize..4,
            1usize..4,
            1usize..4,
            1usize..41,
            1usize..4,
            1usize..3,
            any::<bool>(),
            0usize..3,
        )
            .prop_filter("a small filter", |&(_, _, c, kh, kw, ..)| c * kh * kw <= MAX_TAPS)
            .prop_map(|(h, w, c, kh, kw, o, s, d, same, sy)| {
                (Conv2dGeometry::new([1, h, w, c], [kh, kw, c, o], [s, s.max(sy)], [d, d], same), sy)
            })
            .prop_filter("the path takes it", |(g, _)| applies(g))
    }

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Every output is one chain of multiply-adds over the taps from zero, then the bias and
        /// ReLU; every filter-gradient sum one chain over the positions in order, from what the
        /// sum held: the bits do not depend on the vector width, tiles or groups.
        #[test]
        fn roundings_are_the_documented_chains((g, seed) in geometry()) {
            let (k, o, p) = (g.taps(), g.out_c, g.positions());
            let (img, w, bias) = (values(g.image_len(), seed), values(k * o, seed + 1), values(o, seed + 2));
            let mut out = vec![f32::NAN; p * o];
            conv_images(&img, &w, &g, &mut out, Epilogue { bias: Some(&bias), relu: true });
            for q in 0..p {
                for c in 0..o {
                    let sum = (0..k).fold(0.0, |acc, t| mul_add(window(&img, &g, q / g.out_w, q % g.out_w, t), w[t * o + c], acc));
                    let v = sum + bias[c];
                    let want = if v < 0.0 { 0.0 } else { v };
                    prop_assert_eq!(out[q * o + c].to_bits(), want.to_bits(), "position {} channel {}", q, c);
                }
            }
            let dy = values(p * o, seed + 3);
            let mut acc = values(k * o, seed + 4);
            let start = acc.clone();
            filter_grad_images(&img, &dy, &g, &mut acc);
            for t in 0..k {
                for c in 0..o {
                    let want = (0..p).fold(start[t * o + c], |a, q| mul_add(window(&img, &g, q / g.out_w, q % g.out_w, t), dy[q * o + c], a));
                    prop_assert_eq!(acc[t * o + c].to_bits(), want.to_bits(), "tap {} channel {}", t, c);
                }
            }
        }
    }
}
