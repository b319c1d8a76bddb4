//! `tensorgraph`: look into, convert and run graph and checkpoint files from the command line, as
//! TF's `inspect_checkpoint`, `freeze_graph` and `saved_model_cli` do for TF users.
//!
//!     tensorgraph inspect runs/mlp/model-9                  # a checkpoint (prefix or .index)
//!     tensorgraph inspect model.pb                          # a GraphDef, or a MetaGraphDef (.meta)
//!     tensorgraph convert runs/mlp/model.meta mlp.pb --checkpoint runs/mlp/model-9 --outputs dnn/outputs/BiasAdd
//!     tensorgraph run mlp.pb --feed X=images.npy --fetch dnn/outputs/BiasAdd --out results/

use clap::{Parser, Subcommand};
use prost::Message;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tensorgraph::io::{graph_def, import_meta_graph, list_variables, npy, Saver};
use tensorgraph::{Error, Graph, Result, Session, Tensor};

#[derive(Parser)]
#[command(version, about = "Inspect, convert and run tensorgraph and TensorFlow graph and checkpoint files")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print what a file holds: a checkpoint's variables with shapes and parameter counts, or a
    /// graph's inputs, outputs, op types and constants.
    Inspect {
        /// A checkpoint (its prefix, or its .index file), a GraphDef (.pb) or a tensorgraph
        /// MetaGraphDef (.meta).
        file: PathBuf,
    },
    /// Convert a graph, by the output's extension: to a TensorFlow GraphDef (.pb), frozen with a
    /// checkpoint's values; to a MetaGraphDef (.meta); or to an ONNX model (.onnx, opset 13) of
    /// what --outputs need.
    Convert {
        /// A MetaGraphDef (.meta) or a GraphDef (.pb).
        input: PathBuf,
        /// The file to write: a GraphDef (.pb), a MetaGraphDef (.meta) or an ONNX model (.onnx).
        output: PathBuf,
        /// Fold this checkpoint's variable values into constants (TF's freeze_graph; with
        /// --outputs but no checkpoint, the variables' initial values).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Keep only what these tensors or ops need (comma-separated names).
        #[arg(long, value_delimiter = ',')]
        outputs: Vec<String>,
    },
    /// Run a graph on .npy feeds and write each fetched tensor as .npy.
    Run {
        /// A GraphDef (.pb) or a MetaGraphDef (.meta).
        graph: PathBuf,
        /// Restore variables from this checkpoint first.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// NAME=FILE.npy: feed the tensor NAME (`X` or `X:0`) with the array in FILE.
        #[arg(long = "feed", value_name = "NAME=FILE")]
        feeds: Vec<String>,
        /// A tensor to compute (repeatable); written to OUT/<name with / and : as _>.npy.
        #[arg(long = "fetch", value_name = "NAME", required = true)]
        fetches: Vec<String>,
        /// An op to run with the fetches, such as a train op (repeatable).
        #[arg(long = "target", value_name = "OP")]
        targets: Vec<String>,
        /// Run this many times (training steps); each fetch is then written with the steps
        /// stacked along a new first axis.
        #[arg(long, default_value_t = 1)]
        steps: usize,
        /// Directory for the results.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { file } => inspect(&file),
        Command::Convert { input, output, checkpoint, outputs } => {
            convert(&input, &output, checkpoint.as_deref(), &outputs)
        }
        Command::Run { graph, checkpoint, feeds, fetches, targets, steps, out } => {
            run(&graph, checkpoint.as_deref(), &feeds, &fetches, &targets, steps, &out)
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn usage(detail: String) -> Error {
    Error::InvalidArgument {
        node: tensorgraph::NodeInfo { name: "tensorgraph".into(), op: "command line".into(), location: here() },
        detail,
    }
}

#[track_caller]
fn here() -> tensorgraph::SourceLocation {
    tensorgraph::SourceLocation::caller()
}

/// A checkpoint prefix for `file` when it names one (`model-9` or `model-9.index`).
fn checkpoint_prefix(file: &Path) -> Option<PathBuf> {
    let s = file.to_string_lossy();
    let prefix = PathBuf::from(s.strip_suffix(".index").unwrap_or(&s));
    let mut index = prefix.clone().into_os_string();
    index.push(".index");
    Path::new(&index).is_file().then_some(prefix)
}

/// The graph in `path`, by extension: `.pb` (TF GraphDef) or `.meta` (MetaGraphDef).
fn load_graph(path: &Path) -> Result<Graph> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("pb") => graph_def::import_graph_def(path),
        Some("meta") => import_meta_graph(path),
        _ => Err(usage(format!("{}: expected a .pb or .meta graph file", path.display()))),
    }
}

