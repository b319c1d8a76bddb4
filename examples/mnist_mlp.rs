//! The talk's first program, line for line: an MLP 784-300-100-10 on MNIST with plain gradient
//! descent. `construction_phase` is the slide's graph, `execution_phase` its session.
//!
//!     cargo run --release --example mnist_mlp -- --epochs 10
//!
//! Defaults as the slide: 20 epochs, batch 50, learning rate 0.01. After each epoch it prints the
//! slide's line (train accuracy on the last batch, test accuracy on all 10,000 test images),
//! then the epoch's wall time. The flags (`--save`, `--restore`, `--logdir`, `--profile`, see
//! `--help`) act through `common::Extras`, out of the slide's way.

mod common;

use crate::common::{Extras, Flags, Model};
use clap::Parser;
use tensorgraph::prelude::*;

#[allow(dead_code)] // unused where another program includes this one (`slides`)
fn main() {
    let flags = Flags::parse();
    common::main_with(|| execution_phase(&construction_phase(&flags)?, &flags));
}

/// The slide's graph: placeholders, the `dnn` scope, loss, optimizer, evaluation.
pub fn construction_phase(flags: &Flags) -> Result<Model> {
    let n_inputs = 28 * 28; // MNIST
    let n_hidden1 = 300;
    let n_hidden2 = 100;
    let n_outputs = 10;

    let g = flags.graph();
    let x = g.placeholder(DType::F32, [None, Some(n_inputs)]).named("X")?;
    let y = g.placeholder(DType::I64, [None]).named("y")?;

    let logits = g.name_scope("dnn", || {
        let hidden1 = layers::dense(&x, n_hidden1, Some(nn::relu), "hidden1")?;
        let hidden2 = layers::dense(&hidden1, n_hidden2, Some(nn::relu), "hidden2")?;
        layers::dense(&hidden2, n_outputs, None, "outputs")
    })?;

    let loss = g.name_scope("loss", || {
        let xentropy = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits)?;
        math::reduce_mean(&xentropy, None).named("loss")
    })?;

    let learning_rate = flags.learning_rate.unwrap_or(0.01);
    let training_op = g.name_scope("train", || {
        let optimizer = GradientDescent::new(learning_rate);
        optimizer.minimize(&loss)
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
    let n_epochs = flags.epochs.unwrap_or(20);
    let batch_size = flags.batch_size.unwrap_or(50);

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
