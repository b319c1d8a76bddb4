//! A generative adversarial network on MNIST, the talk's last slide: a generator turns noise into
//! digits, a discriminator tells them from real ones, each trained by its own Adam over its own
//! `var_list`. A 10x10 grid of generated digits (always from the same noise, so the grids show
//! progress) is written as a PNG every few epochs.
//!
//!     cargo run --release --example mnist_gan -- --epochs 30 --seed 1 --out runs/gan
//!
//! Generator 100 -> 256 -> 512 (batch norm and leaky ReLU 0.2 each) -> 784 (tanh);
//! discriminator 784 -> 512 -> 256 (leaky ReLU 0.2) -> 1, applied to real images (scaled to
//! [-1, 1]) and generated ones with shared weights (a variable scope with reuse, TF1's
//! `reuse=tf.AUTO_REUSE`). Losses are sigmoid cross-entropies; the generator maximises
//! log D(G(z)) (the non-saturating loss) and real labels are smoothed to 0.9. Adam with learning
//! rate 2e-4 and beta1 0.5, batch 100.

mod common;

use clap::Parser;
use std::time::Instant;
use tensorgraph::data::mnist;
use tensorgraph::prelude::*;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Write a grid every this many epochs (and after the last).
    #[arg(long, default_value_t = 5)]
    every: usize,
    /// Directory of the PNG grids (`epoch-NNN.png`).
    #[arg(long, default_value = "runs/gan")]
    out: String,
    #[arg(long, default_value = "data/mnist")]
    data: String,
    #[arg(long)]
    seed: Option<u64>,
}

const BATCH: usize = 100;
const NOISE: usize = 100;

/// Images in [-1, 1]; batch norm always uses the batch's statistics.
fn generator(z: &Tensor) -> Result<Tensor> {
    let g = z.graph();
    let _scope = g.enter_variable_scope("generator");
    let training = g.scalar(1.0, DType::Bool)?;
    let block = |x: &Tensor, units: usize, name: &str| -> Result<Tensor> {
        let h = layers::Dense::new(units).use_bias(false).build(x, name)?;
        nn::leaky_relu(&layers::batch_normalization(&h, &training, &format!("{name}_bn"))?, 0.2)
    };
    let h = block(&block(z, 256, "hidden1")?, 512, "hidden2")?;
    nn::tanh(&layers::dense(&h, 784, None, "images")?)
}

/// The discriminator's logit; a second call reuses the first call's variables.
fn discriminator(x: &Tensor) -> Result<Tensor> {
    let g = x.graph();
    let _scope = g.enter_variable_scope_reuse("discriminator");
    let h = nn::leaky_relu(&layers::dense(x, 512, None, "hidden1")?, 0.2)?;
    let h = nn::leaky_relu(&layers::dense(&h, 256, None, "hidden2")?, 0.2)?;
    layers::dense(&h, 1, None, "logit")
}

fn mean_xent(logits: &Tensor, label: f64) -> Result<Tensor> {
    let labels = math::mul(&array::ones_like(logits)?, &logits.graph().scalar(label, DType::F32)?)?;
    math::reduce_mean(&nn::sigmoid_cross_entropy_with_logits(&labels, logits)?, None)
}

/// Images `[100, 784]` in [-1, 1] as one 10x10 grid with 2-pixel gaps.
fn grid(images: &Value) -> Vec<u8> {
    let (cell, side) = (30, 300);
    let mut canvas = vec![0u8; side * side];
    for (i, v) in images.to_f64_vec().iter().enumerate() {
        let (img, pix) = (i / 784, i % 784);
        let (row, col) = (img / 10 * cell + 1 + pix / 28, img % 10 * cell + 1 + pix % 28);
        canvas[row * side + col] = ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
    }
    canvas
}

fn main() {
    let args = Args::parse();
    common::main_with(|| {
        let g = Graph::new();
        if let Some(seed) = args.seed {
            g.set_random_seed(seed);
        }
        let x = g.placeholder(DType::F32, [None, Some(784)]).named("X")?;
        // Fresh noise every run unless fed (the grids feed the same noise each time).
        let z = g
            .placeholder_with_default(&random::random_uniform(&g, &[BATCH, NOISE], DType::F32, -1.0, 1.0, None)?)
            .named("z")?;
        let fake = generator(&z)?;
        let (d_real, d_fake) = (discriminator(&x)?, discriminator(&fake)?);
        let d_loss = g.name_scope("d_loss", || math::add(&mean_xent(&d_real, 0.9)?, &mean_xent(&d_fake, 0.0)?))?;
        let g_loss = g.name_scope("g_loss", || mean_xent(&d_fake, 1.0))?;
        let vars = |prefix: &str| -> Vec<Variable> {
            g.trainable_variables().into_iter().filter(|v| v.name().starts_with(prefix)).collect()
        };
        let adam = || tensorgraph::train::Adam { beta1: 0.5, ..Adam::new(2e-4) };
        let d_train = g.name_scope("train_d", || adam().minimize_with(&d_loss, Some(&vars("discriminator/")), None))?;
        let g_train = g.name_scope("train_g", || adam().minimize_with(&g_loss, Some(&vars("generator/")), None))?;

        let opts = mnist::Options { validation_size: 0, seed: args.seed };
        let mut data = mnist::read_data_sets_with(&args.data, &opts)?;
        let sess = Session::new(&g)?;
        g.global_variables_initializer()?.run(&sess, &[])?;
        let fixed_z = z.eval(&sess, &[])?;
        let steps = data.train.num_examples() / BATCH;
        for epoch in 1..=args.epochs {
            let start = Instant::now();
            let (mut dl, mut gl) = (0.0, 0.0);
            for _ in 0..steps {
                let (xb, _) = data.train.next_batch(BATCH);
                let xb = xb.mapv(|p| 2.0 * p - 1.0);
                let (d_loss_value, ()) = sess.run((&d_loss, &d_train), feed! {x => xb})?;
                let (g_loss_value, ()) = sess.run((&g_loss, &g_train), &[])?;
                dl += f64::from(f32::try_from(d_loss_value)?);
                gl += f64::from(f32::try_from(g_loss_value)?);
            }
            let n = steps as f64;
            print!("epoch {epoch}: d_loss {:.4} g_loss {:.4} ({:.2} s)", dl / n, gl / n, start.elapsed().as_secs_f64());
            if epoch % args.every.max(1) == 0 || epoch == args.epochs {
                let images = fake.eval(&sess, feed! {z => &fixed_z})?;
                let path = format!("{}/epoch-{epoch:03}.png", args.out);
                common::write_png(&path, 300, 300, &grid(&images))?;
                print!(", wrote {path}");
            }
            println!();
        }
        Ok(())
    });
}
