//! What the slides' two training programs share: flags, data loading, the epoch loop and the
//! printed lines.

#![allow(dead_code)] // each example uses part of this module

use clap::Parser;

// The system allocator, wrapped to count allocations so the training benchmark can report
// what each step allocates. (The session recycles tensor buffers itself, so the allocator's
// policy no longer shows in step times; see BENCHMARKS.md.)
#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

static ALLOCATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static ALLOCATED_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The system allocator, counting every allocation and reallocation with its size.
pub struct CountingAlloc;

// SAFETY: forwards every call unchanged to the system allocator; the counters have no effect
// on memory.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        count(layout.size());
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        count(layout.size());
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

fn count(bytes: usize) {
    use std::sync::atomic::Ordering::Relaxed;
    ALLOCATIONS.fetch_add(1, Relaxed);
    ALLOCATED_BYTES.fetch_add(bytes as u64, Relaxed);
}

/// Allocations and bytes allocated since the program started.
pub fn allocations() -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (ALLOCATIONS.load(Relaxed), ALLOCATED_BYTES.load(Relaxed))
}
use std::time::Instant;
use tensorgraph::data::mnist;
use tensorgraph::prelude::*;

/// Flags of every program that trains on MNIST through [`train`]: data, seed and outputs.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
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
    pub save: Option<String>,
    /// Start from this checkpoint (a prefix such as `runs/mlp/model-9`, ours or TensorFlow's)
    /// and print its test accuracy before training; with `--epochs 0` only that.
    #[arg(long)]
    pub restore: Option<String>,
    /// Write a TensorBoard event file (graph, loss every 50 steps, accuracies every epoch) here.
    #[arg(long)]
    pub logdir: Option<String>,
    /// Print the time spent per op type after the first epoch.
    #[arg(long)]
    pub profile: bool,
}

/// Trains one of the talk's models on MNIST and prints the slide's lines.
// (The flags of `mnist_mlp` and `mnist_cnn`: [`RunArgs`] and the slides' hyperparameters.)
#[derive(Parser, Debug)]
pub struct Args {
    #[command(flatten)]
    pub run: RunArgs,
    /// Epochs to train [default: 20 for the MLP, 10 for the CNN].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per step [default: 50 for the MLP, 100 for the CNN].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// [default: 0.01 with sgd, 0.001 with adam].
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// The slides' code says sgd; the CNN slide's numbers need adam.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Sgd)]
    pub optimizer: OptimizerKind,
}

/// The optimizers the slides' programs choose between (any other name is a usage error).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    /// `GradientDescentOptimizer`, learning rate 0.01 by default.
    Sgd,
    /// `AdamOptimizer`, learning rate 0.001 by default.
    Adam,
}

impl OptimizerKind {
    /// The learning rate the slides (and TF's defaults) use with this optimizer.
    pub fn default_learning_rate(self) -> f64 {
        match self {
            OptimizerKind::Sgd => 0.01,
            OptimizerKind::Adam => 0.001,
        }
    }
}

/// The MLP slide's network: 784-300(relu)-100(relu)-10, in name scope `dnn`.
pub fn mlp_logits(g: &Graph, x: &Tensor) -> Result<Tensor> {
    g.name_scope("dnn", || {
        let hidden1 = layers::dense(x, 300, Some(nn::relu), "hidden1")?;
        let hidden2 = layers::dense(&hidden1, 100, Some(nn::relu), "hidden2")?;
        layers::dense(&hidden2, 10, None, "outputs")
    })
}

/// The CNN slide's network: conv 32 3x3 s1 SAME relu, conv 64 3x3 s2 SAME relu, max-pool 2x2
/// VALID, dense 64 relu, dense 10.
pub fn cnn_logits(x: &Tensor) -> Result<Tensor> {
    let x_reshaped = array::reshape(x, &[-1, 28, 28, 1])?;
    let conv1 = layers::conv2d(&x_reshaped, 32, 3, 1, Padding::Same, Some(nn::relu), "conv1")?;
    let conv2 = layers::conv2d(&conv1, 64, 3, 2, Padding::Same, Some(nn::relu), "conv2")?;
    let pool3 = nn::max_pool(&conv2, [1, 2, 2, 1], [1, 2, 2, 1], Padding::Valid)?;
    let pool3_flat = array::reshape(&pool3, &[-1, 64 * 7 * 7])?;
    let fc1 = layers::dense(&pool3_flat, 64, Some(nn::relu), "fc1")?;
    layers::dense(&fc1, 10, None, "output")
}

