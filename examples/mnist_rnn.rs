//! The classic TF1 recurrent tutorial on MNIST: each image is a sequence of 28 rows of 28 pixels,
//! `dynamic_rnn` over a `BasicLSTMCell(128)`, the last output into a dense layer of 10, sparse
//! softmax cross-entropy, Adam 0.001, batch 100 (`../shared/peers/tf_rnn_peer.py` is the same
//! program in TensorFlow).
//!
//!     cargo run --release --example mnist_rnn -- --epochs 1
//!
//! `--cell gru` or `--cell basic` swap the cell, `--units` its size. The images are fed as the
//! other examples feed them (`X`, 784 pixels) and reshaped to 28 steps in the graph.

// The tutorial's session is the CNN slide's (batch 100, the same loop): that file is included
// whole, and it declares `common` again for its own build (unused here).
#![allow(clippy::duplicate_mod)]

mod common;
#[path = "mnist_cnn.rs"]
mod mnist_cnn;

use crate::common::{Flags, Model};
use clap::Parser;
use tensorgraph::prelude::*;
use tensorgraph::rnn::{self, BasicLSTMCell, BasicRNNCell, GRUCell, RNNCell};

/// Trains an LSTM over the rows of each MNIST image and prints the slides' lines.
#[derive(Parser, Debug)]
pub struct RnnFlags {
    #[command(flatten)]
    pub flags: Flags,
    /// The recurrent cell.
    #[arg(long, value_enum, default_value_t = CellKind::Lstm)]
    pub cell: CellKind,
    /// Units of the cell.
    #[arg(long, default_value_t = 128)]
    pub units: usize,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CellKind {
    Lstm,
    Gru,
    Basic,
}

#[allow(dead_code)] // unused where another program includes this one (benches/train.rs)
fn main() {
    let args = RnnFlags::parse();
    common::main_with(|| mnist_cnn::execution_phase(&construction_phase(&args)?, &args.flags));
}

/// The tutorial's graph.
pub fn construction_phase(args: &RnnFlags) -> Result<Model> {
    let (n_steps, n_inputs, n_outputs) = (28, 28, 10);
    let g = args.flags.graph();
    let x = g.placeholder(DType::F32, [None, Some(n_steps * n_inputs)]).named("X")?;
    let x_seq = array::reshape(&x, &[-1, n_steps as i64, n_inputs as i64])?;
    let y = g.placeholder(DType::I64, [None]).named("y")?;

    let cell: Box<dyn RNNCell> = match args.cell {
        CellKind::Lstm => Box::new(BasicLSTMCell::new(args.units)),
        CellKind::Gru => Box::new(GRUCell::new(args.units)),
        CellKind::Basic => Box::new(BasicRNNCell::new(args.units)),
    };
    let (_outputs, states) = rnn::dynamic_rnn(cell.as_ref(), &x_seq, None, None)?;
    let last = states.last().expect("a state"); // h: the last step's output
    let logits = layers::dense(last, n_outputs, None, "outputs")?;

    let loss = g.name_scope("loss", || {
        let xentropy = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits)?;
        math::reduce_mean(&xentropy, None).named("loss")
    })?;
    let learning_rate = args.flags.learning_rate.unwrap_or(0.001);
    let training_op = g.name_scope("train", || Adam::new(learning_rate).minimize(&loss))?;
    let accuracy = g.name_scope("eval", || {
        let correct = nn::in_top_k(&logits, &y, 1)?;
        math::reduce_mean(&correct.cast(DType::F32)?, None)
    })?;
    Ok(Model { g, x, y, logits, loss, training_op, accuracy })
}
