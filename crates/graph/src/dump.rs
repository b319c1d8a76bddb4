//! A text dump of the graph for quick inspection: `name  op  dtype  shape  inputs`, grouped by
//! name scope.

use crate::graph::{Graph, GraphData};
use std::fmt::Write;

fn scope_of(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(s, _)| s)
}

impl GraphData {
    /// Every node as one aligned line, grouped under a header per name scope (creation order
    /// within a scope; scopes in order of first appearance).
    pub fn to_text(&self) -> String {
        // Rows grouped by scope through an index (a scan per node was quadratic in the scopes).
        let mut scopes: Vec<(&str, Vec<[String; 5]>)> = Vec::new();
        let mut scope_index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for i in self.dag.node_indices() {
            let n = self.node(i);
            let scope = scope_of(&n.name);
            let (dtype, shape) = match n.outputs.first() {
                Some(s) => (s.dtype.to_string(), s.shape.to_string()),
                None => ("-".into(), "-".into()),
            };
            let mut inputs: Vec<String> =
                n.inputs.iter().map(|e| format!("{}:{}", self.node(e.node).name, e.slot)).collect();
            inputs.extend(n.control_inputs.iter().map(|&c| format!("^{}", self.node(c).name)));
            let k = *scope_index.entry(scope).or_insert_with(|| {
                scopes.push((scope, Vec::new()));
                scopes.len() - 1
            });
            scopes[k].1.push([n.name.clone(), n.op.type_name().into(), dtype, shape, inputs.join(", ")]);
        }
        let mut width = [0usize; 4];
        for r in scopes.iter().flat_map(|(_, rows)| rows) {
            for (w, c) in width.iter_mut().zip(r.iter()) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for (scope, rows) in &scopes {
            let _ = writeln!(out, "{}", if scope.is_empty() { "(root)".to_string() } else { format!("{scope}/") });
            for r in rows {
                let _ = writeln!(
                    out,
                    "  {:w0$}  {:w1$}  {:w2$}  {:w3$}  {}",
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    w0 = width[0],
                    w1 = width[1],
                    w2 = width[2],
                    w3 = width[3]
                );
            }
        }
        out
    }
}

impl Graph {
    /// See [`GraphData::to_text`].
    ///
    /// ```
    /// use tensorgraph_graph::Named;
    /// use tensorgraph_graph::{Graph, DType};
    /// let g = Graph::new();
    /// g.placeholder(DType::F32, [None, Some(784)]).named("X").unwrap();
    /// assert!(g.to_text().contains("X  Placeholder  float32  [?,784]"));
    /// ```
    pub fn to_text(&self) -> String {
        self.read(|d| d.to_text())
    }
}
