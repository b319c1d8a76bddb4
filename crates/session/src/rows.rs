//! Batch-parallel inference in chunks of rows.
//!
//! An inference run over many independent examples (the slides' `accuracy.eval` over all
//! 10,000 test images) computes each layer for the whole batch before the next: conv1's output
//! alone is 1 GB at 10,000 images, written out to memory and read back. When every step from
//! the batch's feeds up to a small result (logits, `in_top_k`) computes each row of its output
//! from the same rows of its batched inputs, the session runs those steps over chunks of rows
//! that stay in cache, gathers the small result, and runs the rest once. Each row's arithmetic
//! is the same in a chunk as in the whole batch (kernels sum over a row's own elements in an
//! order that does not depend on the row count), so the results are bit-identical.
//!
//! The planner finds the steps ([`split`]); the session picks the chunk size from the CPU's
//! cache ([`chunk_rows`]) and runs them ([`crate::Session`]).

use crate::plan::{Fused, Source, Step};
use ndarray::Axis;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tensorgraph_graph::{ConvAttrs, DType, Feed, GraphData, NodeIndex, Op, Shape, TensorSpec, Value};
use tensorgraph_kernels::cpu;

/// How a run over a large batch is split (see [`crate::Session::set_batch_splitting`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BatchSplit {
    /// Chunks sized to the CPU's cache, when the batch is larger than one chunk; on large
    /// batches each run also tries chunks eight times that size and goes on with the faster
    /// (each run measures both: the same bits either way).
    #[default]
    Auto,
    /// Never split: every step runs once over the whole batch.
    Off,
    /// Chunks of this many rows (at least 1), whenever the batch is larger.
    Rows(usize),
}

/// The part of a plan that runs row by row: `steps[range]` (after the steps it depends on and
/// before every other).
#[derive(Debug)]
pub struct Rows {
    pub range: std::ops::Range<usize>,
    /// Feeds (by plan position) whose rows are split: read by the range's steps.
    pub feeds: Vec<usize>,
    /// Slots made in the range and read after it or fetched: gathered from every chunk.
    pub gathered: Vec<usize>,
    /// Slots made before the range, last read inside it: freed once every chunk has run.
    pub free_after: Vec<usize>,
    /// Bytes per row of the largest step in the range (its batched inputs and outputs).
    pub row_bytes: usize,
}

/// Where a step runs relative to the chunks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    /// Reads nothing made per chunk (weights, constants, whole feeds): runs first, once.
    Before,
    /// Computes rows from rows: runs per chunk.
    Rows,
    /// Depends on the batch as a whole: runs once the chunks are gathered.
    After,
}

fn dtype_bytes(d: DType) -> usize {
    match d {
        DType::F64 | DType::I64 => 8,
        DType::Bool => 1,
        _ => 4,
    }
}

/// Bytes of one row (every dimension but the first), if the shape says.
fn row_bytes(spec: &TensorSpec) -> Option<usize> {
    let dims = spec.shape.dims().get(1..)?;
    dims.iter().try_fold(dtype_bytes(spec.dtype), |acc, d| d.and_then(|d| acc.checked_mul(d)))
}

/// One input of a step as the rule sees it: whether its first axis is the batch, and its
/// static shape.
struct In<'a> {
    batched: bool,
    shape: &'a Shape,
}

