//! The talk's first program: an MLP 784-300-100-10 on MNIST with plain gradient descent.
//!
//!     cargo run --release --example mnist_mlp -- --epochs 10
//!
//! After each epoch it prints the slide's line (train accuracy on the last batch, test accuracy
//! on all 10,000 test images), then the epoch's wall time.

use clap::Parser;
use std::time::Instant;
use tensorgraph::data::mnist;
use tensorgraph::prelude::*;

#[derive(Parser)]
#[command(about = "Train the slides' MLP on MNIST")]
struct Args {
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
    #[arg(long, default_value_t = 0.01)]
    learning_rate: f64,
    /// Directory with the four MNIST .gz files.
    #[arg(long, default_value = "data/mnist")]
    data: String,
    /// Seed for weight initialisation and shuffling (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Training images held out for validation (TF's input_data uses 5000; the peers use 0).
    #[arg(long, default_value_t = 0)]
    validation_size: usize,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
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
    let loss = g.name_scope("loss", || {
        let xentropy = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits, "xentropy")?;
        math::reduce_mean(&xentropy, None, "loss")
    })?;
    let training_op = g.name_scope("train", || GradientDescent::new(args.learning_rate).minimize(&loss))?;
    let accuracy = g.name_scope("eval", || {
        let correct = nn::in_top_k(&logits, &y, 1)?;
        math::reduce_mean(&correct.cast(DType::F32)?, None, "accuracy")
    })?;

    let opts = mnist::Options { validation_size: args.validation_size, seed: args.seed };
    let mut data = mnist::read_data_sets_with(&args.data, &opts)?;
    let (test_x, test_y) = (data.test.images.clone(), data.test.labels.clone());

    let mut sess = Session::new(&g)?;
    sess.run_targets(&[&g.global_variables_initializer()?], &[])?;
    let steps = data.train.num_examples() / args.batch_size;
    for epoch in 0..args.epochs {
        let start = Instant::now();
        let (mut xb, mut yb) = data.train.next_batch(args.batch_size);
        for step in 0..steps {
            if step > 0 {
                (xb, yb) = data.train.next_batch(args.batch_size);
            }
            sess.run_targets(&[&training_op], &[(&x, xb.clone().into()), (&y, yb.clone().into())])?;
        }
        let train_time = start.elapsed();
        let acc_train =
            sess.run(&[&accuracy], &[(&x, xb.into()), (&y, yb.into())])?[0].scalar_f64().unwrap_or(f64::NAN);
        let acc_test = sess.run(&[&accuracy], &[(&x, test_x.clone().into()), (&y, test_y.clone().into())])?[0]
            .scalar_f64()
            .unwrap_or(f64::NAN);
        println!("{epoch} Train accuracy: {} Test accuracy: {}", acc_train as f32, acc_test as f32);
        println!(
            "epoch {epoch} time: {:.2} s (training {:.2} s)",
            start.elapsed().as_secs_f64(),
            train_time.as_secs_f64()
        );
    }
    Ok(())
}
