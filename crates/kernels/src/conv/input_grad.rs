//! The input gradient of a convolution, and what is made with it a chunk of images at a time
//! while in cache (see [`InputGradWith`], [`Upstream`]): its ReLU mask and bias sums, the filter
//! gradients of it and of the convolution below, and its `dy` routed from a pooling's winners.

#[cfg(target_arch = "x86_64")]
use super::sparse;
use super::{col2im, filter_grad_into, lcm, mat, mat_mut, with_out, Conv2dGeometry, FilterGroups, PerImage};
use crate::gemm::gemm_into;
#[cfg(target_arch = "x86_64")]
use crate::gemm_tiled::{gemm, Gather, Left, Out, Strided};
use crate::pool::{self, PoolGeometry};
#[cfg(target_arch = "x86_64")]
use crate::F32Simd;
use crate::{zeros, Float, Scratch};

/// Input positions that receive from the same filter taps: those whose row is `ry` and column
/// `rx` past a multiple of the stride (counting from the padding's start). Tap (ky, kx) reaches
/// them when `ky·dil_h ≡ ry` and `kx·dil_w ≡ rx`; for conv2 (3x3, stride 2) the four classes
/// take 4, 2, 2 and 1 taps.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct StrideClass {
    ry: usize,
    rx: usize,
    /// Where the class's taps' Wᵀ (`taps·o x c`, row-major) start in the stacked buffer.
    at: usize,
}

#[cfg(target_arch = "x86_64")]
impl StrideClass {
    /// Every class in order, each with its offset in the stacked Wᵀ.
    fn all(g: &Conv2dGeometry) -> impl Iterator<Item = StrideClass> + '_ {
        let every = (0..g.stride_h).flat_map(|ry| (0..g.stride_w).map(move |rx| (ry, rx)));
        every.scan(0, |at, (ry, rx)| {
            let class = StrideClass { ry, rx, at: *at };
            *at += class.taps(g).count() * g.out_c * g.in_c;
            Some(class)
        })
    }

    fn taps<'g>(&self, g: &'g Conv2dGeometry) -> impl Iterator<Item = (usize, usize)> + 'g {
        let (ry, rx) = (self.ry, self.rx);
        let kxs = move || (0..g.k_w).filter(move |kx| kx * g.dil_w % g.stride_w == rx);
        (0..g.k_h).filter(move |ky| ky * g.dil_h % g.stride_h == ry).flat_map(move |ky| kxs().map(move |kx| (ky, kx)))
    }

    /// The class's input rows (or columns): `r` past a multiple of `stride` from the padding.
    fn lines(r: usize, stride: usize, pad: usize, size: usize) -> impl Iterator<Item = usize> + Clone {
        ((r + stride - pad % stride) % stride..size).step_by(stride)
    }
}

/// Each class's taps' Wᵀ (`w` `[kh, kw, c, o]`), stacked in class order into the first `k x o`
/// floats of `stacked` (B of each class's product), then `w` with `o` first (`o x kh·kw x c`,
/// what [`sparse::input_grad_by_position`] reads, only where it [`by_position_fits`]) into the
/// second.
#[cfg(target_arch = "x86_64")]
fn stack_classes(w: &[f32], g: &Conv2dGeometry, stacked: &mut [f32]) {
    let (c, o, taps) = (g.in_c, g.out_c, g.k_h * g.k_w);
    let (classes, by_column) = stacked.split_at_mut(g.taps() * o);
    for class in StrideClass::all(g) {
        for (t, (ky, kx)) in class.taps(g).enumerate() {
            for j in 0..o {
                for ci in 0..c {
                    classes[class.at + (t * o + j) * c + ci] = w[((ky * g.k_w + kx) * c + ci) * o + j];
                }
            }
        }
    }
    if !by_position_fits(g) {
        return; // (never read)
    }
    for j in 0..o {
        for t in 0..taps {
            for ci in 0..c {
                by_column[(j * taps + t) * c + ci] = w[(t * c + ci) * o + j];
            }
        }
    }
}

/// Whether [`sparse::input_grad_by_position`] has the classes' bits: each class's product is
/// one pass.
#[cfg(target_arch = "x86_64")]
fn by_position_fits(g: &Conv2dGeometry) -> bool {
    StrideClass::all(g).all(|class| {
        let k = class.taps(g).count() * g.out_c;
        crate::gemm_tiled::pass_depth(k) >= k
    })
}

