//! The talk's first program: an MLP 784-300-100-10 on MNIST with plain gradient descent.
//!
//!     cargo run --release --example mnist_mlp -- --epochs 10
//!
//! Defaults as the slide: 20 epochs, batch 50, learning rate 0.01. After each epoch it prints the
//! slide's line (train accuracy on the last batch, test accuracy on all 10,000 test images),
//! then the epoch's wall time.

mod common;

use clap::Parser;

fn main() {
    let args = common::Args::parse();
    common::main_with(|| {
        let (g, x, y) = common::inputs(args.run.seed)?;
        let logits = common::mlp_logits(&g, &x)?;
        let model = common::finish_model(
            &g,
            x,
            y,
            &logits,
            args.optimizer,
            args.learning_rate.unwrap_or(args.optimizer.default_learning_rate()),
        )?;
        common::train(&g, &model, &args.run, args.epochs.unwrap_or(20), args.batch_size.unwrap_or(50), 10_000)
    });
}
