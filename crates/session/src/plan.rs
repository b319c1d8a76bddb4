//! Planning a run: prune the graph to what the fetches and targets need (TF's pruning), order
//! it, and decide where each intermediate buffer can be freed.

use crate::rows::{self, Rows};
use std::collections::{BTreeSet, HashMap};
use tensorgraph_graph::{
    BinaryOp, ConvAttrs, Endpoint, Error, GraphData, NodeIndex, NodeInfo, Op, PoolAttrs, ReduceOp, Result, UnaryOp,
};

/// Where a step's input (or a fetch) comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// An intermediate value slot.
    Slot(usize),
    /// The n-th feed, in the plan's sorted feed order.
    Feed(usize),
    /// The current value of a variable.
    Var(NodeIndex),
}

/// One op execution.
#[derive(Debug)]
pub struct Step {
    pub node: NodeIndex,
    pub op: Op,
    pub info: NodeInfo,
    pub inputs: Vec<Source>,
    /// Variables this op takes by reference, by input position (`None` for value inputs).
    pub refs: Vec<Option<NodeIndex>>,
    /// The value slot of each output, `None` when nothing reads it.
    pub outputs: Vec<Option<usize>>,
    /// Slots whose last reader is this step: freed right after it.
    pub free_after: Vec<usize>,
    /// Element-wise ops folded into this step (see [`Fused`]).
    pub fused: Option<Fused>,
    /// The nodes this step's node waits for (its control inputs): where TF1 control flow runs,
    /// a step ordered after a dead node is dead.
    pub control: Vec<NodeIndex>,
    /// The nodes folded into this step, dead when it is.
    pub absorbed: Vec<NodeIndex>,
}

/// The element-wise ops folded into a producing step, applied to its output while in cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fused {
    /// Into a Conv2D or MatMul: BiasAdd (the bias is the step's last input) and/or Relu. Into
    /// a Conv2D also a MaxPool of that result (`pool`, its attributes) as the step's second
    /// output: each chunk of images pooled while in cache (the CNN's MaxPool read conv2's 5 MB
    /// output back from memory). The first output stays for other readers (MaxPoolGrad), or is
    /// dropped at once when none (inference). With `winners` (training: only MaxPoolGrads
    /// read that output besides the MaxPool), the first output is each pooled element's winning
    /// cell instead (int32, the pooled shape, see `pool::max_pool_winners`; TF's
    /// `MaxPoolWithArgmax`), which those MaxPoolGrads take instead (see [`Fused::Winners`]):
    /// the convolution's output is never written out (the CNN's conv2: 5 MB written, then
    /// read back twice).
    ///
    /// With `below`, also the Conv2D (with its own folded BiasAdd and Relu) whose output this
    /// one alone reads, as in inference: the step's first input is that convolution's input,
    /// its filter (and bias) are the step's last inputs, and each chunk of images of its output
    /// is made where this convolution reads it, while in cache (the CNN's conv1: 100 KB an
    /// image written out and read back).
    Epilogue { bias: bool, relu: bool, pool: Option<PoolAttrs>, winners: bool, below: Option<Below> },
    /// Into a MaxPoolGrad of the ReLU's output (the pooled input is the mask): the ReluGrad
    /// reading its output, applied while in cache instead of in another pass over a
    /// layer-sized tensor. With `bias_sum`, also the Sum of the result over all axes but the
    /// channels (the gradient of the layer's bias) as the step's second output: each image
    /// summed while in cache, the images then in order (the CNN's two bias sums read 15 MB a
    /// step, 0.6 ms on a Zen 4). With `winners`, the MaxPoolGrad reads the forward's winners
    /// as in [`Fused::Winners`].
    ReluGrad { bias_sum: bool, winners: Option<[usize; 2]> },
    /// Into a Conv2DBackpropInput: the ReluGrad reading its output (the features are the
    /// step's fourth input), and with `bias_sum` its Sum, as in [`Fused::ReluGrad`]. Then,
    /// each made from each chunk of images while in cache, after the node's inputs in this
    /// order:
    /// - `lower`: the Conv2DBackpropFilter that alone read the result (the filter gradient of
    ///   the convolution below, `lower` its attributes; its input and filter are two more
    ///   inputs) as the next output: the result (conv1's 10 MB input gradient in the CNN) is
    ///   never written out and read back;
    /// - `filter`: the Conv2DBackpropFilter of the same convolution (reading the same `dy`;
    ///   its input and filter sizes two more inputs) as the next output (the CNN's conv2: its
    ///   5 MB `dy` and 10 MB input read once for both gradients);
    /// - `routed`: the MaxPoolGrad from winners making `dy` (see [`Routed`]).
    InputGrad { bias_sum: bool, lower: Option<ConvAttrs>, filter: bool, routed: Option<Routed> },
    /// Into a MaxPoolGrad: its first input is the winners of a Conv2D with a folded MaxPool
    /// (see [`Fused::Epilogue`]) instead of the pooled input, whose rows and columns (known when
    /// the plan is made) are `input` (TF's `MaxPoolGradWithArgmax`; the same bits).
    Winners { input: [usize; 2] },
    /// Into an optimizer's update (`Apply*`): the MatMul making its gradient. The gradient
    /// input is the product's left operand and its right operand is the step's last input; the
    /// update computes the product a block of rows at a time and applies itself to each block
    /// while it is in cache, so the gradient is never written out and read back.
    GradProduct { transpose_a: bool, transpose_b: bool },
    /// Into a MatMul: the Slice reading a block of its product (`begin`, `size` as the Slice's),
    /// the only part computed. The LSTM gradient's `dicfo·Wᵀ` is sliced for `h_prev`: its 128 of
    /// 156 columns are the product of 128 rows of W.
    Block { begin: [usize; 2], size: [i64; 2] },
    /// Into a MatMul: the AddN that alone read its product and those of earlier MatMuls. Each
    /// product after the first adds itself onto the sum so far (its last input), so the sum is
    /// one buffer instead of a buffer per product (a recurrent network's weight gradient over
    /// 28 steps: 28 buffers of 320 KB, and AddN's pass over them).
    AddTo,
}

