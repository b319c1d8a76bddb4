//! Function graphs: the bodies of `while_loop` and the branches of `cond`, as TF 2's functional
//! `While` and `If` hold them.
//!
//! A function graph is a [`Graph`] with a parent. While user code builds it (inside the closure
//! given to `while_loop` or `cond`), every op added to the parent, or to any graph around it,
//! goes into the function graph instead; an input from an enclosing graph is *captured*: it
//! becomes a placeholder of the function graph, and the `While`/`If` node takes the outer
//! tensor as an extra input. Variables are made in the root graph whatever the graph handle
//! (TF's `init_scope`), and scopes are the root graph's, so names read as in TF
//! (`rnn/lstm_cell/kernel`, `while/body/MatMul`).

use crate::error::{Error, NodeInfo, Result, SourceLocation};
use crate::graph::{Endpoint, Graph, Tensor};
use crate::op::Op;
use crate::TensorSpec;
use serde::{Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// A function: a graph, the placeholders that take its arguments and the tensors it returns.
#[derive(Clone)]
pub struct Func {
    pub graph: Graph,
    /// One placeholder per argument, in order.
    pub inputs: Vec<Endpoint>,
    pub outputs: Vec<Endpoint>,
}

impl Func {
    /// Specs of the arguments.
    pub fn input_specs(&self) -> Vec<TensorSpec> {
        self.graph.read(|d| self.inputs.iter().map(|&e| d.spec(e).clone()).collect())
    }

    /// Specs of the results.
    pub fn output_specs(&self) -> Vec<TensorSpec> {
        self.graph.read(|d| self.outputs.iter().map(|&e| d.spec(e).clone()).collect())
    }

    /// The argument placeholders as tensors.
    pub fn input_tensors(&self) -> Vec<Tensor> {
        self.inputs.iter().map(|&e| Tensor::from_endpoint(&self.graph, e).expect("a function's own input")).collect()
    }

    /// The results as tensors.
    pub fn output_tensors(&self) -> Vec<Tensor> {
        self.outputs.iter().map(|&e| Tensor::from_endpoint(&self.graph, e).expect("a function's own output")).collect()
    }
}

impl PartialEq for Func {
    fn eq(&self, other: &Func) -> bool {
        self.graph.same(&other.graph) && self.inputs == other.inputs && self.outputs == other.outputs
    }
}

impl fmt::Debug for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Func({} inputs, {} outputs, {:?})", self.inputs.len(), self.outputs.len(), self.graph)
    }
}

impl Serialize for Func {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (self.inputs.len(), self.outputs.len(), self.graph.read(|d| d.dag.node_count())).serialize(s)
    }
}

impl Graph {
    /// The graph this one is a function of, if any.
    pub fn parent(&self) -> Option<Graph> {
        self.read(|d| d.parent.as_ref().and_then(|w| w.upgrade()).map(Graph))
    }

    /// The outermost graph: this one unless it is a function graph.
    pub fn root(&self) -> Graph {
        let mut g = self.clone();
        while let Some(p) = g.parent() {
            g = p;
        }
        g
    }

    /// The root graph when this is a function graph.
    pub(crate) fn root_if_function(&self) -> Option<Graph> {
        self.parent().map(|_| self.root())
    }

    /// Where an op added to this graph goes: the innermost function graph being built in it.
    pub(crate) fn innermost(&self) -> Graph {
        let mut g = self.clone();
        while let Some(inner) = g.read(|d| d.building.last().cloned()) {
            g = inner;
        }
        g
    }

    /// A new, empty function graph of the graph where ops now go (the innermost function graph
    /// being built in this one, or this one).
    pub fn new_function_graph(&self) -> Graph {
        let parent = self.innermost();
        let f = Graph::new();
        f.modify(|d| d.parent = Some(Arc::downgrade(&parent.0))).expect("a new graph is not in use");
        f
    }

    /// Runs `build` with every op added to this function graph's parent (or to any graph
    /// around it) going into this graph.
    pub fn building<T>(&self, build: impl FnOnce() -> Result<T>) -> Result<T> {
        let Some(parent) = self.parent() else {
            return build();
        };
        parent.modify(|d| d.building.push(self.clone()))?;
        struct Pop(Graph);
        impl Drop for Pop {
            fn drop(&mut self) {
                let _ = self.0.modify(|d| d.building.pop());
            }
        }
        let _pop = Pop(parent);
        build()
    }

    /// `t` as seen in this graph: itself, or the placeholder standing for it when it belongs to
    /// an enclosing graph (made on first use, through every graph in between).
    pub fn capture(&self, t: &Tensor) -> Result<Tensor> {
        if t.graph().same(self) {
            return Ok(t.clone());
        }
        let mismatch = || Error::GraphMismatch { name: t.name(), op: "capture".into() };
        let parent = self.parent().ok_or_else(mismatch)?;
        let outer = parent.capture(t)?;
        let e = outer.endpoint();
        if let Some(inner) = self.read(|d| d.captures.iter().find(|(o, _)| *o == e).map(|(_, i)| *i)) {
            return Ok(Tensor::from_endpoint(self, inner).expect("a captured placeholder exists"));
        }
        if outer.op().op_type() == "VariableV2" {
            return Err(Error::InvalidArgument {
                node: outer.op().info(),
                detail: "a while_loop body or cond branch reads a variable by its value; it cannot \
                         assign it (use the variable's value, not its reference)"
                    .into(),
            });
        }
        let spec = outer.spec();
        let name = outer.op_name().rsplit('/').next().unwrap_or("capture").to_string();
        let ph = self.add_node_here(
            Op::Placeholder { dtype: spec.dtype, shape: spec.shape },
            &[],
            &[],
            Some(&name),
            SourceLocation::caller(),
        )?;
        let inner = ph.output(0)?;
        self.modify(|d| d.captures.push((e, inner.endpoint())))?;
        Ok(inner)
    }

    /// The enclosing graph's tensors this function graph has captured, in order.
    pub fn captured(&self) -> Vec<Tensor> {
        let Some(parent) = self.parent() else { return vec![] };
        let outer: Vec<Endpoint> = self.read(|d| d.captures.iter().map(|(o, _)| *o).collect());
        outer.into_iter().map(|e| Tensor::from_endpoint(&parent, e).expect("a captured tensor exists")).collect()
    }

    /// The placeholders standing for [`Graph::captured`], in the same order.
    pub fn capture_placeholders(&self) -> Vec<Endpoint> {
        self.read(|d| d.captures.iter().map(|(_, i)| *i).collect())
    }
}

/// An error about a function's arguments or results, naming the op being built and where.
pub(crate) fn invalid(op: &str, name: &str, location: &SourceLocation, detail: String) -> Error {
    Error::InvalidArgument { node: NodeInfo { name: name.into(), op: op.into(), location: location.clone() }, detail }
}
