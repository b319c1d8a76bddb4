//! What the examples share that is not the slides' program: flags, the extras around the loop
//! (`--save`, `--restore`, `--logdir`, `--profile`, the epoch timer and progress bar), chunked
//! evaluation, PNG output.

#![allow(dead_code)] // each example uses part of this module

use std::path::PathBuf;
use std::time::Instant;
use tensorgraph::data::mnist;
use tensorgraph::io::{Saver, Signature};
use tensorgraph::prelude::*;
use tensorgraph::summary::{self, FileWriter};

/// Trains one of the talk's models on MNIST and prints the slide's lines.
// (The flags of the slides' training programs: hyperparameters, data, seed, outputs.)
#[derive(clap::Parser, Debug, Clone)]
pub struct Flags {
    /// Epochs to train [default: 20 for the MLP, 10 for the CNN].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per step [default: 50 for the MLP, 100 for the CNN].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// [default: 0.01 with gradient descent, 0.001 with Adam].
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Directory with the four MNIST .gz files.
    #[arg(long, default_value = "data/mnist")]
    pub data: String,
    /// Seed for weight initialisation and shuffling (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Training images held out for validation (TF's input_data uses 5000; the peers use 0).
    #[arg(long, default_value_t = 0)]
    pub validation_size: usize,
    /// Save the graph (`DIR/model.meta`, TF's MetaGraphDef with a `serving_default` signature:
    /// `X` in, `logits` out) and a TF checkpoint after every epoch
    /// (`DIR/model-<epoch>.index` and `.data-00000-of-00001`) for `mnist_predict` or TensorFlow.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Start from this checkpoint (a prefix such as `runs/mlp/model-9`, ours or TensorFlow's)
    /// and print its test accuracy before training; with `--epochs 0` only that.
    #[arg(long)]
    pub restore: Option<String>,
    /// Write a TensorBoard event file (graph, loss every 50 steps, accuracies every epoch) here.
    #[arg(long)]
    pub logdir: Option<PathBuf>,
    /// Print the time spent per op type after the first epoch.
    #[arg(long)]
    pub profile: bool,
}

impl Flags {
    /// A fresh graph, seeded with `--seed` if given (`tf.set_random_seed`).
    pub fn graph(&self) -> Graph {
        let g = Graph::new();
        if let Some(seed) = self.seed {
            g.set_random_seed(seed);
        }
        g
    }

    /// MNIST from `--data`, shuffled with `--seed`, as TF's `input_data.read_data_sets`.
    pub fn read_data_sets(&self) -> Result<mnist::Datasets> {
        mnist::read_data_sets_with(
            &self.data,
            &mnist::Options { validation_size: self.validation_size, seed: self.seed },
        )
    }
}

/// The graph handles of a classifier on MNIST, as the slides name them.
pub struct Model {
    pub g: Graph,
    pub x: Tensor,
    pub y: Tensor,
    pub logits: Tensor,
    pub loss: Tensor,
    pub training_op: Operation,
    pub accuracy: Tensor,
}

/// `accuracy` (fed `x` and `y`) over a whole data set, `chunk` images per run: the mean of the
/// chunks' exact counts, the same figure as one call over all of them, in bounded memory.
pub fn accuracy_of(
    sess: &Session,
    accuracy: &Tensor,
    (x, y): (&Tensor, &Tensor),
    data: &mnist::DataSet,
    chunk: usize,
) -> Result<f32> {
    let mut correct = 0.0;
    for (images, labels) in data.batches(chunk) {
        let acc: f32 = accuracy.eval(sess, feed! {x => images, y => labels})?.try_into()?;
        correct += (acc * labels.len() as f32).round();
    }
    Ok(correct / data.num_examples() as f32)
}

/// What the flags add around a training loop: the graph and checkpoints for `--save`, the
/// restored checkpoint for `--restore`, TensorBoard events for `--logdir`, the op profile for
/// `--profile`, a progress bar, and each epoch's time.
pub struct Extras<'m> {
    flags: Flags,
    m: &'m Model,
    saver: Saver,
    /// For `--logdir`: the event file, and the merged summary of the loss, every layer's
    /// weights (histograms) and the first input images, fetched every 50 steps.
    events: Option<(FileWriter, Tensor)>,
    steps_per_epoch: usize,
    global_step: i64,
    progress: indicatif::ProgressBar,
    epoch_start: Instant,
    last_step_end: Instant,
}