/// The convolution folded under another (see [`Fused::Epilogue`]): its attributes, and whether
/// a bias (its filter's next input) and a ReLU were folded into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Below {
    pub attrs: ConvAttrs,
    pub bias: bool,
    pub relu: bool,
}

/// A MaxPoolGrad (TF's `MaxPoolGradWithArgmax`, see [`Fused::Winners`]) folded into the input
/// gradient of the pooled convolution, the only reader of its result: `dy` is routed a chunk of
/// images at a time while in cache instead of written out (the CNN's conv2: 5 MB written, read
/// back). The step's third input is then the winners, and its last the pooled gradient; with
/// `bias_sum` (the Sum over all axes but the channels of the routed gradient, masked by the
/// ReluGrad folded into the MaxPoolGrad when `relu`), the last output that Sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Routed {
    pub attrs: PoolAttrs,
    /// The pooled input's (the convolution's output's) rows and columns.
    pub input: [usize; 2],
    pub relu: bool,
    pub bias_sum: bool,
}

impl Step {
    /// The op type for profiles: TF's names for the fused kernels.
    pub fn type_name(&self) -> &'static str {
        match (&self.op, self.fused) {
            (Op::Conv2D(_), Some(Fused::Epilogue { pool: Some(_), winners: true, .. })) => {
                "_FusedConv2D+MaxPoolWithArgmax"
            }
            (Op::Conv2D(_), Some(Fused::Epilogue { pool: Some(_), below: Some(_), .. })) => {
                "_FusedConv2D+_FusedConv2D+MaxPool"
            }
            (Op::Conv2D(_), Some(Fused::Epilogue { below: Some(_), .. })) => "_FusedConv2D+_FusedConv2D",
            (Op::Conv2D(_), Some(Fused::Epilogue { pool: Some(_), .. })) => "_FusedConv2D+MaxPool",
            (Op::Conv2D(_), Some(_)) => "_FusedConv2D",
            (Op::MatMul { .. }, Some(Fused::Block { .. })) => "MatMul+Slice",
            (Op::MatMul { .. }, Some(Fused::AddTo)) => "MatMul+AddN",
            (Op::MatMul { .. }, Some(_)) => "_FusedMatMul",
            // `+Filter`: the same convolution's filter gradient; `+Conv2DBackpropFilter`: the
            // one below's.
            (Op::Conv2DBackpropInput(_), Some(Fused::InputGrad { bias_sum, lower, filter, routed })) => {
                let pooling = match routed {
                    Some(Routed { relu: true, bias_sum: true, .. }) => "MaxPoolGradWithArgmax+ReluGrad+Sum+",
                    Some(Routed { relu: true, .. }) => "MaxPoolGradWithArgmax+ReluGrad+",
                    Some(Routed { bias_sum: true, .. }) => "MaxPoolGradWithArgmax+Sum+",
                    Some(_) => "MaxPoolGradWithArgmax+",
                    None => "",
                };
                let parts = [
                    "Conv2DBackpropInput",
                    if filter { "+Filter" } else { "" },
                    "+ReluGrad",
                    if bias_sum { "+Sum" } else { "" },
                    if lower.is_some() { "+Conv2DBackpropFilter" } else { "" },
                ];
                interned(std::iter::once(pooling).chain(parts).collect())
            }
            (Op::MaxPoolGrad(_), Some(Fused::ReluGrad { bias_sum: true, winners: Some(_), .. })) => {
                "MaxPoolGradWithArgmax+ReluGrad+Sum"
            }
            (Op::MaxPoolGrad(_), Some(Fused::ReluGrad { winners: Some(_), .. })) => "MaxPoolGradWithArgmax+ReluGrad",
            (Op::MaxPoolGrad(_), Some(Fused::Winners { .. })) => "MaxPoolGradWithArgmax",
            (Op::MaxPoolGrad(_), Some(Fused::ReluGrad { bias_sum: true, .. })) => "MaxPoolGrad+ReluGrad+Sum",
            (Op::MaxPoolGrad(_), Some(_)) => "MaxPoolGrad+ReluGrad",
            (Op::Apply(a), Some(_)) => match a {
                tensorgraph_graph::ApplyOp::GradientDescent => "ApplyGradientDescent+MatMul",
                _ => "Apply+MatMul",
            },
            (op, _) => op.type_name(),
        }
    }
}

/// `name` as a `&'static str`, leaked once per distinct name (the fused forms' profile names,
/// a few dozen at most).
fn interned(name: String) -> &'static str {
    static NAMES: std::sync::Mutex<BTreeSet<&'static str>> = std::sync::Mutex::new(BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    match names.get(name.as_str()) {
        Some(&known) => known,
        None => {
            let leaked: &'static str = Box::leak(name.into_boxed_str());
            names.insert(leaked);
            leaked
        }
    }
}

