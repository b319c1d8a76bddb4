//! TF1's control flow (`Switch`/`Merge`, as `tf.cond` is written in graph mode without control
//! flow v2): a `Switch` sends its data down one output and leaves the other dead; a step with a
//! dead input or ordered after a dead node is dead (skipped, its outputs dead); a `Merge` passes
//! on its one live input. Only plans holding a `Switch` or `Merge` track this.

use crate::plan::{Plan, Source, Step};
use std::collections::HashSet;
use tensorgraph_graph::{NodeIndex, Op};

/// The dead slots and nodes of one run.
pub struct Dead {
    slots: Vec<bool>,
    nodes: HashSet<NodeIndex>,
}

/// What a step does in a run with dead tensors.
pub enum Flow {
    /// Runs as usual.
    Run,
    /// Is dead: skipped, its outputs dead.
    Skip,
    /// A `Merge` passing on its input at this position.
    Merge(usize),
}

impl Dead {
    /// The tracker for a run of `plan`, if it has a `Switch` or a `Merge`.
    pub fn new(plan: &Plan) -> Option<Dead> {
        plan.dead_flow.then(|| Dead { slots: vec![false; plan.n_slots], nodes: HashSet::new() })
    }

    fn live(&self, src: &Source) -> bool {
        !matches!(src, Source::Slot(s) if self.slots[*s])
    }

    /// Decides `step`'s fate, marking its outputs dead when it is.
    pub fn flow(&mut self, step: &Step) -> Flow {
        let after_dead = step.control.iter().any(|n| self.nodes.contains(n));
        let flow = match &step.op {
            _ if after_dead => Flow::Skip,
            Op::Merge => step.inputs.iter().position(|s| self.live(s)).map_or(Flow::Skip, Flow::Merge),
            _ if step.inputs.iter().all(|s| self.live(s)) => Flow::Run,
            _ => Flow::Skip,
        };
        if matches!(flow, Flow::Skip) {
            self.kill(step);
        }
        flow
    }

    fn kill(&mut self, step: &Step) {
        for s in step.outputs.iter().flatten() {
            self.slots[*s] = true;
        }
        self.nodes.insert(step.node);
        self.nodes.extend(&step.absorbed);
    }

    /// Marks output `k` of `step` (a `Switch`'s untaken branch) dead.
    pub fn kill_output(&mut self, step: &Step, k: usize) {
        if let Some(Some(s)) = step.outputs.get(k) {
            self.slots[*s] = true;
        }
    }

    /// Whether `slot` is dead.
    pub fn is_dead(&self, slot: usize) -> bool {
        self.slots[slot]
    }
}
