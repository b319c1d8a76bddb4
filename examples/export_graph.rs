//! Writes the MLP slide's training graph as GraphViz DOT, JSON and a parameter summary.
//!
//!     cargo run --example export_graph -- --out docs/mlp
//!     dot -Tsvg docs/mlp.dot -o docs/mlp.svg

mod common;

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
        let (g, x, y) = common::inputs(Some(1))?;
        let logits = if args.cnn { common::cnn_logits(&x)? } else { common::mlp_logits(&g, &x)? };
        common::finish_model(&g, x, y, &logits, common::OptimizerKind::Sgd, 0.01)?;
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
