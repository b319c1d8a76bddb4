//! Summaries as graph ops, as TF1's `tf.summary`: each op computes a serialized
//! `tensorflow.Summary` (a string scalar) when run; fetch it with the train op and hand it to
//! `FileWriter::add_summary`. Tags are the op's scoped name, as TF's; each summary joins the
//! `summaries` collection that [`merge_all`] merges.
//!
//! ```
//! use tensorgraph_graph::{ops::{math, summary}, DType, Graph, Named};
//! # fn main() -> tensorgraph_graph::Result<()> {
//! let g = Graph::new();
//! let w = g.placeholder(DType::F32, [3, 3]).named("w")?;
//! let s = g.name_scope("layer", || summary::histogram("weights", &w))?;
//! let merged = summary::merge_all(&g)?.unwrap();
//! assert_eq!((s.op_name(), merged.dtype()), ("layer/weights".to_string(), DType::String));
//! # Ok(()) }
//! ```

use crate::error::Result;
use crate::graph::{Graph, Tensor};
use crate::op::Op;
use crate::SourceLocation;

/// TF's `GraphKeys.SUMMARIES`.
pub const SUMMARIES: &str = "summaries";

/// A summary op named `name` in the current scope (made unique), tagged with that name.
#[track_caller]
fn summary(t: &Tensor, name: &str, op: impl FnOnce(String) -> Op) -> Result<Tensor> {
    let location = SourceLocation::caller();
    let g = t.graph();
    let scope = g.current_name_scope();
    let tag = g.unique_variable_name(&if scope.is_empty() { name.to_string() } else { format!("{scope}/{name}") });
    let s = g.add_node(op(tag.clone()), &[t], &[], Some(&format!("{tag}/")), location)?.output(0)?;
    g.root().add_to_collection(SUMMARIES, &s);
    Ok(s)
}

/// The scalar `t` under `name` (`tf.summary.scalar`): a curve in TensorBoard's Scalars tab.
#[track_caller]
pub fn scalar(name: &str, t: &Tensor) -> Result<Tensor> {
    summary(t, name, |tags| Op::ScalarSummary { tags })
}

/// The distribution of `t`'s values (`tf.summary.histogram`): TensorBoard's Histograms and
/// Distributions tabs.
#[track_caller]
pub fn histogram(name: &str, t: &Tensor) -> Result<Tensor> {
    summary(t, name, |tag| Op::HistogramSummary { tag })
}

/// The first `max_outputs` images of a `[batch, height, width, channels]` float tensor
/// (`tf.summary.image`): TensorBoard's Images tab.
#[track_caller]
pub fn image(name: &str, t: &Tensor, max_outputs: usize) -> Result<Tensor> {
    summary(t, name, |tag| Op::ImageSummary { tag, max_images: max_outputs })
}

/// One summary of all of `inputs` (`tf.summary.merge`).
#[track_caller]
pub fn merge(inputs: &[&Tensor]) -> Result<Tensor> {
    let Some(first) = inputs.first() else {
        return Err(crate::function::invalid(
            "MergeSummary",
            "Merge/MergeSummary",
            &SourceLocation::caller(),
            "merge needs at least one summary".into(),
        ));
    };
    first.graph().add_op1(Op::MergeSummary, inputs, Some("Merge/MergeSummary"))
}

/// Every summary made so far in `g`, merged (`tf.summary.merge_all`); `None` when there is none.
#[track_caller]
pub fn merge_all(g: &Graph) -> Result<Option<Tensor>> {
    let all = g.get_collection(SUMMARIES);
    if all.is_empty() {
        return Ok(None);
    }
    merge(&all.iter().collect::<Vec<_>>()).map(Some)
}