/// What one `run` signature executes.
#[derive(Debug)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub fetches: Vec<Source>,
    /// The fetched tensors, for errors.
    pub fetched: Vec<Endpoint>,
    pub n_slots: usize,
    /// How many step inputs read each feed (in the plan's feed order): the run copies a feed
    /// once and hands the copy to its last reader.
    pub feed_readers: Vec<usize>,
    /// The steps that may run over chunks of a large batch's rows (see [`crate::rows`]).
    pub rows: Option<Rows>,
    /// Whether a step is TF1's `Switch` or `Merge`: the run then tracks dead tensors (see
    /// [`crate::dead`]; a `Merge` without a `Switch` passes on its first input, as TF's does).
    pub dead_flow: bool,
    /// Whether this plan's runs go faster with the second core's helper thread (kernels'
    /// `pair`), measured over its runs.
    pub helper: tensorgraph_kernels::pair::Choice,
}

/// Identifies a plan: fetched tensors, target ops, fed tensors (sorted).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PlanKey {
    pub fetches: Vec<Endpoint>,
    pub targets: Vec<NodeIndex>,
    pub feeds: Vec<Endpoint>,
    /// Fold BiasAdd and Relu into the Conv2D/MatMul producing their input (off while numerics
    /// are checked, so a NaN is reported at the op that made it).
    pub fuse: bool,
}

/// The variable `e` reads, if `e` is an unfed plain read of one (an `Identity` of a variable
/// with no control inputs, such as `w/read`).
fn plain_read(g: &GraphData, e: Endpoint, fed: &HashMap<Endpoint, usize>) -> Option<NodeIndex> {
    let node = g.node(e.node);
    let var = match (&node.op, node.inputs.as_slice()) {
        (Op::Identity, [v]) if node.control_inputs.is_empty() && !fed.contains_key(&e) => v.node,
        _ => return None,
    };
    matches!(g.node(var).op, Op::VariableV2 { .. }).then_some(var)
}

/// Builds the plan for `key` over graph `g`.
pub fn build(g: &GraphData, key: &PlanKey) -> Result<Plan> {
    let fed: HashMap<Endpoint, usize> = key.feeds.iter().enumerate().map(|(i, &e)| (e, i)).collect();
    let fed_nodes: BTreeSet<NodeIndex> = key.feeds.iter().map(|e| e.node).collect();

    // 1. Needed nodes: reverse reachability, stopping at fed nodes and variables (sources).
    let mut needed: BTreeSet<NodeIndex> = BTreeSet::new();
    let mut stack: Vec<NodeIndex> = key.fetches.iter().map(|e| e.node).chain(key.targets.iter().copied()).collect();
    while let Some(n) = stack.pop() {
        if fed_nodes.contains(&n) && !key.targets.contains(&n) || !needed.insert(n) {
            continue;
        }
        let node = g.node(n);
        if let Op::Placeholder { dtype, shape } = &node.op {
            return Err(Error::MissingFeed { node: node.info(), dtype: *dtype, shape: shape.clone() });
        }
        stack.extend(node.inputs.iter().map(|e| e.node));
        stack.extend(node.control_inputs.iter().copied());
    }
    needed.retain(|&n| !matches!(g.node(n).op, Op::VariableV2 { .. }));

    // 2. Order: Kahn's algorithm, creation order among ready nodes; stateful ops wait until no
    //    stateless node is ready, so updates run after the reads of the same step.
    let order = schedule(g, &needed);

    // 3. Slots for every output some step or fetch reads; sources resolved.
    let mut slot_of: HashMap<Endpoint, usize> = HashMap::new();
    let resolve = |e: Endpoint, slot_of: &HashMap<Endpoint, usize>| -> Result<Source> {
        if let Some(&i) = fed.get(&e) {
            return Ok(Source::Feed(i));
        }
        if let Some(&s) = slot_of.get(&e) {
            return Ok(Source::Slot(s));
        }
        if matches!(g.node(e.node).op, Op::VariableV2 { .. }) {
            return Ok(Source::Var(e.node));
        }
        // An unfed output of a node whose other output is fed.
        let node = g.node(e.node);
        Err(Error::InvalidArgument {
            node: node.info(),
            detail: format!("output {} is needed but only other outputs of this node are fed", e.slot),
        })
    };
    let mut n_slots = 0;
    for &n in &order {
        let node = g.node(n);
        for slot in 0..node.outputs.len() {
            slot_of.insert(Endpoint { node: n, slot }, n_slots);
            n_slots += 1;
        }
    }
    let mut steps = Vec::with_capacity(order.len());
    for &n in &order {
        let node = g.node(n);
        let refs_pos = node.op.ref_inputs();
        let mut inputs = Vec::with_capacity(node.inputs.len());
        let mut refs = Vec::with_capacity(node.inputs.len());
        for (pos, &e) in node.inputs.iter().enumerate() {
            if refs_pos.contains(&pos) {
                if !matches!(g.node(e.node).op, Op::VariableV2 { .. }) {
                    return Err(Error::InvalidArgument {
                        node: node.info(),
                        detail: format!("input {pos} must be a variable, got {}", g.node(e.node).name),
                    });
                }
                refs.push(Some(e.node));
                inputs.push(Source::Var(e.node));
                continue;
            }
            refs.push(None);
            // A variable's plain read is taken when its reader runs, not before: an op ordered
            // after an update (`identity(w)` under `control_dependencies([assign])`) sees the
            // new value, as TF1's reads, which alias the variable's buffer, do.
            inputs.push(match plain_read(g, e, &fed) {
                Some(var) => Source::Var(var),
                None => resolve(e, &slot_of)?,
            });
        }
        let outputs = (0..node.outputs.len()).map(|slot| slot_of.get(&Endpoint { node: n, slot }).copied()).collect();
        let info = node.info();
        let control = node.control_inputs.clone();
        steps.push(Step {
            node: n,
            op: node.op.clone(),
            info,
            inputs,
            refs,
            outputs,
            free_after: vec![],
            fused: None,
            control,
            absorbed: vec![],
        });
    }
    let fetches = key.fetches.iter().map(|&e| resolve(e, &slot_of)).collect::<Result<Vec<_>>>()?;
    let fetched: BTreeSet<usize> =
        fetches.iter().filter_map(|s| if let Source::Slot(s) = s { Some(*s) } else { None }).collect();
    // Fusing neither adds nor removes a Switch or Merge.
    let dead_flow = steps.iter().any(|s| matches!(s.op, Op::Switch | Op::Merge));
    if key.fuse {
        fuse_epilogues(g, &mut steps, &fetched, dead_flow);
    }
    let feed_specs: Vec<_> = key.feeds.iter().map(|e| g.node(e.node).outputs[e.slot].clone()).collect();
    let mut rows = rows::split(g, &feed_specs, &mut steps, &fetched);
    let mut last_use: HashMap<usize, usize> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        for src in &step.inputs {
            if let Source::Slot(s) = src {
                last_use.insert(*s, i);
            }
        }
    }
    // Outputs nobody reads are dropped at once; the rest after their last reader.
    for step in steps.iter_mut() {
        for s in step.outputs.iter_mut() {
            if let Some(slot) = *s {
                if !last_use.contains_key(&slot) && !fetched.contains(&slot) {
                    *s = None;
                }
            }
        }
    }
    for (&slot, &step) in &last_use {
        if fetched.contains(&slot) {
            continue;
        }
        match &mut rows {
            // Made before the chunks and last read by them: every chunk reads it.
            Some(r)
                if r.range.contains(&step)
                    && !steps[r.range.clone()].iter().any(|s| s.outputs.contains(&Some(slot))) =>
            {
                r.free_after.push(slot)
            }
            _ => steps[step].free_after.push(slot),
        }
    }
    let feed_readers = feed_readers(&steps, key.feeds.len());
    let fetched = key.fetches.clone();
    Ok(Plan { steps, fetches, fetched, n_slots, feed_readers, rows, dead_flow, helper: Default::default() })
}

