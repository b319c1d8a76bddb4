//! Files: checkpoints of variable values (like `tf.train.Saver`) and graph files (like a
//! MetaGraph), sharing one container format.

pub mod checkpoint;
mod container;
pub mod meta_graph;

pub use checkpoint::{latest_checkpoint, Saver};
pub use meta_graph::{export_meta_graph, import_meta_graph};
