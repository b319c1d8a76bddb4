//! The talk's second program: a CNN on MNIST.
//!
//!     cargo run --release --example mnist_cnn -- --optimizer adam --epochs 1
//!
//! conv 32 3x3 s1 SAME relu, conv 64 3x3 s2 SAME relu, max-pool 2x2 VALID, dense 64 relu,
//! dense 10; batch 100, 10 epochs. The slide's code says GradientDescent(0.01) (the default
//! here), but its printed numbers (0.9789 after epoch 0) need Adam: `--optimizer adam`.

mod common;

use clap::Parser;
use tensorgraph::prelude::*;

fn main() {
    let args = common::Args::parse();
    common::main_with(|| {
        let g = Graph::new();
        if let Some(seed) = args.seed {
            g.set_random_seed(seed);
        }
        let x = g.placeholder(DType::F32, [None, Some(784)], "X")?;
        let y = g.placeholder(DType::I64, [None], "y")?;
        let x_reshaped = array::reshape(&x, &[-1, 28, 28, 1])?;
        let conv1 = layers::conv2d(&x_reshaped, 32, 3, 1, Padding::Same, Some(nn::relu), "conv1")?;
        let conv2 = layers::conv2d(&conv1, 64, 3, 2, Padding::Same, Some(nn::relu), "conv2")?;
        let pool3 = nn::max_pool(&conv2, [1, 2, 2, 1], [1, 2, 2, 1], Padding::Valid)?;
        let pool3_flat = array::reshape(&pool3, &[-1, 64 * 7 * 7])?;
        let fc1 = layers::dense(&pool3_flat, 64, Some(nn::relu), "fc1")?;
        let logits = layers::dense(&fc1, 10, None, "output")?;
        let default_lr = if args.optimizer == "adam" { 0.001 } else { 0.01 };
        let model = common::finish_model(&g, x, y, &logits, &args.optimizer, args.learning_rate.unwrap_or(default_lr))?;
        // Evaluate 1,000 test images per run: the same accuracy as one 10,000-image call without
        // its 1 GB first-layer activation.
        common::train(&g, &model, &args, args.epochs.unwrap_or(10), args.batch_size.unwrap_or(100), 1_000)
    });
}