/// How many inputs of `steps` read each of `n` feeds.
pub fn feed_readers(steps: &[Step], n: usize) -> Vec<usize> {
    let mut readers = vec![0; n];
    for src in steps.iter().flat_map(|step| &step.inputs) {
        if let Source::Feed(i) = src {
            readers[*i] += 1;
        }
    }
    readers
}

/// Folds `BiasAdd` and `Relu` steps into the `Conv2D` or `MatMul` whose output they alone read
/// (Grappler's remapper): the intermediate tensors are never written out, and the element-wise
/// work runs on output rows while they are in cache. Also the other [`Fused`] forms: ReluGrad
/// into its producer, weight-gradient products into their updates, a Slice into its product,
/// and an AddN into a chain of products (not in a plan with TF1 control flow, `dead_flow`).
fn fuse_epilogues(g: &GraphData, steps: &mut Vec<Step>, fetched: &BTreeSet<usize>, dead_flow: bool) {
    let mut readers: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut producer: HashMap<usize, usize> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        for src in &step.inputs {
            if let Source::Slot(s) = src {
                readers.entry(*s).or_default().push(i);
            }
        }
        for s in step.outputs.iter().flatten() {
            producer.insert(*s, i);
        }
    }
    let no_control_inputs = |step: &Step| g.node(step.node).control_inputs.is_empty();
    // The one step reading `slot`, if it is unfetched, read once, and has no control inputs
    // (which could order it after other work).
    let sole_reader = |slot: Option<usize>, steps: &[Step]| -> Option<usize> {
        let slot = slot?;
        match readers.get(&slot).map(Vec::as_slice) {
            Some(&[j]) if !fetched.contains(&slot) && no_control_inputs(&steps[j]) => Some(j),
            _ => None,
        }
    };
    // A step computing from constants alone (a variable's read, a constant, a frozen graph's
    // Identity of one) can run earlier, together with the steps it reads.
    let mut movable = vec![false; steps.len()];
    for i in 0..steps.len() {
        let step = &steps[i];
        movable[i] = !step.op.is_stateful()
            && no_control_inputs(step)
            && step.inputs.iter().all(|s| match s {
                Source::Slot(s) => producer.get(s).is_some_and(|&p| p < i && movable[p]),
                _ => true,
            });
    }
    // Where each step runs: (index, 1), or (i, 0) to run just before step i.
    let mut position: Vec<(usize, u8)> = (0..steps.len()).map(|i| (i, 1)).collect();
    let mut removed = vec![false; steps.len()];
    for i in 0..steps.len() {
        if removed[i] || steps[i].outputs.len() != 1 {
            continue;
        }
        if matches!(steps[i].op, Op::MaxPoolGrad(_) | Op::Conv2DBackpropInput(_)) {
            // ReluGrad(this step's output, features). MaxPoolGrad masks by its pooled input, so
            // the features must be that input (the ReLU's output was pooled); a
            // Conv2DBackpropInput takes them as an extra input, which must exist when it runs.
            let Some((out, j)) = steps[i].outputs[0].zip(sole_reader(steps[i].outputs[0], steps)) else { continue };
            let reader = &steps[j];
            let (grads, features) = (reader.inputs[0], reader.inputs.get(1).copied());
            let pooled = matches!(steps[i].op, Op::MaxPoolGrad(_));
            let mask_ok = match features {
                _ if pooled => features == steps[i].inputs.first().copied(),
                Some(Source::Slot(s)) => s != out && producer.get(&s).is_some_and(|&p| position[p] < (i, 1)),
                Some(_) => true,
                None => false,
            };
            if matches!(reader.op, Op::Binary(BinaryOp::ReluGrad)) && grads == Source::Slot(out) && mask_ok {
                let fused_out = reader.outputs[0];
                let absorbed = reader.node;
                removed[j] = true;
                // A bias gradient reading the masked result: a Sum over the batch, rows and
                // columns, which waits on nothing else.
                let bias_sum = fused_out.and_then(|slot| {
                    readers.get(&slot)?.iter().copied().find(|&k| {
                        let sum = &steps[k];
                        !removed[k]
                            && matches!(&sum.op, Op::Reduce { op: ReduceOp::Sum, axes, keep_dims: false } if axes == &[0, 1, 2])
                            && sum.inputs == [Source::Slot(slot)]
                            && sum.outputs.len() == 1
                            && no_control_inputs(sum)
                    })
                });
                if let Some(k) = bias_sum {
                    removed[k] = true;
                    let (node, out) = (steps[k].node, steps[k].outputs[0]);
                    steps[i].absorbed.push(node);
                    steps[i].outputs.push(out);
                }
                let step = &mut steps[i];
                step.absorbed.push(absorbed);
                step.outputs[0] = fused_out;
                if !pooled {
                    step.inputs.extend(features);
                    step.refs.push(None);
                }
                let bias_sum = bias_sum.is_some();
                step.fused = Some(match pooled {
                    true => Fused::ReluGrad { bias_sum, winners: None },
                    false => Fused::InputGrad { bias_sum, lower: None, filter: false, routed: None },
                });
            }
            continue;
        }
        if let (Op::MatMul { .. }, None) = (&steps[i].op, steps[i].fused) {
            let slice = sole_reader(steps[i].outputs[0], steps).and_then(|j| match &steps[j].op {
                Op::Slice { begin, size } if begin.len() == 2 && size.len() == 2 => {
                    Some((j, Fused::Block { begin: [begin[0], begin[1]], size: [size[0], size[1]] }))
                }
                _ => None,
            });
            if let Some((j, block)) = slice {
                removed[j] = true;
                let (absorbed, out) = (steps[j].node, steps[j].outputs[0]);
                let step = &mut steps[i];
                step.absorbed.push(absorbed);
                step.outputs[0] = out;
                step.fused = Some(block);
                continue;
            }
        }
        if let (Op::MatMul { transpose_a, transpose_b }, None) = (&steps[i].op, steps[i].fused) {
            // The gradient of one update: its inputs must be values made before (a variable's
            // read would move to the update's turn, after other updates).
            let (ta, tb) = (*transpose_a, *transpose_b);
            let reader = sole_reader(steps[i].outputs[0], steps).filter(|&j| {
                let Op::Apply(a) = steps[j].op else { return false };
                steps[j].fused.is_none()
                    && steps[j].inputs.get(a.grad_input()) == steps[i].outputs[0].map(Source::Slot).as_ref()
                    && no_control_inputs(&steps[i])
                    && steps[i].inputs.iter().all(|s| !matches!(s, Source::Var(_)))
            });
            if let Some(j) = reader {
                let Op::Apply(a) = steps[j].op else { unreachable!("checked above") };
                let (left, right) = (steps[i].inputs[0], steps[i].inputs[1]);
                removed[i] = true;
                let absorbed = steps[i].node;
                let update = &mut steps[j];
                update.absorbed.push(absorbed);
                update.inputs[a.grad_input()] = left;
                update.inputs.push(right);
                update.refs.push(None);
                update.fused = Some(Fused::GradProduct { transpose_a: ta, transpose_b: tb });
                continue;
            }
        }
        if !matches!(steps[i].op, Op::Conv2D(_) | Op::MatMul { .. }) {
            continue;
        }
        let mut out = steps[i].outputs[0];
        let (mut bias_fused, mut relu_fused) = (false, false);
        let mut bias_src = None;
        if let Some(j) = sole_reader(out, steps) {
            let (x, bias) = (steps[j].inputs[0], steps[j].inputs.get(1).copied());
            // The bias must exist when step i runs.
            let bias_producer = match bias {
                Some(Source::Slot(s)) => producer.get(&s).copied(),
                _ => None,
            };
            let ready = match bias_producer {
                Some(p) => position[p] < (i, 1) || movable[p],
                None => true,
            };
            if matches!(steps[j].op, Op::BiasAdd) && Some(x) != bias && ready {
                // The bias's producer and what it reads, before step i (in their order).
                let mut chain: Vec<usize> = bias_producer.into_iter().collect();
                while let Some(p) = chain.pop() {
                    position[p] = position[p].min((i, 0));
                    chain.extend(steps[p].inputs.iter().filter_map(|s| match s {
                        Source::Slot(s) => producer.get(s).copied().filter(|&q| movable[q]),
                        _ => None,
                    }));
                }
                bias_src = bias;
                bias_fused = true;
                removed[j] = true;
                let absorbed = steps[j].node;
                steps[i].absorbed.push(absorbed);
                out = steps[j].outputs[0];
            }
        }
        if let Some(k) = sole_reader(out, steps).filter(|&k| matches!(steps[k].op, Op::Unary(UnaryOp::Relu))) {
            relu_fused = true;
            removed[k] = true;
            let absorbed = steps[k].node;
            steps[i].absorbed.push(absorbed);
            out = steps[k].outputs[0];
        }
        // A MaxPool of the (activated) output, pooling each image alone: its step and window.
        let pool_of = |k: usize, slot: usize| {
            let mp = &steps[k];
            let Op::MaxPool(a) = mp.op else { return None };
            (!removed[k]
                && [a.ksize[0], a.ksize[3], a.strides[0], a.strides[3]] == [1; 4]
                && mp.inputs == [Source::Slot(slot)]
                && mp.outputs.len() == 1
                && mp.fused.is_none()
                && no_control_inputs(mp))
            .then_some((k, slot, a))
        };
        let pool = match (&steps[i].op, out) {
            (Op::Conv2D(_), Some(slot)) => readers.get(&slot).and_then(|r| r.iter().find_map(|&k| pool_of(k, slot))),
            _ => None,
        };
        let mut pool_attrs = None;
        if let Some((k, slot, a)) = pool {
            pool_attrs = Some(a);
            removed[k] = true;
            let (absorbed, pooled) = (steps[k].node, steps[k].outputs[0]);
            let alone = readers.get(&slot).is_some_and(|r| r == &[k]) && !fetched.contains(&slot);
            steps[i].absorbed.push(absorbed);
            steps[i].outputs.push(pooled);
            if alone {
                out = None;
            }
        }
        if bias_fused || relu_fused || pool_attrs.is_some() {
            let step = &mut steps[i];
            step.outputs[0] = out;
            if let Some(src) = bias_src {
                step.inputs.push(src);
                step.refs.push(None);
            }
            step.fused = Some(Fused::Epilogue {
                bias: bias_fused,
                relu: relu_fused,
                pool: pool_attrs,
                winners: false,
                below: None,
            });
        }
    }
    // A Conv2D whose (activated) output only another Conv2D reads, as its input: made inside
    // that one, a chunk of images at a time (see `Fused::Epilogue`'s `below`).
    for i in 0..steps.len() {
        let (bias, relu) = match (&steps[i].op, steps[i].fused) {
            (Op::Conv2D(_), None) => (false, false),
            (Op::Conv2D(_), Some(Fused::Epilogue { bias, relu, pool: None, winners: false, below: None })) => {
                (bias, relu)
            }
            _ => continue,
        };
        let Op::Conv2D(attrs) = steps[i].op else { continue };
        let out = steps[i].outputs[0];
        let Some(j) = sole_reader(out, steps).filter(|&j| !removed[j] && !removed[i]) else { continue };
        let above = &steps[j];
        let fused_above = match above.fused {
            None => Some((false, false, None)),
            Some(Fused::Epilogue { bias, relu, pool, winners: false, below: None }) => Some((bias, relu, pool)),
            _ => None,
        };
        let Some((bias_above, relu_above, pool)) = fused_above else { continue };
        if !matches!(above.op, Op::Conv2D(_))
            || above.inputs[0] != Source::Slot(out.expect("read"))
            || above.inputs[1..].contains(&above.inputs[0])
        {
            continue;
        }
        removed[i] = true;
        let below = steps[i].inputs.clone();
        let absorbed: Vec<NodeIndex> =
            std::iter::once(steps[i].node).chain(steps[i].absorbed.iter().copied()).collect();
        let step = &mut steps[j];
        step.inputs[0] = below[0];
        step.inputs.extend_from_slice(&below[1..]);
        step.refs.extend(below[1..].iter().map(|_| None));
        step.absorbed.extend(absorbed);
        step.fused = Some(Fused::Epilogue {
            bias: bias_above,
            relu: relu_above,
            pool,
            winners: false,
            below: Some(Below { attrs, bias, relu }),
        });
    }
    // A folded MaxPool whose input only MaxPoolGrads of the same window read besides it (its
    // gradient): they take the pooled windows' winners instead (`Fused::Winners`),
    // where the input's rows and columns are known.
    for i in 0..steps.len() {
        let Some(Fused::Epilogue { pool: Some(attrs), winners: false, .. }) = steps[i].fused else { continue };
        let Some(slot) = steps[i].outputs[0] else { continue };
        let shape = &g.node(steps[i].node).outputs[0].shape;
        let (Some(in_h), Some(in_w)) = (shape.dim(1), shape.dim(2)) else { continue };
        let input = [in_h, in_w];
        let grads: Vec<usize> = readers.get(&slot).into_iter().flatten().copied().filter(|&k| !removed[k]).collect();
        let gradient_of_pool = |k: &usize| {
            let step = &steps[*k];
            step.op == Op::MaxPoolGrad(attrs)
                && step.inputs.iter().position(|&s| s == Source::Slot(slot)) == Some(0)
                && step.inputs.iter().filter(|&&s| s == Source::Slot(slot)).count() == 1
                && matches!(step.fused, None | Some(Fused::ReluGrad { .. }))
        };
        if fetched.contains(&slot) || grads.is_empty() || !grads.iter().all(gradient_of_pool) {
            continue;
        }
        if let Some(Fused::Epilogue { winners, .. }) = &mut steps[i].fused {
            *winners = true;
        }
        for k in grads {
            let step = &mut steps[k];
            step.fused = Some(match step.fused {
                Some(Fused::ReluGrad { bias_sum, .. }) => Fused::ReluGrad { bias_sum, winners: Some(input) },
                _ => Fused::Winners { input },
            });
        }
    }
    // The filter gradient of the convolution below a masked input gradient, when it alone reads
    // that gradient and its own inputs exist when the input gradient is made (not where TF1
    // control flow could leave the filter gradient's input dead and the gradient not).
    for i in (0..steps.len()).filter(|_| !dead_flow) {
        let Some(Fused::InputGrad { bias_sum, lower: None, filter: false, routed: None }) = steps[i].fused else {
            continue;
        };
        let Some(slot) = steps[i].outputs[0].filter(|s| !fetched.contains(s)) else { continue };
        if !matches!(steps[i].op, Op::Conv2DBackpropInput(_)) {
            continue;
        }
        let live: Vec<usize> = readers.get(&slot).into_iter().flatten().copied().filter(|&k| !removed[k]).collect();
        let &[j] = live.as_slice() else { continue };
        let Op::Conv2DBackpropFilter(attrs) = steps[j].op else { continue };
        let ready = |src: &Source| match src {
            Source::Slot(s) => *s != slot && producer.get(s).is_some_and(|&p| position[p] < (i, 1)),
            Source::Feed(_) => true,
            Source::Var(_) => false, // a variable's value could change between the two steps
        };
        let (x, filter) = (steps[j].inputs[0], steps[j].inputs[1]);
        if steps[j].inputs[2] != Source::Slot(slot)
            || !ready(&x)
            || !(ready(&filter) || matches!(filter, Source::Var(_)))
            || steps[j].outputs.len() != 1
            || !no_control_inputs(&steps[j])
        {
            continue;
        }
        removed[j] = true;
        let (absorbed, out) = (steps[j].node, steps[j].outputs[0]);
        let step = &mut steps[i];
        step.absorbed.push(absorbed);
        step.outputs[0] = None;
        step.outputs.push(out);
        step.inputs.extend([x, filter]);
        step.refs.extend([None, None]);
        step.fused = Some(Fused::InputGrad { bias_sum, lower: Some(attrs), filter: false, routed: None });
    }
    // The filter gradient of a convolution whose masked input gradient is made (the two read
    // the same `dy`), when its inputs exist by then and nothing reads its result before.
    for i in (0..steps.len()).filter(|_| !dead_flow) {
        let (Op::Conv2DBackpropInput(attrs), Some(Fused::InputGrad { bias_sum, lower, filter: false, routed: None })) =
            (&steps[i].op, steps[i].fused)
        else {
            continue;
        };
        let dy = steps[i].inputs[2];
        let ready = |src: &Source| match src {
            Source::Slot(s) => producer.get(s).is_some_and(|&p| position[p] < (i, 1)),
            Source::Feed(_) => true,
            Source::Var(_) => false, // a variable's value could change between the two steps
        };
        let later = |slot: &Option<usize>| {
            slot.is_none_or(|s| readers.get(&s).into_iter().flatten().all(|&k| position[k] > (i, 1)))
        };
        let filter_grad = (0..steps.len()).find(|&j| {
            let step = &steps[j];
            !removed[j]
                && step.op == Op::Conv2DBackpropFilter(*attrs)
                && step.inputs[2] == dy
                && ready(&step.inputs[0])
                && (ready(&step.inputs[1]) || matches!(step.inputs[1], Source::Var(_)))
                && step.outputs.len() == 1
                && later(&step.outputs[0])
                && no_control_inputs(step)
        });
        let Some(j) = filter_grad else { continue };
        removed[j] = true;
        let (absorbed, out, inputs) = (steps[j].node, steps[j].outputs[0], [steps[j].inputs[0], steps[j].inputs[1]]);
        let step = &mut steps[i];
        step.absorbed.push(absorbed);
        step.outputs.push(out);
        step.inputs.extend(inputs);
        step.refs.extend([None, None]);
        step.fused = Some(Fused::InputGrad { bias_sum, lower, filter: true, routed: None });
    }
    // The MaxPoolGrad from winners making the `dy` that only a folded input gradient reads (its
    // filter gradient folded in too), when its own results are read after.
    for i in (0..steps.len()).filter(|_| !dead_flow) {
        let Some(Fused::InputGrad { bias_sum, lower, filter, routed: None }) = steps[i].fused else { continue };
        let Source::Slot(dy) = steps[i].inputs[2] else { continue };
        // (Its step now makes the folded ReluGrad's output: `producer` predates the folds.)
        let Some(m) = (0..i).find(|&m| !removed[m] && steps[m].outputs.first() == Some(&Some(dy))) else { continue };
        let (relu, pool_sum, input) = match steps[m].fused {
            Some(Fused::ReluGrad { bias_sum, winners: Some(input) }) => (true, bias_sum, input),
            Some(Fused::Winners { input }) => (false, false, input),
            _ => continue,
        };
        let Op::MaxPoolGrad(attrs) = steps[m].op else { continue };
        let live: Vec<usize> = readers.get(&dy).into_iter().flatten().copied().filter(|&k| !removed[k]).collect();
        let later = |slot: &Option<usize>| {
            slot.is_none_or(|s| readers.get(&s).into_iter().flatten().all(|&k| removed[k] || position[k] > (i, 1)))
        };
        // Without a ReLU between, the bias gradient's Sum reads `dy` too: folded in as well.
        let bias_sum_of_dy = |k: usize| {
            let sum = &steps[k];
            matches!(&sum.op, Op::Reduce { op: ReduceOp::Sum, axes, keep_dims: false } if axes == &[0, 1, 2])
                && sum.inputs == [Source::Slot(dy)]
                && sum.outputs.len() == 1
                && no_control_inputs(sum)
                && later(&sum.outputs[0])
        };
        let sum_step = match live.iter().copied().filter(|&k| k != i).collect::<Vec<_>>()[..] {
            [] => None,
            [k] if !pool_sum && bias_sum_of_dy(k) => Some(k),
            _ => continue,
        };
        if removed[m]
            || !live.contains(&i)
            || fetched.contains(&dy)
            || !no_control_inputs(&steps[m])
            || steps[m].outputs.len() != 1 + pool_sum as usize
            || !later(&steps[m].outputs.get(1).copied().flatten())
        {
            continue;
        }
        removed[m] = true;
        let (node, mut pooling) = (steps[m].node, std::mem::take(&mut steps[m].absorbed));
        let (winners, grad) = (steps[m].inputs[0], steps[m].inputs[1]);
        let mut sum = steps[m].outputs.get(1).copied();
        if let Some(k) = sum_step {
            removed[k] = true;
            pooling.push(steps[k].node);
            sum = Some(steps[k].outputs[0]);
        }
        let step = &mut steps[i];
        step.absorbed.extend(std::iter::once(node).chain(pooling));
        step.inputs[2] = winners;
        step.inputs.push(grad);
        step.refs.push(None);
        step.outputs.extend(sum);
        let routed = Routed { attrs, input, relu, bias_sum: sum.is_some() };
        step.fused = Some(Fused::InputGrad { bias_sum, lower, filter, routed: Some(routed) });
    }
    // AddN(MatMul, MatMul, ...) of products it alone reads: a chain of products each adding
    // onto the one before, in the steps' order (AddN adds in its inputs' order: the same bits
    // when the two agree and each product is one depth pass). Not where TF1 control flow may
    // leave a product dead.
    for j in 0..steps.len() {
        if dead_flow || removed[j] || !matches!(steps[j].op, Op::AddN) || !no_control_inputs(&steps[j]) {
            continue;
        }
        let products: Option<Vec<usize>> = steps[j]
            .inputs
            .iter()
            .map(|src| match src {
                Source::Slot(s) => producer.get(s).copied().filter(|&p| {
                    matches!(steps[p].op, Op::MatMul { .. })
                        && steps[p].fused.is_none()
                        && !removed[p]
                        && steps[p].outputs.len() == 1
                        && sole_reader(Some(*s), steps) == Some(j)
                }),
                _ => None,
            })
            .collect();
        let Some(mut products) = products.filter(|p| p.len() >= 2) else { continue };
        products.sort_by_key(|&p| position[p]);
        for w in products.windows(2) {
            let sum = steps[w[0]].outputs[0].expect("read by the AddN");
            let step = &mut steps[w[1]];
            step.inputs.push(Source::Slot(sum));
            step.refs.push(None);
            step.fused = Some(Fused::AddTo);
        }
        let (last, absorbed, out) = (*products.last().expect("two or more"), steps[j].node, steps[j].outputs[0]);
        steps[last].outputs[0] = out;
        steps[last].absorbed.push(absorbed);
        removed[j] = true;
    }
    let mut kept: Vec<((usize, u8), Step)> = std::mem::take(steps)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !removed[*i])
        .map(|(i, s)| (position[i], s))
        .collect();
    kept.sort_by_key(|(p, _)| *p);
    steps.extend(kept.into_iter().map(|(_, s)| s));
}

