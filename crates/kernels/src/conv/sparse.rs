//! A convolution's two gradients from a `dy` that is mostly zeros, the zeros skipped. A
//! max-pooling routes its gradient to one cell of each window (the CNN's conv2: at most a
//! quarter of `dy` is nonzero, a tenth in training under its ReLU), so `colsᵀ·dy` (the filter's)
//! and `dy·Wᵀ` (the input's) need a quarter of their multiply-adds or fewer.
//! - [`filter_grad`]: each nonzero of a column of `dy` adds its multiple of the position's patch
//!   to that column's chains, held in registers (18 of them for conv2 on AVX-512), a span of
//!   positions at a time so that every column reads the span's patches from L1.
//! - [`input_grad_by_position`]: each nonzero of a row of `dy` adds its multiples of Wᵀ's row at
//!   every tap onto the input positions the taps reach (18 chains for conv2 on AVX-512).
//! - [`input_grad_class`], where a stride class's product runs in several passes (which
//!   [`input_grad_by_position`]'s order cannot round alike): each input position of the class
//!   adds, tap by tap, the rows of Wᵀ that its `dy` row's nonzeros pick; a few positions in
//!   lockstep hide the FMA's latency.
//!
//! Same bits as the dense products: each element of the tiled GEMM ([`crate::gemm_tiled`]) is one
//! chain of FMAs over k in [`pass_depth`] passes, and a term whose factor from `dy` is zero leaves
//! the chain as it was (`0·w + s = s`). Here each chain runs over the same terms in the same
//! order without the zero ones, and is rounded into the result at the same pass boundaries. That
//! holds when the other factor is finite (`0·∞` is NaN, which TF's dense product gives): callers
//! check [`finite`] first. (The one other difference is the sign of a zero sum after a product
//! underflowed to `-0`.) So whether a product runs sparse or dense never changes a digit.

use super::Conv2dGeometry;
use crate::gemm_tiled::{pass_depth, Gather, Isa};
pub(crate) use crate::wide::finite;

/// Whether the sparse products are worth it: the dense ones do `rows·o` steps; the sparse ones
/// one per nonzero, each dearer (one load per multiply-add, from anywhere in the images or
/// Wᵀ, a found bit, a table entry per tap). conv2's filter gradient on a Zen 4 at a density of
/// 0.22: 0.72 of the dense time, so the two meet near a third; a quarter (what a 2x2 pooling's
/// gradient has at most) leaves room for other machines.
pub(crate) fn worth(nonzero: usize, rows: usize, o: usize) -> bool {
    nonzero * 4 <= rows * o
}

/// Words of 64 bits per row of `o` columns.
pub(crate) fn words(o: usize) -> usize {
    o.div_ceil(64)
}

/// `bits` (`rows x words(o)`): bit `j % 64` of word `j / 64` of row `r` set where `dy[r·o + j]`
/// is not zero (NaN included). Returns how many are set.
///
/// # Safety
/// The CPU has `I`; this is inlined into a function compiled with it.
#[inline(always)]
pub(crate) unsafe fn scan<I: Isa>(dy: &[f32], o: usize, bits: &mut [u64]) -> usize {
    let (l, w) = (I::LANES, words(o));
    let mut count = 0;
    for (row, out) in dy.chunks_exact(o).zip(bits.chunks_exact_mut(w)) {
        for (wi, word) in out.iter_mut().enumerate() {
            let (base, end) = (wi * 64, (wi * 64 + 64).min(o));
            let (mut m, mut j) = (0, base);
            while j + l <= end {
                // SAFETY: `l` floats of the row from j.
                m |= unsafe { I::nonzero(row.as_ptr().add(j)) } << (j - base);
                j += l;
            }
            for (i, &v) in row[j..end].iter().enumerate() {
                m |= u64::from(v != 0.0) << (j - base + i);
            }
            *word = m;
            count += m.count_ones() as usize;
        }
    }
    count
}

