//! The main job: trains both of the talk's models on the MNIST shipped in `data/mnist`,
//! printing the slides' lines: the MLP as on its slide (SGD 0.01, batch 50), then the CNN with
//! Adam, which is what the CNN slide's printed accuracy needs (its code says SGD; see
//! `mnist_cnn`). Both programs are the examples' own (`mnist_mlp.rs`, `mnist_cnn.rs`).
//!
//!     cargo run --release --example slides                              # 10 MLP, 3 CNN epochs
//!     cargo run --release --example slides -- --mlp-epochs 20 --cnn-epochs 10 --seed 1

// The slides' programs are included whole; each declares `common` for its own build, so the
// module is loaded again inside them (unused there: they name `crate::common`).
#![allow(clippy::duplicate_mod)]

mod common;
#[path = "mnist_cnn.rs"]
mod mnist_cnn;
#[path = "mnist_mlp.rs"]
mod mnist_mlp;

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
    flags: common::Flags,
}

fn main() {
    let args = Args::parse();
    common::main_with(|| {
        println!("== MLP 784-300-100-10, SGD 0.01, batch 50");
        let mlp = common::Flags { epochs: Some(args.mlp_epochs), ..args.flags.clone() };
        mnist_mlp::execution_phase(&mnist_mlp::construction_phase(&mlp)?, &mlp)?;

        println!("== CNN conv32-conv64/2-maxpool-fc64-fc10, Adam 0.001, batch 100");
        let flags = common::Flags { epochs: Some(args.cnn_epochs), ..args.flags.clone() };
        let cnn = mnist_cnn::CnnFlags { flags, optimizer: mnist_cnn::OptimizerKind::Adam };
        mnist_cnn::execution_phase(&mnist_cnn::construction_phase(&cnn)?, &cnn.flags)
    });
}
