//! Output buffers recycled from one run of a graph to the next.
//!
//! A training step produces the same tensors, of the same sizes, every time. Allocating them
//! anew costs a zeroing pass and, when the allocator has returned the memory to the OS, a page
//! fault per 4 KiB on first touch. The session hands every intermediate it frees to a
//! [`BufferPool`], and kernels take their outputs from it: after the first step, a step's
//! tensor buffers are the previous step's.

use crate::Float;
use std::collections::HashMap;

/// Free buffers of one element type, by length, each stamped with the run that freed it.
#[derive(Debug)]
pub struct Shelf<T> {
    by_len: HashMap<usize, Vec<(u64, Vec<T>)>>,
}

impl<T> Default for Shelf<T> {
    fn default() -> Self {
        Shelf { by_len: HashMap::new() }
    }
}

impl<T> Shelf<T> {
    fn drop_older_than(&mut self, run: u64) {
        self.by_len.retain(|_, vs| {
            vs.retain(|(r, _)| *r >= run);
            !vs.is_empty()
        })
    }
}

/// Recycled `f32`, `f64` and `i32` buffers.
///
/// ```
/// use tensorgraph_kernels::buffers::BufferPool;
/// let mut pool = BufferPool::default();
/// let v: Vec<f32> = pool.take_zeroed(1000);
/// let ptr = v.as_ptr();
/// pool.give(v);
/// pool.end_run();
/// let again: Vec<f32> = pool.take(1000); // the same memory, contents unspecified
/// assert_eq!((again.as_ptr(), again.len()), (ptr, 1000));
/// assert_eq!(pool.fresh_allocations(), 1);
/// ```
#[derive(Debug, Default)]
pub struct BufferPool {
    f32: Shelf<f32>,
    f64: Shelf<f64>,
    i32: Shelf<i32>,
    run: u64,
    fresh: u64,
}

/// Buffers below this many elements are not worth a lookup: the allocator's small-object path
/// is as fast, and their memory is always hot.
const MIN_POOLED: usize = 256;

impl BufferPool {
    /// A buffer of `len` elements whose contents are unspecified (a previous tensor's values):
    /// for kernels that overwrite every element.
    pub fn take<T: Pooled + Copy + Default>(&mut self, len: usize) -> Vec<T> {
        if len >= MIN_POOLED {
            if let Some((_, v)) = T::shelf(self).by_len.get_mut(&len).and_then(Vec::pop) {
                return v;
            }
            self.fresh += 1;
        }
        vec![T::default(); len]
    }

    /// A buffer of `len` zeros: for kernels that accumulate into their output.
    pub fn take_zeroed<T: Float>(&mut self, len: usize) -> Vec<T> {
        let mut v = self.take(len);
        v.fill(T::zero());
        v
    }

    /// A copy of `src` in a recycled buffer.
    pub fn copy_of<T: Float>(&mut self, src: &[T]) -> Vec<T> {
        let mut v = self.take(src.len());
        v.copy_from_slice(src);
        v
    }

    /// Returns a buffer nobody reads any more, for a later `take` of the same length.
    pub fn give<T: Pooled>(&mut self, v: Vec<T>) {
        if v.len() >= MIN_POOLED {
            let run = self.run;
            T::shelf(self).by_len.entry(v.len()).or_default().push((run, v));
        }
    }

    /// Ends a run: drops the buffers that sat unused through it (sizes of an older plan, a
    /// smaller last batch), so the pool holds at most what one run frees.
    pub fn end_run(&mut self) {
        self.f32.drop_older_than(self.run);
        self.f64.drop_older_than(self.run);
        self.i32.drop_older_than(self.run);
        self.run += 1;
    }

    /// How many buffers of at least 256 elements `take` had to allocate since the pool was made
    /// (for tests and benchmarks: zero per run once a plan has run once).
    pub fn fresh_allocations(&self) -> u64 {
        self.fresh
    }

    /// Bytes held for reuse.
    pub fn held_bytes(&self) -> usize {
        let f32s: usize = self.f32.by_len.iter().map(|(len, vs)| len * vs.len() * 4).sum();
        let f64s: usize = self.f64.by_len.iter().map(|(len, vs)| len * vs.len() * 8).sum();
        let i32s: usize = self.i32.by_len.iter().map(|(len, vs)| len * vs.len() * 4).sum();
        f32s + f64s + i32s
    }
}

