//! Element-wise maps with NumPy broadcasting, parallel over large contiguous arrays.

use crate::{kbail, KResult, PAR_ELEMENTS};
use ndarray::{ArrayD, ArrayViewD, IxDyn, Zip};
use rayon::prelude::*;

/// Broadcast shape of two concrete shapes (NumPy rules).
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> KResult<Vec<usize>> {
    let rank = a.len().max(b.len());
    let pad = |s: &[usize], i: usize| {
        if i < rank - s.len() {
            1
        } else {
            s[i - (rank - s.len())]
        }
    };
    (0..rank)
        .map(|i| match (pad(a, i), pad(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(crate::KernelError(format!(
                "incompatible shapes for broadcasting: {} and {}",
                crate::array::fmt_shape(a),
                crate::array::fmt_shape(b)
            ))),
        })
        .collect()
}

/// `t` where `c`, else `e`, all three broadcast to a common shape (TF's `SelectV2`).
pub fn select<T: Copy>(c: &ArrayViewD<bool>, t: &ArrayViewD<T>, e: &ArrayViewD<T>) -> KResult<ArrayD<T>> {
    let shape = ndarray::IxDyn(&broadcast_shape(&broadcast_shape(c.shape(), t.shape())?, e.shape())?);
    let (Some(c), Some(t), Some(e)) = (c.broadcast(shape.clone()), t.broadcast(shape.clone()), e.broadcast(shape))
    else {
        crate::kbail!("select: cannot broadcast the condition and branches together");
    };
    Ok(ndarray::Zip::from(&c).and(&t).and(&e).map_collect(|&c, &t, &e| if c { t } else { e }))
}

/// `f` over every element, in parallel for large contiguous inputs.
pub fn map<A, B, F>(x: &ArrayViewD<A>, f: F) -> ArrayD<B>
where
    A: Copy + Send + Sync,
    B: Copy + Send + Sync + Default,
    F: Fn(A) -> B + Sync + Send,
{
    match x.as_slice() {
        Some(s) if s.len() >= PAR_ELEMENTS => {
            ArrayD::from_shape_vec(IxDyn(x.shape()), par_map_slice(s, f)).expect("same element count")
        }
        _ => x.mapv(f),
    }
}

/// `f` over pairs of elements with broadcasting. Same-shape, scalar and trailing-row
/// broadcasts take fast contiguous paths; anything else goes through ndarray's broadcast.
///
/// ```
/// use ndarray::{array, IxDyn};
/// use tensorgraph_kernels::elementwise::zip_broadcast;
/// let a = array![[1.0f32, 2.0], [3.0, 4.0]].into_dyn();
/// let b = array![10.0f32, 20.0].into_dyn();
/// let c = zip_broadcast(&a.view(), &b.view(), |x, y| x + y).unwrap();
/// assert_eq!(c, array![[11.0, 22.0], [13.0, 24.0]].into_dyn());
/// ```
pub fn zip_broadcast<A, B, F>(a: &ArrayViewD<A>, b: &ArrayViewD<A>, f: F) -> KResult<ArrayD<B>>
where
    A: Copy + Send + Sync,
    B: Copy + Send + Sync + Default,
    F: Fn(A, A) -> B + Sync + Send,
{
    let out_shape = broadcast_shape(a.shape(), b.shape())?;
    let (sa, sb) = (a.as_slice(), b.as_slice());
    let v: Option<Vec<B>> = match (sa, sb) {
        (Some(x), Some(y)) if a.shape() == b.shape() => Some(zip_slices(x, y, &f)),
        (Some(x), Some(&[y])) if out_shape == a.shape() => Some(par_map_slice(x, |p| f(p, y))),
        (Some(&[x]), Some(y)) if out_shape == b.shape() => Some(par_map_slice(y, |q| f(x, q))),
        (Some(x), Some(y)) if out_shape == a.shape() && is_trailing(b.shape(), a.shape()) => Some(rows(x, y, &f)),
        (Some(x), Some(y)) if out_shape == b.shape() && is_trailing(a.shape(), b.shape()) => {
            Some(rows(y, x, |q, p| f(p, q)))
        }
        _ => None,
    };
    if let Some(v) = v {
        return Ok(ArrayD::from_shape_vec(IxDyn(&out_shape), v).expect("same element count"));
    }
    let (Some(av), Some(bv)) = (a.broadcast(IxDyn(&out_shape)), b.broadcast(IxDyn(&out_shape))) else {
        kbail!("cannot broadcast {:?} with {:?}", a.shape(), b.shape())
    };
    Ok(Zip::from(&av).and(&bv).map_collect(|&x, &y| f(x, y)))
}

/// True when `small` (after dropping leading 1s) equals the trailing dimensions of `big`.
fn is_trailing(small: &[usize], big: &[usize]) -> bool {
    let first = small.iter().position(|&d| d != 1).unwrap_or(small.len());
    let s = &small[first..];
    !s.is_empty() && s.len() <= big.len() && big[big.len() - s.len()..] == *s
}

fn zip_slices<A: Copy + Sync, B: Copy + Send + Default, F: Fn(A, A) -> B + Sync>(x: &[A], y: &[A], f: &F) -> Vec<B> {
    let mut out = vec![B::default(); x.len()];
    zip_into(x, y, &mut out, f);
    out
}

fn par_map_slice<A: Copy + Sync, B: Copy + Send + Default, F: Fn(A) -> B + Sync>(x: &[A], f: F) -> Vec<B> {
    let mut out = vec![B::default(); x.len()];
    map_into(x, &mut out, f);
    out
}

/// `out[i] = f(x[i])` over equal-length slices, in parallel when large (the session passes a
/// recycled `out`).
pub fn map_into<A: Copy + Sync, B: Copy + Send, F: Fn(A) -> B + Sync>(x: &[A], out: &mut [B], f: F) {
    assert_eq!(x.len(), out.len(), "map_into: equal lengths");
    if x.len() >= PAR_ELEMENTS {
        out.par_iter_mut().zip(x.par_iter()).with_min_len(PAR_ELEMENTS / 4).for_each(|(o, &p)| *o = f(p));
    } else {
        out.iter_mut().zip(x).for_each(|(o, &p)| *o = f(p));
    }
}

/// `out[i] = f(x[i], y[i])` over equal-length slices, in parallel when large.
pub fn zip_into<A: Copy + Sync, B: Copy + Send, F: Fn(A, A) -> B + Sync>(x: &[A], y: &[A], out: &mut [B], f: F) {
    assert_eq!((x.len(), y.len()), (out.len(), out.len()), "zip_into: equal lengths");
    if x.len() >= PAR_ELEMENTS {
        let pairs = x.par_iter().zip(y.par_iter());
        out.par_iter_mut().zip(pairs).with_min_len(PAR_ELEMENTS / 4).for_each(|(o, (&p, &q))| *o = f(p, q));
    } else {
        out.iter_mut().zip(x.iter().zip(y)).for_each(|(o, (&p, &q))| *o = f(p, q));
    }
}

/// `f(big[i], small[i % small.len()])`: a row vector broadcast over leading dimensions.
fn rows<A: Copy + Sync, B: Copy + Send, F: Fn(A, A) -> B + Sync>(big: &[A], small: &[A], f: F) -> Vec<B> {
    let n = small.len();
    if n == 0 {
        return Vec::new(); // rows of nothing: the output is empty too
    }
    let row = |r: &[A]| r.iter().zip(small).map(|(&p, &q)| f(p, q)).collect::<Vec<B>>();
    if big.len() >= PAR_ELEMENTS {
        big.par_chunks(n).with_min_len((PAR_ELEMENTS / 4 / n).max(1)).flat_map_iter(row).collect()
    } else {
        big.chunks(n).flat_map(row).collect()
    }
}

/// `f` over every element in place, in parallel for large contiguous arrays.
pub fn map_in_place<A, F>(x: &mut ArrayD<A>, f: F)
where
    A: Copy + Send + Sync,
    F: Fn(A) -> A + Sync + Send,
{
    match x.as_slice_mut() {
        Some(s) if s.len() >= PAR_ELEMENTS => {
            s.par_iter_mut().with_min_len(PAR_ELEMENTS / 4).for_each(|a| *a = f(*a));
        }
        _ => x.mapv_inplace(f),
    }
}

/// `a = f(a, b)` in place, `b` broadcast to `a`'s shape (an error if it cannot be).
pub fn zip_in_place<A, F>(a: &mut ArrayD<A>, b: &ArrayViewD<A>, f: F) -> KResult<()>
where
    A: Copy + Send + Sync,
    F: Fn(A, A) -> A + Sync + Send,
{
    // A row vector over a contiguous array (bias add, per-channel scales): plain row loops.
    if let (Some(bs), true) = (b.as_slice(), is_trailing(b.shape(), a.shape())) {
        let n = bs.len();
        if n == 0 {
            return Ok(()); // `a` is empty too
        }
        if let Some(s) = a.as_slice_mut() {
            let row = |r: &mut [A]| r.iter_mut().zip(bs).for_each(|(x, &y)| *x = f(*x, y));
            if s.len() >= PAR_ELEMENTS {
                s.par_chunks_mut(n).with_min_len((PAR_ELEMENTS / 4 / n).max(1)).for_each(row);
            } else {
                s.chunks_mut(n).for_each(row);
            }
            return Ok(());
        }
    }
    let Some(bv) = b.broadcast(a.raw_dim()) else {
        kbail!("cannot broadcast {:?} to {:?} in place", b.shape(), a.shape())
    };
    if a.len() >= PAR_ELEMENTS {
        Zip::from(a).and(&bv).par_for_each(|x, &y| *x = f(*x, y));
    } else {
        Zip::from(a).and(&bv).for_each(|x, &y| *x = f(*x, y));
    }
    Ok(())
}

/// Element-wise sum of same-shape arrays (`AddN`), each element summed in input order.
///
/// Contiguous inputs are summed one chunk of the output at a time (the chunk stays in L1 while
/// every input's part is added, in parallel when large): adding whole inputs one after the
/// other wrote the output back to memory once per input (the RNN tutorial's weight gradient,
/// 28 products of 80K floats: 440 us a step on one core).
///
/// ```
/// use ndarray::array;
/// let (a, b) = (array![1.0f32, 2.0].into_dyn(), array![10.0f32, 20.0].into_dyn());
/// let s = tensorgraph_kernels::elementwise::add_n(&[a.view(), b.view(), a.view()]).unwrap();
/// assert_eq!(s, array![12.0f32, 24.0].into_dyn());
/// ```
pub fn add_n<T: crate::Float>(xs: &[ArrayViewD<T>]) -> KResult<ArrayD<T>> {
    let Some(first) = xs.first() else { kbail!("AddN needs at least one input") };
    if let Some(x) = xs.iter().find(|x| x.shape() != first.shape()) {
        kbail!("AddN inputs differ in shape: {:?} vs {:?}", first.shape(), x.shape());
    }
    let Some(slices) = xs.iter().map(|x| x.as_slice()).collect::<Option<Vec<&[T]>>>() else {
        let mut out = first.to_owned();
        for x in &xs[1..] {
            out += x;
        }
        return Ok(out);
    };
    let mut out = vec![T::zero(); first.len()];
    /// Output elements summed at a time (16 KiB of f32).
    const CHUNK: usize = 4096;
    let chunk = |(c, o): (usize, &mut [T])| {
        let part = c * CHUNK..c * CHUNK + o.len();
        o.copy_from_slice(&slices[0][part.clone()]);
        for x in &slices[1..] {
            o.iter_mut().zip(&x[part.clone()]).for_each(|(o, &x)| *o += x);
        }
    };
    if out.len() * xs.len() >= PAR_ELEMENTS {
        out.par_chunks_mut(CHUNK).enumerate().for_each(chunk);
    } else {
        out.chunks_mut(CHUNK).enumerate().for_each(chunk);
    }
    Ok(ArrayD::from_shape_vec(first.raw_dim(), out).expect("the inputs' shape"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array, Dimension};

    fn general<F: Fn(f64, f64) -> f64>(a: &ArrayD<f64>, b: &ArrayD<f64>, f: F) -> ArrayD<f64> {
        let s = broadcast_shape(a.shape(), b.shape()).unwrap();
        let (x, y) = (a.broadcast(IxDyn(&s)).unwrap(), b.broadcast(IxDyn(&s)).unwrap());
        Zip::from(&x).and(&y).map_collect(|&p, &q| f(p, q))
    }

    /// Chunked, parallel and strided inputs all sum each element in input order.
    #[test]
    fn add_n_sums_in_input_order_whatever_the_layout() {
        let inputs: Vec<ArrayD<f32>> = (0..5)
            .map(|k| {
                Array::from_shape_fn(IxDyn(&[73, 137]), |i| ((i[0] * 31 + i[1] * 7 + k * 13) % 97) as f32 * 0.37 - 17.0)
            })
            .collect();
        let want = inputs.iter().skip(1).fold(inputs[0].clone(), |acc, x| acc + x);
        let views: Vec<_> = inputs.iter().map(|x| x.view()).collect();
        assert_eq!(add_n(&views).unwrap(), want);
        assert_eq!(add_n(&views[..2]).unwrap(), &inputs[0] + &inputs[1]);
        let transposed: Vec<_> = inputs.iter().map(|x| x.t()).collect();
        assert_eq!(add_n(&transposed).unwrap(), want.t());
        let empty = ArrayD::<f32>::zeros(IxDyn(&[0, 3]));
        assert_eq!(add_n(&[empty.view(), empty.view()]).unwrap(), empty);
        assert!(add_n(&[views[0].clone(), transposed[1].clone()]).is_err());
    }

    #[test]
    fn every_fast_path_agrees_with_the_general_broadcast() {
        let shapes: &[(&[usize], &[usize])] = &[
            (&[3, 4], &[3, 4]),
            (&[3, 4], &[]),
            (&[], &[3, 4]),
            (&[3, 4], &[4]),
            (&[4], &[3, 4]),
            (&[2, 3, 4], &[1, 4]),
            (&[3, 1], &[1, 4]),
            (&[2, 1, 4], &[3, 1]),
            (&[300, 200], &[200]),
        ];
        for (sa, sb) in shapes {
            let a = Array::from_shape_fn(IxDyn(sa), |i| i.slice().iter().sum::<usize>() as f64 + 0.5);
            let b = Array::from_shape_fn(IxDyn(sb), |i| i.slice().iter().product::<usize>() as f64 - 1.0);
            let got = zip_broadcast(&a.view(), &b.view(), |x, y| x * 2.0 - y).unwrap();
            assert_eq!(got, general(&a, &b, |x, y| x * 2.0 - y), "{sa:?} {sb:?}");
        }
    }

    #[test]
    fn in_place_row_and_general_paths_agree_with_zip_broadcast() {
        for (sa, sb) in
            [(&[300usize, 200][..], &[200usize][..]), (&[4, 3, 5], &[1, 5]), (&[4, 3, 5], &[3, 1]), (&[6, 2], &[])]
        {
            let a = Array::from_shape_fn(IxDyn(sa), |i| i.slice().iter().sum::<usize>() as f64 * 0.5);
            let b = Array::from_shape_fn(IxDyn(sb), |i| i.slice().iter().sum::<usize>() as f64 - 2.0);
            let want = zip_broadcast(&a.view(), &b.view(), |x, y| x * y + 1.0).unwrap();
            let mut got = a.clone();
            zip_in_place(&mut got, &b.view(), |x, y| x * y + 1.0).unwrap();
            assert_eq!(got, want, "{sa:?} {sb:?}");
        }
    }

    #[test]
    fn incompatible_shapes_are_an_error() {
        let a = Array::<f32, _>::zeros(IxDyn(&[2, 3]));
        let b = Array::<f32, _>::zeros(IxDyn(&[4]));
        let e = zip_broadcast(&a.view(), &b.view(), |x, y| x + y).unwrap_err();
        assert!(e.0.contains("[2,3] and [4]"), "{e}");
    }

    #[test]
    fn scalar_with_scalar() {
        let a = array![2.0f32].into_shape_with_order(IxDyn(&[])).unwrap();
        let c = zip_broadcast(&a.view(), &a.view(), |x, y| x * y).unwrap();
        assert_eq!(c.shape(), &[] as &[usize]);
        assert_eq!(c[[]], 4.0);
    }

    #[test]
    fn large_maps_run_in_parallel_and_agree() {
        let a = Array::from_shape_fn(IxDyn(&[PAR_ELEMENTS + 7]), |i| i[0] as f32);
        let m = map(&a.view(), |x| x * 2.0);
        assert_eq!(m[[PAR_ELEMENTS + 6]], 2.0 * (PAR_ELEMENTS + 6) as f32);
    }
}
