//! The graph: a petgraph DAG of [`Node`]s behind a cheap, clonable [`Graph`] handle, with TF1's
//! naming rules, name and variable scopes, control-dependency contexts and collections.

use crate::error::{Error, NodeInfo, Result, SourceLocation};
use crate::infer::{infer, InferError, TensorSpec};
use crate::op::Op;
use crate::{DType, Shape};
use parking_lot::ReentrantMutex;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use serde::{Deserialize, Serialize};
use std::cell::{RefCell, RefMut};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Output `slot` of `node`: what a data edge carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Endpoint {
    pub node: NodeIndex,
    pub slot: usize,
}

/// One op instance in the graph.
#[derive(Clone, Debug, Serialize)]
pub struct Node {
    /// Unique scoped name, like `dnn/hidden1/MatMul`.
    pub name: String,
    pub op: Op,
    /// Data inputs, in the op's order.
    pub inputs: Vec<Endpoint>,
    /// Nodes that must run before this one (`^name` in TF).
    pub control_inputs: Vec<NodeIndex>,
    /// Static dtype and shape of each output.
    pub outputs: Vec<TensorSpec>,
    /// Where user code created the node.
    pub location: SourceLocation,
}

impl Node {
    /// Name, op type and location, for error messages.
    pub fn info(&self) -> NodeInfo {
        NodeInfo { name: self.name.clone(), op: self.op.type_name().to_string(), location: self.location.clone() }
    }
}

/// Edge weights of the DAG; they mirror `Node::inputs` and `Node::control_inputs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EdgeKind {
    /// Output `slot` of the source feeds input `input` of the target.
    Data {
        slot: usize,
        input: usize,
    },
    Control,
}

/// A variable's nodes: the `VariableV2` itself, its `read` identity and its initializer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariableInfo {
    pub var: NodeIndex,
    pub read: NodeIndex,
    pub initializer: NodeIndex,
    pub trainable: bool,
}

/// Standard collection names, as TF's `GraphKeys`.
pub mod collections {
    pub const TRAIN_OP: &str = "train_op";
    pub const UPDATE_OPS: &str = "update_ops";
    pub const REGULARIZATION_LOSSES: &str = "regularization_losses";
    pub const LOSSES: &str = "losses";
}

/// TF's default graph-level seed when only an op-level seed is given.
const DEFAULT_GRAPH_SEED: u64 = 87654321;

/// Everything the graph holds. Read it through [`Graph::read`]; serialises (for
/// `inspect::to_json`) with the DAG as its node slots in index order.
#[derive(Default, Serialize)]
pub struct GraphData {
    #[serde(serialize_with = "node_slots")]
    pub dag: StableDiGraph<Node, EdgeKind>,
    names: HashMap<String, NodeIndex>,
    names_in_use: HashMap<String, usize>,
    name_scopes: Vec<String>,
    /// Open variable scopes: full name, and whether `get_variable` reuses existing variables.
    var_scopes: Vec<(String, bool)>,
    control_stack: Vec<Vec<NodeIndex>>,
    pub variables: Vec<VariableInfo>,
    pub collections: BTreeMap<String, Vec<Endpoint>>,
    /// Collections of operations (like `train_op`), which need not have outputs.
    pub op_collections: BTreeMap<String, Vec<NodeIndex>>,
    seed: Option<u64>,
    /// The graph this one is a function of (a `while_loop` body, a `cond` branch); weak, since
    /// the parent's `While`/`If` node holds this graph.
    #[serde(skip)]
    pub(crate) parent: Option<std::sync::Weak<ReentrantMutex<RefCell<GraphData>>>>,
    /// Function graphs being built inside this one, innermost last: ops added here go there.
    #[serde(skip)]
    pub(crate) building: Vec<Graph>,
    /// The enclosing graph's tensors this function graph reads: each with the placeholder that
    /// stands for it here, in order of first use.
    #[serde(skip)]
    pub captures: Vec<(Endpoint, Endpoint)>,
}

fn node_slots<S: serde::Serializer>(dag: &StableDiGraph<Node, EdgeKind>, s: S) -> std::result::Result<S::Ok, S::Error> {
    use petgraph::visit::NodeIndexable;
    let slots: Vec<Option<&Node>> = (0..dag.node_bound()).map(|i| dag.node_weight(NodeIndex::new(i))).collect();
    slots.serialize(s)
}

