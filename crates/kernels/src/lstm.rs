//! TF's `LSTMBlockCell` and `LSTMBlockCellGrad`: one LSTM step as one GEMM over `[x, h]` and one
//! pass over the gates, forward and backward (the element-wise part of a step as one loop
//! instead of a dozen ops, each reading and writing the whole batch).
//!
//! Gate order `i, ci, f, o` (TF's BasicLSTMCell calls `ci` `j`):
//! `i = σ(i)`, `ci = tanh(ci)`, `f = σ(f + forget_bias)`, `o = σ(o)`, `cs = ci·i + cs_prev·f`
//! (clipped to `±cell_clip` when positive), `co = tanh(cs)`, `h = co·o`. Peepholes add
//! `cs_prev·wci` to `i`, `cs_prev·wcf` to `f` and `cs·wco` to `o` before the sigmoids.

use crate::gemm::gemm_into;
use crate::pair::Disjoint;
use crate::{kbail, Float, KResult};
use ndarray::{ArrayView1, ArrayView2};
use std::ops::Range;

/// Elements (`batch x cell`) below which a step's gate loop runs on the calling thread alone:
/// a share for the other core must outweigh its hand-over (a few microseconds; the forward gate
/// loop costs ~9 ns an element on one core, mostly its five sigmoids and tanhs).
const SHARED_ELEMENTS: usize = 1 << 11;

/// Elements above which the gate loop is split across rayon's whole pool rather than shared
/// with [`crate::pair`]'s helper (which starts sooner but is one more core).
const POOL_ELEMENTS: usize = 1 << 17;

/// Runs `f` over consecutive chunks of `0..batch` (each row in exactly one), on more than one
/// core when the step is large enough. Each row's arithmetic is the same whichever chunk and
/// thread runs it, so the bits do not depend on the split.
fn for_row_chunks(batch: usize, cell: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
    let elements = batch * cell;
    let threads = rayon::current_num_threads();
    if threads < 2 || batch < 2 || elements < SHARED_ELEMENTS {
        return f(0..batch);
    }
    // Several chunks a thread, so a thread that starts late still takes its share.
    let chunks = (4 * threads).min(batch);
    let size = batch.div_ceil(chunks);
    let chunk = |c: usize| c * size..((c + 1) * size).min(batch);
    let count = batch.div_ceil(size);
    if elements >= POOL_ELEMENTS && threads > 2 {
        use rayon::prelude::*;
        (0..count).into_par_iter().for_each(|c| f(chunk(c)));
    } else {
        crate::pair::for_each(count, &|c| f(chunk(c)));
    }
}

/// The step's seven outputs, each `[batch, cell]` row-major: `i, cs, f, o, ci, co, h`.
pub struct BlockOutputs<T> {
    pub i: Vec<T>,
    pub cs: Vec<T>,
    pub f: Vec<T>,
    pub o: Vec<T>,
    pub ci: Vec<T>,
    pub co: Vec<T>,
    pub h: Vec<T>,
    /// The gates' pre-activations `[batch, 4·cell]`, a scratch buffer from `alloc` handed back
    /// for the caller to reuse (dropped, it was allocated anew and zeroed at every step: 28
    /// fresh 200 KB buffers a step of the recurrent tutorial).
    pub scratch: Vec<T>,
}

/// The gradients [`block_cell_grad`] gives: `dicfo` `[batch, 4·cell]`, `cs_prev`'s
/// `[batch, cell]`, and the three peephole weights' `[cell]` (zero without peepholes).
pub struct BlockGrads<T> {
    pub dicfo: Vec<T>,
    pub cs_prev_grad: Vec<T>,
    pub peepholes: [Vec<T>; 3],
}

/// The attributes of the op.
#[derive(Clone, Copy, Debug)]
pub struct BlockAttrs {
    pub forget_bias: f64,
    /// Clip `cs` to `±cell_clip`; negative: no clipping.
    pub cell_clip: f64,
    pub use_peephole: bool,
}