/// Whether `op` computes each row of its outputs from the same rows of its batched inputs
/// (and the whole of its other inputs), so it may run on any chunk of the rows.
fn row_wise(op: &Op, fused: Option<Fused>, ins: &[In]) -> bool {
    let first = |i: usize| ins.get(i).is_some_and(|x| x.batched);
    let others_whole = |from: usize| ins.iter().skip(from).all(|x| !x.batched);
    let all_batched = || ins.iter().all(|x| x.batched);
    let rank = ins.first().map_or(0, |x| x.shape.rank());
    // An axis other than the batch's, of an input with a batch axis.
    let inner = |axis: usize| axis > 0 && rank >= 1;
    // Element-wise with broadcasting: every batched input has the output's rank (so its first
    // axis is the output's), and each other one broadcasts along that axis.
    let broadcast = || {
        let r = ins.iter().map(|x| x.shape.rank()).max().unwrap_or(0);
        r >= 1
            && ins.iter().all(|x| match x.batched {
                true => x.shape.rank() == r,
                false => x.shape.rank() < r || x.shape.dim(0) == Some(1),
            })
    };
    match (op, fused) {
        // Not with a folded MaxPool's winners: they are for the gradient, made whole.
        (Op::Conv2D(a), Some(Fused::Epilogue { winners: false, below, .. })) => {
            let by_images = |a: &ConvAttrs| a.strides[0] == 1 && a.dilations[0] == 1;
            first(0) && others_whole(1) && by_images(a) && below.is_none_or(|b| by_images(&b.attrs))
        }
        (Op::Conv2D(a), None) => first(0) && others_whole(1) && a.strides[0] == 1 && a.dilations[0] == 1,
        (Op::MatMul { transpose_a: false, .. }, Some(Fused::Epilogue { .. }) | None) => first(0) && others_whole(1),
        (_, Some(_)) => false,
        (Op::MaxPool(p) | Op::AvgPool(p), None) => first(0) && p.ksize[0] == 1 && p.strides[0] == 1,
        (Op::BiasAdd, None) => first(0) && others_whole(1),
        (
            Op::Identity
            | Op::StopGradient
            | Op::Unary(_)
            | Op::Binary(_)
            | Op::Select
            | Op::Cast { .. }
            | Op::LeakyRelu { .. }
            | Op::ZerosLike
            | Op::OnesLike,
            None,
        ) => broadcast(),
        (Op::Unpack { axis, .. }, None) => first(0) && inner(*axis),
        // x, cs_prev and h_prev by rows; the weights whole.
        (Op::LSTMBlockCell { .. }, None) => ins.len() == 8 && ins[..3].iter().all(|x| x.batched) && others_whole(3),
        (Op::Softmax | Op::LogSoftmax | Op::TopKV2 { .. }, None) => first(0) && rank >= 2,
        (Op::SparseSoftmaxCrossEntropyWithLogits | Op::InTopKV2 { .. }, None) => all_batched() && rank == 2,
        (Op::Reduce { axes, .. }, None) => first(0) && !axes.is_empty() && !axes.contains(&0),
        (Op::ArgMax { axis, .. } | Op::ArgMin { axis, .. }, None) => first(0) && inner(*axis),
        (Op::Cumsum { axis, .. } | Op::Cumprod { axis, .. }, None) => first(0) && inner(*axis),
        (Op::ExpandDims { axis }, None) => first(0) && inner(*axis),
        (Op::Squeeze { axes }, None) => first(0) && !axes.is_empty() && !axes.contains(&0),
        (Op::ConcatV2 { axis }, None) => all_batched() && inner(*axis),
        (Op::Transpose { perm }, None) => first(0) && perm.first() == Some(&0),
        (Op::Reshape { shape }, None) => {
            // Each row keeps its own elements only when a row's size is the same before and
            // after ([N, 7, 7, 64] -> [-1, 3136]; not [N, 5] -> [-1, 4]).
            let row = |dims: &[Option<usize>]| dims.iter().try_fold(1usize, |acc, d| acc.checked_mul((*d)?));
            let target: Option<Vec<Option<usize>>> =
                shape.get(1..).map(|s| s.iter().map(|&d| usize::try_from(d).ok()).collect());
            first(0)
                && shape.first() == Some(&-1)
                && rank >= 1
                && target.is_some_and(|t| row(&t).is_some() && row(&t) == row(&ins[0].shape.dims()[1..]))
        }
        (Op::Slice { begin, size }, None) => first(0) && begin.first() == Some(&0) && size.first() == Some(&-1),
        (Op::GatherV2 { axis }, None) => first(0) && others_whole(1) && inner(*axis),
        _ => false,
    }
}

