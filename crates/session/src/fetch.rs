//! What [`Session::run`](crate::Session::run) fetches: what TF's `sess.run` takes.

use tensorgraph_graph::{Feed, Operation, Tensor, Value, Variable};

/// A fetch of [`Session::run`](crate::Session::run), shaped as TF's `sess.run` takes them: an
/// operation (run for its effect; gives `()`), a tensor (gives its [`Value`]), a tuple of
/// fetches (gives a tuple), a slice or array of tensors (gives a `Vec`).
///
/// ```
/// use tensorgraph_graph::{ops::math, DType, Graph, Named};
/// use tensorgraph_session::{feed, Session};
/// # fn main() -> tensorgraph_graph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, tensorgraph_graph::Shape::scalar()).named("x")?;
/// let w = g.variable(&g.scalar(1.0, DType::F32)?, "w", true)?;
/// let y = math::mul(&x, w.value())?;
/// let step = tensorgraph_graph::ops::state::assign_add(&w, &x)?.op();
/// let sess = Session::new(&g)?;
/// sess.run(&g.global_variables_initializer()?, &[])?; // an op: ()
/// let (before, ()) = sess.run((&y, &step), feed! {x => 3.0f32})?; // a tuple: y and the update
/// let after: f32 = sess.run(&y, feed! {x => 3.0f32})?.try_into()?; // a tensor: its value
/// assert_eq!((before.scalar_f64(), after), (Some(3.0), 12.0));
/// # Ok(()) }
/// ```
pub trait Fetch {
    /// What the run gives back for this fetch.
    type Output;
    /// Lists the tensors to compute and the operations to run.
    fn add<'a>(&'a self, tensors: &mut Vec<&'a Tensor>, ops: &mut Vec<&'a Operation>);
    /// Takes this fetch's values, in the order [`Fetch::add`] listed its tensors.
    fn take(&self, values: &mut std::vec::IntoIter<Value>) -> Self::Output;
}

impl Fetch for &Tensor {
    type Output = Value;
    fn add<'a>(&'a self, tensors: &mut Vec<&'a Tensor>, _: &mut Vec<&'a Operation>) {
        tensors.push(self);
    }
    fn take(&self, values: &mut std::vec::IntoIter<Value>) -> Value {
        values.next().expect("one value per fetched tensor")
    }
}

/// A variable's current value (its `read` tensor), as TF's `sess.run(w)`.
impl Fetch for &Variable {
    type Output = Value;
    fn add<'a>(&'a self, tensors: &mut Vec<&'a Tensor>, _: &mut Vec<&'a Operation>) {
        tensors.push(self.value());
    }
    fn take(&self, values: &mut std::vec::IntoIter<Value>) -> Value {
        values.next().expect("one value per fetched tensor")
    }
}

impl Fetch for &Operation {
    type Output = ();
    fn add<'a>(&'a self, _: &mut Vec<&'a Tensor>, ops: &mut Vec<&'a Operation>) {
        ops.push(self);
    }
    fn take(&self, _: &mut std::vec::IntoIter<Value>) {}
}

/// Operations run together for their effects (`sess.run([train_op, update_op])`).
impl Fetch for &[&Operation] {
    type Output = ();
    fn add<'a>(&'a self, _: &mut Vec<&'a Tensor>, ops: &mut Vec<&'a Operation>) {
        ops.extend(self.iter().copied());
    }
    fn take(&self, _: &mut std::vec::IntoIter<Value>) {}
}

/// What a fetched tensor can be given as: a tensor, or a variable (its current value).
pub trait AsTensor {
    fn as_tensor(&self) -> &Tensor;
}

impl AsTensor for Tensor {
    fn as_tensor(&self) -> &Tensor {
        self
    }
}

impl AsTensor for Variable {
    fn as_tensor(&self) -> &Tensor {
        self.value()
    }
}

/// A reference to a fetchable: `&[&x, &y]` and `&vec![x, y]` both fetch.
impl<T: AsTensor + ?Sized> AsTensor for &T {
    fn as_tensor(&self) -> &Tensor {
        (**self).as_tensor()
    }
}

impl<T: AsTensor> Fetch for &[T] {
    type Output = Vec<Value>;
    fn add<'a>(&'a self, tensors: &mut Vec<&'a Tensor>, _: &mut Vec<&'a Operation>) {
        tensors.extend(self.iter().map(|t| t.as_tensor()));
    }
    fn take(&self, values: &mut std::vec::IntoIter<Value>) -> Vec<Value> {
        values.take(self.len()).collect()
    }
}

impl<T: AsTensor, const N: usize> Fetch for &[T; N] {
    type Output = Vec<Value>;
    fn add<'a>(&'a self, tensors: &mut Vec<&'a Tensor>, _: &mut Vec<&'a Operation>) {
        tensors.extend(self.iter().map(|t| t.as_tensor()));
    }
    fn take(&self, values: &mut std::vec::IntoIter<Value>) -> Vec<Value> {
        values.take(N).collect()
    }
}

