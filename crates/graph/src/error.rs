//! The one error type of tensorgraph.

use crate::{DType, Shape};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where user code created a node, captured with `#[track_caller]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceLocation {
    pub file: String,
    pub line: u32,
    pub column: u32,
}

impl SourceLocation {
    /// The location of the caller of the `#[track_caller]` function that calls this.
    #[track_caller]
    pub fn caller() -> SourceLocation {
        let l = std::panic::Location::caller();
        SourceLocation { file: l.file().to_string(), line: l.line(), column: l.column() }
    }
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The identity of a node in an error message: scoped name, op type and where it was defined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub op: String,
    pub location: SourceLocation,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.op)
    }
}

/// Why a NaN/Inf check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonFiniteKind {
    NaN,
    Inf,
}

impl fmt::Display for NonFiniteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NonFiniteKind::NaN => "NaN",
            NonFiniteKind::Inf => "Inf",
        })
    }
}

/// Every failure tensorgraph reports, grouped by kind: graph building, feeding and running,
/// differentiation, and files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- graph building -------------------------------------------------------------
    /// Input shapes that the op cannot combine.
    #[error("shape mismatch in {node}: {detail} (defined at {})", node.location)]
    ShapeMismatch { node: NodeInfo, detail: String },
    /// Input dtypes that the op does not accept.
    #[error("dtype mismatch in {node}: {detail} (defined at {})", node.location)]
    DTypeMismatch { node: NodeInfo, detail: String },
    /// An attribute or argument out of range (an axis, a depth, a reshape target...).
    #[error("invalid argument to {node}: {detail} (defined at {})", node.location)]
    InvalidArgument { node: NodeInfo, detail: String },
    /// Tensors of two different graphs combined in one op.
    #[error("{op} '{name}' combines tensors from different graphs")]
    GraphMismatch { name: String, op: String },
    /// A name looked up in the graph does not exist.
    #[error("the graph has no {what} named '{name}'")]
    NotFound { what: &'static str, name: String },
    /// The graph was to be changed from inside a closure passed to `Graph::read` on the same
    /// thread (which would otherwise deadlock).
    #[error("the graph cannot be built or changed inside Graph::read: finish reading first")]
    GraphInUse,
    /// A variable created twice under the same name.
    #[error("variable {name} already exists (first defined at {location})")]
    DuplicateVariable { name: String, location: SourceLocation },

    // ---- feeding and running ------------------------------------------------------------
    /// A placeholder the fetches need was not fed.
    #[error("you must feed a value for placeholder {node} with dtype {dtype} and shape {shape} (defined at {})", node.location)]
    MissingFeed { node: NodeInfo, dtype: DType, shape: Shape },
    /// A feed whose dtype differs from the fed tensor's.
    #[error("cannot feed a {got} value to {node}, which has dtype {expected} (defined at {})", node.location)]
    FeedDType { node: NodeInfo, expected: DType, got: DType },
    /// A feed whose shape does not fit the fed tensor's static shape.
    #[error("cannot feed a value of shape {} to {node}, which has shape {expected} (defined at {})", crate::shape::fmt_dims(got), node.location)]
    FeedShape { node: NodeInfo, expected: Shape, got: Vec<usize> },
    /// A variable read before any initializer ran.
    #[error("attempting to use uninitialized value {node} (defined at {})", node.location)]
    UninitializedVariable { node: NodeInfo },
    /// The numerics check found a NaN or Inf in an op's output.
    #[error("{node} produced {kind} in output {slot} (defined at {})", node.location)]
    NonFinite { node: NodeInfo, slot: usize, kind: NonFiniteKind },
    /// A kernel rejected its inputs at run time (for example a dimension unknown while building).
    #[error("{node} failed on inputs {inputs}: {detail} (defined at {})", node.location)]
    Runtime { node: NodeInfo, inputs: String, detail: String },
    /// A fetch or target from another graph than the session's.
    #[error("{name} does not belong to the session's graph")]
    ForeignTensor { name: String },
    /// A fetched value converted to a Rust type it does not fit (`let acc: f32 = value`).
    #[error("expected {expected}, got {got}")]
    ValueType { expected: String, got: String },

    // ---- differentiation ----------------------------------------------------------------
    /// A differentiable path through an op that has no gradient rule.
    #[error("no gradient defined for {node} (defined at {})", node.location)]
    NoGradient { node: NodeInfo },

    // ---- files ---------------------------------------------------------------------------
    /// A file that could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A file whose content is not what it should be (bad magic, truncated, wrong counts...).
    #[error("{path}: {detail}")]
    BadFile { path: String, detail: String },
}

/// `Result` with tensorgraph's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
