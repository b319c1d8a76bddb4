//! End-to-end training benchmark: median ms per step and s per epoch (60,000 images) of the
//! slides' MLP (batch 50) and CNN (batch 100), the time to evaluate the 10,000 test images, and
//! the process's peak RSS, and what each step allocates (count and bytes, through a counting
//! wrapper around the global allocator; tensor buffers the session could not recycle; page
//! faults). One model per process so the RSS is the model's own.
//!
//!     cargo bench --bench train -- --model cnn --threads 2
//!     cargo bench --bench train -- --model mlp --threads 1 --steps 500
//!     cargo bench --bench train -- --model rnn --batch 10 --eval false

// The slides' programs are included whole; each declares `common` for its own build, so the
// module is loaded again inside them (unused there: they name `crate::common`).
#![allow(clippy::duplicate_mod)]

#[path = "../examples/common/mod.rs"]
mod common;
mod counting_alloc;
#[path = "../examples/mnist_cnn.rs"]
mod mnist_cnn;
#[path = "../examples/mnist_mlp.rs"]
mod mnist_mlp;
#[path = "../examples/mnist_rnn.rs"]
mod mnist_rnn;

use clap::Parser;
use std::time::Instant;
use tensorgraph::prelude::*;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "mlp")]
    model: String,
    /// Worker threads (rayon's pool).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    #[arg(long, default_value_t = 200)]
    steps: usize,
    #[arg(long, value_enum, default_value_t = mnist_cnn::OptimizerKind::Sgd)]
    optimizer: mnist_cnn::OptimizerKind,
    /// Images per step (default: the model's own, 50 for the MLP, 100 for the CNN and the RNN).
    #[arg(long)]
    batch: Option<usize>,
    /// Prints time per step by op type (the session's profile over the timed steps).
    #[arg(long)]
    profile: bool,
    /// Whether to evaluate the test set after timing (the scaling sweep skips it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    eval: bool,
    /// cargo bench passes --bench; accept and ignore it.
    #[arg(long, hide = true)]
    bench: bool,
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kb.unwrap_or(f64::NAN) / 1024.0
}

/// Minor page faults of the process so far: each is a first touch of a fresh page (~2.5 us here).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the parenthesised command name; minflt is the 8th of them.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    rest.split_whitespace().nth(7).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn main() {
    let args = Args::parse();
    rayon::ThreadPoolBuilder::new().num_threads(args.threads).build_global().expect("first pool");
    common::main_with(|| {
        // The examples' own graphs, built as `--seed 1` builds them.
        let flags = common::Flags { seed: Some(1), ..common::Flags::parse_from(["train"]) };
        let (m, batch, eval_chunk) = match args.model.as_str() {
            "cnn" => {
                let cnn = mnist_cnn::CnnFlags { flags: flags.clone(), optimizer: args.optimizer };
                (mnist_cnn::construction_phase(&cnn)?, 100, 200)
            }
            "rnn" => {
                let rnn = mnist_rnn::RnnFlags { flags: flags.clone(), cell: mnist_rnn::CellKind::Lstm, units: 128 };
                (mnist_rnn::construction_phase(&rnn)?, 100, 1000)
            }
            _ => (mnist_mlp::construction_phase(&flags)?, 50, 10_000),
        };
        let batch = args.batch.unwrap_or(batch);
        let mut data = flags.read_data_sets()?;
        let rss_loaded = peak_rss_mb();
        let mut sess = Session::new(&m.g)?;
        m.g.global_variables_initializer()?.run(&sess, &[])?;
        let mut times = Vec::with_capacity(args.steps);
        let mut allocs_at_start = (0, 0);
        let (mut faults_at_start, mut fresh_at_start) = (0, 0);
        for i in 0..args.warmup + args.steps {
            if i == args.warmup {
                sess.set_profiling(args.profile);
                allocs_at_start = counting_alloc::allocations();
                faults_at_start = minor_faults();
                fresh_at_start = sess.fresh_buffers();
            }
            let (xb, yb) = data.train.next_batch(batch);
            let t0 = Instant::now();
            sess.run(&m.training_op, feed! {m.x => &xb, m.y => &yb})?;
            if i >= args.warmup {
                times.push(t0.elapsed().as_secs_f64());
            }
        }
        for (op, calls, total) in sess.profile() {
            let per_step = total.as_secs_f64() * 1e6 / args.steps as f64;
            println!("PROFILE {op:<28} {:>6.1} calls/step {per_step:>9.1} us/step", calls as f64 / args.steps as f64);
        }
        let allocs = counting_alloc::allocations();
        let faults_per_step = (minor_faults() - faults_at_start) as f64 / args.steps as f64;
        let fresh_buffers_per_step = (sess.fresh_buffers() - fresh_at_start) as f64 / args.steps as f64;
        let per_step = |now: u64, then: u64| (now - then) as f64 / args.steps as f64;
        let (allocs_per_step, bytes_per_step) =
            (per_step(allocs.0, allocs_at_start.0), per_step(allocs.1, allocs_at_start.1));
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let rss_trained = peak_rss_mb();
        let t0 = Instant::now();
        let acc = if args.eval {
            common::accuracy_of(&sess, &m.accuracy, (&m.x, &m.y), &data.test, eval_chunk)?
        } else {
            f32::NAN
        };
        let eval = t0.elapsed().as_secs_f64();
        println!(
            "RESULT engine=tensorgraph model={} threads={} batch={} step_ms={:.3} p10_ms={:.3} p90_ms={:.3} epoch_s={:.2} eval_s={:.3} test_acc={:.4} peak_rss_mb={:.0} (data loaded {:.0}, trained {:.0}) allocs_per_step={:.0} alloc_mb_per_step={:.1} page_faults_per_step={:.0} fresh_tensor_buffers_per_step={:.2}",
            args.model,
            args.threads,
            batch,
            median * 1e3,
            times[times.len() / 10] * 1e3,
            times[times.len() * 9 / 10] * 1e3,
            median * 60_000.0 / batch as f64,
            eval,
            acc,
            peak_rss_mb(),
            rss_loaded,
            rss_trained,
            allocs_per_step,
            bytes_per_step / 1e6,
            faults_per_step,
            fresh_buffers_per_step
        );
        Ok(())
    });
}