/// The filter gradient of one group of images, `acc` (`k x o`, row-major, overwritten) =
/// `colsᵀ·dy` over its `rows = nb·p` output positions, as `FilterGroups::run`'s product makes
/// it: `patches` (`gathered`'s table, `segs` taps of `c` channels per position, `k = segs·c`,
/// `c` a multiple of `I::LANES`), `dy` `rows x o` and its `bits` ([`scan`]).
///
/// Each element's chain is over the positions in order; `x` must be [`finite`]. The positions
/// go in spans of `span` (> 0, see [`span`]): every column's chains run over a span's nonzeros,
/// held in memory between spans (which leaves their values as they were), so the patches a
/// span reads stay in L1 while all 64 columns read them.
///
/// # Safety
/// [`crate::gemm_tiled::available`]; the table addresses `rows·segs` runs of `c` readable
/// floats.
pub(crate) unsafe fn filter_grad(patches: Gather, dy: &[f32], bits: &[u64], span: usize, acc: &mut [f32]) {
    thread_local! {
        static COLUMNS: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
        static CHAINS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let k = patches.seg * patches.segs;
    let o = acc.len() / k;
    let rows = dy.len() / o;
    // (The scratch is taken outside the kernel: closures not marked `inline(always)` are
    // compiled without the vector instructions, their intrinsics left as calls.)
    crate::scratch(&COLUMNS, o * rows.div_ceil(64), |columns| {
        crate::scratch(&CHAINS, 2 * o * k, |chains| {
            // SAFETY: forwarded.
            crate::gemm_tiled::on_simd!(J => unsafe { filter_grad_in::<J>(patches, dy, bits, span, columns, chains, acc) })
        })
    })
}

/// [`filter_grad`] with its scratch: `columns` (`o x ⌈rows/64⌉`), `buf` (`o·k`).
///
/// # Safety
/// As [`filter_grad`]'s.
#[inline(always)]
unsafe fn filter_grad_in<I: Isa>(
    patches: Gather,
    dy: &[f32],
    bits: &[u64],
    span: usize,
    columns: &mut [u64],
    buf: &mut [f32],
    acc: &mut [f32],
) {
    let (c, segs) = (patches.seg, patches.segs);
    let k = c * segs;
    let o = acc.len() / k;
    let rows = dy.len() / o;
    let (w, rw) = (words(o), rows.div_ceil(64));
    let kc = pass_depth(rows);
    // Each column's bits over the positions: its nonzeros in order, 64 positions a word (64
    // rows' words transposed at once).
    for (r0, block) in bits.chunks(64 * w).enumerate() {
        for wi in 0..w {
            let mut x: [u64; 64] = std::array::from_fn(|a| block.get(a * w + wi).copied().unwrap_or(0));
            crate::gemm_sparse::transpose_bits(&mut x);
            for (b, &word) in x.iter().enumerate().take(o - wi * 64) {
                columns[(wi * 64 + b) * rw + r0] = word;
            }
        }
    }
    // Each pass, span, column and block of chains in registers over the span's positions in
    // order, resumed from and left in `chains` (`o x k`); a pass's chains are then rounded into
    // `sums` (transposed; into `acc` at the end), as C += pass.
    let (sums, chains) = buf[..2 * o * k].split_at_mut(o * k);
    sums.fill(0.0);
    let blocks = Blocks::new::<I>(c, segs);
    for p0 in (0..rows).step_by(kc) {
        let end = (p0 + kc).min(rows);
        chains.fill(0.0);
        for s0 in (p0..end).step_by(span) {
            let range = s0..(s0 + span).min(end);
            for (j, column) in chains.chunks_exact_mut(k).enumerate() {
                let bits = &columns[j * rw..][..rw];
                if words_in(bits, &range).all(|(_, m)| m == 0) {
                    continue;
                }
                let column = column.as_mut_ptr();
                let pass = Pass { bits, range: range.clone(), j, patches, dy, o, column };
                for (t0, c0, taps) in blocks.iter() {
                    // SAFETY: as this function's; `column` holds the column's k chains.
                    unsafe { run_block::<I, _>(blocks.width, taps, &pass, (t0, c0)) };
                }
            }
        }
        for (s, &t) in sums.iter_mut().zip(chains.iter()) {
            *s += t;
        }
    }
    // SAFETY: `sums` is o x k, `acc` k x o.
    unsafe { transpose_into::<I>(sums, o, k, acc) };
}

/// Output positions per span of [`filter_grad`]: as many as keep in L1 what a span's columns
/// all read, the input rows its patches reach, its table entries and its `dy` rows (conv2: 840
/// bytes a position: 58 on a Xeon's 48 KiB, where spans of 64 to 96 ran alike, 97-99 µs a group
/// of 4 images against 124 µs in one span a pass).
fn span(g: &Conv2dGeometry) -> usize {
    let f = std::mem::size_of::<f32>();
    let input = (g.stride_h * g.in_w * g.in_c * f).div_ceil(g.out_w.max(1));
    let per = input + g.k_h * g.k_w * std::mem::size_of::<usize>() + g.out_c * f;
    (crate::cpu::l1_bytes() / per).max(16)
}

/// `dst` (`cols x rows`, row-major) = `src` (`rows x cols`, row-major) transposed, in blocks of
/// `LANES x LANES` in registers, the edges one float at a time. (Storing down `dst`'s columns
/// one float at a time missed L1 on every row: conv2's 64 x 288 took a fifth of its sparse
/// filter gradient on a Xeon.)
///
/// # Safety
/// Inlined into a function compiled with `I`.
#[inline(always)]
unsafe fn transpose_into<I: Isa>(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    let l = I::LANES;
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    let (whole_r, whole_c) = (rows / l * l, cols / l * l);
    for r0 in (0..whole_r).step_by(l) {
        for c0 in (0..whole_c).step_by(l) {
            // SAFETY: rows r0..r0 + l, columns c0..c0 + l of `src`, their transposes in `dst`.
            unsafe { I::transpose(src.as_ptr().add(r0 * cols + c0), cols, dst.as_mut_ptr().add(c0 * rows + r0), rows) };
        }
    }
    for r in 0..rows {
        let from = if r < whole_r { whole_c } else { 0 };
        for c in from..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

/// `bits`' words that hold positions in `range`, as (word index, the word with only the
/// range's positions left set).
#[inline(always)]
fn words_in<'a>(bits: &'a [u64], range: &std::ops::Range<usize>) -> impl Iterator<Item = (usize, u64)> + 'a {
    let (start, end) = (range.start, range.end);
    (start / 64..end.div_ceil(64)).map(move |w| {
        let (lo, hi) = (start.max(w * 64) - w * 64, end.min(w * 64 + 64) - w * 64);
        (w, (bits[w] >> lo) << lo & (u64::MAX >> (64 - hi)))
    })
}

/// Vectors of channels a block takes at once from a run of `per` vectors: 4, 2 or 1, whichever
/// divides it first.
fn vectors_per_block(per: usize) -> usize {
    [4, 2, 1].into_iter().find(|w| per.is_multiple_of(*w)).unwrap_or(1)
}

/// How a column's `k = segs·c` chains split into blocks held in registers: each block is
/// `taps` consecutive taps times one range of `width` vectors of channels (conv2 on AVX-512:
/// one block of 9 taps x 2 vectors; on AVX2: three of 3 taps x 4).
struct Blocks {
    width: usize,
    c: usize,
    segs: usize,
    taps: usize,
}

impl Blocks {
    fn new<I: Isa>(c: usize, segs: usize) -> Blocks {
        // Chains in registers: of 32 vector registers on AVX-512, of 16 on AVX2, leaving room
        // for the operands.
        let most = if I::LANES == 16 { 24 } else { 12 };
        let per_tap = c / I::LANES;
        let width = vectors_per_block(per_tap);
        let taps = segs.div_ceil(segs.div_ceil(most / width));
        Blocks { width: width * I::LANES, c, segs, taps }
    }

    /// Each block's first tap, first channel and taps.
    fn iter(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let taps = (0..self.segs).step_by(self.taps).map(|t0| (t0, self.taps.min(self.segs - t0)));
        (0..self.c).step_by(self.width).flat_map(move |c0| taps.clone().map(move |(t0, n)| (t0, c0, n)))
    }
}

/// One column of `dy` over one span of the positions: what each of its blocks of chains reads.
struct Pass<'a> {
    /// The column's bits, one per position.
    bits: &'a [u64],
    /// The span's positions.
    range: std::ops::Range<usize>,
    /// The column.
    j: usize,
    patches: Gather,
    /// `rows x o`.
    dy: &'a [f32],
    o: usize,
    /// The column's chains (`k` floats), resumed and left there.
    column: *mut f32,
}