impl<'m> Extras<'m> {
    /// Call after initialising the variables: restores `--restore` (printing its test accuracy,
    /// evaluated `chunk` images per run) and writes the graph for `--save` and `--logdir`.
    pub fn new(
        flags: &Flags,
        m: &'m Model,
        sess: &mut Session,
        mnist: &mnist::Datasets,
        batch_size: usize,
        chunk: usize,
    ) -> Result<Self> {
        let saver = Saver::new(&m.g);
        if let Some(path) = &flags.restore {
            saver.restore(sess, path)?;
            println!(
                "restored {path}: Test accuracy: {:?}",
                accuracy_of(sess, &m.accuracy, (&m.x, &m.y), &mnist.test, chunk)?
            );
        }
        if let Some(dir) = &flags.save {
            let serving = Signature {
                inputs: vec![("X".into(), m.x.clone())],
                outputs: vec![("logits".into(), m.logits.clone())],
            };
            // Named inputs and outputs, so a program that imports the graph finds them.
            for (key, t) in [("inputs", &m.x), ("inputs", &m.y), ("outputs", &m.logits), ("outputs", &m.accuracy)] {
                m.g.add_to_collection(key, t);
            }
            m.g.add_operation_to_collection(tensorgraph::collections::TRAIN_OP, &m.training_op);
            tensorgraph::io::export_meta_graph_with(&m.g, dir.join("model.meta"), &[("serving_default", &serving)])?;
        }
        let events = match &flags.logdir {
            Some(dir) => {
                summary::scalar("loss", &m.loss)?;
                for v in m.g.trainable_variables() {
                    summary::histogram(&format!("{}/histogram", v.name()), &v)?;
                }
                summary::image("input", &array::reshape(&m.x, &[-1, 28, 28, 1])?, 3)?;
                let merged = summary::merge_all(&m.g)?.expect("summaries were just made");
                Some((FileWriter::new(dir, Some(&m.g))?, merged))
            }
            None => None,
        };
        sess.set_profiling(flags.profile);
        let steps_per_epoch = mnist.train.num_examples() / batch_size.max(1);
        let progress = progress_bar(steps_per_epoch, 0);
        let now = Instant::now();
        Ok(Extras {
            flags: flags.clone(),
            m,
            saver,
            events,
            steps_per_epoch,
            global_step: 0,
            progress,
            epoch_start: now,
            last_step_end: now,
        })
    }

    /// After each training step, with its feeds: logs the loss every 50 steps for `--logdir`.
    pub fn step(&mut self, sess: &Session, feeds: &[(&Tensor, Feed)]) -> Result<()> {
        self.global_step += 1;
        self.progress.inc(1);
        if let Some((w, merged)) = self.events.as_mut().filter(|_| self.global_step % 50 == 0) {
            w.add_summary(&sess.run(&*merged, feeds)?, self.global_step)?;
        }
        self.last_step_end = Instant::now();
        Ok(())
    }

    /// After each epoch's line: prints the epoch's time and (once) the profile, logs the
    /// accuracies, saves a checkpoint.
    pub fn end_epoch(&mut self, sess: &mut Session, epoch: usize, acc_train: f32, acc_test: f32) -> Result<()> {
        self.progress.finish_and_clear();
        let (total, training) = (self.epoch_start.elapsed(), self.last_step_end - self.epoch_start);
        println!("epoch {epoch} time: {:.2} s (training {:.2} s)", total.as_secs_f64(), training.as_secs_f64());
        if self.flags.profile && epoch == 0 {
            for (op, calls, t) in sess.profile() {
                eprintln!("{op:<28} {calls:>8} calls {:>9.3} s", t.as_secs_f64());
            }
            sess.set_profiling(false);
        }
        if let Some((w, _)) = self.events.as_mut() {
            w.add_scalar("accuracy/train_batch", acc_train, self.global_step)?;
            w.add_scalar("accuracy/test", acc_test, self.global_step)?;
        }
        if let Some(dir) = &self.flags.save {
            let path = self.saver.save(sess, dir.join("model"), Some(epoch as u64))?;
            println!("saved {}", path.display());
        }
        self.progress = progress_bar(self.steps_per_epoch, epoch + 1);
        self.epoch_start = Instant::now();
        self.last_step_end = self.epoch_start;
        Ok(())
    }
}

/// A bar of an epoch's steps on stderr when it is a terminal (hidden otherwise, so logs and the
/// slides' lines on stdout stay as they are).
pub fn progress_bar(steps: usize, epoch: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let style = indicatif::ProgressStyle::with_template("epoch {prefix} {bar:40} {pos}/{len} steps, {eta} left")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    indicatif::ProgressBar::new(steps as u64).with_style(style).with_prefix(epoch.to_string())
}

/// Runs `f`, printing an error and exiting with status 1 if it fails.
pub fn main_with(f: impl FnOnce() -> Result<()>) {
    if let Err(e) = f() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Writes `grey` (row-major, one byte per pixel) as an 8-bit greyscale PNG.
pub fn write_png(path: &str, width: usize, height: usize, grey: &[u8]) -> Result<()> {
    let io = |source| tensorgraph::Error::Io { path: path.to_string(), source };
    if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let file = std::fs::File::create(path).map_err(io)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let to_io = |e: png::EncodingError| io(std::io::Error::other(e));
    enc.write_header().map_err(to_io)?.write_image_data(grey).map_err(to_io)?;
    Ok(())
}