/// f32 on AVX-512 or AVX2 with channels in multiples of 16: `dx = dy · Wᵀ` for one chunk of
/// `nb` images, each element written once. Per [`StrideClass`], one product: its positions' rows of `dy` at
/// each of its taps (gathered through a table, zeros where the tap falls outside `dy`) times
/// those taps' Wᵀ stacked (`stacked`, at [`StrideClass::all`]'s offsets), stored through a table
/// of the positions' rows of `dx`. No zero fill, no read-modify-write of dx, and depth `taps·o`
/// instead of `o` (col2im inside the product, before this, added 9 tiles of depth 64 onto each
/// conv2 input position).
///
/// When `dy` is sparse enough ([`sparse::worth`]; a max-pooling's gradient) and `finite_w` (the
/// stacked Wᵀ has no ∞ or NaN), the same chains run without their zero terms, the same bits:
/// by `dy` position ([`sparse::input_grad_by_position`]) when every class is one pass, else
/// each class by [`sparse::input_grad_class`].
#[cfg(target_arch = "x86_64")]
fn input_gradient_by_class(
    _: F32Simd,
    stacked: &[f32],
    finite_w: bool,
    dy: &[f32],
    g: &Conv2dGeometry,
    dx: &mut [f32],
) {
    thread_local! {
        static BITS: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
        static SOURCES: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
        static ROWS: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
        static OUT: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
        static ZEROS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        static TAPS: std::cell::RefCell<Vec<(isize, isize)>> = const { std::cell::RefCell::new(Vec::new()) };
        static JUNK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let (c, o) = (g.in_c, g.out_c);
    let nb = dx.len() / g.image_len();
    let f = std::mem::size_of::<f32>();
    let words = sparse::words(o);
    crate::scratch(&BITS, if finite_w { nb * g.positions() * words } else { 0 }, |bits| {
        // SAFETY: F32Simd proves the set; scan reads whole rows of dy.
        let sparse = finite_w
            && sparse::worth(
                crate::gemm_tiled::on_simd!(I => unsafe { sparse::scan::<I>(dy, o, bits) }),
                nb * g.positions(),
                o,
            );
        if sparse && by_position_fits(g) {
            let wj = &stacked[g.taps() * o..][..g.taps() * o];
            // SAFETY: the CPU runs the tiled kernels (F32Simd); c is a multiple of 16; dy and
            // bits hold the chunk's rows; wj is the filter with o first.
            crate::scratch(&JUNK, c, |junk| unsafe { sparse::input_grad_by_position(dy, bits, wj, g, dx, junk) });
            return;
        }
        for class in StrideClass::all(g) {
            let ys = StrideClass::lines(class.ry, g.stride_h, g.pad_top, g.in_h);
            let xs = StrideClass::lines(class.rx, g.stride_w, g.pad_left, g.in_w);
            let (rows, t) = (nb * ys.clone().count() * xs.clone().count(), class.taps(g).count());
            if rows == 0 {
                continue;
            }
            let dx_base = dx.as_mut_ptr() as usize;
            let dx_row = |y: usize, x: usize| dx_base + (y * g.in_w + x) * c * f;
            if t == 0 {
                // No tap reaches these positions (a stride larger than the dilated filter).
                for n in 0..nb {
                    for y in ys.clone() {
                        for x in xs.clone() {
                            let at = (n * g.image_len() + (y * g.in_w + x) * c)..;
                            dx[at][..c].fill(0.0);
                        }
                    }
                }
                continue;
            }
            let (first_y, first_x) = (ys.clone().next().expect("rows > 0"), xs.clone().next().expect("rows > 0"));
            let per_image = rows / nb;
            crate::scratch(&OUT, rows, |out| {
                crate::scratch(&SOURCES, rows * t, |sources| {
                    // Image 0: the output position each tap came from is the tap's position for
                    // the class's first row and column, plus the row and column index (exact:
                    // y + pad - ky·dil is a multiple of the stride).
                    let first = |start: usize, pad: usize, k: usize, dil: usize, stride: usize| {
                        (start + pad) as isize / stride as isize - (k * dil / stride) as isize
                    };
                    crate::scratch(&TAPS, t, |taps| {
                        for (tap, (ky, kx)) in taps.iter_mut().zip(class.taps(g)) {
                            *tap = (
                                first(first_y, g.pad_top, ky, g.dil_h, g.stride_h),
                                first(first_x, g.pad_left, kx, g.dil_w, g.stride_w),
                            );
                        }
                        let (mut r, mut e) = (0, 0);
                        for (i, y) in ys.clone().enumerate() {
                            for (j, x) in xs.clone().enumerate() {
                                out[r] = dx_row(y, x);
                                for &(oy0, ox0) in taps.iter() {
                                    let (oy, ox) = (oy0 + i as isize, ox0 + j as isize);
                                    let inside = (oy as usize) < g.out_h && (ox as usize) < g.out_w; // negative wraps
                                    sources[e] =
                                        if inside { oy as usize * g.out_w + ox as usize } else { sparse::NONE };
                                    e += 1;
                                }
                                r += 1;
                            }
                        }
                    });
                    // The other images: the same rows one image further on in dy and dx.
                    let dx_step = g.image_len() * f;
                    for n in 1..nb {
                        for q in 0..per_image {
                            out[n * per_image + q] = out[q] + n * dx_step;
                        }
                        let (done, next) = sources.split_at_mut(n * per_image * t);
                        let step = n * g.positions();
                        for (d, &p) in next[..per_image * t].iter_mut().zip(&done[..per_image * t]) {
                            *d = if p == sparse::NONE { p } else { p + step };
                        }
                    }
                    if sparse {
                        let wt = &stacked[class.at..][..t * o * c];
                        // SAFETY: the CPU runs the tiled kernels (F32Simd); c is a multiple of
                        // 16; `out` addresses distinct dx rows; `sources` index this chunk's dy.
                        unsafe { sparse::input_grad_class(sources, t, bits, dy, wt, out, c) };
                        return;
                    }
                    crate::scratch(&ZEROS, o, |zeros| {
                        crate::scratch(&ROWS, rows * t, |table| {
                            // The rows of dy as pointers, zeros where the tap falls outside.
                            let (zero, dy_base) = (zeros.as_ptr() as usize, dy.as_ptr() as usize);
                            for (p, &s) in table.iter_mut().zip(sources.iter()) {
                                *p = if s == sparse::NONE { zero } else { dy_base + s * o * f };
                            }
                            let a = Gather { table: table.as_ptr().cast(), seg: o, segs: t };
                            let b = Strided { ptr: stacked[class.at..].as_ptr(), rs: c as isize, cs: 1 };
                            let to = Gather { table: out.as_ptr().cast(), seg: c, segs: 1 };
                            // SAFETY: the CPU runs the tiled GEMM (the F32Simd proof); every `table`
                            // pointer addresses `o` floats of this chunk's dy or the zeros, B is the
                            // class's `t·o x c` stacked Wᵀ, every `out` pointer `c` floats of a distinct
                            // dx position (c a multiple of 16); rows, t·o and c are > 0.
                            unsafe { gemm(rows, t * o, c, Left::Gathered(a), b, Out::Scattered(to), false) };
                        });
                    });
                });
            });
        }
    });
}

/// Gradient with respect to the input: `dy` `[n,out_h,out_w,o]` times the filter transposed,
/// scattered back by col2im; returns `[n,h,w,c]`.
pub fn conv2d_backprop_input<T: Float>(w: &[T], dy: &[T], g: &Conv2dGeometry) -> Vec<T> {
    conv2d_backprop_input_with(w, dy.into(), g, zeros, InputGradWith::default())
}

/// The filter gradient of the convolution below one whose input gradient is being made (its
/// output is that convolution's input): made from each chunk of the input gradient while in
/// cache, by [`super::conv2d_backprop_filter_with`]'s groups of images added in the same order (the
/// same bits), so the input gradient need not be written out and read back.
pub struct LowerFilterGrad<'a, T> {
    /// The lower convolution's input images.
    pub x: &'a [T],
    /// The lower convolution: its output is the upper one's input.
    pub geometry: &'a Conv2dGeometry,
    /// Its filter gradient `[kh, kw, c, o]`, every element written.
    pub out: &'a mut [T],
    /// Whether the input gradient is wanted as well: without it each chunk is made in a
    /// scratch buffer (an empty vector returns).
    pub keep_input_grad: bool,
}