impl GraphData {
    /// The node at `i`. Indices come from this graph's handles, so they are always valid.
    pub fn node(&self, i: NodeIndex) -> &Node {
        &self.dag[i]
    }

    /// The node called `name`.
    pub fn find(&self, name: &str) -> Option<NodeIndex> {
        self.names.get(name).copied()
    }

    /// Static spec of an output.
    pub fn spec(&self, e: Endpoint) -> &TensorSpec {
        &self.dag[e.node].outputs[e.slot]
    }

    fn current_scope(&self) -> &str {
        self.name_scopes.last().map_or("", String::as_str)
    }

    fn scoped(&self, name: &str) -> String {
        match self.current_scope() {
            "" => name.to_string(),
            s => format!("{s}/{name}"),
        }
    }

    /// TF's `unique_name`: `name`, else `name_1`, `name_2`, ... (shared by ops and scopes).
    fn free_name(&self, name: &str) -> String {
        let count = self.names_in_use.get(name).copied().unwrap_or(0);
        if count == 0 {
            return name.to_string();
        }
        (count..).map(|i| format!("{name}_{i}")).find(|u| !self.names_in_use.contains_key(u)).expect("unbounded")
    }

    /// [`GraphData::free_name`], marked as used.
    fn unique_name(&mut self, name: &str) -> String {
        let unique = self.free_name(name);
        *self.names_in_use.entry(name.to_string()).or_insert(0) += 1;
        self.names_in_use.entry(unique.clone()).or_insert(1);
        unique
    }

    /// Undoes [`GraphData::unique_name`] for a name nothing else was derived from, so naming
    /// an op just built leaves the counters as if it had been built with that name.
    fn release_name(&mut self, old: &str) {
        if self.names_in_use.get(old) != Some(&1) {
            return; // a base others were numbered from, or a scope's name too
        }
        self.names_in_use.remove(old);
        let numbered = old.rsplit_once('_').and_then(|(base, k)| Some((base, k.parse::<usize>().ok()?)));
        if let Some((base, k)) = numbered {
            if let Some(count) = self.names_in_use.get_mut(base).filter(|c| **c == k + 1) {
                *count = k;
            }
        }
    }

    /// Gives `node` the name `name` in the current scope (TF's `name=`): uniquified as a new
    /// op's would be, or verbatim when it ends in `/`. The old name is released when only this
    /// node held it, so the next unnamed op of that type takes it, as in TF.
    fn rename(&mut self, node: NodeIndex, name: &str) -> std::result::Result<(), String> {
        let verbatim = name.strip_suffix('/');
        let wanted = match verbatim {
            Some(abs) => abs.to_string(),
            None => self.scoped(name),
        };
        let old = self.dag[node].name.clone();
        if old == wanted {
            return Ok(());
        }
        if verbatim.is_some() && self.names.contains_key(&wanted) {
            return Err(format!("a node named '{wanted}' already exists (duplicate node name)"));
        }
        self.names.remove(&old);
        self.release_name(&old);
        let new = match verbatim {
            Some(_) => {
                self.names_in_use.entry(wanted.clone()).or_insert(1);
                wanted
            }
            None => self.unique_name(&wanted),
        };
        self.names.insert(new.clone(), node);
        self.dag[node].name = new;
        Ok(())
    }

    /// The graph-level seed (`tf.set_random_seed`), if set.
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// Seeds for a random op, with TF1's rules for graph-level and op-level seeds;
    /// `(0, 0)` asks the session for a non-deterministic stream.
    pub fn random_seeds(&self, op_seed: Option<u64>) -> (u64, u64) {
        match (self.seed, op_seed) {
            (Some(g), Some(o)) => (g, o),
            (Some(g), None) => (g, self.dag.node_count() as u64),
            (None, Some(o)) => (DEFAULT_GRAPH_SEED, o),
            (None, None) => (0, 0),
        }
    }
}