fn inspect(file: &Path) -> Result<()> {
    if let Some(prefix) = checkpoint_prefix(file) {
        let vars = list_variables(&prefix)?;
        let mut total = 0usize;
        println!("checkpoint {}: {} tensors", prefix.display(), vars.len());
        for v in &vars {
            let n: usize = v.shape.iter().product();
            total += n;
            let dtype = match &v.dtype {
                Ok(d) => d.to_string(),
                Err(name) => name.clone(),
            };
            println!("  {:<48} {:<8} {:<16} {n}", v.name, dtype, tensorgraph::fmt_dims(&v.shape));
        }
        println!("{total} values in all");
        return Ok(());
    }
    let g = load_graph(file)?;
    let ops = g.operations();
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    let mut consumed = std::collections::HashSet::new();
    let mut constants = 0usize;
    for op in &ops {
        *by_type.entry(op.op_type()).or_default() += 1;
        g.read(|d| {
            let n = d.node(op.node());
            consumed.extend(n.inputs.iter().map(|e| e.node));
            consumed.extend(n.control_inputs.iter().copied());
            if let tensorgraph::Op::Const { value } = &n.op {
                constants += value.len();
            }
        });
    }
    println!("graph {}: {} nodes", file.display(), ops.len());
    println!("inputs (placeholders):");
    for op in ops.iter().filter(|o| o.op_type() == "Placeholder") {
        let t = op.output(0)?;
        println!("  {:<40} {} {}", t.name(), t.dtype(), t.shape());
    }
    println!("outputs (read by no other node):");
    let output =
        |o: &&tensorgraph::Operation| !consumed.contains(&o.node()) && o.num_outputs() > 0 && o.op_type() != "Const";
    for op in ops.iter().filter(output) {
        let t = op.output(0)?;
        println!("  {:<40} {} {}", t.name(), t.dtype(), t.shape());
    }
    println!("variables:");
    let mut params = 0usize;
    for v in g.global_variables() {
        let spec = v.var_ref().spec();
        let n: usize = spec.shape.dims().iter().map(|d| d.unwrap_or(0)).product();
        params += n;
        println!("  {:<40} {} {} {n}", v.name(), spec.dtype, spec.shape);
    }
    println!("{params} parameters in variables, {constants} values in constants");
    println!("ops by type:");
    for (t, n) in by_type {
        println!("  {t:<40} {n}");
    }
    Ok(())
}

fn tensor(g: &Graph, name: &str) -> Result<Tensor> {
    g.tensor_by_name(name)
}

fn session(g: &Graph, checkpoint: Option<&Path>) -> Result<Session> {
    let sess = Session::new(g)?;
    if !g.global_variables().is_empty() {
        sess.run(&g.global_variables_initializer()?, &[])?;
    }
    if let Some(c) = checkpoint {
        Saver::new(g).restore(&sess, c)?;
    }
    Ok(sess)
}