/// The filter gradient of the convolution whose input gradient is being made: made from each
/// chunk of `dy` and of the input images while in cache (they are read for the input gradient
/// and its ReLU mask anyway), by [`super::conv2d_backprop_filter_with`]'s groups of images added in
/// the same order: the same bits.
pub struct FilterGrad<'a, T> {
    /// The convolution's input images.
    pub x: &'a [T],
    /// Its filter gradient `[kh, kw, c, o]`, every element written.
    pub out: &'a mut [T],
}

/// Where [`conv2d_backprop_input_with`]'s `dy`, the gradient of the convolution's output,
/// comes from.
pub enum Upstream<'a, T> {
    /// Given whole, `[n, out_h, out_w, o]`.
    Given(&'a [T]),
    /// Routed from the gradient of a max-pooling of the output, a chunk of images at a time
    /// while in cache.
    Pooled(PooledGrad<'a, T>),
}

impl<'a, T> From<&'a [T]> for Upstream<'a, T> {
    fn from(dy: &'a [T]) -> Self {
        Upstream::Given(dy)
    }
}

/// A max-pooling's gradient routed through its forward's winners to the pooled convolution's
/// output: [`pool::max_pool_grad_from_winners`]'s arguments, made a chunk of images at a time
/// instead of written out whole (the CNN's conv2: 5 MB written, then read back).
///
/// ```
/// use tensorgraph_kernels::conv::*;
/// use tensorgraph_kernels::pool::{max_pool_grad_from_winners, max_pool_winners, PoolGeometry};
/// let g = Conv2dGeometry::new([2, 6, 6, 16], [3, 3, 16, 4], [1, 1], [1, 1], true);
/// let pool = PoolGeometry::new(g.output_shape(), [2, 2], [2, 2], false);
/// let y: Vec<f32> = (0..2 * 36 * 4).map(|i| (i * 7 % 11) as f32 - 5.0).collect(); // the conv's output
/// let (pooled, winners) = max_pool_winners(&y, &pool);
/// let grad: Vec<f32> = (0..pooled.len()).map(|i| (i % 3) as f32 - 1.0).collect();
/// let w: Vec<f32> = (0..9 * 16 * 4).map(|i| (i % 5) as f32 - 2.0).collect();
/// let (mut sums, mut want_sums) = (vec![0.0; 2 * 4], vec![0.0; 2 * 4]);
/// let alloc = |n| vec![0.0; n];
/// let dy = max_pool_grad_from_winners(&winners, &grad, &pool, alloc, true, Some(&mut want_sums));
/// let pooled_grad = PooledGrad { winners: &winners, grad: &grad, geometry: &pool, relu: true, image_sums: Some(&mut sums) };
/// let routed = Upstream::Pooled(pooled_grad);
/// let dx = conv2d_backprop_input_with(&w, routed, &g, |n| vec![0.0; n], InputGradWith::default());
/// assert_eq!((dx, sums), (conv2d_backprop_input(&w, &dy, &g), want_sums));
/// ```
pub struct PooledGrad<'a, T> {
    /// The forward's winners (see [`pool::max_pool_winners`]), `[n, out_h, out_w, c]`.
    pub winners: &'a [i32],
    /// The gradient of the pooled output, of the winners' shape.
    pub grad: &'a [T],
    /// The pooling: its input is the convolution's output.
    pub geometry: &'a PoolGeometry,
    /// Masked by the maxima being > 0 (a ReLU between the convolution and the pooling).
    pub relu: bool,
    /// `[batch, o]`: each image's routed gradient summed over its rows and columns (a bias
    /// gradient's partial sums).
    pub image_sums: Option<&'a mut [T]>,
}