/// A computation graph. Cloning the handle shares the graph.
///
/// ```
/// use tensorgraph_graph::Named;
/// use tensorgraph_graph::{Graph, DType};
/// # fn main() -> tensorgraph_graph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(3)]).named("x")?;
/// let y = g.name_scope("layer", || tensorgraph_graph::ops::nn::relu(&x))?;
/// assert_eq!(y.name(), "layer/Relu:0");
/// assert_eq!(y.shape().to_string(), "[?,3]");
/// # Ok(()) }
/// ```
///
/// The handle is `Send + Sync`: threads may build and read one graph. The lock is re-entrant, so
/// a closure passed to [`Graph::read`] may call anything that only reads the graph (a tensor's
/// `shape()`, say); one that builds or changes the graph from inside `read` gets
/// [`Error::GraphInUse`] (or, from the few builders that return no `Result`, a panic naming the
/// mistake), never a deadlock.
#[derive(Clone, Default)]
pub struct Graph(pub(crate) Arc<ReentrantMutex<RefCell<GraphData>>>);

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Graph({} nodes)", self.read(|d| d.dag.node_count()))
    }
}

/// Leaves a name scope, variable scope or control-dependency context when dropped, so early
/// returns and panics leave the graph consistent.
#[must_use = "the scope ends when this guard is dropped"]
pub struct ScopeGuard<'a> {
    graph: Graph,
    _scoped: std::marker::PhantomData<&'a Graph>,
    pop: fn(&mut GraphData),
    inner: Option<Box<ScopeGuard<'a>>>,
}

