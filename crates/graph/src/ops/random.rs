//! Random tensors (`tf.random_uniform`, `tf.truncated_normal`), seeded with TF1's rules.

use crate::error::Result;
use crate::graph::{Graph, Tensor};
use crate::op::Op;
use crate::DType;

/// Uniform samples in `[minval, maxval)`; every run draws anew, reproducibly when seeded.
#[track_caller]
pub fn random_uniform(
    g: &Graph,
    shape: &[usize],
    dtype: DType,
    minval: f64,
    maxval: f64,
    seed: Option<u64>,
) -> Result<Tensor> {
    let (seed, seed2) = g.random_seeds(seed);
    g.add_op1(Op::RandomUniform { dtype, shape: shape.to_vec(), minval, maxval, seed, seed2 }, &[], None)
}

/// Normal samples with `mean` and `stddev`, redrawn when beyond two standard deviations.
#[track_caller]
pub fn truncated_normal(
    g: &Graph,
    shape: &[usize],
    dtype: DType,
    mean: f64,
    stddev: f64,
    seed: Option<u64>,
) -> Result<Tensor> {
    let (seed, seed2) = g.random_seeds(seed);
    g.add_op1(Op::TruncatedNormal { dtype, shape: shape.to_vec(), mean, stddev, seed, seed2 }, &[], None)
}

/// Normal samples with `mean` and `stddev` (`tf.random_normal`).
#[track_caller]
pub fn random_normal(
    g: &Graph,
    shape: &[usize],
    dtype: DType,
    mean: f64,
    stddev: f64,
    seed: Option<u64>,
) -> Result<Tensor> {
    let (seed, seed2) = g.random_seeds(seed);
    g.add_op1(Op::RandomStandardNormal { dtype, shape: shape.to_vec(), mean, stddev, seed, seed2 }, &[], None)
}

/// Uniform samples in `[minval, maxval)` shaped like `x` at run time.
#[track_caller]
pub fn random_uniform_like(x: &Tensor, dtype: DType, minval: f64, maxval: f64, seed: Option<u64>) -> Result<Tensor> {
    let (seed, seed2) = x.graph().random_seeds(seed);
    x.graph().add_op1(Op::RandomUniformLike { dtype, minval, maxval, seed, seed2 }, &[x], None)
}
