//! TF1's loops (control flow v1: `Enter`, `Merge`, `Switch`, `LoopCond`, `NextIteration`,
//! `Exit`, as `tf.while_loop` writes them in every TF 1.x graph) rewritten as TF 2's functional
//! `While`, whose condition and body are functions of the library, before the import reads the
//! graph: the way TF's own functionalization (XLA, TF 2's loaders) reads them.
//!
//! A loop is a frame: the nodes between its `Enter`s and its `Exit`s. Each `Merge` joining an
//! `Enter` and a `NextIteration` is a loop variable; the `Switch` of its value on the `LoopCond`
//! passes it into the body (output 1) or out through the `Exit` (output 0). The condition
//! function is what `LoopCond` reads, from the `Merge`s; the body is what each `NextIteration`
//! reads, from the `Switch`es. A constant `Enter` (a tensor from outside read in the loop)
//! becomes a loop variable the body passes on unchanged, as TF's functionalization does. Frames
//! are rewritten innermost first, so a loop inside a loop is a `While` node in its parent's
//! body. Each `Exit` becomes an `Identity` of the `While`'s output under the `Exit`'s name, so
//! what read the loop's results reads them still. A node of a frame that neither the condition
//! nor a next value reads is an error (TF cannot fetch it, and what it does would be lost).

use super::import::{bad_node, parse_input, topological_order_skipping};
use crate::proto::tf::{
    Attr, AttrValue, FunctionDef, FunctionDefLibrary, GraphDef, ListValue, NameAttrList, NodeDef, OpDef,
};
use crate::{Error, Result};
use std::collections::{HashMap, HashSet};

/// `def` with each TF1 loop a `While` node; `None` when it has none.
pub(super) fn functionalize_loops(def: &GraphDef, what: &str) -> Result<Option<GraphDef>> {
    if !def.node.iter().any(|n| n.op == "Enter") {
        return Ok(None);
    }
    let mut def = def.clone();
    // Each rewrite removes a frame's Enters: this ends.
    while let Some(frame) = innermost_frame(&def, what)? {
        rewrite_frame(&mut def, &frame, what)?;
    }
    Ok(Some(def))
}

fn string_attr(n: &NodeDef, name: &str) -> String {
    match n.attr.get(name).and_then(|a| a.value.as_ref()) {
        Some(Attr::S(s)) => String::from_utf8_lossy(s).into_owned(),
        _ => String::new(),
    }
}

fn bool_attr(n: &NodeDef, name: &str) -> bool {
    matches!(n.attr.get(name).and_then(|a| a.value.as_ref()), Some(Attr::B(true)))
}

/// The nodes of each frame (by frame name; the graph's own is "") and each frame's parent,
/// in an order where inputs come first (a `Merge`'s input from a `NextIteration` aside).
struct Frames {
    of: Vec<String>,
    parent: HashMap<String, String>,
}

fn frames(def: &GraphDef, what: &str) -> Result<Frames> {
    // The back edge of a loop is not followed: a Merge's frame is its Enter's.
    let back_edge = |n: &NodeDef, input: &NodeDef| n.op == "Merge" && input.op == "NextIteration";
    let cycle = "the graph has a cycle through it not closed by a loop's NextIteration";
    let order = topological_order_skipping(def, what, &back_edge, cycle)?;
    let by_name: HashMap<&str, usize> = def.node.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    let mut of = vec![String::new(); def.node.len()];
    let mut parent: HashMap<String, String> = HashMap::new();
    for i in order {
        let n = &def.node[i];
        // The frame of the first input followed (every name was checked by the ordering).
        let first = n
            .input
            .iter()
            .map(|s| by_name[parse_input(s).1])
            .find(|&j| !back_edge(n, &def.node[j]))
            .map(|j| of[j].clone())
            .unwrap_or_default();
        of[i] = match n.op.as_str() {
            "Enter" => {
                let frame = string_attr(n, "frame_name");
                if frame.is_empty() {
                    return Err(bad_node(what, n, "an Enter without a frame_name".into()));
                }
                match parent.get(&frame) {
                    Some(p) if *p != first => {
                        let detail = format!("frame {frame} is entered from frames {p:?} and {first:?}");
                        return Err(bad_node(what, n, detail));
                    }
                    _ => parent.insert(frame.clone(), first),
                };
                frame
            }
            "Exit" => match parent.get(&first) {
                Some(p) if !first.is_empty() => p.clone(),
                _ => return Err(bad_node(what, n, "an Exit outside any loop".into())),
            },
            _ => first,
        };
    }
    // A frame that is its own ancestor (forged frame names) would never be innermost.
    for f in parent.keys() {
        let (mut p, mut depth) = (f, 0);
        while let Some(q) = parent.get(p) {
            depth += 1;
            if depth > parent.len() {
                return Err(Error::BadFile { path: what.into(), detail: format!("loop frame {f} lies inside itself") });
            }
            p = q;
        }
    }
    Ok(Frames { of, parent })
}

