//! The symbolic half of tensorgraph: [`Graph`], [`Tensor`], [`Op`], shapes, dtypes, variables,
//! and the one [`Error`] type. Nothing here computes values; a session does.

mod dtype;
mod dump;
pub mod error;
pub mod function;
mod graph;
pub mod infer;
pub mod op;
pub mod op_def;
pub mod ops;
mod shape;
pub mod strided;
mod variable;

pub use dtype::{checked_len, try_vec, DType, Element, Feed, Value};
pub use error::{Error, NodeInfo, NonFiniteKind, Result, SourceLocation};
pub use function::Func;
pub use graph::{
    collections, EdgeKind, Endpoint, Graph, GraphData, Named, Node, Operation, ScopeGuard, Tensor, VariableInfo,
};
pub use infer::TensorSpec;
pub use op::{ApplyOp, BinaryOp, ConvAttrs, Op, Padding, PoolAttrs, ReduceOp, UnaryOp};
pub use petgraph::stable_graph::NodeIndex;
pub use petgraph::Direction;
pub use shape::{fmt_dims, Dim, Shape};
pub use strided::{DimSlice, Index, SliceSpec};
pub use variable::{fans, Distribution, FanMode, Initializer, Variable};
