//! The session: owns variable values and random streams, caches plans, executes them.

use crate::dead::{Dead, Flow};
use crate::exec;
use crate::fetch::Fetch;
use crate::plan::{self, Plan, PlanKey, Source};
use crate::rows::{BatchSplit, Rows};
use ndarray::ArrayD;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::sync::Arc;
use tensorgraph_graph::{
    fmt_dims, BinaryOp, DType, Endpoint, Error, Feed, Graph, NodeIndex, NodeInfo, NonFiniteKind, Op, Operation, Result,
    Tensor, Value, Variable,
};
use tensorgraph_kernels::{buffers::BufferPool, KernelError};

/// Runs a graph, as `tf.Session`: `run` computes fetches from feeds; variables live here.
///
/// As TF's `Session::Run`, `run` takes `&self` and may be called from several threads at once
/// (inference serving, or evaluation beside training): each run has its own buffers, plans are
/// shared, and variables are shared values. A variable update replaces the variable's value
/// as one step under the session's variable lock, so a concurrent run reads either the value
/// before an update or after it, never a half-written one; a run that reads a variable twice
/// while another thread trains may see two different steps' values (TF's `use_locking=False`
/// gives no more). Configuration (`set_check_numerics`, `set_profiling`) takes `&mut self`.
///
/// ```
/// use tensorgraph_graph::Named;
/// use ndarray::array;
/// use tensorgraph_graph::{Graph, DType, ops::math};
/// use tensorgraph_session::{feed, Session};
/// # fn main() -> tensorgraph_graph::Result<()> {
/// let g = Graph::new();
/// let a = g.placeholder(DType::F32, [None]).named("a")?;
/// let b = math::mul(&a, &g.scalar(2.0, DType::F32)?)?;
/// let sess = Session::new(&g)?;
/// let out: ndarray::Array1<f32> = sess.run(&b, feed! {a => &array![1.0f32, 2.0]})?.try_into()?;
/// assert_eq!(out, array![2.0, 4.0]);
/// // Runs from several threads share the session.
/// std::thread::scope(|s| {
///     for i in 0..2 {
///         let (sess, a, b) = (&sess, &a, &b);
///         s.spawn(move || {
///             let out: ndarray::Array1<f32> = sess.run(b, feed! {a => &array![i as f32]}).unwrap().try_into().unwrap();
///             assert_eq!(out, array![2.0 * i as f32]);
///         });
///     }
/// });
/// # Ok(()) }
/// ```
pub struct Session {
    graph: Graph,
    variables: Mutex<HashMap<NodeIndex, Arc<Value>>>,
    constants: Mutex<HashMap<NodeIndex, Arc<Value>>>,
    rngs: Mutex<HashMap<NodeIndex, ChaCha8Rng>>,
    plans: Mutex<PlanCache>,
    check_numerics: bool,
    batch_split: BatchSplit,
    profile: Option<Mutex<HashMap<&'static str, (u64, std::time::Duration)>>>,
    /// Intermediate buffers freed by one run, taken by the kernels of the next: one pool per
    /// run in flight (one in all for a single-threaded program).
    pools: Mutex<Vec<BufferPool>>,
    /// The sessions running this graph's function graphs (loop bodies, branches), by graph.
    functions: Mutex<HashMap<usize, Arc<Session>>>,
}

/// The plans of the most recently used run signatures.
#[derive(Default)]
struct PlanCache {
    plans: HashMap<PlanKey, (Arc<Plan>, u64)>,
    clock: u64,
}

impl PlanCache {
    fn get(&mut self, key: &PlanKey) -> Option<Arc<Plan>> {
        self.clock += 1;
        let clock = self.clock;
        self.plans.get_mut(key).map(|(p, used)| {
            *used = clock;
            p.clone()
        })
    }

    /// Adds a plan, dropping the least recently used one when full.
    fn insert(&mut self, key: PlanKey, plan: Arc<Plan>) {
        if self.plans.len() >= Session::MAX_CACHED_PLANS {
            if let Some(old) = self.plans.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone()) {
                self.plans.remove(&old);
            }
        }
        self.clock += 1;
        self.plans.insert(key, (plan, self.clock));
    }
}

impl Session {
    /// How many run signatures (fetches, targets and fed tensors) keep their plans; the least
    /// recently used plan is dropped beyond that (and rebuilt if its signature comes back).
    pub const MAX_CACHED_PLANS: usize = 256;

    /// A session on `graph`. Nodes added to the graph later can be run too.
    pub fn new(graph: &Graph) -> Result<Session> {
        Ok(Session {
            graph: graph.clone(),
            variables: Mutex::default(),
            constants: Mutex::default(),
            rngs: Mutex::default(),
            plans: Mutex::default(),
            check_numerics: false,
            batch_split: BatchSplit::Auto,
            profile: None,
            pools: Mutex::default(),
            functions: Mutex::default(),
        })
    }