/// Reorders `steps` so the ones that may run per chunk of rows are contiguous, and describes
/// them; `None` when the plan has no such steps worth splitting (or any stateful step, whose
/// effects must happen once, in order).
///
/// A feed is split when its static first dimension is unknown (TF's `[None, ...]` batch).
/// Splitting pays when what is gathered is small beside what the chunks keep in cache: the
/// gathered rows must be at most a quarter of the range's largest step.
pub fn split(g: &GraphData, feeds: &[TensorSpec], steps: &mut Vec<Step>, fetched: &BTreeSet<usize>) -> Option<Rows> {
    let control_flow = |s: &Step| matches!(s.op, Op::Switch | Op::Merge);
    if steps.iter().any(|s| s.op.is_stateful() || s.refs.iter().any(Option::is_some) || control_flow(s)) {
        return None;
    }
    let batch_feed: Vec<bool> = feeds.iter().map(|f| f.shape.rank() >= 1 && f.shape.dim(0).is_none()).collect();
    // Static specs of every slot, and which are batched, as the steps make them.
    let mut specs: HashMap<usize, (TensorSpec, bool)> = HashMap::new();
    let mut class_of_node: HashMap<NodeIndex, Class> = HashMap::new();
    let mut class_of_slot: HashMap<usize, Class> = HashMap::new();
    let mut classes = Vec::with_capacity(steps.len());
    let mut row_max = 0usize;
    for step in steps.iter() {
        let node = g.node(step.node);
        let mut ins = Vec::with_capacity(step.inputs.len());
        let mut class = Class::Before;
        let mut in_bytes = 0usize;
        for src in &step.inputs {
            let (spec, batched) = match *src {
                Source::Feed(i) => (feeds[i].clone(), batch_feed[i]),
                Source::Slot(s) => {
                    if class_of_slot.get(&s) == Some(&Class::After) {
                        class = Class::After;
                    }
                    specs.get(&s).cloned()?
                }
                Source::Var(n) => (g.node(n).outputs[0].clone(), false),
            };
            if batched {
                in_bytes = in_bytes.saturating_add(row_bytes(&spec).unwrap_or(0));
            }
            ins.push((spec, batched));
        }
        // A control input orders this step after another: it may not run earlier than that.
        for c in &node.control_inputs {
            match class_of_node.get(c) {
                Some(Class::Before) => {}
                _ => class = Class::After,
            }
        }
        let any_batched = ins.iter().any(|(_, b)| *b);
        if class == Class::Before && any_batched {
            let view: Vec<In> = ins.iter().map(|(s, b)| In { batched: *b, shape: &s.shape }).collect();
            let reads_rows = step
                .inputs
                .iter()
                .any(|src| matches!(src, Source::Slot(s) if class_of_slot.get(s) == Some(&Class::Rows)));
            class = match row_wise(&step.op, step.fused, &view) {
                true => Class::Rows,
                // Reads the chunks' results as a whole.
                false if reads_rows => Class::After,
                // Reads only whole feeds (`tf.shape(x)`, a mean over the batch): runs once,
                // before the chunks, its output not split.
                false => Class::Before,
            };
        }
        let mut out_bytes = 0usize;
        for (k, slot) in step.outputs.iter().enumerate() {
            // Past the node's own outputs, in order: a folded bias Sum's and lower filter
            // gradient's (see `Fused::ReluGrad`) or MaxPool's (see `Fused::Epilogue`).
            let spec = match node.outputs.get(k) {
                Some(spec) => spec.clone(),
                None => {
                    let folded = step.absorbed.iter().map(|&n| g.node(n));
                    let mut extra = folded
                        .filter(|n| matches!(n.op, Op::Reduce { .. } | Op::MaxPool(_) | Op::Conv2DBackpropFilter(_)));
                    extra.nth(k - node.outputs.len())?.outputs[0].clone()
                }
            };
            if class == Class::Rows {
                out_bytes = out_bytes.saturating_add(row_bytes(&spec).unwrap_or(0));
            }
            if let Some(s) = slot {
                specs.insert(*s, (spec, class == Class::Rows));
                class_of_slot.insert(*s, class);
            }
        }
        if class == Class::Rows {
            row_max = row_max.max(in_bytes.saturating_add(out_bytes));
        }
        class_of_node.insert(step.node, class);
        classes.push(class);
    }
    if !classes.contains(&Class::Rows) {
        return None;
    }
    // What the chunks hand on: slots made by Rows steps, read by After steps or fetched.
    let in_class = |c: Class| steps.iter().zip(&classes).filter(move |(_, k)| **k == c).map(|(s, _)| s);
    let made_in_rows: BTreeSet<usize> =
        in_class(Class::Rows).flat_map(|s| s.outputs.iter().flatten()).copied().collect();
    let read_after: BTreeSet<usize> = in_class(Class::After)
        .flat_map(|s| &s.inputs)
        .filter_map(|src| if let Source::Slot(s) = src { Some(*s) } else { None })
        .collect();
    let gathered: Vec<usize> =
        made_in_rows.iter().copied().filter(|s| read_after.contains(s) || fetched.contains(s)).collect();
    let mut gathered_bytes = 0usize;
    for s in &gathered {
        gathered_bytes = gathered_bytes.saturating_add(row_bytes(&specs[s].0)?);
    }
    if gathered_bytes.saturating_mul(4) > row_max {
        // Gathering would copy most of what the chunks computed: no gain.
        return None;
    }
    // Stable reorder: Before, then Rows, then After (a topological order still: Rows steps read
    // only Before and Rows steps, Before steps only Before steps and feeds).
    let mut order: Vec<usize> = (0..steps.len()).collect();
    order.sort_by_key(|&i| match classes[i] {
        Class::Before => 0,
        Class::Rows => 1,
        Class::After => 2,
    });
    let mut taken: Vec<Option<Step>> = std::mem::take(steps).into_iter().map(Some).collect();
    steps.extend(order.iter().map(|&i| taken[i].take().expect("each step once")));
    let start = classes.iter().filter(|&&c| c == Class::Before).count();
    let end = start + classes.iter().filter(|&&c| c == Class::Rows).count();
    let feeds_split: Vec<usize> = (0..feeds.len())
        .filter(|&i| batch_feed[i] && steps[start..end].iter().any(|s| s.inputs.contains(&Source::Feed(i))))
        .collect();
    Some(Rows { range: start..end, feeds: feeds_split, gathered, free_after: vec![], row_bytes: row_max })
}

