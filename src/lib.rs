//! # tensorgraph
//!
//! A define-then-run computation graph engine in the style of TensorFlow 1.x graph mode: build a
//! graph symbolically (placeholders, variables, ops, name scopes), then execute it in a
//! [`Session`] with feeds and fetches.
//!
//! ```
//! use tensorgraph::prelude::*;
//! use ndarray::array;
//! # fn main() -> tensorgraph::Result<()> {
//! let g = Graph::new();
//! let x = g.placeholder(DType::F32, [None, Some(2)]).named("x")?;
//! let y = g.name_scope("double", || math::mul(&x, &g.scalar(2.0, DType::F32)?))?;
//! let mut sess = Session::new(&g)?;
//! let out = sess.run(&[&y], &[(&x, array![[1.0f32, 2.0]].into())])?;
//! assert_eq!(out[0].as_f32().unwrap()[[0, 1]], 4.0);
//! # Ok(()) }
//! ```

pub use tensorgraph_graph::{
    collections, fmt_dims, ApplyOp, ConvAttrs, DType, Distribution, EdgeKind, Endpoint, Error, FanMode, Graph,
    Initializer, Named, NodeInfo, Op, Operation, Padding, PoolAttrs, Result, Shape, SourceLocation, Tensor, TensorSpec,
    Value, Variable,
};
pub use tensorgraph_session::{AsTensor, Eval, Fetch, Session};

/// Arithmetic, reductions, comparisons, casts (`tf.math`).
pub mod math {
    pub use tensorgraph_graph::ops::math::*;
}

/// Shapes and sources (`tf.reshape`, `tf.concat`, `tf.one_hot`, ...).
pub mod array {
    pub use tensorgraph_graph::ops::array::*;
}

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
}

pub mod data;
pub mod gradient_checker;
pub mod inspect;
pub mod io;
pub mod layers;
pub mod losses;
pub mod proto;
pub mod summary;
pub mod train;

pub use tensorgraph_autodiff::gradients;
pub use tensorgraph_graph::op_def;

/// What most programs need: `use tensorgraph::prelude::*;`.
pub mod prelude {
    pub use crate::train::{Adam, GradientDescent, Optimizer};
    pub use crate::{array, data, layers, math, nn, random, state, train};
    pub use crate::{collections, Distribution, Initializer};
    pub use crate::{DType, Eval, Graph, Named, Operation, Padding, Result, Session, Shape, Tensor, Value, Variable};
}