/// The frame with no frame inside it, if any loop is left.
fn innermost_frame(def: &GraphDef, what: &str) -> Result<Option<(Frames, String)>> {
    let f = frames(def, what)?;
    let parents: HashSet<&String> = f.parent.values().collect();
    let inner = f.parent.keys().filter(|k| !parents.contains(k)).min().cloned();
    Ok(inner.map(|name| (f, name)))
}

/// One loop variable: its `Enter`, `Merge`, `NextIteration`, `Switch` and (where read) `Exit`.
struct Var {
    enter: usize,
    merge: usize,
    next: usize,
    switch: usize,
    exit: Option<usize>,
}

fn rewrite_frame(def: &mut GraphDef, (frames, frame): &(Frames, String), what: &str) -> Result<()> {
    let node = &def.node;
    let by_name: HashMap<&str, usize> = node.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    let members: Vec<usize> = (0..node.len()).filter(|&i| frames.of[i] == *frame).collect();
    let input_node = |i: usize, k: usize| node[i].input.get(k).map(|s| by_name[parse_input(s).1]);
    let err = |i: usize, detail: String| bad_node(what, &node[i], detail);
    // The data input of an Enter, NextIteration or LoopCond.
    let first_input = |i: usize| match node[i].input.first() {
        Some(s) if !s.starts_with('^') => Ok(s.as_str()),
        _ => Err(err(i, "it has no data input".into())),
    };

    let conds: Vec<usize> = members.iter().copied().filter(|&i| node[i].op == "LoopCond").collect();
    let &[loop_cond] = conds.as_slice() else {
        let detail = format!("loop frame {frame} has {} LoopCond nodes, not one", conds.len());
        return Err(Error::BadFile { path: what.into(), detail });
    };
    let mut vars = Vec::new();
    let mut captures = Vec::new();
    for &i in &members {
        match node[i].op.as_str() {
            "Merge" => {
                let ins: Vec<usize> = (0..node[i].input.len()).filter_map(|k| input_node(i, k)).collect();
                let next = ins.iter().copied().find(|&j| node[j].op == "NextIteration");
                let Some(next) = next else { continue }; // a conditional's Merge in the loop
                let enter = ins.iter().copied().find(|&j| node[j].op == "Enter" && frames.of[j] == *frame);
                let (Some(enter), 2) = (enter, ins.len()) else {
                    return Err(err(i, "a loop's Merge must join one Enter and one NextIteration".into()));
                };
                let switch = members.iter().copied().find(|&s| {
                    node[s].op == "Switch" && input_node(s, 0) == Some(i) && input_node(s, 1) == Some(loop_cond)
                });
                let switch =
                    switch.ok_or_else(|| err(i, "no Switch on the LoopCond takes this loop variable".into()))?;
                let exit = (0..node.len()).find(|&e| {
                    node[e].op == "Exit"
                        && node[e].input.first().is_some_and(|s| {
                            let (_, name, slot) = parse_input(s);
                            name == node[switch].name && matches!(slot, super::import::Slot::Index(0))
                        })
                });
                vars.push(Var { enter, merge: i, next, switch, exit });
            }
            "Enter" if bool_attr(&node[i], "is_constant") => captures.push(i),
            _ => {}
        }
    }
    if vars.is_empty() {
        return Err(Error::BadFile { path: what.into(), detail: format!("loop frame {frame} has no loop variable") });
    }
    for &i in &members {
        let n = &node[i];
        let structural = vars.iter().any(|v| [v.enter, v.merge, v.next, v.switch].contains(&i));
        if !structural && n.op == "Enter" && !bool_attr(n, "is_constant") {
            return Err(err(i, "a loop's Enter that is neither constant nor joined to a NextIteration".into()));
        }
    }

    // Arguments: the loop variables, then the captures. A TF node name cannot start with '_'.
    let arg = |k: usize| format!("_loop_var_{k}");
    let mut as_arg: HashMap<usize, usize> = HashMap::new(); // node -> its argument
    for (k, v) in vars.iter().enumerate() {
        as_arg.insert(v.merge, k);
    }
    for (k, &c) in captures.iter().enumerate() {
        as_arg.insert(c, vars.len() + k);
    }
    let switches: HashMap<usize, usize> = vars.iter().enumerate().map(|(k, v)| (v.switch, k)).collect();
    let member_set: HashSet<usize> = members.iter().copied().collect();
    // An input of a function's node, renamed: arguments for what crosses into the frame.
    let rename = |i: usize, input: &str| -> Result<(String, Option<usize>)> {
        let (control, name, slot) = parse_input(input);
        let j = by_name[name];
        let index = match slot {
            super::import::Slot::Index(k) => k,
            super::import::Slot::Arg(..) => 0,
        };
        // Control edges from the frame's entry anchor constants to it: in a function they
        // mean nothing (and a function's argument is no node to order after).
        if let Some(&k) = as_arg.get(&j) {
            if !control && index != 0 {
                return Err(err(i, format!("reads {input}, which a loop's function cannot give")));
            }
            return Ok((if control { String::new() } else { arg(k) }, None));
        }
        if let Some(&k) = switches.get(&j) {
            if !control && index != 1 {
                return Err(err(i, format!("reads {input}, the loop's exit, inside the loop")));
            }
            return Ok((if control { String::new() } else { arg(k) }, None));
        }
        if !member_set.contains(&j) || node[j].op == "NextIteration" {
            return Err(err(i, format!("reads {name} from outside its loop ({frame}) without an Enter")));
        }
        Ok((input.to_string(), Some(j)))
    };
    // The nodes `roots` read within the frame, in the file's order, inputs renamed.
    let function_nodes = |roots: &[usize]| -> Result<Vec<NodeDef>> {
        let mut seen = HashSet::new();
        let mut stack = roots.to_vec();
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            for input in &node[i].input {
                if let (_, Some(j)) = rename(i, input)? {
                    stack.push(j);
                }
            }
        }
        let mut out = Vec::with_capacity(seen.len());
        for &i in members.iter().filter(|i| seen.contains(i)) {
            let mut n = node[i].clone();
            let renamed = n.input.iter().map(|s| rename(i, s).map(|r| r.0)).collect::<Result<Vec<_>>>()?;
            n.input = renamed.into_iter().filter(|s| !s.is_empty()).collect();
            if n.op == "LoopCond" {
                n.op = "Identity".into();
            }
            out.push(n);
        }
        Ok(out)
    };
    let ret_of = |i: usize| -> Result<(String, Option<usize>)> { rename(i, first_input(i)?) };

    let dtypes: Vec<i32> = vars
        .iter()
        .map(|v| v.enter)
        .chain(captures.iter().copied())
        .map(|e| match node[e].attr.get("T").and_then(|a| a.value.as_ref()) {
            Some(&Attr::Type(t)) => Ok(t),
            _ => Err(err(e, "an Enter without its type T".into())),
        })
        .collect::<Result<_>>()?;
    let input_args: Vec<crate::proto::tf::ArgDef> =
        dtypes.iter().enumerate().map(|(k, &t)| crate::proto::tf::ArgDef { name: arg(k), r#type: t }).collect();
    let library = def.library.get_or_insert_with(FunctionDefLibrary::default);
    let taken: HashSet<&str> =
        library.function.iter().filter_map(|f| Some(f.signature.as_ref()?.name.as_str())).collect();
    let base: String = frame.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let unique = |suffix: &str| {
        let mut name = format!("{base}_{suffix}");
        while taken.contains(name.as_str()) {
            name.push('_');
        }
        name
    };
    let (cond_name, body_name) = (unique("cond"), unique("body"));

    let (pred, pred_node) = ret_of(loop_cond)?;
    let cond = FunctionDef {
        signature: Some(OpDef {
            name: cond_name.clone(),
            input_arg: input_args.clone(),
            output_arg: vec![crate::proto::tf::ArgDef {
                name: "pred".into(),
                r#type: crate::proto::dtype_enum(crate::DType::Bool),
            }],
            is_stateful: false,
        }),
        node_def: function_nodes(&pred_node.into_iter().collect::<Vec<_>>())?,
        ret: [("pred".to_string(), pred)].into(),
    };
    let mut body_roots = Vec::new();
    let mut ret = HashMap::new();
    for (k, v) in vars.iter().enumerate() {
        let (r, j) = ret_of(v.next)?;
        body_roots.extend(j);
        ret.insert(format!("out_{k}"), r);
    }
    for k in vars.len()..dtypes.len() {
        ret.insert(format!("out_{k}"), arg(k));
    }
    let body_nodes = function_nodes(&body_roots)?;
    let in_functions: HashSet<&str> = cond.node_def.iter().chain(&body_nodes).map(|n| n.name.as_str()).collect();
    // A node the loop computes but neither the condition nor a next value reads: what reads
    // it from outside (nothing may, but through an Exit) or what it does (an assignment) would
    // be lost without a word.
    for &i in &members {
        // An inner loop's Exit (now an Identity of its While) that nothing reads: TF writes
        // one for every loop variable.
        let inner_exit = node[i].op == "Identity"
            && node[i]
                .input
                .first()
                .and_then(|s| by_name.get(parse_input(s).1))
                .is_some_and(|&j| node[j].op == "While");
        let structural = i == loop_cond
            || inner_exit
            || captures.contains(&i)
            || vars.iter().any(|v| [v.enter, v.merge, v.next, v.switch].contains(&i));
        if !structural && !in_functions.contains(node[i].name.as_str()) {
            let detail = format!("it is in loop {frame} (it reads the loop's tensors), but no iteration reads it");
            return Err(err(i, detail));
        }
    }
    let body = FunctionDef {
        signature: Some(OpDef {
            name: body_name.clone(),
            input_arg: input_args.clone(),
            output_arg: input_args
                .iter()
                .enumerate()
                .map(|(k, a)| crate::proto::tf::ArgDef { name: format!("out_{k}"), r#type: a.r#type })
                .collect(),
            is_stateful: false,
        }),
        node_def: body_nodes,
        ret,
    };
    library.function.push(cond);
    library.function.push(body);

    // The While node, in the parent frame, where the first Exit (or the first Enter) was.
    let names: HashSet<&str> = node.iter().map(|n| n.name.as_str()).collect();
    let mut while_name = format!("{}/functional_while", frame.trim_end_matches("/while_context"));
    while names.contains(while_name.as_str()) {
        while_name.push('_');
    }
    let mut inputs: Vec<String> = vars
        .iter()
        .map(|v| v.enter)
        .chain(captures.iter().copied())
        .map(|e| first_input(e).map(str::to_string))
        .collect::<Result<_>>()?;
    for &e in vars.iter().map(|v| &v.enter).chain(&captures) {
        inputs.extend(node[e].input[1..].iter().filter(|s| s.starts_with('^')).cloned());
    }
    let func = |name: String| AttrValue { value: Some(Attr::Func(NameAttrList { name, attr: HashMap::new() })) };
    let mut attr: HashMap<String, AttrValue> = [
        (
            "T".to_string(),
            AttrValue { value: Some(Attr::List(ListValue { r#type: dtypes.clone(), ..Default::default() })) },
        ),
        ("cond".to_string(), func(cond_name)),
        ("body".to_string(), func(body_name)),
    ]
    .into();
    if let Some(p) = node[vars[0].enter].attr.get("parallel_iterations") {
        attr.insert("parallel_iterations".into(), p.clone());
    }
    let while_node =
        NodeDef { name: while_name.clone(), op: "While".into(), input: inputs, device: String::new(), attr };
    let exits: HashMap<usize, usize> = vars.iter().enumerate().filter_map(|(k, v)| Some((v.exit?, k))).collect();
    let position = exits.keys().min().copied().unwrap_or(vars[0].enter);
    let mut out = Vec::with_capacity(node.len());
    for (i, n) in node.iter().enumerate() {
        if i == position {
            out.push(while_node.clone());
        }
        if let Some(&k) = exits.get(&i) {
            let mut input = vec![format!("{while_name}:{k}")];
            input.extend(n.input[1..].iter().cloned());
            let t = n.attr.get("T").cloned().unwrap_or_default();
            out.push(NodeDef {
                name: n.name.clone(),
                op: "Identity".into(),
                input,
                device: n.device.clone(),
                attr: [("T".to_string(), t)].into(),
            });
        } else if !member_set.contains(&i) {
            out.push(n.clone());
        }
    }
    // Nothing outside may read the frame but through its Exits.
    let gone: HashSet<&str> = members.iter().map(|&i| node[i].name.as_str()).collect();
    for n in &out {
        for input in &n.input {
            let (_, name, _) = parse_input(input);
            if gone.contains(name) {
                return Err(bad_node(what, n, format!("reads {name} inside loop {frame} other than through an Exit")));
            }
        }
    }
    def.node = out;
    Ok(())
}