fn convert(input: &Path, output: &Path, checkpoint: Option<&Path>, outputs: &[String]) -> Result<()> {
    let g = load_graph(input)?;
    let outs: Vec<Tensor> = outputs.iter().map(|n| tensor(&g, n)).collect::<Result<_>>()?;
    match output.extension().and_then(|e| e.to_str()) {
        Some("pb") => {}
        Some("onnx") if outs.is_empty() => return Err(usage("an ONNX model needs --outputs".into())),
        Some("onnx") => {
            let model =
                tensorgraph::io::onnx::to_onnx(&g, &session(&g, checkpoint)?, &outs.iter().collect::<Vec<_>>())?;
            tensorgraph::io::write_atomic(output, &model.encode_to_vec())?;
            let nodes = model.graph.map_or(0, |g| g.node.len());
            println!("wrote {} ({nodes} nodes, ONNX opset {})", output.display(), tensorgraph::io::onnx::OPSET);
            return Ok(());
        }
        Some("meta") if outs.is_empty() && checkpoint.is_none() => {
            tensorgraph::io::export_meta_graph(&g, output)?;
            println!("wrote {} ({} nodes)", output.display(), g.operations().len());
            return Ok(());
        }
        Some("meta") => {
            return Err(usage("a .meta keeps the whole graph and its variables: no --outputs or --checkpoint".into()))
        }
        _ => return Err(usage(format!("{}: the output must be .pb (TF GraphDef), .meta or .onnx", output.display()))),
    }
    // Freezing folds the checkpoint's values in (the initializers' without one); a graph
    // with neither outputs nor a checkpoint is written as it is, variables and all.
    let def = if checkpoint.is_none() && outs.is_empty() {
        graph_def::to_graph_def(&g)?
    } else {
        graph_def::freeze(&g, &session(&g, checkpoint)?, &outs)?
    };
    tensorgraph::io::write_atomic(output, &def.encode_to_vec())?;
    println!("wrote {} ({} nodes)", output.display(), def.node.len());
    Ok(())
}

fn run(
    graph: &Path,
    checkpoint: Option<&Path>,
    feeds: &[String],
    fetches: &[String],
    targets: &[String],
    steps: usize,
    out: &Path,
) -> Result<()> {
    let g = load_graph(graph)?;
    let sess = session(&g, checkpoint)?;
    let mut fed = Vec::new();
    for f in feeds {
        let (name, file) = f.split_once('=').ok_or_else(|| usage(format!("--feed {f}: expected NAME=FILE.npy")))?;
        fed.push((tensor(&g, name)?, npy::read_npy(file)?));
    }
    let fetched: Vec<Tensor> = fetches.iter().map(|n| tensor(&g, n)).collect::<Result<_>>()?;
    let ops: Vec<tensorgraph::Operation> = targets.iter().map(|n| g.operation_by_name(n)).collect::<Result<_>>()?;
    let feed_refs: Vec<(&Tensor, tensorgraph::Feed)> = fed.iter().map(|(t, v)| (t, v.into())).collect();
    let fetch_refs: Vec<&Tensor> = fetched.iter().collect();
    let op_refs: Vec<&tensorgraph::Operation> = ops.iter().collect();
    let mut per_step = Vec::with_capacity(steps);
    for _ in 0..steps.max(1) {
        per_step.push(sess.run_with(&fetch_refs, &op_refs, &feed_refs)?);
    }
    for (k, t) in fetched.iter().enumerate() {
        let values: Vec<&tensorgraph::Value> = per_step.iter().map(|vs| &vs[k]).collect();
        let v = if values.len() == 1 { values[0].clone() } else { stack(&values) };
        let file = out.join(format!("{}.npy", t.name().replace(['/', ':'], "_")));
        npy::write_npy(&file, &v)?;
        println!("{} {} {} -> {}", t.name(), v.dtype(), tensorgraph::fmt_dims(v.shape()), file.display());
    }
    Ok(())
}

/// Values of one dtype and shape stacked along a new first axis.
fn stack(values: &[&tensorgraph::Value]) -> tensorgraph::Value {
    use tensorgraph::Value::*;
    fn go<T: Clone>(arrays: Vec<&ndarray::ArrayD<T>>) -> ndarray::ArrayD<T> {
        let views: Vec<_> = arrays.iter().map(|a| a.view()).collect();
        ndarray::stack(ndarray::Axis(0), &views).expect("every step gives one shape")
    }
    match values[0] {
        F32(_) => F32(go(values.iter().filter_map(|v| v.as_f32()).collect())),
        F64(_) => F64(go(values.iter().filter_map(|v| v.as_f64()).collect())),
        I32(_) => I32(go(values.iter().filter_map(|v| v.as_i32()).collect())),
        I64(_) => I64(go(values.iter().filter_map(|v| v.as_i64()).collect())),
        Bool(_) => Bool(go(values.iter().filter_map(|v| v.as_bool()).collect())),
        String(_) => String(go(values.iter().filter_map(|v| v.as_string()).collect())),
    }
}
