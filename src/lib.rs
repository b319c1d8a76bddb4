//! # tensorgraph
//!
//! A define-then-run computation graph engine in the style of TensorFlow 1.x graph mode: build a
//! graph symbolically (placeholders, variables, ops, name scopes), then execute it in a
//! [`Session`] with feeds and fetches.
//!
//! ```
//! use tensorgraph::prelude::*;
//! # fn main() -> tensorgraph::Result<()> {
//! let g = Graph::new();
//! g.set_random_seed(1);
//! let x = g.placeholder(DType::F32, [None, Some(2)]).named("X")?;
//! let y = g.placeholder(DType::I64, [None]).named("y")?;
//! let logits = layers::dense(&x, 2, None, "outputs")?;
//! let xentropy = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits)?;
//! let loss = math::reduce_mean(&xentropy, None).named("loss")?;
//! let training_op = GradientDescent::new(0.5).minimize(&loss)?;
//!
//! let sess = Session::new(&g)?;
//! g.global_variables_initializer()?.run(&sess, &[])?;
//! // Label 1 when the first feature is the larger.
//! let x_batch = ndarray::array![[1.0f32, 0.0], [0.0, 1.0], [2.0, 1.0], [1.0, 3.0]];
//! let y_batch = ndarray::array![1i64, 0, 1, 0];
//! let (first, ()) = sess.run((&loss, &training_op), feed! {x => &x_batch, y => &y_batch})?;
//! for _ in 0..50 {
//!     sess.run(&training_op, feed! {x => &x_batch, y => &y_batch})?; // borrowed: no copy
//! }
//! let last: f32 = loss.eval(&sess, feed! {x => &x_batch, y => &y_batch})?.try_into()?;
//! assert!(last < f32::try_from(first)? / 4.0);
//! # Ok(()) }
//! ```
//!
//! ## The slides' TF1 calls, and their tensorgraph lines
//!
//! | TensorFlow 1.x | tensorgraph |
//! |---|---|
//! | `X = tf.placeholder(tf.float32, shape=(None, n_inputs), name="X")` | `let x = g.placeholder(DType::F32, [None, Some(n_inputs)]).named("X")?;` |
//! | `with tf.name_scope("dnn"):` | `g.name_scope("dnn", \|\| { ... })?` |
//! | `tf.layers.dense(X, n_hidden1, name="hidden1", activation=tf.nn.relu)` | `layers::dense(&x, n_hidden1, Some(nn::relu), "hidden1")?` |
//! | `tf.reshape(X, shape=[-1, 28, 28, 1])` | `array::reshape(&x, &[-1, 28, 28, 1])?` |
//! | `tf.layers.conv2d(X_reshaped, filters=32, kernel_size=3, strides=1, padding="SAME", activation=tf.nn.relu, name="conv1")` | `layers::conv2d(&x_reshaped, 32, 3, 1, Padding::Same, Some(nn::relu), "conv1")?` |
//! | `tf.nn.max_pool(conv2, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="VALID")` | `nn::max_pool(&conv2, [1, 2, 2, 1], [1, 2, 2, 1], Padding::Valid)?` |
//! | `tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)` | `nn::sparse_softmax_cross_entropy_with_logits(&y, &logits)?` |
//! | `tf.reduce_mean(xentropy, name="loss")` | `math::reduce_mean(&xentropy, None).named("loss")?` |
//! | `tf.train.GradientDescentOptimizer(learning_rate)` | `GradientDescent::new(learning_rate)` |
//! | `tf.train.AdamOptimizer()` | `Adam::new(0.001)` |
//! | `training_op = optimizer.minimize(loss)` | `let training_op = optimizer.minimize(&loss)?;` |
//! | `tf.nn.in_top_k(logits, y, 1)` | `nn::in_top_k(&logits, &y, 1)?` |
//! | `tf.cast(correct, tf.float32)` | `correct.cast(DType::F32)?` |
//! | `init = tf.global_variables_initializer()` | `let init = g.global_variables_initializer()?;` |
//! | `saver = tf.train.Saver()` | `let saver = io::Saver::new(&g);` |
//! | `with tf.Session() as sess:` | `let sess = Session::new(&g)?;` |
//! | `init.run()` | `init.run(&sess, &[])?;` |
//! | `sess.run(training_op, feed_dict={X: X_batch, y: y_batch})` | `sess.run(&training_op, feed! {x => &x_batch, y => &y_batch})?;` |
//! | `loss_val, _ = sess.run([loss, training_op], feed_dict=...)` | `let (loss_val, ()) = sess.run((&loss, &training_op), feeds)?;` |
//! | `acc_test = accuracy.eval(feed_dict={X: mnist.test.images, y: mnist.test.labels})` | `let acc_test: f32 = accuracy.eval(&sess, feed! {x => &mnist.test.images, y => &mnist.test.labels})?.try_into()?;` |
//! | `saver.save(sess, "./my_model_final.ckpt")` | `saver.save(&sess, "./my_model_final", None)?;` |
//! | `mnist = input_data.read_data_sets("/tmp/data/")` | `let mut mnist = data::mnist::read_data_sets("data/mnist")?;` |
//! | `X_batch, y_batch = mnist.train.next_batch(batch_size)` | `(x_batch, y_batch) = mnist.train.next_batch(batch_size);` |
//! | `mnist.train.num_examples`, `mnist.test.images`, `mnist.test.labels` | `mnist.train.num_examples()`, `mnist.test.images`, `mnist.test.labels` |
//!
//! `examples/mnist_mlp.rs` and `examples/mnist_cnn.rs` are the slides' two programs written
//! with these lines, top to bottom in the slides' order.