/// Chains held in registers over one block of taps (from `at.0`) and channels (from `at.1`):
/// what [`run_block`] runs, with the chain count a constant.
trait Chains {
    /// `W` vectors of channels per tap, `N` chains in all.
    ///
    /// # Safety
    /// Inlined into a function compiled with `I`; the implementor's addresses are valid.
    unsafe fn run<I: Isa, const W: usize, const N: usize>(&self, at: (usize, usize));
}

/// `chains.run` with `width / LANES` vectors per tap and `taps` taps: chains in registers, every
/// address a table entry or a row plus a constant.
///
/// # Safety
/// As [`Chains::run`]'s; `width / LANES` is 1, 2 or 4 and `taps · width / LANES <= 24`.
#[inline(always)]
unsafe fn run_block<I: Isa, C: Chains>(width: usize, taps: usize, chains: &C, at: (usize, usize)) {
    macro_rules! by_taps {
        ($w:literal: $($t:literal)*) => {
            match taps {
                // SAFETY: forwarded.
                $($t => unsafe { chains.run::<I, $w, { $w * $t }>(at) },)*
                _ => unreachable!("at most 24 chains"),
            }
        };
    }
    match width / I::LANES {
        1 => by_taps!(1: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24),
        2 => by_taps!(2: 1 2 3 4 5 6 7 8 9 10 11 12),
        _ => by_taps!(4: 1 2 3 4 5 6),
    }
}

