//! Writes the MLP slide's training graph as GraphViz DOT, JSON and a parameter summary.
//!
//!     cargo run --example export_graph -- --out docs/mlp
//!     dot -Tsvg docs/mlp.dot -o docs/mlp.svg

// The slides' programs are included whole; each declares `common` for its own build, so the
// module is loaded again inside them (unused there: they name `crate::common`).
#![allow(clippy::duplicate_mod)]

mod common;
#[path = "mnist_cnn.rs"]
mod mnist_cnn;
#[path = "mnist_mlp.rs"]
mod mnist_mlp;

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Output prefix: writes PREFIX.dot and PREFIX.json.
    #[arg(long, default_value = "mlp")]
    out: String,
    /// The CNN instead of the MLP.
    #[arg(long)]
    cnn: bool,
}

fn main() {
    let args = Args::parse();
    common::main_with(|| {
        // The examples' own graphs, as `--seed 1` builds them.
        let flags = common::Flags { seed: Some(1), ..common::Flags::parse_from(["export_graph"]) };
        let g = match args.cnn {
            true => {
                mnist_cnn::construction_phase(&mnist_cnn::CnnFlags { flags, optimizer: mnist_cnn::OptimizerKind::Sgd })?
                    .g
            }
            false => mnist_mlp::construction_phase(&flags)?.g,
        };
        let io = |path: String| move |source| tensorgraph::Error::Io { path: path.clone(), source };
        let dot = format!("{}.dot", args.out);
        std::fs::write(&dot, tensorgraph::inspect::to_dot(&g)).map_err(io(dot.clone()))?;
        let json = format!("{}.json", args.out);
        std::fs::write(&json, tensorgraph::inspect::to_json(&g)?).map_err(io(json.clone()))?;
        print!("{}", tensorgraph::inspect::summary(&g));
        println!("wrote {dot} and {json}");
        Ok(())
    });
}
