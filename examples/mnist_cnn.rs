//! The talk's second program: a CNN on MNIST.
//!
//!     cargo run --release --example mnist_cnn -- --optimizer adam --epochs 1
//!
//! conv 32 3x3 s1 SAME relu, conv 64 3x3 s2 SAME relu, max-pool 2x2 VALID, dense 64 relu,
//! dense 10; batch 100, 10 epochs. The slide's code says GradientDescent(0.01) (the default
//! here), but its printed numbers (0.9789 after epoch 0) need Adam: `--optimizer adam`.

mod common;

use clap::Parser;

fn main() {
    let args = common::Args::parse();
    common::main_with(|| {
        let (g, x, y) = common::inputs(args.run.seed)?;
        let logits = common::cnn_logits(&x)?;
        let lr = args.learning_rate.unwrap_or(args.optimizer.default_learning_rate());
        let model = common::finish_model(&g, x, y, &logits, args.optimizer, lr)?;
        // Evaluate 200 test images per run: the same accuracy as one 10,000-image call without
        // its 1 GB first-layer activation, and faster than 1,000 per run (0.67 vs 1.0 s: the
        // activations stay in cache) at 110 MB less peak memory.
        common::train(&g, &model, &args.run, args.epochs.unwrap_or(10), args.batch_size.unwrap_or(100), 200)
    });
}
