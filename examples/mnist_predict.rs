//! Loads a model saved by `mnist_mlp --save DIR` (or `mnist_cnn --save DIR`) without any of the
//! code that built it: imports the graph file, restores the latest checkpoint, and evaluates
//! the test set.
//!
//!     cargo run --release --example mnist_mlp -- --epochs 1 --save runs/mlp
//!     cargo run --release --example mnist_predict -- --model runs/mlp

mod common;

use clap::Parser;
use tensorgraph::data::mnist;
use tensorgraph::io::{import_meta_graph, latest_checkpoint, Saver};
use tensorgraph::prelude::*;

#[derive(Parser)]
struct Args {
    /// Directory written by `--save`.
    #[arg(long)]
    model: String,
    #[arg(long, default_value = "data/mnist")]
    data: String,
}

fn main() {
    let args = Args::parse();
    common::main_with(|| run(&args));
}

fn run(args: &Args) -> Result<()> {
    let dir = std::path::Path::new(&args.model);
    let g = import_meta_graph(dir.join("model.meta"))?;
    let ckpt = latest_checkpoint(dir).ok_or_else(|| tensorgraph::Error::NotFound {
        what: "checkpoint in the model directory",
        name: args.model.clone(),
    })?;
    let sess = Session::new(&g)?;
    let step = Saver::new(&g).restore(&sess, &ckpt)?;
    let inputs = g.get_collection("inputs");
    let outputs = g.get_collection("outputs");
    let (Some(x), Some(y), Some(logits), Some(accuracy)) =
        (inputs.first(), inputs.get(1), outputs.first(), outputs.get(1))
    else {
        return Err(tensorgraph::Error::NotFound { what: "inputs/outputs collections", name: args.model.clone() });
    };
    let data = mnist::read_data_sets_with(&args.data, &mnist::Options { validation_size: 0, seed: Some(0) })?;
    let (images, labels) = (&data.test.images, &data.test.labels);
    let acc_test: f32 = accuracy.eval(&sess, feed! {x => images, y => labels})?.try_into()?;
    let first = images.slice(ndarray::s![0..5, ..]);
    let pred = math::argmax(logits, 1)?.eval(&sess, feed! {x => first})?;
    println!("restored {} (step {})", ckpt.display(), step.map_or("-".into(), |s| s.to_string()));
    println!(
        "predictions for the first 5 test images: {:?} (labels {:?})",
        pred.to_f64_vec(),
        &labels.as_slice().unwrap_or(&[])[..5]
    );
    println!("Test accuracy: {acc_test:?}");
    Ok(())
}