    /// The graph this session runs.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// When on, every float output is checked and the first op producing NaN or Inf is an error
    /// naming it (like `tf.add_check_numerics_ops`).
    pub fn set_check_numerics(&mut self, on: bool) {
        self.check_numerics = on;
    }

    /// How a run over a large batch splits its rows (default [`BatchSplit::Auto`]). When every
    /// step from the batch's feeds (fed tensors whose static first dimension is unknown, TF's
    /// `[None, ...]`) up to a small result computes each row from the same rows of its inputs
    /// (an inference: convolutions, pooling, dense layers, activations, `argmax`, `in_top_k`),
    /// and nothing in the run has effects, those steps run over chunks of rows sized to the
    /// CPU's cache instead of over all of them at once; the rest runs once on the gathered
    /// chunks. The results are bit-identical either way; memory and time are not (the slides'
    /// CNN over 10,000 images: see BENCHMARKS.md).
    ///
    /// ```
    /// use tensorgraph_graph::{ops::{math, nn}, DType, Graph};
    /// use tensorgraph_session::{feed, BatchSplit, Session};
    /// # fn main() -> tensorgraph_graph::Result<()> {
    /// let g = Graph::new();
    /// let x = g.placeholder(DType::F32, [None, Some(3)])?;
    /// let w = g.constant(ndarray::array![[1.0f32], [2.0], [3.0]])?;
    /// let mean = math::reduce_mean(&nn::relu(&math::matmul(&x, &w, false, false)?)?, None)?;
    /// let batch = ndarray::Array2::from_shape_fn((1000, 3), |(i, j)| (i % 7) as f32 - j as f32);
    /// let mut sess = Session::new(&g)?;
    /// let whole: f32 = sess.run(&mean, feed! {x => &batch})?.try_into()?;
    /// sess.set_batch_splitting(BatchSplit::Rows(64));
    /// let split: f32 = sess.run(&mean, feed! {x => &batch})?.try_into()?;
    /// assert_eq!(whole.to_bits(), split.to_bits());
    /// # Ok(()) }
    /// ```
    pub fn set_batch_splitting(&mut self, split: BatchSplit) {
        self.batch_split = split;
    }

