//! The slides' CNN with the "What else?" list applied: batch normalization, dropout, Adam with
//! an exponentially decaying learning rate (0.003, times 0.75 per epoch), and L2 weight decay
//! (1e-4·Σw² per kernel, through the regularization-losses collection).
//!
//!     cargo run --release --example mnist_cnn_plus -- --epochs 10 --seed 1
//!
//! Same layers as `mnist_cnn` (conv 32 3x3 SAME, conv 64 3x3 s2 SAME, max-pool 2x2, dense 64,
//! dense 10), with batch norm before each hidden ReLU (the convolutions and the hidden dense
//! layer lose their biases, which batch norm's beta replaces), dropout 0.5 before the output
//! layer, He initialisation, and `training` a `placeholder_with_default(false)` that the loop
//! feeds true. The train op runs the moving-average updates (`update_ops`) first, as in TF1.

mod common;

use clap::Parser;
use tensorgraph::layers::{Conv2D, Dense, Regularizer};
use tensorgraph::prelude::*;

/// The slides' CNN with batch norm, dropout, L2 and Adam with a decaying learning rate.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    common: common::RunArgs,
    /// Epochs to train.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Adam's initial learning rate.
    #[arg(long, default_value_t = 0.003)]
    learning_rate: f64,
    /// Dropout rate before the output layer.
    #[arg(long, default_value_t = 0.5)]
    dropout: f64,
    /// L2 penalty scale of every kernel (`scale·Σw²`).
    #[arg(long, default_value_t = 1e-4)]
    l2: f64,
    /// Learning-rate decay per epoch.
    #[arg(long, default_value_t = 0.75)]
    decay: f64,
}

/// The CNN with batch norm and dropout; `l2` scales the kernels' weight decay.
fn logits(g: &Graph, x: &Tensor, training: &Tensor, seed: Option<u64>, rate: f64, l2: f64) -> Result<Tensor> {
    let he = || Initializer::he(Distribution::TruncatedNormal, None);
    let bn_relu = |t: &Tensor, name: &str| nn::relu(&layers::batch_normalization(t, training, name)?);
    let conv = |filters: usize, strides: usize| {
        Conv2D::new(filters, 3)
            .strides(strides)
            .padding(Padding::Same)
            .use_bias(false)
            .kernel_initializer(he())
            .kernel_regularizer(Regularizer::L2(l2))
    };
    let x_reshaped = array::reshape(x, &[-1, 28, 28, 1])?;
    let conv1 = bn_relu(&conv(32, 1).build(&x_reshaped, "conv1")?, "bn1")?;
    let conv2 = bn_relu(&conv(64, 2).build(&conv1, "conv2")?, "bn2")?;
    let pool3 = layers::flatten(&layers::max_pooling2d(&conv2, 2, 2, Padding::Valid, "pool3")?)?;
    let dense = |units: usize| Dense::new(units).kernel_initializer(he()).kernel_regularizer(Regularizer::L2(l2));
    let fc1 = bn_relu(&dense(64).use_bias(false).build(&pool3, "fc1")?, "bn3")?;
    let fc1_drop = g.name_scope("fc1_drop", || nn::dropout(&fc1, rate, training, seed))?;
    dense(10).build(&fc1_drop, "output")
}

fn main() {
    let flags = Args::parse();
    let args = &flags.common;
    common::main_with(|| {
        let (g, x, y) = common::inputs(args.seed)?;
        let batch_size = flags.batch_size;
        let training = g.placeholder_with_default(&g.scalar(0.0, DType::Bool)?).named("training")?;
        let logits = logits(&g, &x, &training, args.seed, flags.dropout, flags.l2)?;
        // One decay step per epoch of the full training set.
        let steps_per_epoch = ((60_000 - args.validation_size) / batch_size) as u64;
        let global_step = train::get_or_create_global_step(&g)?;
        let lr = train::exponential_decay(flags.learning_rate, &global_step, steps_per_epoch, flags.decay, true)?;
        let adam = Adam::new(&lr);
        let model = common::finish_model_with(&g, x, y, &logits, &adam, Some(&global_step), Some(training))?;
        common::train(&g, &model, args, flags.epochs, batch_size, 200)
    });
}