/// One LSTM step (TF's `LSTMBlockCell`). `w` is `[input + cell, 4·cell]`, `b` `[4·cell]`, the
/// peephole weights `[cell]` (read only with `use_peephole`).
#[allow(clippy::too_many_arguments)]
pub fn block_cell<T: Float>(
    x: ArrayView2<T>,
    cs_prev: ArrayView2<T>,
    h_prev: ArrayView2<T>,
    w: ArrayView2<T>,
    peepholes: [ArrayView1<T>; 3],
    b: ArrayView1<T>,
    attrs: BlockAttrs,
    mut alloc: impl FnMut(usize) -> Vec<T>,
) -> KResult<BlockOutputs<T>> {
    let ((batch, input), cell) = (x.dim(), cs_prev.dim().1);
    let shapes_fit = cs_prev.dim() == (batch, cell)
        && h_prev.dim() == (batch, cell)
        && w.dim() == (input + cell, 4 * cell)
        && b.len() == 4 * cell
        && (!attrs.use_peephole || peepholes.iter().all(|p| p.len() == cell));
    if !shapes_fit {
        kbail!(
            "LSTMBlockCell shapes do not fit: x {:?}, cs_prev {:?}, h_prev {:?}, w {:?}, b [{}]",
            x.dim(),
            cs_prev.dim(),
            h_prev.dim(),
            w.dim(),
            b.len()
        );
    }
    // gates = [x, h_prev]·w + b, as two products into one buffer.
    let mut gates = alloc(batch * 4 * cell);
    {
        let mut g = ndarray::ArrayViewMut2::from_shape((batch, 4 * cell), &mut gates).expect("batch x 4·cell");
        gemm_into(x, w.slice(ndarray::s![..input, ..]), g.view_mut(), false, true);
        gemm_into(h_prev, w.slice(ndarray::s![input.., ..]), g.view_mut(), true, true);
    }
    let (fb, clip) = (T::of(attrs.forget_bias), T::of(attrs.cell_clip));
    let b = b.as_standard_layout();
    let b = b.as_slice().expect("standard layout");
    let cs_prev = cs_prev.as_standard_layout();
    let cs_prev = cs_prev.as_slice().expect("standard layout");
    let peep: Vec<Vec<T>> = peepholes.iter().map(|p| p.iter().copied().collect()).collect();
    let n = batch * cell;
    let mut out = BlockOutputs {
        i: alloc(n),
        cs: alloc(n),
        f: alloc(n),
        o: alloc(n),
        ci: alloc(n),
        co: alloc(n),
        h: alloc(n),
        scratch: Vec::new(),
    };
    let zero = vec![T::zero(); cell];
    let (wci, wcf, wco) = match attrs.use_peephole {
        true => (&peep[0][..], &peep[1][..], &peep[2][..]),
        false => (&zero[..], &zero[..], &zero[..]),
    };
    let outs = [&mut out.i, &mut out.cs, &mut out.f, &mut out.o, &mut out.ci, &mut out.co, &mut out.h]
        .map(|v| Disjoint::new(v.as_mut_ptr()));
    for_row_chunks(batch, cell, &|rows| {
        let (lo, hi) = (rows.start * cell, rows.end * cell);
        // SAFETY: these rows of each output are written by this chunk alone.
        let [i, cs, f, o, ci, co, h] = outs.map(|d| unsafe { d.slice(lo, hi) });
        let cp = &cs_prev[lo..hi];
        // Row r's pre-activations of gate k, and the gate's bias.
        let gate = |r: usize, k: usize| (&gates[(r * 4 + k) * cell..][..cell], &b[k * cell..(k + 1) * cell]);
        // Pre-activations first (plain adds), then each nonlinearity over the chunk's rows at
        // once (one loop over all seven outputs does not vectorise, and costs 5x more; a call
        // per row and gate cost ~15% of the step in call overhead).
        for (q, r) in rows.clone().enumerate() {
            let row = q * cell..(q + 1) * cell;
            let ((gi, bi), (gci, bci), (gf, bf)) = (gate(r, 0), gate(r, 1), gate(r, 2));
            let c = &cp[row.clone()];
            for ((((y, &g), &b), &c), &w) in i[row.clone()].iter_mut().zip(gi).zip(bi).zip(c).zip(wci) {
                *y = g + b + c * w;
            }
            for ((y, &g), &b) in ci[row.clone()].iter_mut().zip(gci).zip(bci) {
                *y = g + b;
            }
            for ((((y, &g), &b), &c), &w) in f[row].iter_mut().zip(gf).zip(bf).zip(c).zip(wcf) {
                *y = g + b + fb + c * w;
            }
        }
        T::sigmoid_slice(i);
        T::tanh_slice(ci);
        T::sigmoid_slice(f);
        for ((((y, &ci), &i), &c), &f) in cs.iter_mut().zip(&*ci).zip(&*i).zip(cp).zip(&*f) {
            let c = ci * i + c * f;
            *y = if clip > T::zero() { c.max(-clip).min(clip) } else { c };
        }
        for (q, r) in rows.enumerate() {
            let (row, (go, bo)) = (q * cell..(q + 1) * cell, gate(r, 3));
            for ((((y, &g), &b), &c), &w) in o[row.clone()].iter_mut().zip(go).zip(bo).zip(&cs[row]).zip(wco) {
                *y = g + b + c * w;
            }
        }
        T::sigmoid_slice(o);
        co.copy_from_slice(cs);
        T::tanh_slice(co);
        for ((y, &c), &o) in h.iter_mut().zip(&*co).zip(&*o) {
            *y = c * o;
        }
    });
    out.scratch = gates;
    Ok(out)
}