impl<T: AsTensor> Fetch for &Vec<T> {
    type Output = Vec<Value>;
    fn add<'a>(&'a self, tensors: &mut Vec<&'a Tensor>, _: &mut Vec<&'a Operation>) {
        tensors.extend(self.iter().map(|t| t.as_tensor()));
    }
    fn take(&self, values: &mut std::vec::IntoIter<Value>) -> Vec<Value> {
        values.take(self.len()).collect()
    }
}

/// TF's dict fetches (`sess.run({"loss": loss, "acc": accuracy})`): a map of tensors gives a map
/// of their values under the same keys.
///
/// ```
/// use std::collections::BTreeMap;
/// use tensorgraph_graph::{ops::math, DType, Graph};
/// use tensorgraph_session::Session;
/// # fn main() -> tensorgraph_graph::Result<()> {
/// let g = Graph::new();
/// let two = g.scalar(2.0, DType::F32)?;
/// let four = math::square(&two)?;
/// let fetches = BTreeMap::from([("two", &two), ("four", &four)]);
/// let values = Session::new(&g)?.run(&fetches, &[])?;
/// assert_eq!(values["four"].scalar_f64(), Some(4.0));
/// # Ok(()) }
/// ```
impl<K: Clone + Ord, T: AsTensor> Fetch for &std::collections::BTreeMap<K, T> {
    type Output = std::collections::BTreeMap<K, Value>;
    fn add<'a>(&'a self, tensors: &mut Vec<&'a Tensor>, _: &mut Vec<&'a Operation>) {
        tensors.extend(self.values().map(|t| t.as_tensor()));
    }
    fn take(&self, values: &mut std::vec::IntoIter<Value>) -> Self::Output {
        self.keys().cloned().zip(values).collect()
    }
}

impl<K: Clone + Eq + std::hash::Hash, T: AsTensor> Fetch for &std::collections::HashMap<K, T> {
    type Output = std::collections::HashMap<K, Value>;
    fn add<'a>(&'a self, tensors: &mut Vec<&'a Tensor>, _: &mut Vec<&'a Operation>) {
        tensors.extend(self.values().map(|t| t.as_tensor()));
    }
    fn take(&self, values: &mut std::vec::IntoIter<Value>) -> Self::Output {
        // The same iteration order as `add`: the map is borrowed, unchanged, in between.
        self.keys().cloned().zip(values).collect()
    }
}

/// Tuples of fetches, as TF's `sess.run((loss, train_op))`; one impl per arity.
macro_rules! tuple_fetch {
    ($($t:ident $i:tt),+) => {
        impl<$($t: Fetch),+> Fetch for ($($t,)+) {
            type Output = ($($t::Output,)+);
            fn add<'a>(&'a self, tensors: &mut Vec<&'a Tensor>, ops: &mut Vec<&'a Operation>) {
                $(self.$i.add(tensors, ops);)+
            }
            fn take(&self, values: &mut std::vec::IntoIter<Value>) -> Self::Output {
                ($(self.$i.take(values),)+)
            }
        }
    };
}

tuple_fetch!(A 0, B 1);
tuple_fetch!(A 0, B 1, C 2);
tuple_fetch!(A 0, B 1, C 2, D 3);
tuple_fetch!(A 0, B 1, C 2, D 3, E 4);

/// TF1's `init.run()` and `accuracy.eval(feed_dict=...)`: an operation run, a tensor (or a
/// variable) evaluated, in a session.
///
/// ```
/// use tensorgraph_graph::{ops::math, DType, Graph, Named, Value};
/// use tensorgraph_session::{Eval, Session};
/// # fn main() -> tensorgraph_graph::Result<()> {
/// let g = Graph::new();
/// let w = g.variable(&g.scalar(2.0, DType::F32)?, "w", true)?;
/// let y = math::square(w.value())?;
/// let sess = Session::new(&g)?;
/// g.global_variables_initializer()?.run(&sess, &[])?;
/// assert_eq!(y.eval(&sess, &[])?.scalar_f64(), Some(4.0));
/// # Ok(()) }
/// ```
pub trait Eval {
    /// `()` for an operation, the value for a tensor or a variable.
    type Output;
    /// Runs the operation (TF's `op.run()`).
    fn run(&self, sess: &crate::Session, feeds: &[(&Tensor, Feed<'_>)]) -> tensorgraph_graph::Result<Self::Output>;
    /// Evaluates the tensor (TF's `tensor.eval()`); the same as [`Eval::run`].
    fn eval(&self, sess: &crate::Session, feeds: &[(&Tensor, Feed<'_>)]) -> tensorgraph_graph::Result<Self::Output> {
        self.run(sess, feeds)
    }
}

impl Eval for Operation {
    type Output = ();
    fn run(&self, sess: &crate::Session, feeds: &[(&Tensor, Feed<'_>)]) -> tensorgraph_graph::Result<()> {
        sess.run(self, feeds)
    }
}

impl Eval for Tensor {
    type Output = Value;
    fn run(&self, sess: &crate::Session, feeds: &[(&Tensor, Feed<'_>)]) -> tensorgraph_graph::Result<Value> {
        sess.run(self, feeds)
    }
}

impl Eval for Variable {
    type Output = Value;
    fn run(&self, sess: &crate::Session, feeds: &[(&Tensor, Feed<'_>)]) -> tensorgraph_graph::Result<Value> {
        sess.run(self, feeds)
    }
}