/// What [`conv2d_backprop_input_with`] makes from each chunk of the input gradient while it is
/// in cache, besides that gradient (all `None`: the plain input gradient).
#[derive(Default)]
pub struct InputGradWith<'a, T> {
    /// The input of a ReLU, or its output (the same signs): the result is TF's `ReluGrad` of
    /// it, `dx` where the feature is > 0 and 0 elsewhere.
    pub relu_features: Option<&'a [T]>,
    /// `[batch, in_c]`: each image's `dx` summed over its rows and columns (a bias gradient's
    /// partial sums, see [`crate::reduce::image_sums`]) instead of in another pass over `dx`.
    pub image_sums: Option<&'a mut [T]>,
    /// The filter gradient of the convolution below, from each chunk of (masked) `dx`.
    pub lower: Option<LowerFilterGrad<'a, T>>,
    /// This convolution's filter gradient, from each chunk of `dy`.
    pub filter: Option<FilterGrad<'a, T>>,
}

/// [`conv2d_backprop_input`] into a buffer from `alloc(len)` (contents unspecified), with what
/// `with` asks for made from each chunk of images while in cache.
///
/// ```
/// use tensorgraph_kernels::conv::*;
/// let lower = Conv2dGeometry::new([8, 6, 6, 1], [3, 3, 1, 4], [1, 1], [1, 1], true);
/// let upper = Conv2dGeometry::new([8, 6, 6, 4], [3, 3, 4, 2], [2, 2], [1, 1], true);
/// let x: Vec<f32> = (0..8 * 36).map(|i| (i % 7) as f32 - 3.0).collect();
/// let h: Vec<f32> = (0..8 * 36 * 4).map(|i| (i % 5) as f32 - 2.0).collect();
/// let w: Vec<f32> = (0..72).map(|i| (i % 5) as f32 - 2.0).collect();
/// let dy: Vec<f32> = (0..8 * 9 * 2).map(|i| (i % 3) as f32 - 1.0).collect();
/// let dx = conv2d_backprop_input(&w, &dy, &upper);
/// let (mut lower_dw, mut dw) = (vec![0.0; 36], vec![0.0; 72]);
/// let with = InputGradWith {
///     lower: Some(LowerFilterGrad { x: &x, geometry: &lower, out: &mut lower_dw, keep_input_grad: false }),
///     filter: Some(FilterGrad { x: &h, out: &mut dw }),
///     ..InputGradWith::default()
/// };
/// let none = conv2d_backprop_input_with(&w, dy[..].into(), &upper, |n| vec![0.0; n], with);
/// assert!(none.is_empty());
/// assert_eq!(lower_dw, conv2d_backprop_filter(&x, &dx, &lower));
/// assert_eq!(dw, conv2d_backprop_filter(&h, &dy, &upper));
/// ```
///
/// # Panics
/// If `image_sums` does not hold `batch × in_c` values, `lower` is not the convolution below
/// (its output this one's input), or `filter`'s images or output are not this convolution's.
pub fn conv2d_backprop_input_with<T: Float>(
    w: &[T],
    dy: Upstream<'_, T>,
    g: &Conv2dGeometry,
    alloc: impl FnOnce(usize) -> Vec<T>,
    with: InputGradWith<'_, T>,
) -> Vec<T> {
    let InputGradWith { relu_features, image_sums, lower, filter } = with;
    let (p, k, o, len) = (g.positions(), g.taps(), g.out_c, g.image_len());
    let keep = lower.as_ref().is_none_or(|l| l.keep_input_grad);
    let mut dx = if keep { alloc(g.batch * len) } else { Vec::new() };
    let (lower_g, lower_x, lower_out) = match lower {
        Some(LowerFilterGrad { x, geometry, out, .. }) => (Some(*geometry), x, Some(out)),
        None => (None, &[][..], None),
    };
    if let Some(lg) = &lower_g {
        assert_eq!([lg.batch, lg.out_h, lg.out_w, lg.out_c], [g.batch, g.in_h, g.in_w, g.in_c], "not the lower layer");
    }
    let (own_x, own_out) = match filter {
        Some(FilterGrad { x, out }) => {
            assert_eq!((x.len(), out.len()), (g.batch * len, k * o), "not this convolution's filter gradient");
            (x, Some(out))
        }
        None => (&[][..], None),
    };
    if let Some(sums) = &image_sums {
        assert_eq!(sums.len(), g.batch * g.in_c, "image sums of the wrong length");
    }
    let (given, routed, mut routed_sums) = match dy {
        Upstream::Given(dy) => (dy, None, None),
        Upstream::Pooled(PooledGrad { winners, grad, geometry, relu, image_sums }) => {
            let input = [geometry.batch, geometry.in_h, geometry.in_w, geometry.channels];
            let pooled = geometry.batch * geometry.out_len();
            assert_eq!(
                (input, winners.len(), grad.len()),
                (g.output_shape(), pooled, pooled),
                "not this output's pooling"
            );
            if let Some(sums) = &image_sums {
                assert_eq!(sums.len(), g.batch * o, "image sums of the wrong length");
            }
            (&[][..], Some((winners, grad, geometry, relu)), image_sums)
        }
    };
    if g.batch * len == 0 || p * o == 0 {
        // (dx is all zeros, as are the filter gradients; a routed dy is empty, or is made for
        // its sums.)
        if let Some((winners, grad, geometry, relu)) = routed {
            pool::max_pool_grad_from_winners(winners, grad, geometry, zeros, relu, routed_sums);
        }
        dx.fill(T::zero());
        image_sums.into_iter().for_each(|s| s.fill(T::zero()));
        lower_out.into_iter().for_each(|s| s.fill(T::zero()));
        own_out.into_iter().for_each(|s| s.fill(T::zero()));
        return dx;
    }
    // The filter gradients' groups, each chunk a whole number of them: at most twice the
    // chunk's size in images, else this convolution's own is made apart, after.
    let lower_groups = lower_g.as_ref().map(FilterGroups::new::<T>);
    let lower_size = lower_groups.map_or(1, |gr| gr.size);
    let own_groups = own_out.as_ref().map(|_| FilterGroups::new::<T>(g));
    let both = own_groups.map_or(lower_size, |gr| lcm(gr.size, lower_size));
    let (own_groups, whole) = match own_groups {
        Some(_) if both > 2 * g.by_memory() => (None, lower_size),
        _ => (own_groups, both),
    };
    // A routed dy the own filter gradient needs whole: routed at once.
    let whole_dy = match routed {
        Some((winners, grad, geometry, relu)) if own_out.is_some() && own_groups.is_none() => {
            Some(pool::max_pool_grad_from_winners(winners, grad, geometry, zeros, relu, routed_sums.take()))
        }
        _ => None,
    };
    let (given, routed) = match &whole_dy {
        Some(dy) => (&dy[..], None),
        None => (given, routed),
    };
    let chunk = g.chunk_of(whole);
    let n_chunks = g.batch.div_ceil(chunk);
    let lower_ko = lower_g.as_ref().map_or(0, |lg| lg.taps() * lg.out_c);
    let n_groups = lower_groups.map_or(0, |gr| g.batch.div_ceil(gr.size));
    let own_n = own_groups.map_or(0, |gr| g.batch.div_ceil(gr.size));
    #[cfg(target_arch = "x86_64")]
    let by_class = F32Simd::check::<T>().filter(|_| g.in_c.is_multiple_of(16));
    thread_local! {
        static STACKED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    // The input gradient of one chunk of `dy` into `dx` (contents unspecified).
    let wt = mat(w, k, o).reversed_axes();
    let input_grad = |dy: &[T], dx: &mut [T], _stacked: &[f32]| {
        #[cfg(target_arch = "x86_64")]
        if let Some(f32s) = by_class {
            // SAFETY: T is f32 (checked).
            let (dy, dx) = unsafe { (f32s.cast(dy), f32s.cast_mut(dx)) };
            // (18K floats for conv2: checked per chunk, where the sparse path is decided.)
            return input_gradient_by_class(f32s, _stacked, sparse::finite(&_stacked[..k * o]), dy, g, dx);
        }
        let nb = dx.len() / len;
        T::with_scratch(nb * p * k, |cols| {
            // Overwrites `cols` (no accumulation), so the scratch needs no zeroing.
            gemm_into(mat(dy, nb * p, o), wt, mat_mut(cols, nb * p, k), false, false);
            // col2im accumulates: zeroed here, by the thread that fills it, while cache-hot.
            dx.fill(T::zero());
            for bi in 0..nb {
                col2im(&cols[bi * p * k..][..p * k], g, &mut dx[bi * len..][..len]);
            }
        });
    };
    // One chunk's dy: given, or routed from the pooling's gradient (and summed) in scratch.
    let with_dy = |b0: usize, nb: usize, sums: &mut [T], f: &mut dyn FnMut(&[T])| match routed {
        None => f(&given[b0 * p * o..][..nb * p * o]),
        Some((winners, grad, geometry, relu)) => T::with_scratch_in(Scratch::Input, nb * p * o, |dy| {
            let (ol, mut arg) = (geometry.out_len(), vec![0; geometry.channels]);
            for bi in 0..nb {
                let (d, s) = (&mut dy[bi * p * o..][..p * o], sums.chunks_mut(o).nth(bi).unwrap_or(&mut []));
                let (win, gr) = (&winners[(b0 + bi) * ol..][..ol], &grad[(b0 + bi) * ol..][..ol]);
                pool::route_image_from_winners(win, gr, geometry, relu, d, s, &mut arg);
            }
            f(dy)
        }),
    };
    // (A few KB: conv1's 25 groups of 288.)
    let mut partials = vec![T::zero(); n_groups * lower_ko];
    T::with_scratch_in(Scratch::Partials, own_n * k * o, |own_partials| {
        {
            let mut sums = PerImage::new(image_sums, g.in_c, chunk, g.batch).parts();
            let lower = lower_groups.map(|_| &mut partials[..]);
            let mut lower_parts = PerImage::new(lower, lower_ko, chunk / lower_size, n_groups).parts();
            let own = own_groups.map(|_| &mut own_partials[..]);
            let own_size = own_groups.map_or(1, |gr| gr.size);
            let mut own_parts = PerImage::new(own, k * o, chunk / own_size, own_n).parts();
            let mut routed_parts = PerImage::new(routed.and(routed_sums), o, chunk, g.batch).parts();
            let mut dx_parts = dx.chunks_mut(chunk * len);
            let work: Vec<_> = (0..n_chunks)
                .map(|ci| {
                    let nb = chunk.min(g.batch - ci * chunk);
                    let dx = dx_parts.next();
                    let side = [&mut sums, &mut lower_parts, &mut own_parts, &mut routed_parts]
                        .map(|p| p.next().expect("n parts"));
                    (ci * chunk, nb, dx, side)
                })
                .collect();
            #[cfg(target_arch = "x86_64")]
            let stacked_len = if by_class.is_some() { 2 * k * o } else { 0 };
            #[cfg(not(target_arch = "x86_64"))]
            let stacked_len = 0;
            crate::scratch(&STACKED, stacked_len, |stacked| {
                #[cfg(target_arch = "x86_64")]
                if by_class.is_some() {
                    // SAFETY: T is f32 (checked).
                    let wf = unsafe { F32Simd::check::<T>().expect("checked").cast(w) };
                    stack_classes(wf, g, stacked);
                }
                let stacked = &*stacked;
                crate::pair::share_out(work, |(b0, nb, dx_chunk, [sums, lower, own, routed_sums])| {
                    with_out((nb * len, dx_chunk), |dx_chunk| {
                        with_dy(b0, nb, routed_sums, &mut |dy| {
                            input_grad(dy, dx_chunk, stacked);
                            let features = relu_features.map(|f| &f[b0 * len..][..dx_chunk.len()]);
                            // (Blocks of 16 KiB or so.)
                            let block = (4096 / g.in_c).max(1) * g.in_c;
                            mask_and_sum(dx_chunk, features, sums, len, g.in_c, block);
                            if let (Some(lg), Some(gr)) = (&lower_g, lower_groups) {
                                let lp = lg.positions() * lg.out_c;
                                for (i, acc) in lower.chunks_mut(lower_ko).enumerate() {
                                    let first = i * gr.size;
                                    let x = &lower_x[(b0 + first) * lg.image_len()..];
                                    gr.run(x, &dx_chunk[first * lp..], lg, gr.size.min(nb - first), acc);
                                }
                            }
                            if let Some(gr) = own_groups {
                                for (i, acc) in own.chunks_mut(k * o).enumerate() {
                                    let first = i * gr.size;
                                    let x = &own_x[(b0 + first) * len..];
                                    gr.run(x, &dy[first * p * o..], g, gr.size.min(nb - first), acc);
                                }
                            }
                        })
                    })
                });
            });
        }
        match own_out {
            Some(out) if own_groups.is_some() => FilterGroups::add(own_partials, out),
            Some(out) => filter_grad_into(own_x, given, g, out),
            None => {}
        }
    });
    if let Some(out) = lower_out {
        FilterGroups::add(&partials, out);
    }
    dx
}

/// TF's `ReluGrad` on a chunk's `dx` (images of `len`) where `features` are given, then each
/// image's column sums (`c` columns) into `sums` (empty: none), `block` floats (whole rows) at a
/// time while they are in L1 (a pass over the whole chunk for each read it from L2: 0.57-0.70
/// ms of thread time per CNN step on a Xeon, 0.53-0.55 in blocks).
/// [`crate::reduce::column_sums`] resumes each column's chain from `sums`: the same sums as over
/// whole images.
fn mask_and_sum<T: Float>(dx: &mut [T], features: Option<&[T]>, sums: &mut [T], len: usize, c: usize, block: usize) {
    let mut parts = sums.chunks_mut(c);
    for (i, image) in dx.chunks_mut(len).enumerate() {
        let mut part = parts.next();
        if let Some(part) = part.as_deref_mut() {
            part.fill(T::zero());
        }
        for (b, rows) in image.chunks_mut(block).enumerate() {
            if let Some(f) = features {
                relu_mask(rows, &f[i * len + b * block..][..rows.len()]);
            }
            if let Some(part) = part.as_deref_mut() {
                crate::reduce::column_sums(rows, part);
            }
        }
    }
}

/// TF's `ReluGrad` in place: `d` where the feature is > 0, else 0.
fn relu_mask<T: Float>(d: &mut [T], features: &[T]) {
    crate::wide::run(
        #[inline(always)]
        || d.iter_mut().zip(features).for_each(|(d, &f)| *d = if f > T::zero() { *d } else { T::zero() }),
    )
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::gemm_sparse::test_values as sparse;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The input gradient skipping `dy`'s zeros has the bits of the gathered product, for
        /// every stride class (strides 1-3, dilations, padding), `o` past 64 and several passes
        /// (`taps·o` past 320), at densities on both sides of `sparse::worth`.
        #[test]
        fn the_sparse_input_gradient_has_the_dense_bits(
            nb in 1usize..4, hw in 2usize..10, c16 in 1usize..4, o in 1usize..100, k in 1usize..4,
            stride in 1usize..4, dil in 1usize..3, same in any::<bool>(), density in 0.0f64..0.4, seed in 0u64..1000,
        ) {
            let Some(f32s) = F32Simd::check::<f32>() else { return Ok(()) };
            let c = 16 * c16;
            let g = Conv2dGeometry::new([nb, hw, hw + 2, c], [k, k, c, o], [stride, stride], [dil, dil], same);
            let w = sparse(g.taps() * o, 1.0, seed + 7);
            let dy = sparse(nb * g.positions() * o, density, seed);
            let mut stacked = vec![0.0; 2 * g.taps() * o];
            stack_classes(&w, &g, &mut stacked);
            let (mut dense, mut got) = (vec![f32::NAN; nb * g.image_len()], vec![f32::NAN; nb * g.image_len()]);
            input_gradient_by_class(f32s, &stacked, false, &dy, &g, &mut dense);
            input_gradient_by_class(f32s, &stacked, true, &dy, &g, &mut got);
            let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits_of(&got), bits_of(&dense));
        }
    }

    /// conv2 of the slides' CNN, its input gradient skipping the zeros of a `dy` as sparse as
    /// in training (12% nonzero), has the dense product's bits: the proptest's shapes reach
    /// by-position products of conv2's size only by chance.
    #[test]
    fn the_cnn_conv2_sparse_input_gradient_has_the_dense_bits() {
        let Some(f32s) = F32Simd::check::<f32>() else { return };
        let g = Conv2dGeometry::new([2, 28, 28, 32], [3, 3, 32, 64], [2, 2], [1, 1], true);
        let w = sparse(g.taps() * 64, 1.0, 5);
        let dy = sparse(2 * g.positions() * 64, 0.12, 6);
        let mut stacked = vec![0.0; 2 * g.taps() * 64];
        stack_classes(&w, &g, &mut stacked);
        let (mut dense, mut got) = (vec![f32::NAN; 2 * g.image_len()], vec![f32::NAN; 2 * g.image_len()]);
        input_gradient_by_class(f32s, &stacked, false, &dy, &g, &mut dense);
        input_gradient_by_class(f32s, &stacked, true, &dy, &g, &mut got);
        assert!(got.iter().zip(&dense).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    /// An ∞ in the filter meets the zeros of a sparse `dy` as in TF's dense product: NaN where
    /// it met a zero (the f64 path, dense, says where).
    /// The mask and sums by blocks of rows have the bits of a ReLU mask over the chunk, then
    /// each whole image's column sums.
    #[test]
    fn masks_and_sums_by_blocks_as_over_whole_images() {
        let (n, len, c) = (3, 7 * 16, 16);
        let dx: Vec<f32> = (0..n * len).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
        let features: Vec<f32> = (0..n * len).map(|i| ((i * 11 % 13) as f32 - 6.0) / 3.0).collect();
        let mut want = dx.clone();
        relu_mask(&mut want, &features);
        let mut want_sums = vec![0.0f32; n * c];
        for (image, part) in want.chunks(len).zip(want_sums.chunks_mut(c)) {
            crate::reduce::column_sums(image, part);
        }
        for rows in [1, 2, 3, 7] {
            let (mut got, mut sums) = (dx.clone(), vec![f32::NAN; n * c]);
            mask_and_sum(&mut got, Some(&features), &mut sums, len, c, rows * c);
            let bits = |v: &[f32]| v.iter().map(|a| a.to_bits()).collect::<Vec<_>>();
            assert_eq!((bits(&got), bits(&sums)), (bits(&want), bits(&want_sums)), "blocks of {rows} rows");
        }
    }

    #[test]
    fn an_infinite_filter_gives_the_dense_nans() {
        let g = Conv2dGeometry::new([2, 6, 6, 16], [3, 3, 16, 16], [2, 2], [1, 1], true);
        let mut w = sparse(g.taps() * 16, 1.0, 3);
        w[100] = f32::INFINITY;
        let dy = sparse(2 * g.positions() * 16, 0.1, 4);
        let got = conv2d_backprop_input(&w, &dy, &g);
        let wide = |v: &[f32]| v.iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
        let want = conv2d_backprop_input(&wide(&w), &wide(&dy), &g);
        assert!(want.iter().any(|v| v.is_nan()), "a NaN to find");
        for (a, b) in got.iter().zip(&want) {
            assert_eq!((a.is_nan(), a.is_infinite()), (b.is_nan(), b.is_infinite()));
        }
    }
}
