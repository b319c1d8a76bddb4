//! Pre-training, from the slides' "What else?" list: a stacked autoencoder trained layer by
//! layer on all 60,000 training images without their labels, whose encoder then initialises a
//! classifier fine-tuned on only 1,000 labelled images, against the same classifier trained
//! from random weights on the same 1,000.
//!
//!     cargo run --release --example mnist_autoencoder -- --seed 1
//!
//! Network 784-300-100-10 (ELU), as in the MLP slide. Phase 1 trains `hidden1` with a linear
//! decoder `recon1` to reproduce the image from a copy with half its pixels zeroed (a
//! denoising autoencoder; mean squared error); phase 2 trains `hidden2` with `recon2` to
//! reproduce `hidden1`'s codes the same way, `hidden1` frozen (each phase's optimizer gets its
//! own `var_list`). Then the whole classifier is trained on the labelled subset.

mod common;

use clap::Parser;
use ndarray::s;
use std::time::Instant;
use tensorgraph::data::mnist;
use tensorgraph::prelude::*;

#[derive(Parser, Debug)]
struct Args {
    /// Epochs of each pre-training phase over the 60,000 unlabelled images.
    #[arg(long, default_value_t = 5)]
    pretrain_epochs: usize,
    /// Epochs of fine-tuning over the labelled subset.
    #[arg(long, default_value_t = 40)]
    finetune_epochs: usize,
    /// Masking noise of the denoising autoencoders: the share of inputs zeroed in pre-training.
    #[arg(long, default_value_t = 0.5)]
    noise: f64,
    /// How many training images keep their labels.
    #[arg(long, default_value_t = 1000)]
    labels: usize,
    #[arg(long, default_value = "data/mnist")]
    data: String,
    #[arg(long)]
    seed: Option<u64>,
}

/// The classifier and the two pre-training phases, in one graph.
struct Net {
    model: common::Model,
    pretrain: [(Tensor, Operation); 2],
}

fn build(seed: Option<u64>, noise: f64) -> Result<Net> {
    let g = Graph::new();
    if let Some(seed) = seed {
        g.set_random_seed(seed);
    }
    let x = g.placeholder(DType::F32, [None, Some(784)]).named("X")?;
    let y = g.placeholder(DType::I64, [None]).named("y")?;
    // Each encoder layer is applied to clean and to corrupted inputs with the same weights.
    let reuse = g.enter_variable_scope_reuse("dnn");
    let encode1 = |t: &Tensor| layers::dense(t, 300, Some(nn::elu), "hidden1");
    let encode2 = |t: &Tensor| layers::dense(t, 100, Some(nn::elu), "hidden2");
    let corrupt = |t: &Tensor| -> Result<Tensor> {
        let u = random::random_uniform_like(t, DType::F32, 0.0, 1.0, None)?;
        math::mul(t, &math::greater_equal(&u, &g.scalar(noise, DType::F32)?)?.cast(DType::F32)?)
    };
    let hidden1 = encode1(&x)?;
    let hidden2 = encode2(&hidden1)?;
    let logits = layers::dense(&hidden2, 10, None, "outputs")?;
    let loss = g.name_scope("loss", || {
        let xentropy = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits)?;
        math::reduce_mean(&xentropy, None).named("loss")
    })?;
    let training_op = g.name_scope("train", || Adam::new(0.001).minimize(&loss))?;
    let accuracy =
        g.name_scope("eval", || math::reduce_mean(&nn::in_top_k(&logits, &y, 1)?.cast(DType::F32)?, None))?;

    let vars_of = |prefixes: &[&str]| -> Vec<Variable> {
        let all = g.trainable_variables();
        all.into_iter().filter(|v| prefixes.iter().any(|p| v.name().starts_with(&format!("dnn/{p}/")))).collect()
    };
    let mse = |a: &Tensor, b: &Tensor| math::reduce_mean(&math::square(&math::sub(a, b)?)?, None).named("mse");
    let phase = |name: &str, recon: Tensor, target: &Tensor, vars: Vec<Variable>| -> Result<(Tensor, Operation)> {
        g.name_scope(name, || {
            let loss = mse(&recon, target)?;
            Ok((loss.clone(), Adam::new(0.001).minimize_with(&loss, Some(&vars), None)?))
        })
    };
    let recon1 = layers::dense(&encode1(&corrupt(&x)?)?, 784, None, "recon1")?;
    let p1 = phase("pretrain1", recon1, &x, vars_of(&["hidden1", "recon1"]))?;
    let codes = array::stop_gradient(&hidden1)?;
    let recon2 = layers::dense(&encode2(&corrupt(&codes)?)?, 300, None, "recon2")?;
    let p2 = phase("pretrain2", recon2, &codes, vars_of(&["hidden2", "recon2"]))?;
    drop(reuse);
    Ok(Net { model: common::Model { g, x, y, logits, loss, training_op, accuracy }, pretrain: [p1, p2] })
}

/// Trains the classifier (after pre-training if asked) and returns its test accuracy.
fn run(args: &Args, data: &mut mnist::Datasets, labelled: &mut mnist::DataSet, pretrain: bool) -> Result<f32> {
    let net = build(args.seed, args.noise)?;
    let m = &net.model;
    let sess = Session::new(&m.g)?;
    m.g.global_variables_initializer()?.run(&sess, &[])?;
    if pretrain {
        for (phase, (loss, op)) in net.pretrain.iter().enumerate() {
            for epoch in 0..args.pretrain_epochs {
                let start = Instant::now();
                let steps = data.train.num_examples() / 100;
                let mut total = 0.0;
                for _ in 0..steps {
                    let (xb, _) = data.train.next_batch(100);
                    let (loss, ()) = sess.run((loss, op), feed! {m.x => &xb})?;
                    total += f64::from(f32::try_from(loss)?);
                }
                println!(
                    "pre-training layer {} epoch {epoch}: reconstruction MSE {:.5} ({:.2} s)",
                    phase + 1,
                    total / steps as f64,
                    start.elapsed().as_secs_f64()
                );
            }
        }
    }
    let start = Instant::now();
    for _ in 0..args.finetune_epochs {
        for _ in 0..labelled.num_examples() / 50 {
            let (xb, yb) = labelled.next_batch(50);
            sess.run(&m.training_op, feed! {m.x => &xb, m.y => &yb})?;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let acc = common::accuracy_of(&sess, &m.accuracy, (&m.x, &m.y), &data.test, 2_000)?;
    let how = if pretrain { "with pre-training   " } else { "without pre-training" };
    println!("{how}: test accuracy {acc:.4} after {} fine-tuning epochs ({secs:.2} s)", args.finetune_epochs);
    Ok(acc)
}

fn main() {
    let args = Args::parse();
    common::main_with(|| {
        let opts = mnist::Options { validation_size: 0, seed: args.seed };
        let mut data = mnist::read_data_sets_with(&args.data, &opts)?;
        // The labelled subset: the first `labels` training images (the files' order is random).
        let n = args.labels.min(data.train.num_examples());
        let subset = |d: &mnist::DataSet| {
            mnist::DataSet::new(d.images.slice(s![..n, ..]).to_owned(), d.labels.slice(s![..n]).to_owned(), args.seed)
        };
        let mut labelled = subset(&data.train);
        let without = run(&args, &mut data, &mut labelled, false)?;
        let mut labelled = subset(&data.train);
        let with = run(&args, &mut data, &mut labelled, true)?;
        println!("{n} labels: {without:.4} without pre-training, {with:.4} with (+{:.4})", with - without);
        Ok(())
    });
}