impl Drop for ScopeGuard<'_> {
    fn drop(&mut self) {
        drop(self.inner.take());
        // Entering the scope succeeded, so no `read` was open then; one opened since and still
        // open on this thread means the guard was dropped inside it: leave the scope as is.
        let _ = self.graph.modify(self.pop);
    }
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Records what a graph file says beside its nodes (built first, with
    /// [`Graph::add_node`]): the variables, the collections of tensors and of operations, the
    /// graph-level seed. Each entry must point at nodes of the right kinds; the error says
    /// which does not, and nothing is recorded then.
    pub fn import_metadata(
        &self,
        variables: Vec<VariableInfo>,
        collections: BTreeMap<String, Vec<Endpoint>>,
        op_collections: BTreeMap<String, Vec<NodeIndex>>,
        seed: Option<u64>,
    ) -> Result<()> {
        self.modify(|d| {
            let is = |i: NodeIndex, f: fn(&Op) -> bool| d.dag.node_weight(i).is_some_and(|n| f(&n.op));
            let var_input = |i: NodeIndex| d.dag.node_weight(i).and_then(|n| n.inputs.first()).map(|e| e.node);
            for v in &variables {
                let ok = is(v.var, |o| matches!(o, Op::VariableV2 { .. }))
                    && is(v.read, |o| matches!(o, Op::Identity))
                    && is(v.initializer, |o| matches!(o, Op::Assign))
                    && var_input(v.read) == Some(v.var)
                    && var_input(v.initializer) == Some(v.var);
                if !ok {
                    let name = d.dag.node_weight(v.var).map_or("?", |n| n.name.as_str()).to_string();
                    return Err(format!("variable {name} is not a VariableV2 with its read Identity and its Assign"));
                }
            }
            for (key, eps) in &collections {
                if eps.iter().any(|e| d.dag.node_weight(e.node).is_none_or(|n| e.slot >= n.outputs.len())) {
                    return Err(format!("collection {key} refers to a missing tensor"));
                }
            }
            for (key, nodes) in &op_collections {
                if nodes.iter().any(|&n| d.dag.node_weight(n).is_none()) {
                    return Err(format!("operation collection {key} refers to a missing node"));
                }
            }
            d.variables.extend(variables);
            for (k, v) in collections {
                d.collections.entry(k).or_default().extend(v);
            }
            for (k, v) in op_collections {
                d.op_collections.entry(k).or_default().extend(v);
            }
            if seed.is_some() {
                d.seed = seed;
            }
            Ok(())
        })?
        .map_err(|detail| Error::InvalidArgument {
            node: NodeInfo { name: "(graph)".into(), op: "metadata".into(), location: SourceLocation::caller() },
            detail,
        })
    }

    /// Runs `f` with shared access to the graph data. Reads may nest (on one thread); building
    /// inside `f` is an error (see [`Graph`]).
    ///
    /// ```
    /// use tensorgraph_graph::Named;
    /// use tensorgraph_graph::{Graph, DType};
    /// let g = Graph::new();
    /// let x = g.placeholder(DType::F32, [None, Some(2)]).named("x").unwrap();
    /// assert_eq!(g.read(|d| (d.dag.node_count(), x.shape().to_string())), (1, "[?,2]".to_string()));
    /// ```
    pub fn read<R>(&self, f: impl FnOnce(&GraphData) -> R) -> R {
        let lock = self.0.lock();
        let data = lock.borrow();
        f(&data)
    }

    /// Runs `f` with exclusive access to the graph data, or says that this thread is inside a
    /// [`Graph::read`] of this graph.
    pub(crate) fn modify<R>(&self, f: impl FnOnce(&mut GraphData) -> R) -> Result<R> {
        let lock = self.0.lock();
        let mut data: RefMut<'_, GraphData> = lock.try_borrow_mut().map_err(|_| Error::GraphInUse)?;
        Ok(f(&mut data))
    }

    /// [`Graph::modify`] for the builders whose signatures (as TF's) return no `Result`.
    #[track_caller]
    fn modify_or_panic<R>(&self, f: impl FnOnce(&mut GraphData) -> R) -> R {
        match self.modify(f) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    /// An identity for this graph, equal for handles of the same graph while any is alive.
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as *const () as usize
    }

    /// True when both handles refer to the same graph.
    pub fn same(&self, other: &Graph) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Sets the graph-level random seed, as `tf.set_random_seed`.
    ///
    /// # Panics
    /// When called inside [`Graph::read`] of this graph.
    #[track_caller]
    pub fn set_random_seed(&self, seed: u64) {
        self.modify_or_panic(|d| d.seed = Some(seed));
    }

    /// Adds a node running `op` on `inputs`; `name` defaults to the op type. Infers output specs.
    #[track_caller]
    pub fn add_op(&self, op: Op, inputs: &[&Tensor], name: Option<&str>) -> Result<Operation> {
        self.add_node(op, inputs, &[], name, SourceLocation::caller())
    }

    /// [`Graph::add_op`] with extra control inputs and an explicit location.
    ///
    /// While a `while_loop` body or a `cond` branch is being built, the node goes into that
    /// function graph, and inputs from the graphs around it are captured (see
    /// [`crate::ops::control_flow`]).
    pub fn add_node(
        &self,
        op: Op,
        inputs: &[&Tensor],
        control_inputs: &[&Operation],
        name: Option<&str>,
        location: SourceLocation,
    ) -> Result<Operation> {
        let target = self.innermost();
        if target.same(self) && inputs.iter().all(|t| t.graph.same(self)) {
            return self.add_node_here(op, inputs, control_inputs, name, location);
        }
        let captured = inputs.iter().map(|t| target.capture(t)).collect::<Result<Vec<_>>>()?;
        target.add_node_here(op, &captured.iter().collect::<Vec<_>>(), control_inputs, name, location)
    }

    pub(crate) fn add_node_here(
        &self,
        op: Op,
        inputs: &[&Tensor],
        control_inputs: &[&Operation],
        name: Option<&str>,
        location: SourceLocation,
    ) -> Result<Operation> {
        // A function graph's nodes take the scope its builder is in (kept by the root graph).
        let scope = match self.read(|d| d.parent.is_some()) {
            true => Some(self.current_name_scope()),
            false => None,
        };
        let foreign = inputs.iter().any(|t| !t.graph.same(self)) || control_inputs.iter().any(|o| !o.graph.same(self));
        let node = self.modify(|d| {
            // A name ending in '/' is taken verbatim (TF's convention for naming an op after a scope).
            let verbatim = name.and_then(|n| n.strip_suffix('/'));
            let base = match verbatim {
                Some(abs) => abs.to_string(),
                None => match scope.as_deref() {
                    None => d.scoped(name.unwrap_or(op.type_name())),
                    Some("") => name.unwrap_or(op.type_name()).to_string(),
                    Some(s) => format!("{s}/{}", name.unwrap_or(op.type_name())),
                },
            };
            let info = |d: &GraphData| NodeInfo {
                name: if verbatim.is_some() { base.clone() } else { d.free_name(&base) },
                op: op.type_name().into(),
                location: location.clone(),
            };
            if foreign {
                return Err(Error::GraphMismatch { name: base, op: op.type_name().into() });
            }
            if verbatim.is_some() && d.names.contains_key(&base) {
                let detail = format!("a node named '{base}' already exists (duplicate node name)");
                return Err(Error::InvalidArgument { node: info(d), detail });
            }
            let endpoints: Vec<Endpoint> = inputs.iter().map(|t| t.endpoint()).collect();
            let specs: Vec<TensorSpec> = endpoints.iter().map(|&e| d.spec(e).clone()).collect();
            let outputs = infer(&op, &specs).map_err(|e| {
                let node = info(d);
                match e {
                    InferError::Shape(detail) => Error::ShapeMismatch { node, detail },
                    InferError::DType(detail) => Error::DTypeMismatch { node, detail },
                    InferError::Invalid(detail) => Error::InvalidArgument { node, detail },
                }
            })?;
            let name = match verbatim {
                Some(_) => {
                    // Taken as it is, and counted, so that a later `name` becomes `name_1`.
                    d.names_in_use.entry(base.clone()).or_insert(1);
                    base
                }
                None => d.unique_name(&base),
            };
            let mut controls: Vec<NodeIndex> = d.control_stack.iter().flatten().copied().collect();
            controls.extend(control_inputs.iter().map(|o| o.node));
            controls.sort();
            controls.dedup();
            let idx = d.dag.add_node(Node {
                name: name.clone(),
                op,
                inputs: endpoints.clone(),
                control_inputs: controls.clone(),
                outputs,
                location,
            });
            for (input, e) in endpoints.iter().enumerate() {
                d.dag.add_edge(e.node, idx, EdgeKind::Data { slot: e.slot, input });
            }
            for c in controls {
                d.dag.add_edge(c, idx, EdgeKind::Control);
            }
            d.names.insert(name, idx);
            Ok(idx)
        })??;
        Ok(Operation { graph: self.clone(), node })
    }

    /// Adds a single-output op and returns its output tensor.
    #[track_caller]
    pub fn add_op1(&self, op: Op, inputs: &[&Tensor], name: Option<&str>) -> Result<Tensor> {
        self.add_node(op, inputs, &[], name, SourceLocation::caller())?.output(0)
    }

    /// Enters name scope `name` until the returned guard drops, like `with tf.name_scope(name)`.
    /// A reused name becomes `name_1`; a name ending in `/` is an absolute scope, as in TF.
    ///
    /// ```
    /// use tensorgraph_graph::{Graph, DType};
    /// let g = Graph::new();
    /// {
    ///     let _scope = g.enter_name_scope("dnn");
    ///     assert_eq!(g.current_name_scope(), "dnn");
    /// }
    /// assert_eq!(g.current_name_scope(), "");
    /// ```
    ///
    /// # Panics
    /// When called inside [`Graph::read`] of this graph.
    #[track_caller]
    pub fn enter_name_scope(&self, name: &str) -> ScopeGuard<'_> {
        // A loop body or branch names its ops in the scopes of the graph it belongs to.
        let root = self.root();
        root.modify_or_panic(|d| {
            let full = match name.strip_suffix('/') {
                Some(abs) => abs.to_string(),
                None => {
                    let s = d.scoped(name);
                    d.unique_name(&s)
                }
            };
            d.name_scopes.push(full);
        });
        ScopeGuard { graph: root, _scoped: Default::default(), pop: |d| drop(d.name_scopes.pop()), inner: None }
    }

    /// Runs `f` inside name scope `name` (see [`Graph::enter_name_scope`]).
    pub fn name_scope<T>(&self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let _guard = self.enter_name_scope(name);
        f()
    }

    /// Enters variable scope `name` until the guard drops: variables made by
    /// [`Graph::get_variable`] are named `name/...`, and ops go into the name scope `name`.
    pub fn enter_variable_scope(&self, name: &str) -> ScopeGuard<'_> {
        self.enter_variable_scope_with(name, false)
    }

    /// [`Graph::enter_variable_scope`] in which `get_variable` returns the variable of that name
    /// if it exists and creates it otherwise (TF1's `reuse=tf.AUTO_REUSE`): how a GAN applies
    /// one discriminator to real and generated images. Scopes inside inherit the reuse.
    ///
    /// ```
    /// use tensorgraph_graph::{DType, Graph, Initializer};
    /// let g = Graph::new();
    /// let make = || {
    ///     let _scope = g.enter_variable_scope_reuse("discriminator");
    ///     g.get_variable("w", &[2], DType::F32, &Initializer::Zeros, true).unwrap()
    /// };
    /// let (a, b) = (make(), make());
    /// assert_eq!((a.name(), b.name()), ("discriminator/w".into(), "discriminator/w".into()));
    /// assert_eq!(g.global_variables().len(), 1);
    /// ```
    pub fn enter_variable_scope_reuse(&self, name: &str) -> ScopeGuard<'_> {
        self.enter_variable_scope_with(name, true)
    }

    #[track_caller]
    fn enter_variable_scope_with(&self, name: &str, reuse: bool) -> ScopeGuard<'_> {
        let root = self.root();
        root.modify_or_panic(|d| {
            let (full, inherited) = match d.var_scopes.last() {
                Some((s, r)) => (format!("{s}/{name}"), *r),
                None => (name.to_string(), false),
            };
            d.var_scopes.push((full, reuse || inherited));
        });
        let inner = Box::new(self.enter_name_scope(name));
        ScopeGuard { graph: root, _scoped: Default::default(), pop: |d| drop(d.var_scopes.pop()), inner: Some(inner) }
    }

    /// Runs `f` inside variable scope `name` (see [`Graph::enter_variable_scope`]).
    pub fn variable_scope<T>(&self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let _guard = self.enter_variable_scope(name);
        f()
    }

    /// The current name scope (`""` at the root).
    pub fn current_name_scope(&self) -> String {
        self.root().read(|d| d.current_scope().to_string())
    }

    /// `base` if no op has that name yet, else the first free `base_1`, `base_2`, ... (how TF
    /// names a second optimizer's slots `w/Adam_2` or its `beta1_power_1`).
    pub fn unique_variable_name(&self, base: &str) -> String {
        self.read(|d| d.free_name(base))
    }

    /// Runs `f` with no control dependencies in force (TF's `init_scope`), then restores them.
    /// Also outside any function graph being built: a variable created in a loop body lives in
    /// the graph around it, as TF's.
    pub(crate) fn init_scope<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let saved = self.modify(|d| (std::mem::take(&mut d.control_stack), std::mem::take(&mut d.building)))?;
        let result = f();
        self.modify(|d| (d.control_stack, d.building) = saved)?;
        result
    }

    /// Runs `f` so that every op it creates runs after `deps`, like `tf.control_dependencies`.
    pub fn control_dependencies<T>(&self, deps: &[&Operation], f: impl FnOnce() -> Result<T>) -> Result<T> {
        if let Some(o) = deps.iter().find(|o| !o.graph.same(self)) {
            return Err(Error::GraphMismatch { name: o.name(), op: "control_dependencies".into() });
        }
        self.modify(|d| d.control_stack.push(deps.iter().map(|o| o.node).collect()))?;
        let _guard = ScopeGuard {
            graph: self.clone(),
            _scoped: Default::default(),
            pop: |d| drop(d.control_stack.pop()),
            inner: None,
        };
        f()
    }

    /// The node called `name`.
    pub fn operation_by_name(&self, name: &str) -> Result<Operation> {
        let node =
            self.read(|d| d.find(name)).ok_or_else(|| Error::NotFound { what: "operation", name: name.into() })?;
        Ok(Operation { graph: self.clone(), node })
    }

    /// The tensor called `name`, as `"dnn/hidden1/Relu:0"` (`":0"` may be omitted).
    pub fn tensor_by_name(&self, name: &str) -> Result<Tensor> {
        let (op, slot) = match name.rsplit_once(':') {
            Some((op, s)) => (op, s.parse().map_err(|_| Error::NotFound { what: "tensor", name: name.into() })?),
            None => (name, 0),
        };
        self.operation_by_name(op)?.output(slot).map_err(|_| Error::NotFound { what: "tensor", name: name.into() })
    }

    /// Every node, in creation order.
    pub fn operations(&self) -> Vec<Operation> {
        self.read(|d| d.dag.node_indices().collect::<Vec<_>>())
            .into_iter()
            .map(|node| Operation { graph: self.clone(), node })
            .collect()
    }

    /// Appends `t` to the collection `key`.
    ///
    /// # Panics
    /// When called inside [`Graph::read`] of this graph.
    #[track_caller]
    pub fn add_to_collection(&self, key: &str, t: &Tensor) {
        self.modify_or_panic(|d| d.collections.entry(key.to_string()).or_default().push(t.endpoint()));
    }

    /// Appends operation `op` to the operation collection `key` (TF's `train_op` collection holds
    /// the training op this way).
    ///
    /// # Panics
    /// When called inside [`Graph::read`] of this graph.
    #[track_caller]
    pub fn add_operation_to_collection(&self, key: &str, op: &Operation) {
        self.modify_or_panic(|d| d.op_collections.entry(key.to_string()).or_default().push(op.node));
    }

    /// The operations in collection `key`, in insertion order.
    pub fn get_operation_collection(&self, key: &str) -> Vec<Operation> {
        let nodes = self.read(|d| d.op_collections.get(key).cloned().unwrap_or_default());
        nodes.into_iter().map(|node| Operation { graph: self.clone(), node }).collect()
    }

    /// The tensors in collection `key`, in insertion order.
    pub fn get_collection(&self, key: &str) -> Vec<Tensor> {
        let eps = self.read(|d| d.collections.get(key).cloned().unwrap_or_default());
        eps.into_iter().map(|e| Tensor { graph: self.clone(), node: e.node, slot: e.slot }).collect()
    }

    pub(crate) fn register_variable(&self, info: VariableInfo) -> Result<()> {
        self.modify(|d| d.variables.push(info))
    }

    /// All variables, as `tf.global_variables()`.
    pub fn global_variables(&self) -> Vec<crate::Variable> {
        let root = self.root();
        let infos = root.read(|d| d.variables.clone());
        infos.into_iter().map(|i| crate::Variable::from_info(&root, i)).collect()
    }

    /// The trainable variables, as `tf.trainable_variables()`.
    pub fn trainable_variables(&self) -> Vec<crate::Variable> {
        self.global_variables().into_iter().filter(|v| v.trainable()).collect()
    }

    /// One op that runs every variable's initializer, named `init` as in TF.
    #[track_caller]
    pub fn global_variables_initializer(&self) -> Result<Operation> {
        let inits: Vec<Operation> = self.global_variables().iter().map(|v| v.initializer().clone()).collect();
        let refs: Vec<&Operation> = inits.iter().collect();
        self.add_node(Op::NoOp, &[], &refs, Some("init"), SourceLocation::caller())
    }

    /// The current variable scope and whether it reuses variables.
    pub(crate) fn var_scope(&self) -> Option<(String, bool)> {
        self.root().read(|d| d.var_scopes.last().cloned())
    }

    /// Seeds for a new random op (see [`GraphData::random_seeds`]).
    pub fn random_seeds(&self, op_seed: Option<u64>) -> (u64, u64) {
        self.read(|d| d.random_seeds(op_seed))
    }
}