/// Rows per chunk for a batch of `n` rows of `row_bytes` each, `None` to run it whole: chunks
/// of about four times the L2 cache of the cores working on them (measured on the slides' CNN:
/// see BENCHMARKS.md), and at least 32 rows so every kernel still has work for every thread.
pub fn chunk_rows(split: BatchSplit, n: usize, row_bytes: usize) -> Option<usize> {
    let rows = match split {
        BatchSplit::Off => return None,
        BatchSplit::Rows(r) => r.max(1),
        BatchSplit::Auto => {
            let budget = 4 * cpu::l2_bytes() * cpu::threads();
            (budget / row_bytes.max(1)).max(32)
        }
    };
    (n > rows).then_some(rows)
}

/// The automatic chunk size, measured as a run goes (the results are the same bits for any
/// chunking): two chunks of the cache-sized rows, then two of twice as many, and so on while
/// the second chunk of a size takes less time per row than the best before it (a size's first
/// chunk may allocate its buffers); the rest runs in equal chunks near the best size. Where the
/// cache pays, the smaller chunks win; where each chunk's fixed costs weigh more (weights packed
/// again per chunk, a shared L3 that holds little), the larger. The slides' CNN over 10,000
/// images: on an Intel Xeon (cache-sized: 160 rows) 0.23 s in 50-row chunks, 0.21 in 100,
/// 0.18-0.20 in 200 and 400, 0.22 in 800; on one Zen 4 (55 rows) 0.58 s in 55-row chunks,
/// 0.52 in 440-1000. Batches too small for two sizes, and explicit sizes, run in `base`-row
/// chunks.
#[derive(Debug)]
pub struct ChunkTrial {
    base: usize,
    /// The size on trial, and whether its first chunk has run; `None` once the trial is over.
    trying: Option<(usize, bool)>,
    /// The best size so far, and its seconds per row.
    best: Option<(usize, f64)>,
    /// The size of the chunks after the trial, once chosen.
    rest: Option<usize>,
}

impl ChunkTrial {
    /// Chunks of `base` rows over `n`, tried against larger ones when `measure`.
    pub fn new(base: usize, n: usize, measure: bool) -> ChunkTrial {
        let base = base.max(1);
        // Two chunks of the base size and two of twice it, and some rows after them.
        let measure = measure && n > 6 * base;
        ChunkTrial { base, trying: measure.then_some((base, false)), best: None, rest: (!measure).then_some(base) }
    }

