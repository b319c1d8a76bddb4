//! The main job: trains both of the talk's models on the MNIST shipped in `data/mnist`,
//! printing the slides' lines. The MLP as on its slide (SGD 0.01, batch 50); the CNN with Adam,
//! which is what the CNN slide's printed accuracy needs (its code says SGD; see `mnist_cnn`).
//!
//!     cargo run --release --example slides                              # 10 MLP, 3 CNN epochs
//!     cargo run --release --example slides -- --mlp-epochs 20 --cnn-epochs 10

mod common;

use clap::Parser;

/// Trains the talk's MLP and CNN on the MNIST in data/mnist, printing the slides' lines.
#[derive(Parser)]
struct Args {
    /// Epochs of the MLP (SGD 0.01, batch 50).
    #[arg(long, default_value_t = 10)]
    mlp_epochs: usize,
    /// Epochs of the CNN (Adam 0.001, batch 100).
    #[arg(long, default_value_t = 3)]
    cnn_epochs: usize,
    #[command(flatten)]
    common: common::RunArgs,
}

fn main() {
    let args = Args::parse();
    common::main_with(|| {
        println!("== MLP 784-300-100-10, SGD 0.01, batch 50");
        let (g, x, y) = common::inputs(args.common.seed)?;
        let logits = common::mlp_logits(&g, &x)?;
        let model = common::finish_model(&g, x, y, &logits, common::OptimizerKind::Sgd, 0.01)?;
        common::train(&g, &model, &args.common, args.mlp_epochs, 50, 10_000)?;

        println!("== CNN conv32-conv64/2-maxpool-fc64-fc10, Adam 0.001, batch 100");
        let (g, x, y) = common::inputs(args.common.seed)?;
        let logits = common::cnn_logits(&x)?;
        let model = common::finish_model(&g, x, y, &logits, common::OptimizerKind::Adam, 0.001)?;
        common::train(&g, &model, &args.common, args.cnn_epochs, 100, 200)
    });
}
