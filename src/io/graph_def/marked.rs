//! Our ops that files tensorgraph writes for itself hold as several TF ops (so that TF runs
//! them too) read back as the op itself: the last node of such a form carries the op's private
//! name, its inputs, the other nodes of the form and the op's attributes (`export::mark`).
//! And the control inputs written for TF only (an update after the reads of its variable,
//! `export::reads_before_update`) are dropped again.

use super::export::{F64_PREFIX, LOCATION, MARK_ATTR, MARK_INPUTS, MARK_OP, MARK_PARTS, MARK_READS};
use super::import::parse_input;
use crate::proto::tf::{Attr, AttrValue, GraphDef, NodeDef};
use std::collections::{HashMap, HashSet};

/// `def` with each marked node as our op and the other nodes of its form dropped (those read
/// only by each other); `None` when nothing is marked. A mark that is not well-formed is
/// ignored: the TF ops are read as they are.
pub(super) fn read_marked_ops(def: &GraphDef) -> Option<GraphDef> {
    let strings = |v: Option<&AttrValue>| -> Option<Vec<String>> {
        match v?.value.as_ref()? {
            Attr::List(l) => l.s.iter().map(|s| String::from_utf8(s.clone()).ok()).collect(),
            _ => None,
        }
    };
    if !def.node.iter().any(|n| n.attr.contains_key(MARK_OP) || n.attr.contains_key(MARK_READS)) {
        return None;
    }
    let mut out = def.clone();
    let mut parts = HashSet::new();
    for n in &mut out.node {
        if let Some(reads) = strings(n.attr.remove(MARK_READS).as_ref()) {
            n.input.retain(|i| !i.strip_prefix('^').is_some_and(|c| reads.iter().any(|r| r == c)));
        }
        let Some(Attr::S(op)) = n.attr.get(MARK_OP).and_then(|v| v.value.as_ref()) else { continue };
        let (Ok(op), Some(inputs), Some(its_parts)) =
            (String::from_utf8(op.clone()), strings(n.attr.get(MARK_INPUTS)), strings(n.attr.get(MARK_PARTS)))
        else {
            continue;
        };
        let mut input = inputs;
        input.extend(n.input.iter().filter(|i| i.starts_with('^')).cloned());
        let attr = n
            .attr
            .iter()
            .filter_map(|(k, v)| match k.strip_prefix(MARK_ATTR) {
                Some(name) => Some((name.to_string(), v.clone())),
                None => (k == LOCATION || k.starts_with(F64_PREFIX)).then(|| (k.clone(), v.clone())),
            })
            .collect();
        *n = NodeDef { name: n.name.clone(), op, input, device: n.device.clone(), attr };
        parts.extend(its_parts);
    }
    // A part something else reads stays, and so do the parts it reads.
    let by_name: HashMap<&str, &NodeDef> = out.node.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut kept: HashSet<&str> = HashSet::new();
    let mut readers: Vec<&NodeDef> = out.node.iter().filter(|n| !parts.contains(&n.name)).collect();
    while let Some(n) = readers.pop() {
        for input in &n.input {
            let name = parse_input(input).1;
            if parts.contains(name) && kept.insert(name) {
                readers.extend(by_name.get(name));
            }
        }
    }
    let dropped: HashSet<String> = parts.iter().filter(|p| !kept.contains(p.as_str())).cloned().collect();
    out.node.retain(|n| !dropped.contains(&n.name));
    Some(out)
}
