//! Serving workloads of a frozen CNN (a GraphDef with input `X:0` [?,784] and output
//! `logits:0`, as `compare_latency.py` writes the slides' CNN from TensorFlow): one-image
//! inference latency (median of many single-image runs) and the 10,000-image evaluation (one run
//! over all of them, which the session splits into cache-sized chunks; the same run unsplit; and
//! 200 images per run). Without `--graph`, the slides' CNN built here with
//! `--seed 1` weights.
//!
//!     cargo bench --bench latency -- --graph /tmp/cnn.pb --threads 2

#![allow(clippy::duplicate_mod)]

#[path = "../examples/common/mod.rs"]
mod common;
#[path = "../examples/mnist_cnn.rs"]
mod mnist_cnn;

use clap::Parser;
use std::time::Instant;
use tensorgraph::prelude::*;

#[derive(Parser)]
struct Args {
    /// A frozen GraphDef (.pb) with `X:0` in and `logits:0` out.
    #[arg(long)]
    graph: Option<String>,
    /// Worker threads (rayon's pool).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Single-image runs timed (after as many warm-up runs / 10).
    #[arg(long, default_value_t = 500)]
    runs: usize,
    /// Timed 10,000-image evaluations.
    #[arg(long, default_value_t = 5)]
    evals: usize,
    /// Also time the 10,000-image run in chunks of each of these row counts
    /// (`BatchSplit::Rows`), comma-separated: how the automatic chunk size compares here.
    #[arg(long, value_delimiter = ',')]
    rows: Vec<usize>,
    /// Print the time per call of each op type in the one-image runs and in the 10,000-image
    /// evaluations (chunked as by default, and in each of `--rows`).
    #[arg(long)]
    profile: bool,
    /// cargo bench passes --bench; accept and ignore it.
    #[arg(long, hide = true)]
    bench: bool,
}

fn median_and_spread(mut t: Vec<f64>) -> (f64, f64, f64) {
    t.sort_by(f64::total_cmp);
    let at = |q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.1), at(0.9))
}

fn main() {
    let args = Args::parse();
    rayon::ThreadPoolBuilder::new().num_threads(args.threads).build_global().expect("first pool");
    common::main_with(|| {
        let flags = common::Flags { seed: Some(1), ..common::Flags::parse_from(["latency"]) };
        let (g, x, logits) = match &args.graph {
            Some(path) => {
                let g = tensorgraph::io::graph_def::import_graph_def(path)?;
                let (x, logits) = (g.tensor_by_name("X:0")?, g.tensor_by_name("logits:0")?);
                (g, x, logits)
            }
            None => {
                let cnn = mnist_cnn::CnnFlags { flags: flags.clone(), optimizer: mnist_cnn::OptimizerKind::Sgd };
                let m = mnist_cnn::construction_phase(&cnn)?;
                (m.g, m.x, m.logits)
            }
        };
        let mut sess = Session::new(&g)?;
        if !g.global_variables().is_empty() {
            g.global_variables_initializer()?.run(&sess, &[])?;
        }
        let test = flags.read_data_sets()?.test;
        let one = test.images.slice(ndarray::s![0..1, ..]);
        let print_profile = |sess: &Session, what: &str| {
            for (op, calls, total) in sess.profile() {
                println!("{what}: {op:>24} {calls:>7} calls {:>9.1} us each", total.as_secs_f64() * 1e6 / calls as f64);
            }
        };
        sess.set_profiling(args.profile);
        let mut times = Vec::with_capacity(args.runs);
        for k in 0..args.runs + args.runs / 10 {
            let start = Instant::now();
            std::hint::black_box(sess.run(&logits, feed! {x => one})?);
            if k >= args.runs / 10 {
                times.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
        let (one_us, p10, p90) = median_and_spread(times);
        let time_eval = |sess: &Session, chunk: usize| -> Result<f64> {
            let start = Instant::now();
            for (images, _) in test.batches(chunk) {
                std::hint::black_box(sess.run(&logits, feed! {x => images})?);
            }
            Ok(start.elapsed().as_secs_f64())
        };
        let evals = |sess: &Session, chunk: usize| -> Result<f64> {
            time_eval(sess, chunk)?; // warm-up
            Ok(median_and_spread((0..args.evals).map(|_| time_eval(sess, chunk)).collect::<Result<_>>()?).0)
        };
        print_profile(&sess, "one image");
        sess.set_profiling(args.profile); // cleared: the evaluations' own counts
        let all = evals(&sess, 10_000)?;
        print_profile(&sess, "evaluation");
        sess.set_profiling(false);
        let chunked = evals(&sess, 200)?;
        for &rows in &args.rows {
            sess.set_batch_splitting(tensorgraph::BatchSplit::Rows(rows));
            sess.set_profiling(args.profile);
            println!(
                "RESULT engine=tensorgraph threads={} rows={rows} eval_10000_s={:.3}",
                args.threads,
                evals(&sess, 10_000)?
            );
            print_profile(&sess, &format!("{rows} rows"));
        }
        sess.set_batch_splitting(tensorgraph::BatchSplit::Off);
        let whole = evals(&sess, 10_000)?;
        println!(
            "RESULT engine=tensorgraph threads={} one_image_us={one_us:.1} p10_us={p10:.1} p90_us={p90:.1} \
             eval_10000_s={all:.3} eval_10000_unsplit_s={whole:.3} eval_chunks_200_s={chunked:.3}",
            args.threads
        );
        Ok(())
    });
}