    /// Starts (or stops and clears) per-op-type timing of every step run from now on, like TF's
    /// `RunMetadata` step stats.
    pub fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(Mutex::default);
    }

    /// Op types with their call counts and total time since profiling started, slowest first.
    pub fn profile(&self) -> Vec<(&'static str, u64, std::time::Duration)> {
        let mut v: Vec<_> = match &self.profile {
            Some(p) => p.lock().iter().map(|(k, (n, t))| (*k, *n, *t)).collect(),
            None => vec![],
        };
        v.sort_by_key(|e| std::cmp::Reverse(e.2));
        v
    }

    /// How many tensor buffers (of at least 256 elements) kernels have had to allocate so far;
    /// every other output reused a buffer an earlier step freed. Once a plan has run, running it
    /// again with the same shapes adds one per large fetched tensor (the caller keeps those).
    pub fn fresh_buffers(&self) -> u64 {
        self.pools.lock().iter().map(BufferPool::fresh_allocations).sum()
    }

    /// Number of plans cached (one per distinct fetches/targets/feeds signature, at most
    /// [`Session::MAX_CACHED_PLANS`]).
    pub fn cached_plans(&self) -> usize {
        self.plans.lock().plans.len()
    }

    /// Computes `fetches` given `feeds`, as `sess.run(fetches, feed_dict)`: an operation, a
    /// tensor, a tuple of them, or a slice of tensors (see [`Fetch`]), giving back the same
    /// shape: `()`, a [`Value`], a tuple, a `Vec`. A tensor may be fetched more than once;
    /// feeding one twice is an error.
    pub fn run<F: Fetch>(&self, fetches: F, feeds: &[(&Tensor, Feed<'_>)]) -> Result<F::Output> {
        let (mut tensors, mut ops) = (Vec::new(), Vec::new());
        fetches.add(&mut tensors, &mut ops);
        let values = self.run_with(&tensors, &ops, feeds)?;
        Ok(fetches.take(&mut values.into_iter()))
    }

    /// Computes `fetches` and runs `targets` in one step.
    pub fn run_with(
        &self,
        fetches: &[&Tensor],
        targets: &[&Operation],
        feeds: &[(&Tensor, Feed<'_>)],
    ) -> Result<Vec<Value>> {
        // Names are formatted only for the error: this check runs on every step.
        if let Some(t) =
            fetches.iter().copied().chain(feeds.iter().map(|(t, _)| *t)).find(|t| !t.graph().same(&self.graph))
        {
            return Err(Error::ForeignTensor { name: t.name() });
        }
        if let Some(o) = targets.iter().find(|o| !o.graph().same(&self.graph)) {
            return Err(Error::ForeignTensor { name: o.name() });
        }
        // Sort feeds by endpoint so the plan key does not depend on the caller's order.
        let mut order: Vec<usize> = (0..feeds.len()).collect();
        order.sort_by_key(|&i| feeds[i].0.endpoint());
        let feed_eps: Vec<Endpoint> = order.iter().map(|&i| feeds[i].0.endpoint()).collect();
        if let Some(w) = feed_eps.windows(2).position(|w| w[0] == w[1]) {
            let t = feeds[order[w]].0;
            return Err(Error::InvalidArgument {
                node: t.op().info(),
                detail: format!("{} is fed twice in one run", t.name()),
            });
        }
        let key = PlanKey {
            fetches: fetches.iter().map(|t| t.endpoint()).collect(),
            targets: targets.iter().map(|o| o.node()).collect(),
            feeds: feed_eps,
            fuse: !self.check_numerics,
        };
        self.check_feeds(feeds)?;
        let cached = self.plans.lock().get(&key);
        let plan = match cached {
            Some(p) => p,
            None => {
                let p = Arc::new(self.graph.read(|g| plan::build(g, &key))?);
                self.plans.lock().insert(key, p.clone());
                p
            }
        };
        let feed_values: Vec<&Feed> = order.iter().map(|&i| &feeds[i].1).collect();
        let mut pool = self.pools.lock().pop().unwrap_or_default();
        let result = plan.helper.run(|| self.execute(&plan, &feed_values, &mut pool));
        pool.end_run();
        self.pools.lock().push(pool);
        result
    }

    fn check_feeds(&self, feeds: &[(&Tensor, Feed<'_>)]) -> Result<()> {
        for (t, v) in feeds {
            let spec = t.spec();
            if v.dtype() != spec.dtype {
                return Err(Error::FeedDType { node: t.op().info(), expected: spec.dtype, got: v.dtype() });
            }
            if !spec.shape.is_compatible_with(v.shape()) {
                return Err(Error::FeedShape { node: t.op().info(), expected: spec.shape, got: v.shape().to_vec() });
            }
        }
        Ok(())
    }

    fn uninitialized(&self, n: NodeIndex) -> Error {
        Error::UninitializedVariable { node: self.graph.read(|g| g.node(n).info()) }
    }

    fn read_var(&self, n: NodeIndex) -> Result<Arc<Value>> {
        let value = self.variables.lock().get(&n).cloned();
        value.ok_or_else(|| self.uninitialized(n))
    }

    fn execute(&self, plan: &Plan, feeds: &[&Feed], pool: &mut BufferPool) -> Result<Vec<Value>> {
        if let Some((rows, chunk)) = plan.rows.as_ref().and_then(|r| Some((r, self.chunk_rows(r, feeds)?))) {
            // Any error reruns the batch whole, so the error names the real shapes (the plan
            // has no stateful step, so running it twice changes nothing).
            if let Ok(out) = self.execute_in_chunks(plan, rows, chunk, feeds, pool) {
                return Ok(out);
            }
        }
        let mut slots: Vec<Option<Arc<Value>>> = vec![None; plan.n_slots];
        let mut copies = FeedCopies { fed: vec![None; feeds.len()], left: plan.feed_readers.clone() };
        let end = plan.rows.as_ref().map_or(0, |r| r.range.end);
        let mut dead = Dead::new(plan);
        self.run_steps(&plan.steps[..end], &mut slots, feeds, &mut copies, &mut dead, pool)?;
        for &s in plan.rows.iter().flat_map(|r| &r.free_after) {
            slots[s].take().into_iter().for_each(|v| recycle(v, pool));
        }
        self.run_steps(&plan.steps[end..], &mut slots, feeds, &mut copies, &mut dead, pool)?;
        self.fetch(plan, slots, feeds, dead.as_ref())
    }

    /// Rows per chunk for this run, if its batch is split.
    fn chunk_rows(&self, rows: &Rows, feeds: &[&Feed]) -> Option<usize> {
        let n = feeds[*rows.feeds.first()?].shape()[0];
        if rows.feeds.iter().any(|&i| feeds[i].shape()[0] != n) {
            return None;
        }
        let size = crate::rows::chunk_rows(self.batch_split, n, rows.row_bytes)?;
        // Equal chunks, so the last is not a sliver.
        Some(n.div_ceil(n.div_ceil(size)))
    }

    /// Runs the steps before `rows.range` once, the range once per chunk of `chunk` rows of the
    /// split feeds, gathers the chunks' results, and runs the rest once.
    fn execute_in_chunks(
        &self,
        plan: &Plan,
        rows: &Rows,
        chunk: usize,
        feeds: &[&Feed],
        pool: &mut BufferPool,
    ) -> Result<Vec<Value>> {
        let (start, end) = (rows.range.start, rows.range.end);
        let mut slots: Vec<Option<Arc<Value>>> = vec![None; plan.n_slots];
        let segment =
            |steps: &[plan::Step], slots: &mut Vec<Option<Arc<Value>>>, feeds: &[&Feed], pool: &mut BufferPool| {
                let left = plan::feed_readers(steps, feeds.len());
                let mut copies = FeedCopies { fed: vec![None; feeds.len()], left };
                self.run_steps(steps, slots, feeds, &mut copies, &mut None, pool)
            };
        segment(&plan.steps[..start], &mut slots, feeds, pool)?;
        let n = feeds[rows.feeds[0]].shape()[0];
        let mut pieces: Vec<Vec<Arc<Value>>> = vec![Vec::with_capacity(n.div_ceil(chunk)); rows.gathered.len()];
        let mut trial = crate::rows::ChunkTrial::new(chunk, n, self.batch_split == BatchSplit::Auto);
        let mut c0 = 0;
        while c0 < n {
            let size = trial.next(n - c0);
            let started = std::time::Instant::now();
            let chunk_feeds: Vec<Feed> = (0..feeds.len())
                .map(|i| crate::rows::feed_view(feeds[i], rows.feeds.contains(&i).then(|| c0..c0 + size)))
                .collect();
            let chunk_feeds: Vec<&Feed> = chunk_feeds.iter().collect();
            segment(&plan.steps[start..end], &mut slots, &chunk_feeds, pool)?;
            for (p, &s) in pieces.iter_mut().zip(&rows.gathered) {
                p.push(slots[s].take().expect("gathered slots are made in the range"));
            }
            trial.note(size, started.elapsed());
            c0 += size;
        }
        for &s in &rows.free_after {
            slots[s].take().into_iter().for_each(|v| recycle(v, pool));
        }
        for (p, &s) in pieces.into_iter().zip(&rows.gathered) {
            let joined = crate::rows::concat(&p).ok_or_else(|| Error::InvalidArgument {
                node: self.graph.read(|g| g.node(plan.steps[start].node).info()),
                detail: "chunks of different dtypes or shapes".into(),
            })?;
            p.into_iter().for_each(|v| recycle(v, pool));
            slots[s] = Some(Arc::new(joined));
        }
        segment(&plan.steps[end..], &mut slots, feeds, pool)?;
        self.fetch(plan, slots, feeds, None)
    }

    /// Runs `steps` in order: each reads its inputs from `slots`, the feeds (through `copies`)
    /// or variables, and leaves its outputs in `slots`; `dead` tracks TF1 control flow.
    fn run_steps(
        &self,
        steps: &[plan::Step],
        slots: &mut [Option<Arc<Value>>],
        feeds: &[&Feed],
        copies: &mut FeedCopies,
        dead: &mut Option<Dead>,
        pool: &mut BufferPool,
    ) -> Result<()> {
        for step in steps {
            let mut only = None;
            if let Some(d) = dead.as_mut() {
                match d.flow(step) {
                    Flow::Run => {}
                    Flow::Merge(k) => only = Some(k),
                    Flow::Skip => {
                        for &s in &step.free_after {
                            slots[s].take().into_iter().for_each(|v| recycle(v, pool));
                        }
                        continue;
                    }
                }
            }
            let mut inputs = Vec::with_capacity(step.inputs.len());
            for (i, (src, r)) in step.inputs.iter().zip(&step.refs).enumerate() {
                if only.is_some_and(|k| k != i) {
                    inputs.push(None); // a Merge's dead input
                    continue;
                }
                inputs.push(match (src, r) {
                    (_, Some(_)) => None,
                    // The last reader takes the value, so an element-wise op may reuse its buffer.
                    (Source::Slot(s), None) if step.free_after.contains(s) && !step.inputs[i + 1..].contains(src) => {
                        Some(slots[*s].take().expect("planned before use"))
                    }
                    (Source::Slot(s), None) => Some(slots[*s].clone().expect("planned before use")),
                    (Source::Feed(i), None) => {
                        let FeedCopies { fed, left } = &mut *copies;
                        let copy = match fed[*i].take() {
                            Some(copy) => copy,
                            None => Arc::new(copy_feed(feeds[*i], pool)),
                        };
                        left[*i] -= 1;
                        if left[*i] > 0 {
                            fed[*i] = Some(copy.clone());
                        }
                        Some(copy)
                    }
                    (Source::Var(n), None) => Some(self.read_var(*n)?),
                });
            }
            let started = self.profile.is_some().then(std::time::Instant::now);
            let outputs = match (&step.op, only) {
                (Op::Merge, Some(k)) => {
                    let index = Arc::new(Value::from(ndarray::arr0(k as i32)));
                    vec![inputs[k].take().expect("the live input"), index]
                }
                (Op::Switch, _) => {
                    let taken = switch_taken(&step.info, inputs[1].as_deref().expect("value input"))?;
                    if let Some(d) = dead.as_mut() {
                        d.kill_output(step, usize::from(!taken));
                    }
                    // Both outputs carry the data; the untaken one is dead, so never stored.
                    let data = inputs[0].take().expect("value input");
                    vec![data.clone(), data]
                }
                _ => self.run_step(step, &mut inputs, pool)?,
            };
            for v in inputs.into_iter().flatten() {
                recycle(v, pool);
            }
            if let (Some(t0), Some(p)) = (started, self.profile.as_ref()) {
                let mut p = p.lock();
                let e = p.entry(step.type_name()).or_default();
                e.0 += 1;
                e.1 += t0.elapsed();
            }
            if self.check_numerics {
                check_finite(&step.info, &outputs)?;
            }
            for (out, slot) in outputs.into_iter().zip(&step.outputs) {
                match slot {
                    Some(s) if !dead.as_ref().is_some_and(|d| d.is_dead(*s)) => slots[*s] = Some(out),
                    _ => recycle(out, pool),
                }
            }
            for &s in &step.free_after {
                if let Some(v) = slots[s].take() {
                    recycle(v, pool);
                }
            }
        }
        Ok(())
    }

    /// The fetched values, taken from the slots the run left.
    fn fetch(
        &self,
        plan: &Plan,
        mut slots: Vec<Option<Arc<Value>>>,
        feeds: &[&Feed],
        dead: Option<&Dead>,
    ) -> Result<Vec<Value>> {
        if let Some(d) = dead {
            let dead_fetch = plan.fetches.iter().position(|src| matches!(src, Source::Slot(s) if d.is_dead(*s)));
            if let Some(i) = dead_fetch {
                let e = plan.fetched[i];
                return Err(Error::InvalidArgument {
                    node: self.graph.read(|g| g.node(e.node).info()),
                    detail: format!(
                        "output {} is dead: it lies on the branch of a TF1 cond (Switch) that was not taken",
                        e.slot
                    ),
                });
            }
        }
        // A slot fetched more than once is cloned for all but its last fetch, which takes it.
        let mut fetches_left: HashMap<usize, usize> = HashMap::new();
        for src in &plan.fetches {
            if let Source::Slot(s) = src {
                *fetches_left.entry(*s).or_default() += 1;
            }
        }
        let mut fetched = Vec::with_capacity(plan.fetches.len());
        for src in &plan.fetches {
            fetched.push(match src {
                Source::Slot(s) => {
                    let left = fetches_left.get_mut(s).expect("counted above");
                    *left -= 1;
                    match *left {
                        0 => Arc::unwrap_or_clone(slots[*s].take().expect("fetched slot computed")),
                        _ => (**slots[*s].as_ref().expect("fetched slot computed")).clone(),
                    }
                }
                Source::Feed(i) => feeds[*i].to_value(),
                Source::Var(n) => (*self.read_var(*n)?).clone(),
            });
        }
        Ok(fetched)
    }

    fn run_step(
        &self,
        step: &plan::Step,
        inputs: &mut [Option<Arc<Value>>],
        pool: &mut BufferPool,
    ) -> Result<Vec<Arc<Value>>> {
        if let Some(v) = exec::passes_through(&step.op, inputs) {
            return Ok(vec![v]);
        }
        if let Some(out) = self.run_function_op(&step.op, inputs, &step.info, pool) {
            return out;
        }
        if let Some(out) = Self::try_in_place(step, inputs) {
            return out;
        }
        if step.fused == Some(plan::Fused::AddTo) {
            // The sum so far is taken (its last reader is this step) and added to in place.
            let mut sum = Arc::unwrap_or_clone(inputs[2].take().expect("the sum so far"));
            let factors = [inputs[0].as_deref().expect("value input"), inputs[1].as_deref().expect("value input")];
            return match exec::matmul_add_to(&step.op, factors, &mut sum) {
                Ok(()) => Ok(vec![Arc::new(sum)]),
                Err(e) => {
                    inputs[2] = Some(Arc::new(sum));
                    Err(Error::Runtime { node: step.info.clone(), inputs: fmt_inputs(inputs), detail: e.0 })
                }
            };
        }
        let inputs = &inputs;
        let runtime =
            |e: KernelError| Error::Runtime { node: step.info.clone(), inputs: fmt_inputs(inputs), detail: e.0 };
        let value = |i: usize| inputs[i].as_ref().expect("value input");
        let var_ref = |i: usize| step.refs[i].expect("ref input");
        Ok(match &step.op {
            // Constants are copied out of the graph once per session, then shared.
            Op::Const { value } => {
                vec![self.constants.lock().entry(step.node).or_insert_with(|| Arc::new(value.clone())).clone()]
            }
            Op::NoOp => vec![],
            Op::Identity | Op::PlaceholderWithDefault | Op::StopGradient => vec![value(0).clone()],
            Op::Assign => {
                let (n, v) = (var_ref(0), value(1).clone());
                let shape = self.graph.read(|g| match &g.node(n).op {
                    Op::VariableV2 { shape, .. } => shape.clone(),
                    _ => v.shape().to_vec(),
                });
                if v.shape() != shape.as_slice() {
                    return Err(runtime(KernelError(format!(
                        "cannot assign a value of shape {} to a variable of shape {}",
                        fmt_dims(v.shape()),
                        fmt_dims(&shape)
                    ))));
                }
                self.variables.lock().insert(n, v.clone());
                vec![v]
            }
            Op::AssignAdd | Op::AssignSub => {
                let n = var_ref(0);
                let b = if matches!(step.op, Op::AssignSub) { BinaryOp::Sub } else { BinaryOp::Add };
                let mut vars = self.variables.lock();
                let cur = vars.get(&n).cloned().ok_or_else(|| self.uninitialized(n))?;
                let new = exec::compute(&Op::Binary(b), &[&cur, value(1)], pool).map_err(runtime)?;
                let new = Arc::new(new.into_iter().next().expect("one output"));
                if new.shape() != cur.shape() {
                    return Err(runtime(KernelError(format!(
                        "the update of shape {} would change the variable's shape {}",
                        fmt_dims(value(1).shape()),
                        fmt_dims(cur.shape())
                    ))));
                }
                vars.insert(n, new.clone());
                vec![new]
            }
            Op::Apply(a) => {
                let refs: Vec<NodeIndex> = (0..a.num_refs()).map(var_ref).collect();
                let rest: Vec<&Value> = (a.num_refs()..a.num_inputs()).map(|i| &**value(i)).collect();
                // Taken out of the map so the update below owns them and writes in place; the
                // lock is held until they are back.
                let mut map = self.variables.lock();
                if let Some(&n) = refs.iter().find(|n| !map.contains_key(n)) {
                    return Err(self.uninitialized(n));
                }
                let mut vars: Vec<Arc<Value>> = refs.iter().map(|n| map.remove(n).expect("checked above")).collect();
                let product = match step.fused {
                    Some(plan::Fused::GradProduct { transpose_a, transpose_b }) => {
                        Some(crate::apply::Product { right: value(a.num_inputs()), transpose_a, transpose_b })
                    }
                    _ => None,
                };
                let r = {
                    let mut slots: Vec<&mut Value> = vars.iter_mut().map(Arc::make_mut).collect();
                    crate::apply::apply(*a, &mut slots, &rest, product)
                };
                for (n, v) in refs.into_iter().zip(vars) {
                    map.insert(n, v);
                }
                r.map_err(runtime)?;
                vec![]
            }
            Op::RandomUniform { dtype, shape, minval, maxval, seed, seed2 } => {
                let (lo, hi) = (*minval, *maxval);
                let v = self.sample(step.node, (*seed, *seed2), *dtype, shape, |r| lo + (hi - lo) * r.random::<f64>());
                vec![Arc::new(v.map_err(runtime)?)]
            }
            Op::RandomUniformLike { dtype, minval, maxval, seed, seed2 } => {
                let shape = value(0).shape().to_vec();
                let (lo, hi) = (*minval, *maxval);
                let v = self.sample(step.node, (*seed, *seed2), *dtype, &shape, |r| lo + (hi - lo) * r.random::<f64>());
                vec![Arc::new(v.map_err(runtime)?)]
            }
            Op::RandomStandardNormal { dtype, shape, mean, stddev, seed, seed2 } => {
                let (m, s) = (*mean, *stddev);
                let v = self.sample(step.node, (*seed, *seed2), *dtype, shape, |r| m + s * standard_normal(r));
                vec![Arc::new(v.map_err(runtime)?)]
            }
            Op::TruncatedNormal { dtype, shape, mean, stddev, seed, seed2 } => {
                let (m, s) = (*mean, *stddev);
                let v =
                    self.sample(step.node, (*seed, *seed2), *dtype, shape, |r| m + s * truncated_standard_normal(r));
                vec![Arc::new(v.map_err(runtime)?)]
            }
            op => {
                let vals: Vec<&Value> = inputs.iter().map(|v| v.as_deref().expect("value input")).collect();
                let out = match step.fused {
                    Some(plan::Fused::Epilogue { relu, pool: max_pool, winners, below, .. }) => {
                        let keep_output = step.outputs[0].is_some() && !winners;
                        let max_pool = max_pool.as_ref().map(|a| (a, winners));
                        exec::compute_fused(op, &vals, relu, max_pool, keep_output, below.as_ref(), pool)
                    }
                    Some(plan::Fused::ReluGrad { bias_sum, winners }) => {
                        exec::max_pool_grad(op, &vals, true, bias_sum, winners, pool)
                    }
                    Some(plan::Fused::InputGrad { bias_sum, lower, filter, routed }) => {
                        exec::backprop_input_relu_grad(op, &vals, bias_sum, lower.as_ref(), filter, routed, pool)
                    }
                    Some(plan::Fused::Winners { input }) => {
                        exec::max_pool_grad(op, &vals, false, false, Some(input), pool)
                    }
                    Some(plan::Fused::GradProduct { .. }) => unreachable!("fused only into updates"),
                    Some(plan::Fused::Block { begin, size }) => exec::matmul_block(op, &vals, begin, size, pool),
                    Some(plan::Fused::AddTo) => unreachable!("run above"),
                    None => exec::compute(op, &vals, pool),
                };
                out.map_err(runtime)?.into_iter().map(Arc::new).collect()
            }
        })
    }

    /// Element-wise ops whose first input nobody else holds write their result into it.
    fn try_in_place(step: &plan::Step, inputs: &mut [Option<Arc<Value>>]) -> Option<Result<Vec<Arc<Value>>>> {
        let (first, rest) = inputs.split_first_mut()?;
        let x = Arc::get_mut(first.as_mut()?)?;
        let others: Vec<&Value> = rest.iter().map(|v| v.as_deref()).collect::<Option<_>>()?;
        let r = exec::compute_in_place(&step.op, x, &others)?;
        Some(match r {
            Ok(()) => Ok(vec![first.take().expect("checked above")]),
            Err(e) => Err(Error::Runtime { node: step.info.clone(), inputs: fmt_inputs(inputs), detail: e.0 }),
        })
    }

    /// Draws from the random stream of `node` (seeded on first use).
    fn sample(
        &self,
        node: NodeIndex,
        (seed, seed2): (u64, u64),
        dtype: DType,
        shape: &[usize],
        f: impl FnMut(&mut ChaCha8Rng) -> f64,
    ) -> Result<Value, KernelError> {
        let mut rngs = self.rngs.lock();
        let rng = rngs.entry(node).or_insert_with(|| {
            if seed == 0 && seed2 == 0 {
                ChaCha8Rng::from_os_rng()
            } else {
                ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed2)
            }
        });
        sample(dtype, shape, rng, f)
    }

    /// The session running function graph `f` (made on first use, with this one's settings).
    pub(crate) fn function_session(&self, f: &Graph) -> Arc<Session> {
        let mut map = self.functions.lock();
        map.entry(f.id())
            .or_insert_with(|| {
                let mut s = Session::new(f).expect("a session on a graph always starts");
                s.check_numerics = self.check_numerics;
                s.batch_split = self.batch_split;
                Arc::new(s)
            })
            .clone()
    }

    fn own_variable(&self, var: &Variable) -> Result<()> {
        match var.var_ref().graph().same(&self.graph) {
            true => Ok(()),
            false => Err(Error::ForeignTensor { name: var.name() }),
        }
    }

    /// The current value of a variable (`None` until initialised), for savers and tests; a
    /// variable of another graph is an error.
    pub fn variable_value(&self, var: &Variable) -> Result<Option<Value>> {
        self.own_variable(var)?;
        Ok(self.variables.lock().get(&var.var_ref().endpoint().node).map(|v| (**v).clone()))
    }

    /// Sets a variable's value directly (for restoring checkpoints). The variable must be of
    /// this session's graph, and the value of its dtype and shape.
    pub fn set_variable_value(&self, var: &Variable, value: Value) -> Result<()> {
        self.own_variable(var)?;
        let var = var.var_ref();
        let spec = var.spec();
        if value.dtype() != spec.dtype {
            return Err(Error::FeedDType { node: var.op().info(), expected: spec.dtype, got: value.dtype() });
        }
        if !spec.shape.is_compatible_with(value.shape()) {
            return Err(Error::FeedShape { node: var.op().info(), expected: spec.shape, got: value.shape().to_vec() });
        }
        self.variables.lock().insert(var.endpoint().node, Arc::new(value));
        Ok(())
    }
}

/// A run's copies of its feeds: each copied once, kept while `left` readers remain, the last
/// reader taking it (so an element-wise op may reuse its buffer).
struct FeedCopies {
    fed: Vec<Option<Arc<Value>>>,
    left: Vec<usize>,
}

/// Whether a `Switch` takes its true branch: its predicate holds one bool.
fn switch_taken(info: &NodeInfo, pred: &Value) -> Result<bool> {
    match pred {
        Value::Bool(a) if a.len() == 1 => Ok(a.iter().next().copied().unwrap_or(false)),
        _ => Err(Error::Runtime {
            node: info.clone(),
            inputs: format!("({} {})", pred.dtype(), fmt_dims(pred.shape())),
            detail: "the predicate must hold one bool".into(),
        }),
    }
}

/// A feed's copy for this run, in a recycled buffer (the caller keeps its own array).
fn copy_feed(v: &Feed, pool: &mut BufferPool) -> Value {
    fn copy<T: tensorgraph_kernels::Float>(
        a: &ndarray::CowArray<T, ndarray::IxDyn>,
        pool: &mut BufferPool,
    ) -> Option<ArrayD<T>> {
        ArrayD::from_shape_vec(a.raw_dim(), pool.copy_of(a.as_slice()?)).ok()
    }
    let copied = match v {
        Feed::F32(a) => copy(a, pool).map(Value::from),
        Feed::F64(a) => copy(a, pool).map(Value::from),
        _ => None,
    };
    copied.unwrap_or_else(|| v.to_value())
}

/// Hands a value nobody else holds back to the buffer pool.
fn recycle(v: Arc<Value>, pool: &mut BufferPool) {
    fn buffer<T>(a: ArrayD<T>) -> Option<Vec<T>> {
        let (len, standard) = (a.len(), a.is_standard_layout());
        let (v, offset) = a.into_raw_vec_and_offset();
        (standard && offset.unwrap_or(0) == 0 && v.len() == len).then_some(v)
    }
    match Arc::try_unwrap(v) {
        Ok(Value::F32(a)) => buffer(a).into_iter().for_each(|v| pool.give(v)),
        Ok(Value::F64(a)) => buffer(a).into_iter().for_each(|v| pool.give(v)),
        Ok(Value::I32(a)) => buffer(a).into_iter().for_each(|v| pool.give(v)),
        _ => {}
    }
}

fn fmt_inputs(inputs: &[Option<Arc<Value>>]) -> String {
    let parts: Vec<String> = inputs
        .iter()
        .map(|v| match v {
            Some(v) => format!("{} {}", v.dtype(), tensorgraph_graph::fmt_dims(v.shape())),
            None => "ref".into(),
        })
        .collect();
    format!("({})", parts.join(", "))
}

/// Samples of `f` in `shape`; a shape too large to allocate (say, from a graph file) is an
/// error rather than an abort.
fn sample(
    dtype: DType,
    shape: &[usize],
    rng: &mut ChaCha8Rng,
    mut f: impl FnMut(&mut ChaCha8Rng) -> f64,
) -> Result<Value, KernelError> {
    let n = tensorgraph_graph::checked_len(shape).map_err(KernelError)?;
    let dims = ndarray::IxDyn(shape);
    Ok(match dtype {
        DType::F32 => {
            let mut v = tensorgraph_graph::try_vec(n, 0f32).map_err(KernelError)?;
            v.iter_mut().for_each(|x| *x = f(rng) as f32);
            Value::from(ArrayD::from_shape_vec(dims, v).expect("n elements"))
        }
        _ => {
            let mut v = tensorgraph_graph::try_vec(n, 0f64).map_err(KernelError)?;
            v.iter_mut().for_each(|x| *x = f(rng));
            Value::from(ArrayD::from_shape_vec(dims, v).expect("n elements"))
        }
    })
}

/// A standard normal sample (Box-Muller: two uniforms give one normal).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A standard normal sample redrawn until it lies within two standard deviations (TF's rule).
fn truncated_standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    loop {
        let z = standard_normal(rng);
        if z.abs() <= 2.0 {
            return z;
        }
    }
}

fn check_finite(info: &NodeInfo, outputs: &[Arc<Value>]) -> Result<()> {
    for (slot, v) in outputs.iter().enumerate() {
        let bad = match &**v {
            Value::F32(a) => a.iter().find(|x| !x.is_finite()).map(|x| x.is_nan()),
            Value::F64(a) => a.iter().find(|x| !x.is_finite()).map(|x| x.is_nan()),
            _ => None,
        };
        if let Some(nan) = bad {
            let kind = if nan { NonFiniteKind::NaN } else { NonFiniteKind::Inf };
            return Err(Error::NonFinite { node: info.clone(), slot, kind });
        }
    }
    Ok(())
}
