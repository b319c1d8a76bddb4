//! Batch normalization with TF1's semantics (`tf.layers.batch_normalization`).

use crate::math::{mul, select, sub};
use crate::{collections, state, Error, Initializer, Result, Tensor};

/// Normalises `x` over every axis but the last with TF1's defaults (momentum 0.99, epsilon
/// 1e-3, learned `beta` and `gamma`): see [`BatchNormalization`].
#[track_caller]
pub fn batch_normalization(x: &Tensor, training: &Tensor, name: &str) -> Result<Tensor> {
    BatchNormalization::new().build(x, training, name)
}

/// Batch normalization as `tf.layers.batch_normalization(x, training=training, name=name)`.
///
/// While the bool scalar `training` is true, `x` is normalised with the batch's mean and
/// (biased) variance over every axis but the last; otherwise with the moving averages. The
/// variables are `<name>/gamma`, `<name>/beta` (trainable), `<name>/moving_mean` and
/// `<name>/moving_variance`. Two `AssignSub` ops update the moving averages,
/// `moving -= (moving - batch)·(1 - momentum)`, and go to the `update_ops` operation collection:
/// run them with the train op, as in TF1:
///
/// ```
/// use tensorgraph::prelude::*;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(28), Some(28), Some(32)]).named("x")?;
/// let training = g.placeholder_with_default(&g.scalar(0.0, DType::Bool)?).named("training")?;
/// let y = layers::batch_normalization(&x, &training, "bn1")?;
/// let loss = math::reduce_mean(&math::square(&y)?, None).named("loss")?;
/// let update_ops = g.get_operation_collection(collections::UPDATE_OPS);
/// assert_eq!(update_ops.len(), 2);
/// let refs: Vec<&Operation> = update_ops.iter().collect();
/// let train_op = g.control_dependencies(&refs, || Adam::default().minimize(&loss))?;
/// # let _ = train_op;
/// # Ok(()) }
/// ```
///
/// When `training` is false the update ops leave the averages unchanged (TF's momentum-1
/// branch), so running them always is safe. For 4-D inputs the moving variance takes the
/// batch variance with Bessel's correction `n/(n-1)`, as TF's fused kernel does there; for
/// other ranks the biased variance, as TF's non-fused path does.
#[derive(Clone, Debug)]
pub struct BatchNormalization {
    momentum: f64,
    epsilon: f64,
    center: bool,
    scale: bool,
}

impl Default for BatchNormalization {
    fn default() -> BatchNormalization {
        BatchNormalization { momentum: 0.99, epsilon: 1e-3, center: true, scale: true }
    }
}

impl BatchNormalization {
    /// TF1's defaults.
    pub fn new() -> BatchNormalization {
        BatchNormalization::default()
    }

    /// How much of the old moving average each update keeps.
    pub fn momentum(mut self, momentum: f64) -> BatchNormalization {
        self.momentum = momentum;
        self
    }

    pub fn epsilon(mut self, epsilon: f64) -> BatchNormalization {
        self.epsilon = epsilon;
        self
    }

    /// Whether to learn the offset `beta`.
    pub fn center(mut self, on: bool) -> BatchNormalization {
        self.center = on;
        self
    }

    /// Whether to learn the scale `gamma` (TF: it may be off when the next layer is linear or a
    /// ReLU, which can absorb the scaling).
    pub fn scale(mut self, on: bool) -> BatchNormalization {
        self.scale = on;
        self
    }

    /// Applies the layer to `x` (float, rank >= 2, last dimension known) in variable scope `name`.
    #[track_caller]
    pub fn build(&self, x: &Tensor, training: &Tensor, name: &str) -> Result<Tensor> {
        let shape = x.shape();
        let (rank, dtype) = (shape.rank(), x.dtype());
        let channels = match shape.dims().last() {
            Some(Some(c)) if rank >= 2 && dtype.is_float() => *c,
            _ => {
                return Err(Error::InvalidArgument {
                    node: x.op().info(),
                    detail: format!(
                        "batch normalization '{name}' needs a float input of rank >= 2 with a known last dimension, got {dtype} {shape}"
                    ),
                })
            }
        };
        if training.dtype() != crate::DType::Bool || training.shape().rank() != 0 {
            return Err(Error::InvalidArgument {
                node: training.op().info(),
                detail: format!(
                    "batch normalization '{name}' needs a bool scalar `training`, got {} {}",
                    training.dtype(),
                    training.shape()
                ),
            });
        }
        let g = x.graph();
        let _scope = g.enter_variable_scope(name);
        let var = |n: &str, init: Initializer, trainable: bool| g.get_variable(n, &[channels], dtype, &init, trainable);
        let gamma = if self.scale { Some(var("gamma", Initializer::Ones, true)?) } else { None };
        let beta = if self.center { Some(var("beta", Initializer::Zeros, true)?) } else { None };
        let moving_mean = var("moving_mean", Initializer::Zeros, false)?;
        let moving_variance = var("moving_variance", Initializer::Ones, false)?;

        // y = (x - mean)·gamma/√(var + ε) + beta with batch or moving statistics, in one op.
        let k = |v: f64| g.scalar(v, dtype);
        let gamma = match &gamma {
            Some(v) => (**v).clone(),
            None => crate::array::ones(g, &[channels], dtype)?,
        };
        let beta = match &beta {
            Some(v) => (**v).clone(),
            None => crate::array::zeros(g, &[channels], dtype)?,
        };
        let out =
            crate::nn::fused_batch_norm(x, &gamma, &beta, &moving_mean, &moving_variance, training, self.epsilon)?;
        let (y, mean, variance) = (out[0].clone(), out[1].clone(), out[2].clone());
        let axes: Vec<i64> = (0..rank as i64 - 1).collect();

        // Moving averages: no change when not training (decay 0).
        let decay = select(training, &k(1.0 - self.momentum)?, &k(0.0)?)?;
        let batch_variance = if rank == 4 {
            let n = crate::math::size(x, Some(&axes), dtype)?;
            let n_minus_1 = crate::math::maximum(&sub(&n, &k(1.0)?)?, &k(1.0)?)?;
            mul(&variance, &crate::math::div(&n, &n_minus_1)?)?
        } else {
            variance
        };
        for (moving, batch, op_name) in
            [(&moving_mean, &mean, "AssignMovingAvg"), (&moving_variance, &batch_variance, "AssignMovingAvg_1")]
        {
            let _s = g.enter_name_scope(op_name);
            let delta = mul(&sub(moving, batch)?, &decay)?;
            g.add_operation_to_collection(collections::UPDATE_OPS, &state::assign_sub(moving, &delta)?.op());
        }
        Ok(y)
    }
}