/// A node of a graph, used as a run target (like `training_op`) or to reach its outputs.
#[derive(Clone)]
pub struct Operation {
    graph: Graph,
    node: NodeIndex,
}

impl Operation {
    /// The graph this op belongs to.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Its index in the graph's DAG.
    pub fn node(&self) -> NodeIndex {
        self.node
    }

    /// Its unique scoped name.
    pub fn name(&self) -> String {
        self.graph.read(|d| d.node(self.node).name.clone())
    }

    /// TF's op type name.
    pub fn op_type(&self) -> &'static str {
        self.graph.read(|d| d.node(self.node).op.type_name())
    }

    /// A clone of the op and its attributes.
    pub fn op(&self) -> Op {
        self.graph.read(|d| d.node(self.node).op.clone())
    }

    /// Number of outputs.
    pub fn num_outputs(&self) -> usize {
        self.graph.read(|d| d.node(self.node).outputs.len())
    }

    /// Output `slot`; an error names the op if it has fewer outputs.
    pub fn output(&self, slot: usize) -> Result<Tensor> {
        let (n, info) = self.graph.read(|d| (d.node(self.node).outputs.len(), d.node(self.node).info()));
        if slot < n {
            Ok(Tensor { graph: self.graph.clone(), node: self.node, slot })
        } else {
            Err(Error::InvalidArgument { detail: format!("has {n} outputs, asked for output {slot}"), node: info })
        }
    }

    /// The input tensors, in order.
    pub fn inputs(&self) -> Vec<Tensor> {
        let eps = self.graph.read(|d| d.node(self.node).inputs.clone());
        eps.into_iter().map(|e| Tensor { graph: self.graph.clone(), node: e.node, slot: e.slot }).collect()
    }

    /// Name, op type and location.
    pub fn info(&self) -> NodeInfo {
        self.graph.read(|d| d.node(self.node).info())
    }
}