/// The gradients of one step (TF's `LSTMBlockCellGrad`) from the forward outputs and the
/// gradients reaching `cs` and `h`: `dicfo` (`[batch, 4·cell]`, the gates' pre-activations,
/// from which the caller's GEMMs give `x`, `h_prev`, `w` and `b`), `cs_prev`'s gradient, and the
/// peephole weights' (zero without peepholes). All row-major `[batch, cell]` except `dicfo` and
/// the peephole gradients (`[cell]`).
#[allow(clippy::too_many_arguments)]
pub fn block_cell_grad<T: Float>(
    cs_prev: &[T],
    peepholes: [&[T]; 3],
    [i, cs, f, o, ci, co]: [&[T]; 6],
    cs_grad: &[T],
    h_grad: &[T],
    (batch, cell): (usize, usize),
    use_peephole: bool,
    mut alloc: impl FnMut(usize) -> Vec<T>,
) -> KResult<BlockGrads<T>> {
    let n = batch * cell;
    let all = [cs_prev, i, cs, f, o, ci, co, cs_grad, h_grad];
    if all.iter().any(|a| a.len() != n) || (use_peephole && peepholes.iter().any(|p| p.len() != cell)) {
        kbail!("LSTMBlockCellGrad inputs do not all have the shape [{batch}, {cell}]");
    }
    let mut dicfo = alloc(4 * n);
    let mut cs_prev_grad = alloc(n);
    let (dicfo_at, cs_prev_grad_at) = (Disjoint::new(dicfo.as_mut_ptr()), Disjoint::new(cs_prev_grad.as_mut_ptr()));
    // Row by row over equal-length slices (no bounds checks), in the CPU's widest vectors: an
    // indexed loop at SSE2 width took 110 us a step of the RNN tutorial on a Zen 3.
    let rows_into = |rows: Range<usize>, peep_grads: &mut [Vec<T>; 3]| {
        crate::wide::run(
            #[inline(always)]
            || {
                for r in rows {
                    let row = r * cell..(r + 1) * cell;
                    // SAFETY: row r of dicfo and of cs_prev_grad is written by this call alone.
                    let d = unsafe { dicfo_at.slice(r * 4 * cell, (r + 1) * 4 * cell) };
                    let dcp = unsafe { cs_prev_grad_at.slice(row.start, row.end) };
                    let (di, rest) = d.split_at_mut(cell);
                    let (dci, rest) = rest.split_at_mut(cell);
                    let (df, d_o) = rest.split_at_mut(cell);
                    let ins = GateRow {
                        cs_prev: &cs_prev[row.clone()],
                        i: &i[row.clone()],
                        cs: &cs[row.clone()],
                        f: &f[row.clone()],
                        o: &o[row.clone()],
                        ci: &ci[row.clone()],
                        co: &co[row.clone()],
                        cs_grad: &cs_grad[row.clone()],
                        h_grad: &h_grad[row],
                    };
                    let outs = [di, dci, df, d_o, dcp];
                    if use_peephole {
                        grad_row::<T, true>(&ins, peepholes, outs, peep_grads);
                    } else {
                        grad_row::<T, false>(&ins, peepholes, outs, peep_grads);
                    }
                }
            },
        )
    };
    let mut peep_grads = [vec![T::zero(); cell], vec![T::zero(); cell], vec![T::zero(); cell]];
    if use_peephole {
        // The peephole gradients sum over the rows: one thread, in row order.
        rows_into(0..batch, &mut peep_grads);
    } else {
        for_row_chunks(batch, cell, &|rows| rows_into(rows, &mut [vec![], vec![], vec![]]));
    }
    Ok(BlockGrads { dicfo, cs_prev_grad, peepholes: peep_grads })
}