impl Chains for Pass<'_> {
    /// One block of the column's chains, resumed from memory, over the span's positions whose
    /// bit is set, and left in memory again.
    #[inline(always)]
    unsafe fn run<I: Isa, const W: usize, const N: usize>(&self, (t0, c0): (usize, usize)) {
        let Pass { bits, ref range, j, patches, dy, o, column } = *self;
        let (c, segs, l) = (patches.seg, patches.segs, I::LANES);
        let chain = |u: usize| (t0 + u / W) * c + c0 + (u % W) * l;
        // SAFETY (all below): `column` holds every chain; each table entry addresses `c` floats.
        unsafe {
            let mut acc: [I::V; N] = std::array::from_fn(|u| I::load_all(I::mask(l), column.add(chain(u))));
            for (w, mut m) in words_in(bits, range) {
                while m != 0 {
                    let r = w * 64 + m.trailing_zeros() as usize;
                    m &= m - 1;
                    let v = I::splat(*dy.get_unchecked(r * o + j));
                    let row = patches.table.add(r * segs + t0);
                    for (u, a) in acc.iter_mut().enumerate() {
                        let x = (*row.add(u / W)).add(c0 + (u % W) * l);
                        *a = I::fma(v, I::load_all(I::mask(l), x), *a);
                    }
                }
            }
            for (u, &a) in acc.iter().enumerate() {
                I::store(I::mask(l), true, column.add(chain(u)), a);
            }
        }
    }
}

