//! The talk's first program: an MLP 784-300-100-10 on MNIST with plain gradient descent.
//!
//!     cargo run --release --example mnist_mlp -- --epochs 10
//!
//! Defaults as the slide: 20 epochs, batch 50, learning rate 0.01. After each epoch it prints the
//! slide's line (train accuracy on the last batch, test accuracy on all 10,000 test images),
//! then the epoch's wall time.

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
        let logits = g.name_scope("dnn", || {
            let hidden1 = layers::dense(&x, 300, Some(nn::relu), "hidden1")?;
            let hidden2 = layers::dense(&hidden1, 100, Some(nn::relu), "hidden2")?;
            layers::dense(&hidden2, 10, None, "outputs")
        })?;
        let lr = args.learning_rate.unwrap_or(0.01);
        let model = common::finish_model(&g, x, y, &logits, &args.optimizer, lr)?;
        common::train(&g, &model, &args, args.epochs.unwrap_or(20), args.batch_size.unwrap_or(50), 10_000)
    });
}
