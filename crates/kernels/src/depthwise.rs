//! Depthwise convolution (TF's `DepthwiseConv2dNative`, NHWC): each input channel `c` is
//! convolved with its own `multiplier` filters `filter[.., .., c, k]`, giving output channel
//! `c * multiplier + k`. Direct loops over the window (there is no reduction over channels to
//! hand to a GEMM); parallel over the batch.

use crate::conv::Conv2dGeometry;
use crate::Float;
use rayon::prelude::*;

/// The input position a window tap reads, or `None` in the padding.
#[inline]
fn source(out: usize, tap: usize, stride: usize, dil: usize, pad: usize, len: usize) -> Option<usize> {
    (out * stride + tap * dil).checked_sub(pad).filter(|&i| i < len)
}

/// Calls `f(output pixel, input pixel, tap)` (row-major indices) for every window tap of one
/// image that reads inside the input.
#[inline]
fn taps(g: &Conv2dGeometry, mut f: impl FnMut(usize, usize, usize)) {
    for oy in 0..g.out_h {
        for ox in 0..g.out_w {
            for ky in 0..g.k_h {
                let Some(iy) = source(oy, ky, g.stride_h, g.dil_h, g.pad_top, g.in_h) else { continue };
                for kx in 0..g.k_w {
                    let Some(ix) = source(ox, kx, g.stride_w, g.dil_w, g.pad_left, g.in_w) else { continue };
                    f(oy * g.out_w + ox, iy * g.in_w + ix, ky * g.k_w + kx);
                }
            }
        }
    }
}

/// `y = depthwise(x, filter)`: `x` `[n, h, w, c]`, `filter` `[kh, kw, c, m]` (`g.out_c` = m),
/// `y` `[n, out_h, out_w, c * m]`.
pub fn forward<T: Float>(x: &[T], filter: &[T], g: &Conv2dGeometry) -> Vec<T> {
    let (c, m) = (g.in_c, g.out_c);
    let per_out = g.out_h * g.out_w * c * m;
    let mut y = vec![T::zero(); g.batch * per_out];
    if per_out == 0 {
        return y;
    }
    y.par_chunks_mut(per_out).enumerate().for_each(|(b, y)| {
        let x = &x[b * g.in_h * g.in_w * c..];
        taps(g, |o, i, t| {
            let (out, xs, fs) = (&mut y[o * c * m..][..c * m], &x[i * c..][..c], &filter[t * c * m..][..c * m]);
            for (ci, &xv) in xs.iter().enumerate() {
                for k in 0..m {
                    out[ci * m + k] += xv * fs[ci * m + k];
                }
            }
        });
    });
    y
}

/// The gradient with respect to the input: `dx` `[n, h, w, c]` from `dy` `[n, out_h, out_w, c * m]`.
pub fn backprop_input<T: Float>(dy: &[T], filter: &[T], g: &Conv2dGeometry) -> Vec<T> {
    let (c, m) = (g.in_c, g.out_c);
    let per_in = g.in_h * g.in_w * c;
    let mut dx = vec![T::zero(); g.batch * per_in];
    if per_in == 0 {
        return dx;
    }
    dx.par_chunks_mut(per_in).enumerate().for_each(|(b, dx)| {
        let dy = &dy[b * g.out_h * g.out_w * c * m..];
        taps(g, |o, i, t| {
            let (d, xs, fs) = (&dy[o * c * m..][..c * m], &mut dx[i * c..][..c], &filter[t * c * m..][..c * m]);
            for (ci, xv) in xs.iter_mut().enumerate() {
                for k in 0..m {
                    *xv += d[ci * m + k] * fs[ci * m + k];
                }
            }
        });
    });
    dx
}

/// The gradient with respect to the filter: `df` `[kh, kw, c, m]`, summed over the batch in
/// batch order (the same sums on any number of threads).
pub fn backprop_filter<T: Float>(x: &[T], dy: &[T], g: &Conv2dGeometry) -> Vec<T> {
    let (c, m) = (g.in_c, g.out_c);
    let len = g.k_h * g.k_w * c * m;
    let per_example: Vec<Vec<T>> = (0..g.batch)
        .into_par_iter()
        .map(|b| {
            let mut df = vec![T::zero(); len];
            let x = &x[b * g.in_h * g.in_w * c..];
            let dy = &dy[b * g.out_h * g.out_w * c * m..];
            taps(g, |o, i, t| {
                let (d, xs, fs) = (&dy[o * c * m..][..c * m], &x[i * c..][..c], &mut df[t * c * m..][..c * m]);
                for (ci, &xv) in xs.iter().enumerate() {
                    for k in 0..m {
                        fs[ci * m + k] += xv * d[ci * m + k];
                    }
                }
            });
            df
        })
        .collect();
    let mut df = vec![T::zero(); len];
    for part in per_example {
        df.iter_mut().zip(part).for_each(|(a, b)| *a += b);
    }
    df
}
