//! A character-level language model: each line of Cicero's *De finibus* (book I, shipped in
//! `data/text`) is a sequence; `embedding_lookup` turns characters into vectors, `dynamic_rnn`
//! over an LSTM with `sequence_length` reads lines of different lengths in one padded batch
//! (outputs past a line's end are zero, its state carried), and a dense layer predicts the next
//! character. The loss averages over real characters only (`sequence_mask`). After each epoch it prints the loss
//! and a sample drawn character by character from the model.
//!
//!     cargo run --release --example char_rnn -- --epochs 20 --seed 1

mod common;

use clap::Parser;
use rand::{Rng, SeedableRng};
use tensorgraph::prelude::*;
use tensorgraph::rnn::{self, BasicLSTMCell};

/// Trains a character-level LSTM on the lines of a text and prints samples.
#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "data/text/de_finibus_liber_primus.txt")]
    text: String,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Units of the LSTM.
    #[arg(long, default_value_t = 256)]
    units: usize,
    /// Size of the character embeddings.
    #[arg(long, default_value_t = 32)]
    embedding: usize,
    #[arg(long, default_value_t = 0.005)]
    learning_rate: f64,
    /// Sampling temperature (below 1: more conservative).
    #[arg(long, default_value_t = 0.7)]
    temperature: f64,
    #[arg(long)]
    seed: Option<u64>,
}

fn main() {
    let args = Args::parse();
    common::main_with(|| run(&args));
}

fn run(args: &Args) -> Result<()> {
    let text = std::fs::read_to_string(&args.text)
        .map_err(|source| tensorgraph::Error::Io { path: args.text.clone(), source })?;
    let lines: Vec<Vec<char>> =
        text.lines().map(|l| l.chars().collect()).filter(|l: &Vec<char>| l.len() >= 2).collect();
    let mut vocab: Vec<char> = text.chars().filter(|c| *c != '\n').collect();
    vocab.sort_unstable();
    vocab.dedup();
    let id = |c: char| vocab.binary_search(&c).map_or(0, |i| i as i64);
    let steps = lines.iter().map(|l| l.len() - 1).max().unwrap_or(1);
    println!("{} lines, {} characters, vocabulary {}, up to {steps} steps", lines.len(), text.len(), vocab.len());

    // The graph: ids [batch, steps] -> embeddings -> LSTM over each line's length -> logits.
    let g = Graph::new();
    if let Some(seed) = args.seed {
        g.set_random_seed(seed);
    }
    let x = g.placeholder(DType::I64, [None, Some(steps)]).named("X")?;
    let y = g.placeholder(DType::I64, [None]).named("y")?; // next characters, flattened
    let lengths = g.placeholder(DType::I32, [None]).named("lengths")?;
    let init = Initializer::RandomUniform { minval: -1.0, maxval: 1.0, seed: None };
    let embeddings = g.get_variable("embeddings", &[vocab.len(), args.embedding], DType::F32, &init, true)?;
    let inputs = nn::embedding_lookup(&embeddings, &x)?;
    let cell = BasicLSTMCell::new(args.units);
    let (outputs, _state) = rnn::dynamic_rnn(&cell, &inputs, Some(&lengths), None)?;
    let flat = array::reshape(&outputs, &[-1, args.units as i64])?;
    let logits = layers::dense(&flat, vocab.len(), None, "softmax")?;
    let xentropy = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits)?;
    let weights = array::reshape(&array::sequence_mask(&lengths, steps, DType::F32)?, &[-1])?; // real characters
    let loss =
        math::div(&math::reduce_sum(&math::mul(&xentropy, &weights)?, None)?, &math::reduce_sum(&weights, None)?)
            .named("loss")?;
    let optimizer = Adam::new(args.learning_rate);
    let grads_and_vars = optimizer.compute_gradients(&loss, None)?;
    let (grads, vars): (Vec<_>, Vec<_>) =
        grads_and_vars.into_iter().map(|(g, v)| (g.expect("every variable"), v)).unzip();
    let (clipped, _norm) = math::clip_by_global_norm(&grads.iter().collect::<Vec<_>>(), 5.0)?;
    let training_op = optimizer.apply_gradients(&clipped.into_iter().map(Some).zip(vars).collect::<Vec<_>>(), None)?;
    let probabilities = nn::softmax(&math::mul(&logits, &g.scalar(1.0 / args.temperature, DType::F32)?)?)?;

    let sess = Session::new(&g)?;
    g.global_variables_initializer()?.run(&sess, &[])?;
    let mut rng = match args.seed {
        Some(s) => rand_chacha::ChaCha8Rng::seed_from_u64(s),
        None => rand_chacha::ChaCha8Rng::from_os_rng(),
    };
    // A batch of lines as padded ids, flattened next-character targets and lengths.
    let batch = |picked: &[&Vec<char>]| {
        let n = picked.len();
        let (mut xs, mut ys, mut lens) = (vec![0i64; n * steps], vec![0i64; n * steps], vec![0i32; n]);
        for (r, line) in picked.iter().enumerate() {
            lens[r] = (line.len() - 1) as i32;
            for t in 0..line.len() - 1 {
                (xs[r * steps + t], ys[r * steps + t]) = (id(line[t]), id(line[t + 1]));
            }
        }
        let xs = ndarray::Array2::from_shape_vec((n, steps), xs).expect("n x steps");
        (xs, ndarray::Array1::from(ys), ndarray::Array1::from(lens))
    };
    let mut order: Vec<usize> = (0..lines.len()).collect();
    for epoch in 0..args.epochs {
        let start = std::time::Instant::now();
        rand::seq::SliceRandom::shuffle(&mut order[..], &mut rng);
        let (mut total, mut batches) = (0.0, 0);
        for chunk in order.chunks(args.batch_size) {
            let picked: Vec<&Vec<char>> = chunk.iter().map(|&i| &lines[i]).collect();
            let (xs, ys, lens) = batch(&picked);
            let feeds = feed! {x => &xs, y => &ys, lengths => &lens};
            let (loss_value, ()) = sess.run((&loss, &training_op), feeds)?;
            total += f64::from(f32::try_from(loss_value)?);
            batches += 1;
        }
        let sample = sample(&sess, (&x, &lengths, &probabilities), &vocab, steps, "Non eram nescius", &mut rng)?;
        println!(
            "epoch {epoch}: loss {:.3} ({:.1} s)\n  {sample}",
            total / batches as f64,
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Continues `prefix` one character at a time: the line so far is fed with its length, and the
/// next character drawn from the model's distribution at its last step.
fn sample(
    sess: &Session,
    (x, lengths, probabilities): (&Tensor, &Tensor, &Tensor),
    vocab: &[char],
    steps: usize,
    prefix: &str,
    rng: &mut impl Rng,
) -> Result<String> {
    let mut line: Vec<char> = prefix.chars().collect();
    while line.len() <= steps {
        let mut ids = ndarray::Array2::<i64>::zeros((1, steps));
        for (t, c) in line.iter().enumerate() {
            ids[[0, t]] = vocab.binary_search(c).map_or(0, |i| i as i64);
        }
        let len = ndarray::arr1(&[line.len() as i32]);
        let p: ndarray::Array2<f32> = probabilities.eval(sess, feed! {x => &ids, lengths => &len})?.try_into()?;
        let row = p.row(line.len() - 1);
        let mut u = rng.random::<f32>();
        let next = row.iter().position(|&q| {
            u -= q;
            u <= 0.0
        });
        line.push(vocab[next.unwrap_or(row.len() - 1)]);
    }
    Ok(line.into_iter().collect())
}