    /// Rows of the next chunk when `left` rows are left (at least 1).
    pub fn next(&mut self, left: usize) -> usize {
        if let Some((size, _)) = self.trying {
            // A size is tried only where its two chunks leave rows after them.
            if 2 * size < left {
                return size;
            }
            self.trying = None;
        }
        let pick = self.best.map_or(self.base, |(size, _)| size);
        // Equal chunks, so the last is not a sliver.
        (*self.rest.get_or_insert_with(|| left.div_ceil(left.div_ceil(pick)))).min(left)
    }

    /// Notes how long the chunk [`ChunkTrial::next`] gave (of `rows` rows) took.
    pub fn note(&mut self, rows: usize, took: std::time::Duration) {
        let Some((size, ran_one)) = self.trying else { return };
        if !ran_one {
            self.trying = Some((size, true));
            return;
        }
        let per_row = took.as_secs_f64() / rows.max(1) as f64;
        if self.best.is_none_or(|(_, best)| per_row < best) {
            self.best = Some((size, per_row));
            self.trying = Some((2 * size, false));
        } else {
            self.trying = None;
        }
    }
}

/// The chunks' pieces of one gathered slot, joined along the batch axis.
pub fn concat(pieces: &[Arc<Value>]) -> Option<Value> {
    macro_rules! join {
        ($($v:ident),*) => {
            match &**pieces.first()? {
                $(Value::$v(_) => {
                    let views = pieces
                        .iter()
                        .map(|p| match &**p { Value::$v(a) => Some(a.view()), _ => None })
                        .collect::<Option<Vec<_>>>()?;
                    ndarray::concatenate(Axis(0), &views).ok().map(Value::from)
                })*
            }
        };
    }
    join!(F32, F64, I32, I64, Bool, String)
}

/// A view of a feed, of rows `range` only when given (nothing is copied).
pub fn feed_view<'a>(feed: &'a Feed<'_>, range: Option<std::ops::Range<usize>>) -> Feed<'a> {
    macro_rules! view {
        ($($v:ident),*) => {
            match (feed, range) {
                $((Feed::$v(a), Some(r)) => Feed::from(a.slice_axis(Axis(0), r.into())),)*
                $((Feed::$v(a), None) => Feed::from(a.view()),)*
            }
        };
    }
    view!(F32, F64, I32, I64, Bool, String)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The chunk sizes of a run over `n` rows whose chunks take `per_row(size)` ns a row.
    fn chunks(base: usize, n: usize, measure: bool, per_row: impl Fn(usize) -> u64) -> Vec<usize> {
        let mut trial = ChunkTrial::new(base, n, measure);
        let (mut left, mut sizes) = (n, vec![]);
        while left > 0 {
            let size = trial.next(left);
            trial.note(size, Duration::from_nanos(per_row(size) * size as u64));
            sizes.push(size);
            left -= size;
        }
        sizes
    }

    #[test]
    fn the_trial_doubles_the_size_while_it_pays() {
        // Fastest at 1, 2, 4, 8 times the base: sizes tried up to one past the best.
        for times in [1, 2, 4, 8] {
            let fastest = 55 * times;
            let per_row = |size: usize| 100 + size.abs_diff(fastest) as u64;
            let sizes = chunks(55, 10_000, true, per_row);
            let tried: Vec<usize> = (0..=times.ilog2() + 1).flat_map(|d| [55 << d; 2]).collect();
            assert_eq!(sizes[..tried.len()], tried, "{times}x");
            let near = (fastest * 4 / 5)..=fastest;
            assert!(sizes[tried.len()..].iter().all(|s| near.contains(s)), "{times}x: {sizes:?}");
            assert_eq!(sizes.iter().sum::<usize>(), 10_000);
        }
        // Ever larger, ever faster: doubled while two chunks of the next size leave rows after.
        let sizes = chunks(55, 10_000, true, |size| 10_000 / size as u64);
        assert_eq!(sizes[..12], [55, 55, 110, 110, 220, 220, 440, 440, 880, 880, 1760, 1760]);
        assert_eq!(sizes.iter().sum::<usize>(), 10_000);
        // Explicit sizes, and batches too small to try two sizes, keep the base size.
        for (n, measure) in [(10_000, false), (330, true)] {
            let sizes = chunks(55, n, measure, |size| if size == 55 { 10 } else { 1 });
            assert!(sizes[..sizes.len() - 1].iter().all(|&s| s == 55), "{sizes:?}");
            assert_eq!(sizes.iter().sum::<usize>(), n);
        }
    }
}
