//! The talk's second program, line for line: a CNN on MNIST. `construction_phase` is the slide's
//! graph, `execution_phase` its session.
//!
//!     cargo run --release --example mnist_cnn -- --optimizer adam --epochs 1
//!
//! conv 32 3x3 s1 SAME relu, conv 64 3x3 s2 SAME relu, max-pool 2x2 VALID, dense 64 relu,
//! dense 10; batch 100, 10 epochs. The slide's code says GradientDescent(0.01) (the default
//! here), but its printed numbers (0.9789 after epoch 0) need Adam: `--optimizer adam`.
//! The test set is evaluated in one call, as on the slide; the session runs the 10,000 images in
//! cache-sized chunks (`Session::set_batch_splitting`), so conv1's output never takes its 1 GB.

mod common;

use crate::common::{Extras, Flags, Model};
use clap::Parser;
use tensorgraph::prelude::*;

/// Trains the CNN slide's network on MNIST and prints the slide's lines.
#[derive(Parser, Debug)]
pub struct CnnFlags {
    #[command(flatten)]
    pub flags: Flags,
    /// The slide's code says sgd; its printed numbers need adam.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Sgd)]
    pub optimizer: OptimizerKind,
}

/// The optimizers the CNN slide's program chooses between.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    /// `GradientDescentOptimizer`, learning rate 0.01 by default.
    Sgd,
    /// `AdamOptimizer`, learning rate 0.001 by default.
    Adam,
}

#[allow(dead_code)] // unused where another program includes this one (`slides`)
fn main() {
    let args = CnnFlags::parse();
    common::main_with(|| execution_phase(&construction_phase(&args)?, &args.flags));
}

/// The slide's graph: the input reshaped to images, two convolutions, max-pooling, two dense
/// layers, loss, optimizer, evaluation.
pub fn construction_phase(args: &CnnFlags) -> Result<Model> {
    let (height, width, channels) = (28, 28, 1);
    let n_inputs = height * width;
    let (conv1_fmaps, conv1_ksize, conv1_stride, conv1_pad) = (32, 3, 1, Padding::Same);
    let (conv2_fmaps, conv2_ksize, conv2_stride, conv2_pad) = (64, 3, 2, Padding::Same);
    let pool3_fmaps = conv2_fmaps;
    let n_fc1 = 64;
    let n_outputs = 10;

    let g = args.flags.graph();
    let x = g.placeholder(DType::F32, [None, Some(n_inputs as usize)]).named("X")?;
    let x_reshaped = array::reshape(&x, &[-1, height, width, channels])?;
    let y = g.placeholder(DType::I64, [None]).named("y")?;

    let conv1 =
        layers::conv2d(&x_reshaped, conv1_fmaps, conv1_ksize, conv1_stride, conv1_pad, Some(nn::relu), "conv1")?;
    let conv2 = layers::conv2d(&conv1, conv2_fmaps, conv2_ksize, conv2_stride, conv2_pad, Some(nn::relu), "conv2")?;
    let pool3 = nn::max_pool(&conv2, [1, 2, 2, 1], [1, 2, 2, 1], Padding::Valid)?;
    let pool3_flat = array::reshape(&pool3, &[-1, pool3_fmaps as i64 * 7 * 7])?;
    let fc1 = layers::dense(&pool3_flat, n_fc1, Some(nn::relu), "fc1")?;
    let logits = layers::dense(&fc1, n_outputs, None, "output")?;

    let loss = g.name_scope("loss", || {
        let xentropy = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits)?;
        math::reduce_mean(&xentropy, None).named("loss")
    })?;

    let training_op = g.name_scope("train", || match args.optimizer {
        OptimizerKind::Sgd => GradientDescent::new(args.flags.learning_rate.unwrap_or(0.01)).minimize(&loss),
        OptimizerKind::Adam => Adam::new(args.flags.learning_rate.unwrap_or(0.001)).minimize(&loss),
    })?;

    let accuracy = g.name_scope("eval", || {
        let correct = nn::in_top_k(&logits, &y, 1)?;
        math::reduce_mean(&correct.cast(DType::F32)?, None)
    })?;
    Ok(Model { g, x, y, logits, loss, training_op, accuracy })
}

/// The slide's session: train, and after each epoch print the accuracy on the last batch and on
/// the whole test set.
pub fn execution_phase(m: &Model, flags: &Flags) -> Result<()> {
    let Model { g, x, y, training_op, accuracy, .. } = m;
    let init = g.global_variables_initializer()?;
    let mut mnist = flags.read_data_sets()?;
    let n_epochs = flags.epochs.unwrap_or(10);
    let batch_size = flags.batch_size.unwrap_or(100);

    let mut sess = Session::new(g)?;
    init.run(&sess, &[])?;
    let mut extras = Extras::new(flags, m, &mut sess, &mnist, batch_size, 10_000)?;
    let (mut x_batch, mut y_batch) = Default::default();
    for epoch in 0..n_epochs {
        for _iteration in 0..mnist.train.num_examples() / batch_size {
            (x_batch, y_batch) = mnist.train.next_batch(batch_size);
            sess.run(training_op, feed! {x => &x_batch, y => &y_batch})?;
            extras.step(&sess, feed! {x => &x_batch, y => &y_batch})?;
        }
        let acc_train: f32 = accuracy.eval(&sess, feed! {x => &x_batch, y => &y_batch})?.try_into()?;
        let acc_test: f32 =
            accuracy.eval(&sess, feed! {x => &mnist.test.images, y => &mnist.test.labels})?.try_into()?;
        println!("{epoch} Train accuracy: {acc_train:?} Test accuracy: {acc_test:?}");
        extras.end_epoch(&mut sess, epoch, acc_train, acc_test)?;
    }
    Ok(())
}