/// One group's filter gradient (`nb` images `x` from its first, their `dy` rows, `acc` `k x
/// o` overwritten) by [`filter_grad`], when `dy` is sparse enough ([`worth`]) and `x` is
/// [`finite`]; `false`, nothing written, otherwise (or where the input's channels are not a
/// multiple of 16: the patches are read in whole vectors).
pub(crate) fn try_filter_grad(x: &[f32], dy: &[f32], g: &Conv2dGeometry, nb: usize, acc: &mut [f32]) -> bool {
    thread_local! {
        static BITS: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let (o, rows) = (g.out_c, nb * g.positions());
    let dy = &dy[..rows * o];
    if rows == 0 || o == 0 || !g.in_c.is_multiple_of(16) {
        return false;
    }
    crate::scratch(&BITS, rows * words(o), |bits| {
        // SAFETY: `simd` picked the set; scan reads whole rows of o floats (a multiple of 16).
        let nonzero = crate::gemm_tiled::on_simd!(I => unsafe { scan::<I>(dy, o, bits) });
        if !worth(nonzero, rows, o) || !finite(&x[..nb * g.image_len()]) {
            return false;
        }
        super::gathered(x.as_ptr(), g, nb, None, |patches| {
            // SAFETY: as above; the table addresses the group's images or zeros, `c` floats each.
            unsafe { filter_grad(patches, dy, bits, span(g), acc) }
        });
        true
    })
}

/// One stride class of a chunk's input gradient (see `input_grad::StrideClass`), `dx` rows =
/// `dy·Wᵀ` over the class's taps, as `input_gradient_by_class`'s gathered product makes it:
/// row `r` of the class (its pointer `out[r]`, `c` floats) takes, for each of the `taps` taps,
/// the row `sources[r·taps + tap]` of `dy` (`NONE`: outside `dy`, zeros) times the tap's `o x
/// c` block of `wt` (the class's stacked Wᵀ). Each element is one chain over (tap, column) in
/// order, the zero terms skipped; `bits` are `dy`'s ([`scan`]); `wt` must be [`finite`].
///
/// # Safety
/// [`crate::gemm_tiled::available`]; `c` is a multiple of 16; every `out` pointer addresses `c`
/// writable floats, distinct rows; `sources` index rows of `dy` (`o` floats each) or are `NONE`.
pub(crate) unsafe fn input_grad_class(
    sources: &[usize],
    taps: usize,
    bits: &[u64],
    dy: &[f32],
    wt: &[f32],
    out: &[usize],
    c: usize,
) {
    let rows = out.len();
    let o = wt.len() / (taps * c);
    let class = Class { sources, taps, bits, dy, o, wt, c };
    // SAFETY: forwarded.
    crate::gemm_tiled::on_simd!(I => unsafe {
        let per_ch = c / I::LANES;
        let width = vectors_per_block(per_ch);
        for c0 in (0..c).step_by(width * I::LANES) {
            for r0 in (0..rows).step_by(8 / width) {
                let live = (8 / width).min(rows - r0);
                match width {
                    4 => class.rows::<I, 2, 4>(r0, live, c0, out),
                    2 => class.rows::<I, 4, 2>(r0, live, c0, out),
                    _ => class.rows::<I, 8, 1>(r0, live, c0, out),
                }
            }
        }
    })
}

/// A chunk's input gradient by `dy` position, `dy`'s zeros skipped: `dx` (`nb` images, zeroed
/// here) receives, from each row of `dy` (the last first), each nonzero's multiple of Wᵀ's row
/// (`wj`: `o x taps x c`, the filter `[kh, kw, c, o]` with `o` first) at every tap, added onto
/// the `dx` rows the taps reach, a block of taps at a time in registers. One load of `dy` and
/// one set bit serve every tap (conv2 on AVX-512: 18 FMAs each), where [`input_grad_class`]
/// finds and loads them again for each tap of each input position.
///
/// The bits of the stride classes' gathered products (`input_grad::input_gradient_by_class`)
/// when each class's `taps·o` is one [`pass_depth`]: a `dx` row's chain there runs over its
/// taps in order, then `dy`'s columns in order, and its taps in order reach `dy` rows in
/// reverse order (tap `(ky, kx)` reaches row `((y + pad - ky·dil) / stride, ...)`), so taking
/// the rows last to first and their columns in order adds the same terms in the same order.
/// `bits` are `dy`'s ([`scan`]); `wj` must be [`finite`].
///
/// # Safety
/// [`crate::gemm_tiled::available`]; `c` is a multiple of 16; `dy` and `bits` hold `nb` images'
/// rows, `wj` `o·kh·kw·c` floats, `junk` `c` floats.
pub(crate) unsafe fn input_grad_by_position(
    dy: &[f32],
    bits: &[u64],
    wj: &[f32],
    g: &Conv2dGeometry,
    dx: &mut [f32],
    junk: &mut [f32],
) {
    let (p, o, len) = (g.positions(), g.out_c, g.image_len());
    let w = words(o);
    dx.fill(0.0);
    crate::gemm_tiled::on_simd!(I => {
        let blocks = Blocks::new::<I>(g.in_c, g.k_h * g.k_w);
        for (n, dx) in dx.chunks_exact_mut(len).enumerate() {
            let image = ByPosition {
                g,
                dy: &dy[n * p * o..][..p * o],
                bits: &bits[n * p * w..][..p * w],
                wj: wj.as_ptr(),
                dx: dx.as_mut_ptr(),
                junk: junk.as_mut_ptr(),
            };
            for (t0, c0, taps) in blocks.iter() {
                // SAFETY: as this function's.
                unsafe { run_block::<I, _>(blocks.width, taps, &image, (t0, c0)) };
            }
        }
    })
}

/// One image of [`input_grad_by_position`].
struct ByPosition<'a> {
    g: &'a Conv2dGeometry,
    dy: &'a [f32],
    bits: &'a [u64],
    wj: *const f32,
    dx: *mut f32,
    /// Where the taps that fall in the padding add (`c` floats, never read back).
    junk: *mut f32,
}