impl fmt::Debug for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Operation(\"{}\", type={})", self.name(), self.op_type())
    }
}

impl PartialEq for Operation {
    fn eq(&self, o: &Operation) -> bool {
        self.graph.same(&o.graph) && self.node == o.node
    }
}

impl Eq for Operation {}

/// TF's `name=` argument. Op builders take no name; `.named(name)` on what they return
/// names the op that made it, in the current name scope, uniquified as TF does (`loss`,
/// `loss_1`) or verbatim when `name` ends in `/`. On a builder's `Result` it passes errors
/// through, so one `?` serves both.
///
/// ```
/// use tensorgraph_graph::{DType, Graph, Named};
/// # fn main() -> tensorgraph_graph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(784)]).named("X")?;
/// let y = g.name_scope("loss", || g.placeholder(DType::F32, [None]).named("y"))?;
/// assert_eq!((x.name(), y.name()), ("X:0".to_string(), "loss/y:0".to_string()));
/// # Ok(()) }
/// ```
pub trait Named {
    /// What naming gives back: the tensor or operation itself.
    type Output;
    /// Names the op; errors only when the graph is being read on this thread or a verbatim
    /// name is taken.
    fn named(self, name: &str) -> Result<Self::Output>;
}

impl Named for Operation {
    type Output = Operation;
    fn named(self, name: &str) -> Result<Operation> {
        let node = self.node;
        self.graph
            .modify(|d| d.rename(node, name))?
            .map_err(|detail| Error::InvalidArgument { node: self.info(), detail })?;
        Ok(self)
    }
}