fn schedule(g: &GraphData, needed: &BTreeSet<NodeIndex>) -> Vec<NodeIndex> {
    let preds = |n: NodeIndex| {
        let node = g.node(n);
        let mut p: Vec<NodeIndex> =
            node.inputs.iter().map(|e| e.node).chain(node.control_inputs.iter().copied()).collect();
        p.retain(|x| needed.contains(x));
        p.sort();
        p.dedup();
        p
    };
    let mut indegree: HashMap<NodeIndex, usize> = HashMap::new();
    let mut succs: HashMap<NodeIndex, Vec<NodeIndex>> = HashMap::new();
    for &n in needed {
        let p = preds(n);
        indegree.insert(n, p.len());
        for q in p {
            succs.entry(q).or_default().push(n);
        }
    }
    let mut ready: BTreeSet<NodeIndex> = BTreeSet::new();
    let mut ready_stateful: BTreeSet<NodeIndex> = BTreeSet::new();
    let push = |n: NodeIndex, r: &mut BTreeSet<NodeIndex>, rs: &mut BTreeSet<NodeIndex>| {
        if g.node(n).op.is_stateful() {
            rs.insert(n);
        } else {
            r.insert(n);
        }
    };
    for (&n, &d) in &indegree {
        if d == 0 {
            push(n, &mut ready, &mut ready_stateful);
        }
    }
    let mut order = Vec::with_capacity(needed.len());
    while let Some(n) = ready.pop_first().or_else(|| ready_stateful.pop_first()) {
        order.push(n);
        for &s in succs.get(&n).map(Vec::as_slice).unwrap_or(&[]) {
            let d = indegree.get_mut(&s).expect("successor is needed");
            *d -= 1;
            if *d == 0 {
                push(s, &mut ready, &mut ready_stateful);
            }
        }
    }
    order
}
