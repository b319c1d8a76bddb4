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
use common::{accuracy_of, Extras, Flags, Model};
use tensorgraph::layers::{Conv2D, Dense, Regularizer};
use tensorgraph::prelude::*;

/// The slides' CNN with batch norm, dropout, L2 and Adam with a decaying learning rate
/// (--epochs 10, --batch-size 100, --learning-rate 0.003 by default).
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    flags: Flags,
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

/// The graph: the network, the loss with the L2 penalties, Adam over a decaying learning rate
/// after the update ops, the accuracy. Also returns the training switch.
fn construction_phase(args: &Args) -> Result<(Model, Tensor)> {
    let flags = &args.flags;
    let g = flags.graph();
    let x = g.placeholder(DType::F32, [None, Some(784)]).named("X")?;
    let y = g.placeholder(DType::I64, [None]).named("y")?;
    let training = g.placeholder_with_default(&g.scalar(0.0, DType::Bool)?).named("training")?;
    let logits = logits(&g, &x, &training, flags.seed, args.dropout, args.l2)?;
    let loss = g.name_scope("loss", || {
        let xentropy = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits)?;
        let base_loss = math::reduce_mean(&xentropy, None)?;
        math::add(&base_loss, &tensorgraph::losses::get_regularization_loss(&g)?).named("loss")
    })?;
    // One decay step per epoch of the full training set.
    let steps_per_epoch = ((60_000 - flags.validation_size) / flags.batch_size.unwrap_or(100)) as u64;
    let global_step = train::get_or_create_global_step(&g)?;
    let lr = flags.learning_rate.unwrap_or(0.003);
    let learning_rate = train::exponential_decay(lr, &global_step, steps_per_epoch, args.decay, true)?;
    let update_ops = g.get_operation_collection(collections::UPDATE_OPS);
    let training_op = g.name_scope("train", || {
        let optimizer = Adam::new(&learning_rate);
        g.control_dependencies(&update_ops.iter().collect::<Vec<_>>(), || {
            optimizer.minimize_with(&loss, None, Some(&global_step))
        })
    })?;
    let accuracy = g.name_scope("eval", || {
        let correct = nn::in_top_k(&logits, &y, 1)?;
        math::reduce_mean(&correct.cast(DType::F32)?, None)
    })?;
    Ok((Model { g, x, y, logits, loss, training_op, accuracy }, training))
}

fn main() {
    let args = Args::parse();
    common::main_with(|| {
        let flags = &args.flags;
        let (m, training) = construction_phase(&args)?;
        let Model { g, x, y, training_op, accuracy, .. } = &m;
        let mut mnist = flags.read_data_sets()?;
        let batch_size = flags.batch_size.unwrap_or(100);
        let mut sess = Session::new(g)?;
        g.global_variables_initializer()?.run(&sess, &[])?;
        let mut extras = Extras::new(flags, &m, &mut sess, &mnist, batch_size, 200)?;
        let (mut x_batch, mut y_batch) = Default::default();
        for epoch in 0..flags.epochs.unwrap_or(10) {
            for _iteration in 0..mnist.train.num_examples() / batch_size {
                (x_batch, y_batch) = mnist.train.next_batch(batch_size);
                let feeds = feed! {x => &x_batch, y => &y_batch, training => true};
                sess.run(training_op, feeds)?;
                extras.step(&sess, feeds)?;
            }
            let acc_train: f32 = accuracy.eval(&sess, feed! {x => &x_batch, y => &y_batch})?.try_into()?;
            let acc_test = accuracy_of(&sess, accuracy, (x, y), &mnist.test, 200)?;
            println!("{epoch} Train accuracy: {acc_train:?} Test accuracy: {acc_test:?}");
            extras.end_epoch(&mut sess, epoch, acc_train, acc_test)?;
        }
        Ok(())
    });
}
