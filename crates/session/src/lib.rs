//! The session half of tensorgraph: prunes a graph to what a run needs, caches the plan,
//! executes it on the CPU kernels, and keeps variables.

mod apply;
mod dead;
mod element_fns;
mod exec;
mod fetch;
mod functions;
mod plan;
mod rows;
mod session;

pub use fetch::{AsTensor, Eval, Fetch};
pub use rows::BatchSplit;
pub use session::Session;
pub use tensorgraph_graph::Feed;

/// `feed!`'s keys: a tensor or a reference to one.
#[doc(hidden)]
pub fn __feed_key<K: std::borrow::Borrow<tensorgraph_graph::Tensor>>(key: &K) -> &tensorgraph_graph::Tensor {
    key.borrow()
}

/// Feeds as TF's `feed_dict={X: X_batch, y: y_batch}`: `feed!{x => &x_batch, y => &y_batch}` is
/// a `&[(&Tensor, Feed)]` for [`Session::run`]. A value given by reference (an array, an
/// `ArrayView`, a [`Value`](tensorgraph_graph::Value)) is borrowed, not copied; one given by value
/// is moved in. The keys are tensors or references to them.
///
/// ```
/// use tensorgraph_graph::{ops::math, DType, Graph, Named};
/// use tensorgraph_session::{feed, Session};
/// # fn main() -> tensorgraph_graph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None, Some(2)]).named("X")?;
/// let scale = g.placeholder(DType::F32, tensorgraph_graph::Shape::scalar())?;
/// let y = math::reduce_sum(&math::mul(&x, &scale)?, None)?;
/// let sess = Session::new(&g)?;
/// let x_batch = ndarray::array![[1.0f32, 2.0], [3.0, 4.0]];
/// let total: f32 = sess.run(&y, feed! {x => &x_batch, scale => 2.0f32})?.try_into()?;
/// assert_eq!(total, 20.0);
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! feed {
    ($($tensor:expr => $value:expr),* $(,)?) => {
        &[$(($crate::__feed_key(&$tensor), $crate::Feed::from($value))),*]
    };
}