impl Named for Tensor {
    type Output = Tensor;
    fn named(self, name: &str) -> Result<Tensor> {
        self.op().named(name)?;
        Ok(self)
    }
}

impl<T: Named> Named for Result<T> {
    type Output = T::Output;
    fn named(self, name: &str) -> Result<T::Output> {
        self?.named(name)
    }
}

/// A symbolic tensor: output `slot` of a node. It holds no data; a session computes it.
#[derive(Clone)]
pub struct Tensor {
    graph: Graph,
    node: NodeIndex,
    slot: usize,
}

impl Tensor {
    /// A handle to output `slot` of `node` in `graph`; `None` if there is no such output.
    pub fn from_endpoint(graph: &Graph, e: Endpoint) -> Option<Tensor> {
        let ok = graph.read(|d| d.dag.node_weight(e.node).is_some_and(|n| e.slot < n.outputs.len()));
        ok.then(|| Tensor { graph: graph.clone(), node: e.node, slot: e.slot })
    }

    /// The graph this tensor belongs to.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Node and slot.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint { node: self.node, slot: self.slot }
    }

    /// The op producing this tensor.
    pub fn op(&self) -> Operation {
        Operation { graph: self.graph.clone(), node: self.node }
    }

    /// Static dtype and shape.
    pub fn spec(&self) -> TensorSpec {
        self.graph.read(|d| d.spec(self.endpoint()).clone())
    }

    /// The dtype.
    pub fn dtype(&self) -> DType {
        self.graph.read(|d| d.spec(self.endpoint()).dtype)
    }

    /// The static shape, possibly with unknown dimensions.
    pub fn shape(&self) -> Shape {
        self.graph.read(|d| d.spec(self.endpoint()).shape.clone())
    }

    /// TF's tensor name, `op_name:slot`.
    pub fn name(&self) -> String {
        format!("{}:{}", self.op_name(), self.slot)
    }

    /// The producing op's name.
    pub fn op_name(&self) -> String {
        self.graph.read(|d| d.node(self.node).name.clone())
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.spec();
        write!(f, "Tensor(\"{}\", shape={}, dtype={})", self.name(), s.shape, s.dtype)
    }
}

impl PartialEq for Tensor {
    fn eq(&self, o: &Tensor) -> bool {
        self.graph.same(&o.graph) && self.node == o.node && self.slot == o.slot
    }
}

impl Eq for Tensor {}

impl Hash for Tensor {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (Arc::as_ptr(&self.graph.0) as usize, self.node, self.slot).hash(h);
    }
}