/// The README's code blocks, compiled as doc tests so its program stays the library's.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use tensorgraph_graph::{
    collections, fmt_dims, ApplyOp, ConvAttrs, DType, Distribution, EdgeKind, Endpoint, Error, FanMode, Func, Graph,
    Index, Initializer, Named, NodeInfo, Op, Operation, Padding, PoolAttrs, Result, Shape, SliceSpec, SourceLocation,
    Tensor, TensorSpec, Value, Variable,
};
pub use tensorgraph_session::{feed, AsTensor, BatchSplit, Eval, Feed, Fetch, Session};

/// Arithmetic, reductions, comparisons, casts (`tf.math`).
pub mod math {
    pub use tensorgraph_graph::ops::math::*;
}

/// Shapes and sources (`tf.reshape`, `tf.concat`, `tf.one_hot`, ...).
pub mod array {
    pub use tensorgraph_graph::ops::array::*;
}

/// Loops and conditionals decided at run time (`tf.while_loop`, `tf.cond`).
pub mod control_flow {
    pub use tensorgraph_graph::ops::control_flow::*;
}
pub use control_flow::{cond, while_loop, while_loop_with_shapes};

/// Random tensors.
pub mod random {
    pub use tensorgraph_graph::ops::random::*;
}

/// Assignments, grouping, no-ops.
pub mod state {
    pub use tensorgraph_graph::ops::state::*;
}

/// Activations, softmax and losses (`tf.nn`).
pub mod nn {
    pub use tensorgraph_graph::ops::nn::*;
    /// TF1's `tf.nn.rnn_cell`: the recurrent cells.
    pub mod rnn_cell {
        pub use crate::rnn::{BasicLSTMCell, BasicRNNCell, GRUCell, LSTMCell, MultiRNNCell, RNNCell};
    }
    pub use crate::rnn::{dynamic_rnn, static_rnn};
}

pub mod data;
pub mod gradient_checker;
pub mod inspect;
pub mod io;
pub mod layers;
pub mod losses;
pub mod proto;
pub mod rnn;
pub mod summary;
pub mod train;

pub use tensorgraph_autodiff::gradients;
pub use tensorgraph_graph::op_def;

/// What most programs need: `use tensorgraph::prelude::*;`.
pub mod prelude {
    pub use crate::train::{Adam, GradientDescent, Optimizer};
    pub use crate::{array, control_flow, data, layers, math, nn, random, state, train};
    pub use crate::{collections, Distribution, Initializer};
    pub use crate::{
        feed, DType, Eval, Feed, Graph, Named, Operation, Padding, Result, Session, Shape, Tensor, Value, Variable,
    };
}