impl Chains for ByPosition<'_> {
    /// Each row of `dy` with a nonzero, last first: the block's `dx` rows loaded, each nonzero
    /// column's terms added, stored.
    #[inline(always)]
    unsafe fn run<I: Isa, const W: usize, const N: usize>(&self, (t0, c0): (usize, usize)) {
        let g = self.g;
        let (o, c, l, w, taps) = (g.out_c, g.in_c, I::LANES, words(g.out_c), g.k_h * g.k_w);
        // SAFETY (all below): rows of `dy`, `bits` and `wj` inside them; `dx` rows inside the
        // image (bounds checked), else `junk`; every chain's `c0 + (u % W)·l + l <= c`.
        unsafe {
            for py in (0..g.out_h).rev() {
                for px in (0..g.out_w).rev() {
                    let r = py * g.out_w + px;
                    let bits = self.bits.get_unchecked(r * w..(r + 1) * w);
                    if bits.iter().all(|&b| b == 0) {
                        continue;
                    }
                    let at: [*mut f32; N] = std::array::from_fn(|u| {
                        let t = t0 + u / W;
                        let y = (py * g.stride_h + t / g.k_w * g.dil_h).wrapping_sub(g.pad_top);
                        let x = (px * g.stride_w + t % g.k_w * g.dil_w).wrapping_sub(g.pad_left);
                        let row = if y < g.in_h && x < g.in_w { self.dx.add((y * g.in_w + x) * c) } else { self.junk };
                        row.add(c0 + (u % W) * l)
                    });
                    let mut acc: [I::V; N] = std::array::from_fn(|u| I::load_all(I::mask(l), at[u]));
                    let dy = self.dy.as_ptr().add(r * o);
                    for (wi, &word) in bits.iter().enumerate() {
                        let mut m = word;
                        while m != 0 {
                            let j = wi * 64 + m.trailing_zeros() as usize;
                            m &= m - 1;
                            let (v, row) = (I::splat(*dy.add(j)), self.wj.add((j * taps + t0) * c + c0));
                            for (u, a) in acc.iter_mut().enumerate() {
                                *a = I::fma(v, I::load_all(I::mask(l), row.add(u / W * c + u % W * l)), *a);
                            }
                        }
                    }
                    for (u, &a) in acc.iter().enumerate() {
                        I::store(I::mask(l), true, at[u], a);
                    }
                }
            }
        }
    }
}