/// A fresh graph with the `X` and `y` placeholders, seeded if asked.
pub fn inputs(seed: Option<u64>) -> Result<(Graph, Tensor, Tensor)> {
    let g = Graph::new();
    if let Some(seed) = seed {
        g.set_random_seed(seed);
    }
    let x = g.placeholder(DType::F32, [None, Some(784)]).named("X")?;
    let y = g.placeholder(DType::I64, [None]).named("y")?;
    Ok((g, x, y))
}

/// The graph pieces the loop needs.
pub struct Model {
    pub x: Tensor,
    pub y: Tensor,
    pub logits: Tensor,
    pub loss: Tensor,
    pub training_op: Operation,
    pub accuracy: Tensor,
    /// A bool switch fed true while training (batch norm, dropout), if the model has one.
    pub training: Option<Tensor>,
}

/// Builds `loss`, the optimizer and `accuracy` around `logits` exactly as the slides do.
pub fn finish_model(
    g: &Graph,
    x: Tensor,
    y: Tensor,
    logits: &Tensor,
    optimizer: OptimizerKind,
    lr: f64,
) -> Result<Model> {
    let opt: Box<dyn tensorgraph::train::Optimizer> = match optimizer {
        OptimizerKind::Adam => Box::new(Adam::new(lr)),
        OptimizerKind::Sgd => Box::new(GradientDescent::new(lr)),
    };
    finish_model_with(g, x, y, logits, opt.as_ref(), None, None)
}

/// [`finish_model`] with any optimizer, a global step it increments, and a training switch.
/// The loss adds the regularization losses, if any; the train op runs the update ops (batch
/// norm's moving averages) first, as TF1 programs do.
pub fn finish_model_with(
    g: &Graph,
    x: Tensor,
    y: Tensor,
    logits: &Tensor,
    optimizer: &dyn tensorgraph::train::Optimizer,
    global_step: Option<&Variable>,
    training: Option<Tensor>,
) -> Result<Model> {
    let loss = g.name_scope("loss", || {
        let xentropy = nn::sparse_softmax_cross_entropy_with_logits(&y, logits).named("xentropy")?;
        let loss = math::reduce_mean(&xentropy, None).named("loss")?;
        match g.get_collection(tensorgraph::collections::REGULARIZATION_LOSSES).is_empty() {
            true => Ok(loss),
            false => math::add(&loss, &tensorgraph::losses::get_regularization_loss(g)?),
        }
    })?;
    let update_ops = g.get_operation_collection(tensorgraph::collections::UPDATE_OPS);
    let update_refs: Vec<&Operation> = update_ops.iter().collect();
    let training_op = g.name_scope("train", || {
        g.control_dependencies(&update_refs, || optimizer.minimize_with(&loss, None, global_step))
    })?;
    let accuracy = g.name_scope("eval", || {
        let correct = nn::in_top_k(logits, &y, 1)?;
        math::reduce_mean(&correct.cast(DType::F32)?, None).named("accuracy")
    })?;
    // Named inputs and outputs, so a program that imports the saved graph can find them.
    for (key, t) in [("inputs", &x), ("inputs", &y), ("outputs", logits), ("outputs", &accuracy)] {
        g.add_to_collection(key, t);
    }
    g.add_operation_to_collection(tensorgraph::collections::TRAIN_OP, &training_op);
    Ok(Model { x, y, logits: logits.clone(), loss, training_op, accuracy, training })
}

/// Accuracy over a whole data set, evaluated `chunk` images at a time to bound memory (the mean
/// of per-chunk means weighted by chunk size equals the slide's one-call mean).
pub fn accuracy_of(
    sess: &mut Session,
    m: &Model,
    images: &ndarray::Array2<f32>,
    labels: &ndarray::Array1<i64>,
    chunk: usize,
) -> Result<f64> {
    let n = labels.len();
    let mut correct = 0.0;
    for start in (0..n).step_by(chunk.max(1)) {
        let end = (start + chunk).min(n);
        let xb = images.slice(ndarray::s![start..end, ..]).to_owned();
        let yb = labels.slice(ndarray::s![start..end]).to_owned();
        let acc =
            sess.run(&[&m.accuracy], &[(&m.x, xb.into()), (&m.y, yb.into())])?[0].scalar_f64().unwrap_or(f64::NAN);
        // Each chunk's accuracy is a count over its size: recover the exact count.
        correct += (acc * (end - start) as f64).round();
    }
    Ok(correct / n as f64)
}