/// Access to the shelf of one element type: f32, f64 and i32 (a pooling's winners).
pub trait Pooled: Sized {
    fn shelf(pool: &mut BufferPool) -> &mut Shelf<Self>;
}

impl Pooled for f32 {
    fn shelf(pool: &mut BufferPool) -> &mut Shelf<f32> {
        &mut pool.f32
    }
}

impl Pooled for f64 {
    fn shelf(pool: &mut BufferPool) -> &mut Shelf<f64> {
        &mut pool.f64
    }
}

impl Pooled for i32 {
    fn shelf(pool: &mut BufferPool) -> &mut Shelf<i32> {
        &mut pool.i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_unused_for_a_whole_run_are_dropped() {
        let mut pool = BufferPool::default();
        pool.give(vec![1.0f32; 1000]);
        pool.give(vec![1.0f64; 2000]);
        pool.end_run(); // freed during run 0: kept for run 1
        assert_eq!(pool.held_bytes(), 4000 + 16000);
        let v: Vec<f32> = pool.take(1000);
        pool.give(v);
        pool.end_run(); // the f64 buffer sat unused through run 1
        assert_eq!(pool.held_bytes(), 4000);
        assert_eq!(pool.fresh_allocations(), 0);
    }

    /// The `_with` kernels get stale buffers from the pool: each must overwrite every element.
    #[test]
    fn every_with_kernel_overwrites_a_poisoned_buffer() {
        use crate::{conv, gemm, pool};
        let poison = |n: usize| vec![f64::NAN; n];
        let data = |n: usize, salt: usize| (0..n).map(|i| ((i * 31 + salt) % 13) as f64 - 6.0).collect::<Vec<_>>();
        for (input, stride, same) in [([2, 7, 7, 3], 2, true), ([2, 6, 5, 4], 1, false), ([2, 4, 6, 3], 2, true)] {
            let g = conv::Conv2dGeometry::new(input, [3, 3, input[3], 4], [stride, stride], [1, 1], same);
            let (x, w) = (data(input.iter().product(), 1), data(9 * input[3] * 4, 2));
            let dy = data(g.output_shape().iter().product(), 3);
            assert_eq!(conv::conv2d_with(&x, &w, &g, poison, crate::Epilogue::NONE), conv::conv2d(&x, &w, &g));
            assert_eq!(
                conv::conv2d_backprop_input_with(&w, dy[..].into(), &g, poison, Default::default()),
                conv::conv2d_backprop_input(&w, &dy, &g)
            );
            let pg = pool::PoolGeometry::new(input, [2, 2], [stride, stride], same);
            let py = data(pg.output_shape().iter().product(), 4);
            assert_eq!(pool::max_pool_with(&x, &pg, poison), pool::max_pool(&x, &pg));
            assert_eq!(
                conv::conv2d_backprop_filter_with(&x, &dy, &g, poison),
                conv::conv2d_backprop_filter(&x, &dy, &g)
            );
            assert_eq!(pool::max_pool_grad_with(&x, &py, &pg, poison, false, None), pool::max_pool_grad(&x, &py, &pg));
        }
        for k in [0, 5] {
            let a = ndarray::Array2::from_shape_vec((3, k), data(3 * k, 5)).unwrap();
            let b = ndarray::Array2::from_shape_vec((k, 4), data(4 * k, 6)).unwrap();
            let with = gemm::matmul_with(a.view(), b.view(), false, false, poison, crate::Epilogue::NONE).unwrap();
            assert_eq!(with, gemm::matmul(a.view(), b.view(), false, false).unwrap());
        }
    }

    #[test]
    fn zeroed_buffers_are_zero_and_small_ones_bypass_the_pool() {
        let mut pool = BufferPool::default();
        pool.give(vec![7.0f32; 300]);
        pool.give(vec![7.0f32; 10]);
        assert!(pool.take_zeroed::<f32>(300).iter().all(|&v| v == 0.0));
        assert_eq!(pool.held_bytes(), 0);
        let _: Vec<f32> = pool.take(10);
        assert_eq!(pool.fresh_allocations(), 0);
    }
}