/// One batch row of the forward outputs and incoming gradients [`block_cell_grad`] reads.
struct GateRow<'a, T> {
    cs_prev: &'a [T],
    i: &'a [T],
    cs: &'a [T],
    f: &'a [T],
    o: &'a [T],
    ci: &'a [T],
    co: &'a [T],
    cs_grad: &'a [T],
    h_grad: &'a [T],
}

/// The gate gradients `[di, dci, df, do, dcs_prev]` of one row (the peephole terms and their
/// gradients only when `PEEP`), each element's expression in TF's order.
#[inline(always)]
fn grad_row<T: Float, const PEEP: bool>(
    x: &GateRow<T>,
    peepholes: [&[T]; 3],
    [di, dci, df, d_o, dcp]: [&mut [T]; 5],
    peep_grads: &mut [Vec<T>; 3],
) {
    let (one, n) = (T::one(), x.i.len());
    let (cs_prev, i, cs, f, o) = (&x.cs_prev[..n], &x.i[..n], &x.cs[..n], &x.f[..n], &x.o[..n]);
    let (ci, co, cs_grad, h_grad) = (&x.ci[..n], &x.co[..n], &x.cs_grad[..n], &x.h_grad[..n]);
    let (di, dci, df, d_o, dcp) = (&mut di[..n], &mut dci[..n], &mut df[..n], &mut d_o[..n], &mut dcp[..n]);
    for k in 0..n {
        let do_ = h_grad[k] * co[k] * o[k] * (one - o[k]);
        let mut dcs = h_grad[k] * o[k] * (one - co[k] * co[k]) + cs_grad[k];
        if PEEP {
            dcs += do_ * peepholes[2][k];
        }
        let dci_ = dcs * i[k] * (one - ci[k] * ci[k]);
        let df_ = dcs * cs_prev[k] * f[k] * (one - f[k]);
        let di_ = dcs * ci[k] * i[k] * (one - i[k]);
        let mut dcp_ = dcs * f[k];
        if PEEP {
            dcp_ += di_ * peepholes[0][k] + df_ * peepholes[1][k];
            peep_grads[0][k] += di_ * cs_prev[k];
            peep_grads[1][k] += df_ * cs_prev[k];
            peep_grads[2][k] += do_ * cs[k];
        }
        (di[k], dci[k], df[k], d_o[k], dcp[k]) = (di_, dci_, df_, do_, dcp_);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    fn data(rows: usize, cols: usize, seed: usize) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |(i, j)| ((i * 7 + j * 3 + seed) % 23) as f32 * 0.1 - 1.1)
    }

    /// A step and its gradient, forward outputs then `dicfo` and `cs_prev`'s gradient.
    fn step(batch: usize, input: usize, cell: usize) -> Vec<Vec<f32>> {
        let (x, cs, h, w) =
            (data(batch, input, 1), data(batch, cell, 2), data(batch, cell, 3), data(input + cell, 4 * cell, 4));
        let w = w.mapv(|v| v * 0.05);
        let b = Array1::from_shape_fn(4 * cell, |i| (i % 5) as f32 * 0.01);
        let p = Array1::<f32>::zeros(cell);
        let attrs = BlockAttrs { forget_bias: 1.0, cell_clip: 3.0, use_peephole: false };
        let o = block_cell(
            x.view(),
            cs.view(),
            h.view(),
            w.view(),
            [p.view(), p.view(), p.view()],
            b.view(),
            attrs,
            crate::zeros,
        )
        .unwrap();
        let (cg, hg) = (data(batch, cell, 5), data(batch, cell, 6));
        let ps = p.as_slice().unwrap();
        let g = block_cell_grad(
            cs.as_slice().unwrap(),
            [ps, ps, ps],
            [&o.i, &o.cs, &o.f, &o.o, &o.ci, &o.co],
            cg.as_slice().unwrap(),
            hg.as_slice().unwrap(),
            (batch, cell),
            false,
            crate::zeros,
        )
        .unwrap();
        vec![o.i, o.cs, o.f, o.o, o.ci, o.co, o.h, g.dicfo, g.cs_prev_grad]
    }

    fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
    }

    /// The gate loops split by rows (shared with the pair helper, or across a pool of three)
    /// give the bits of one thread.
    #[test]
    fn row_chunks_give_the_bits_of_one_thread() {
        for (batch, cell) in [(40, 64), (1030, 128)] {
            let one = on_threads(1, || step(batch, 7, cell));
            for threads in [2, 3] {
                assert!(one == on_threads(threads, || step(batch, 7, cell)), "batch {batch}, {threads} threads");
            }
        }
    }
}