/// The slides' loop: `num_examples / batch_size` steps per epoch, then
/// `"{epoch} Train accuracy: {last batch} Test accuracy: {all test images}"` and the epoch time.
pub fn train(g: &Graph, m: &Model, args: &RunArgs, epochs: usize, batch_size: usize, eval_chunk: usize) -> Result<()> {
    let opts = mnist::Options { validation_size: args.validation_size, seed: args.seed };
    let mut data = mnist::read_data_sets_with(&args.data, &opts)?;
    let mut sess = Session::new(g)?;
    sess.run_targets(&[&g.global_variables_initializer()?], &[])?;
    let steps = data.train.num_examples() / batch_size;
    sess.set_profiling(args.profile);
    let dir = args.save.as_ref().map(std::path::PathBuf::from);
    if let Some(dir) = &dir {
        let serving = tensorgraph::io::Signature {
            inputs: vec![("X".into(), m.x.clone())],
            outputs: vec![("logits".into(), m.logits.clone())],
        };
        tensorgraph::io::export_meta_graph_with(g, dir.join("model.meta"), &[("serving_default", &serving)])?;
    }
    let saver = tensorgraph::io::Saver::new(g);
    if let Some(path) = &args.restore {
        saver.restore(&sess, path)?;
        let acc_test = accuracy_of(&mut sess, m, &data.test.images, &data.test.labels, eval_chunk)?;
        println!("restored {path}: Test accuracy: {:?}", acc_test as f32);
    }
    let mut events = match &args.logdir {
        Some(d) => Some(tensorgraph::summary::FileWriter::new(d, Some(g))?),
        None => None,
    };
    let mut global_step = 0i64;
    for epoch in 0..epochs {
        let start = Instant::now();
        let mut last = None;
        let progress = progress_bar(steps, epoch);
        for step in 0..steps {
            progress.inc(1);
            let (xb, yb) = data.train.next_batch(batch_size);
            if step + 1 == steps {
                last = Some((xb.clone(), yb.clone())); // for the train accuracy below
            }
            let mut feeds = vec![(&m.x, xb.into()), (&m.y, yb.into())];
            if let Some(t) = &m.training {
                feeds.push((t, Value::from(ndarray::arr0(true).into_dyn())));
            }
            global_step += 1;
            match events.as_mut() {
                Some(w) if global_step % 50 == 0 => {
                    let loss =
                        sess.run_with(&[&m.loss], &[&m.training_op], &feeds)?[0].scalar_f64().unwrap_or(f64::NAN);
                    w.add_scalar("loss", loss as f32, global_step)?;
                }
                _ => sess.run_targets(&[&m.training_op], &feeds)?,
            }
        }
        progress.finish_and_clear();
        let train_time = start.elapsed();
        if args.profile && epoch == 0 {
            for (op, calls, t) in sess.profile() {
                eprintln!("{op:<28} {calls:>8} calls {:>9.3} s", t.as_secs_f64());
            }
            sess.set_profiling(false);
        }
        let acc_train = match last {
            Some((xb, yb)) => accuracy_of(&mut sess, m, &xb, &yb, batch_size)?,
            None => f64::NAN,
        };
        let acc_test = accuracy_of(&mut sess, m, &data.test.images, &data.test.labels, eval_chunk)?;
        if let Some(w) = events.as_mut() {
            w.add_scalar("accuracy/train_batch", acc_train as f32, global_step)?;
            w.add_scalar("accuracy/test", acc_test as f32, global_step)?;
        }
        // `{:?}` prints f32 as Python prints numpy floats (`1.0`, `0.9789`).
        println!("{epoch} Train accuracy: {:?} Test accuracy: {:?}", acc_train as f32, acc_test as f32);
        println!(
            "epoch {epoch} time: {:.2} s (training {:.2} s)",
            start.elapsed().as_secs_f64(),
            train_time.as_secs_f64()
        );
        if let Some(dir) = &dir {
            let path = saver.save(&sess, dir.join("model"), Some(epoch as u64))?;
            println!("saved {}", path.display());
        }
    }
    Ok(())
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