/// A `dy` row outside `dy` (the tap falls in the padding).
pub(crate) const NONE: usize = usize::MAX;

/// What [`input_grad_class`] reads.
struct Class<'a> {
    sources: &'a [usize],
    taps: usize,
    bits: &'a [u64],
    dy: &'a [f32],
    o: usize,
    wt: &'a [f32],
    c: usize,
}

impl Class<'_> {
    /// `live` (<= R) rows from `r0`, `V` vectors of channels from `c0`: R rows' chains in
    /// lockstep (eight chains hide the FMA's latency), a row without a term at a step taking
    /// `0·w`, which leaves its chain as it was.
    ///
    /// # Safety
    /// As [`input_grad_class`]'s; inlined into a function compiled with `I`.
    #[inline(always)]
    unsafe fn rows<I: Isa, const R: usize, const V: usize>(&self, r0: usize, live: usize, c0: usize, out: &[usize]) {
        let (o, c, l, w) = (self.o, self.c, I::LANES, words(self.o));
        let k = self.taps * o;
        let kc = pass_depth(k);
        let src = |r: usize, t: usize| if r < live { self.sources[(r0 + r) * self.taps + t] } else { NONE };
        // SAFETY (all below): rows of `dy` and `wt` inside them (the caller's contract); `out`
        // rows hold `c` floats from c0 + V·l <= c.
        unsafe {
            for p0 in (0..k).step_by(kc) {
                let mut acc = [[I::zero(); V]; R];
                for t in p0 / o..(p0 + kc).min(k).div_ceil(o) {
                    // The tap's columns inside the pass.
                    let (jl, jh) = (p0.max(t * o) - t * o, (p0 + kc).min(t * o + o) - t * o);
                    let rows: [usize; R] = std::array::from_fn(|r| src(r, t));
                    let b = self.wt.as_ptr().add(t * o * c + c0);
                    // Each row's dy (any row where there is none: no bit will read it).
                    let dy: [*const f32; R] =
                        std::array::from_fn(|r| self.dy.as_ptr().add(if rows[r] == NONE { 0 } else { rows[r] * o }));
                    for wi in jl / 64..jh.div_ceil(64) {
                        let span = (u64::MAX << (jl.max(wi * 64) - wi * 64))
                            & (u64::MAX >> (wi * 64 + 64 - jh.min(wi * 64 + 64)));
                        let mut m: [u64; R] = std::array::from_fn(|r| {
                            if rows[r] == NONE {
                                0
                            } else {
                                *self.bits.get_unchecked(rows[r] * w + wi) & span
                            }
                        });
                        while m.iter().fold(0, |a, &x| a | x) != 0 {
                            for r in 0..R {
                                // Without a branch: a row out of terms reads its first column
                                // and keeps none of its bits (0·w leaves the chain).
                                let j = wi * 64 + (m[r].trailing_zeros() as usize & 63);
                                let keep = u32::from(m[r] != 0).wrapping_neg();
                                let v = f32::from_bits((*dy[r].add(j)).to_bits() & keep);
                                m[r] &= m[r].wrapping_sub(1);
                                let (v, row) = (I::splat(v), b.add(j * c));
                                for (q, a) in acc[r].iter_mut().enumerate() {
                                    *a = I::fma(v, I::load_all(I::mask(l), row.add(q * l)), *a);
                                }
                            }
                        }
                    }
                }
                for (r, acc) in acc.iter().enumerate().take(live) {
                    let dst = (out[r0 + r] as *mut f32).add(c0);
                    for (q, &a) in acc.iter().enumerate() {
                        let at = dst.add(q * l);
                        let sum = if p0 > 0 { I::add(a, I::load_all(I::mask(l), at)) } else { a };
                        I::store(I::mask(l), true, at, sum);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm_sparse::test_values;
    use crate::gemm_tiled::{available, gemm, Left, Out, Strided};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The sparse filter gradient has the dense product's bits, over several passes and
        /// words of positions, several blocks of chains, `o` past 64 and any density.
        #[test]
        fn the_sparse_filter_gradient_has_the_dense_bits(
            nb in 1usize..8, hw in 3usize..16, c16 in 1usize..4, o in 1usize..80, k in 1usize..4,
            stride in 1usize..3, same in any::<bool>(), density in 0.0f64..1.0, seed in 0u64..1000,
            span in 1usize..400,
        ) {
            if !available() {
                return Ok(());
            }
            let c = 16 * c16;
            let g = Conv2dGeometry::new([nb, hw, hw + 1, c], [k, k, c, o], [stride, stride], [1, 1], same);
            let rows = nb * g.positions();
            let x = test_values(nb * g.image_len(), 0.9, seed + 1);
            let dy = test_values(rows * o, density, seed);
            let kk = g.taps();
            let (mut dense, mut got) = (vec![0.0f32; kk * o], vec![f32::NAN; kk * o]);
            let mut bits = vec![0u64; rows * words(o)];
            super::super::gathered(x.as_ptr(), &g, nb, None, |patches| {
                let b = Strided { ptr: dy.as_ptr(), rs: o as isize, cs: 1 };
                // SAFETY: available(); the table addresses the images or zeros; sizes match.
                unsafe {
                    if rows > 0 {
                        gemm(kk, rows, o, Left::GatheredT(patches), b, Out::Rows { c: dense.as_mut_ptr(), ldc: o }, true);
                    }
                    let n = crate::gemm_tiled::on_simd!(I => scan::<I>(&dy, o, &mut bits));
                    prop_assert_eq!(n, dy.iter().filter(|&&v| v != 0.0).count());
                    filter_grad(patches, &dy, &bits, span, &mut got);
                }
                Ok(())
            })?;
            let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits_of(&got), bits_of(&dense));
        }
    }

    /// An ∞ in the images meets the zeros of a sparse `dy` as in TF's dense product: NaN where
    /// it met a zero, ∞ where it met only nonzeros (the f64 path, dense, says where).
    #[test]
    fn an_infinite_input_gives_the_dense_nans() {
        let g = Conv2dGeometry::new([2, 6, 6, 16], [3, 3, 16, 16], [2, 2], [1, 1], true);
        let mut x = test_values(2 * g.image_len(), 1.0, 3);
        x[7 * 16 + 5] = f32::INFINITY;
        let dy = test_values(2 * g.positions() * 16, 0.1, 4);
        let got = super::super::conv2d_backprop_filter(&x, &dy, &g);
        let wide = |v: &[f32]| v.iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
        let want = super::super::conv2d_backprop_filter(&wide(&x), &wide(&dy), &g);
        let kinds = |v: Vec<bool>| v.iter().filter(|&&b| b).count();
        assert!(kinds(want.iter().map(|v| v.is_nan()).collect()) > 0, "a NaN to find");
        for (a, b) in got.iter().zip(&want) {
            assert_eq!((a.is_nan(), a.is_infinite()), (b.is_nan(), b.is_infinite()));
        }
    }
}
