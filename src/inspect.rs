//! Looking at graphs: GraphViz DOT with one cluster per name scope, JSON for programs, and a
//! Keras-style parameter summary.

use crate::{EdgeKind, Graph, Result};
use std::collections::BTreeMap;
use std::fmt::Write;

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[derive(Default)]
struct Scope {
    nodes: Vec<String>,
    children: BTreeMap<String, Scope>,
}

impl Scope {
    fn emit(&self, path: &str, depth: usize, out: &mut String) {
        let pad = "  ".repeat(depth + 1);
        for n in &self.nodes {
            let _ = writeln!(out, "{pad}{n}");
        }
        for (name, child) in &self.children {
            let full = if path.is_empty() { name.clone() } else { format!("{path}/{name}") };
            let _ = writeln!(out, "{pad}subgraph \"cluster_{}\" {{", esc(&full));
            let _ = writeln!(out, "{pad}  label=\"{}\"; style=rounded; color=gray60; fontname=Helvetica;", esc(name));
            child.emit(&full, depth + 1, out);
            let _ = writeln!(out, "{pad}}}");
        }
    }
}

/// GraphViz DOT: one cluster per name scope (nested), nodes labelled with their op type, data
/// edges labelled with the tensor's static shape, control edges dashed. Render with
/// `dot -Tsvg graph.dot -o graph.svg`.
///
/// ```
/// use tensorgraph::prelude::*;
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(4)]).named("x").unwrap();
/// g.name_scope("dnn", || layers::dense(&x, 2, Some(nn::relu), "h")).unwrap();
/// let dot = tensorgraph::inspect::to_dot(&g);
/// assert!(dot.contains("subgraph \"cluster_dnn/h\""));
/// assert!(dot.contains("label=\"[?,4]\""));
/// ```
pub fn to_dot(g: &Graph) -> String {
    g.read(|d| {
        let mut root = Scope::default();
        let mut edges = String::new();
        for i in d.dag.node_indices() {
            let n = d.node(i);
            let parts: Vec<&str> = n.name.split('/').collect();
            let (leaf, scopes) = parts.split_last().expect("names are not empty");
            let mut s = &mut root;
            for p in scopes {
                s = s.children.entry((*p).to_string()).or_default();
            }
            let shape = if matches!(n.op, crate::Op::VariableV2 { .. }) { "shape=cylinder, " } else { "" };
            s.nodes.push(format!(
                "n{} [{shape}label=\"{}\\n{}\", tooltip=\"{}\"];",
                i.index(),
                esc(leaf),
                n.op.type_name(),
                esc(&n.name)
            ));
        }
        for e in d.dag.edge_indices() {
            let (a, b) = d.dag.edge_endpoints(e).expect("edge exists");
            match d.dag[e] {
                EdgeKind::Data { slot, .. } => {
                    let spec = &d.node(a).outputs[slot];
                    let _ = writeln!(edges, "  n{} -> n{} [label=\"{}\"];", a.index(), b.index(), spec.shape);
                }
                EdgeKind::Control => {
                    let _ = writeln!(edges, "  n{} -> n{} [style=dashed, color=gray50];", a.index(), b.index());
                }
            }
        }
        let mut out = String::from(
            "digraph tensorgraph {\n  rankdir=BT;\n  node [shape=box, style=\"rounded,filled\", fillcolor=white, fontname=Helvetica, fontsize=10];\n  edge [fontname=Helvetica, fontsize=8];\n",
        );
        root.emit("", 0, &mut out);
        out.push_str(&edges);
        out.push_str("}\n");
        out
    })
}

/// The whole graph as JSON (nodes with ops, attributes, inputs, shapes and source locations;
/// variables; collections), for programs.
pub fn to_json(g: &Graph) -> Result<String> {
    g.read(serde_json::to_string).map_err(|e| crate::Error::BadFile { path: "<graph>".into(), detail: e.to_string() })
}

/// A summary like Keras' `model.summary()`: one row per variable scope (layer) with its output
/// shape and parameter count, then the totals.
///
/// ```
/// use tensorgraph::prelude::*;
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(784)]).named("X").unwrap();
/// let h = g.name_scope("dnn", || layers::dense(&x, 300, Some(nn::relu), "hidden1")).unwrap();
/// let s = tensorgraph::inspect::summary(&g);
/// assert!(s.contains("hidden1") && s.contains("[?,300]") && s.contains("235,500"));
/// ```
pub fn summary(g: &Graph) -> String {
    let vars = g.global_variables();
    let scope_of = |name: &str| name.rsplit_once('/').map_or(String::new(), |(s, _)| s.to_string());
    // Layers are the variable scopes of trainable variables; non-trainable variables of the same
    // scope (moving averages) count there, the rest (optimizer slots and counters) apart.
    let mut layers: Vec<(String, usize, usize)> = Vec::new();
    for v in vars.iter().filter(|v| v.trainable()) {
        let (scope, n) = (scope_of(&v.name()), v.shape().num_elements().unwrap_or(0));
        match layers.iter_mut().find(|l| l.0 == scope) {
            Some(l) => l.1 += n,
            None => layers.push((scope, n, 0)),
        }
    }
    let mut other_state = 0;
    for v in vars.iter().filter(|v| !v.trainable()) {
        let (scope, n) = (scope_of(&v.name()), v.shape().num_elements().unwrap_or(0));
        match layers.iter_mut().find(|l| l.0 == scope) {
            Some(l) => l.2 += n,
            None => other_state += n,
        }
    }
    let var_names: Vec<String> = vars.iter().map(|v| v.name()).collect();
    let output_of = |scope: &str| -> String {
        // The last op (outside gradients, optimizers and the variables' own ops) whose name
        // scope is the layer's, possibly nested in an outer name scope (`dnn/hidden1`).
        let shape = g.read(|d| {
            d.dag
                .node_indices()
                .rev()
                .map(|i| d.node(i))
                .find(|n| {
                    let s = n.name.rsplit_once('/').map_or("", |(s, _)| s);
                    let in_var = var_names.iter().any(|v| n.name == *v || n.name.starts_with(&format!("{v}/")));
                    !n.outputs.is_empty()
                        && !in_var
                        && !n.name.starts_with("train")
                        && !n.name.contains("gradients")
                        && (s == scope || s.ends_with(&format!("/{scope}")))
                })
                .map(|n| n.outputs[0].shape.to_string())
        });
        shape.unwrap_or_else(|| "-".into())
    };
    let fmt_n = |n: usize| {
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    let mut out = String::new();
    let _ = writeln!(out, "{:<32} {:<18} {:>12}", "Layer (variable scope)", "Output shape", "Params");
    let _ = writeln!(out, "{}", "=".repeat(64));
    let (mut trainable, mut fixed) = (0, 0);
    for (scope, n, extra) in &layers {
        let label = if scope.is_empty() { "(root)" } else { scope };
        let _ = writeln!(out, "{:<32} {:<18} {:>12}", label, output_of(scope), fmt_n(n + extra));
        trainable += n;
        fixed += extra;
    }
    let _ = writeln!(out, "{}", "=".repeat(64));
    let _ = writeln!(out, "Total params: {}", fmt_n(trainable + fixed));
    let _ = writeln!(out, "Trainable params: {}", fmt_n(trainable));
    let _ = writeln!(out, "Non-trainable params: {}", fmt_n(fixed));
    if other_state > 0 {
        let _ = writeln!(out, "Optimizer and other state: {}", fmt_n(other_state));
    }
    out
}
