//! The session half of tensorgraph: prunes a graph to what a run needs, caches the plan,
//! executes it on the CPU kernels, and keeps variables.

mod apply;
mod element_fns;
mod exec;
mod fetch;
mod plan;
mod session;

pub use fetch::{AsTensor, Eval, Fetch};
pub use session::Session;
