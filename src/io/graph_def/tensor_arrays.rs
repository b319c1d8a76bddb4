//! TF1's `TensorArray`s (`TensorArrayV3` and the ops on its handle and flow, as
//! `tf.nn.dynamic_rnn` and `tf.TensorArray` write them in every TF 1.x graph) rewritten as
//! tensors before the import reads the graph: the array's flow (a dummy scalar TF threads
//! through its writes to order them) becomes the array itself, `[size, element...]`, and each
//! op on it the TF ops that compute the same (a write selects the value at its row, a read
//! gathers its row), so loops carry arrays as loop variables and TF's ops run them.
//!
//! The array starts as zeros whose unknown element dimensions are 1 (a batch TF learns at the
//! first write): selecting a written row broadcasts them to the written value's. As in TF, a
//! `TensorArray` holds `size` elements: arrays that grow (`dynamic_size`) and the gradient ops
//! of training graphs (`TensorArrayGradV3`) are errors naming the node; reading a row never
//! written gives zeros where TF fails, and a write past the end writes nothing.

use super::import::{bad_node, parse_input};
use crate::proto::tf::{Attr, AttrValue, GraphDef, NodeDef};
use crate::proto::{dtype_enum, dtype_from_enum};
use crate::{DType, Result, Value};
use std::collections::{HashMap, HashSet};

const OPS: [&str; 7] = [
    "TensorArrayWriteV3",
    "TensorArrayReadV3",
    "TensorArrayGatherV3",
    "TensorArrayScatterV3",
    "TensorArraySizeV3",
    "TensorArrayCloseV3",
    "TensorArrayV3",
];

/// `def` with its `TensorArray`s as tensors; `None` when it has none.
pub(super) fn rewrite_tensor_arrays(def: &GraphDef, what: &str) -> Result<Option<GraphDef>> {
    if !def.node.iter().any(|n| n.op == "TensorArrayV3") {
        return Ok(None);
    }
    let bad = |n: &NodeDef, detail: String| bad_node(what, n, detail);
    let by_name: HashMap<&str, usize> = def.node.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    let data_input = |n: &NodeDef, k: usize| -> Result<usize> {
        let s = input(what, n, k)?;
        by_name.get(parse_input(&s).1).copied().ok_or_else(|| bad(n, format!("input {s} names no node")))
    };
    // The array each handle-passing node (an Enter or Identity of a handle) carries the handle of.
    let mut array_of: HashMap<usize, usize> = HashMap::new();
    for (i, n) in def.node.iter().enumerate() {
        if n.op == "TensorArrayV3" {
            array_of.insert(i, i);
        }
    }
    loop {
        let before = array_of.len();
        for (i, n) in def.node.iter().enumerate() {
            if matches!(n.op.as_str(), "Enter" | "Identity") && !array_of.contains_key(&i) {
                let Ok(j) = data_input(n, 0) else { continue };
                let handle = parse_input(&n.input[0]).2;
                let is_handle = def.node[j].op != "TensorArrayV3" || matches!(handle, super::import::Slot::Index(0));
                if let (Some(&a), true) = (array_of.get(&j), is_handle) {
                    array_of.insert(i, a);
                }
            }
        }
        if array_of.len() == before {
            break;
        }
    }
    let passes_handle = |i: usize| def.node[i].op != "TensorArrayV3" && array_of.contains_key(&i);

    let mut out = Vec::with_capacity(def.node.len() * 2);
    let mut arrays: HashMap<String, DType> = HashMap::new(); // nodes whose output 0 is an array
    for (i, n) in def.node.iter().enumerate() {
        if passes_handle(i) {
            continue;
        }
        let op = n.op.as_str();
        if !OPS.contains(&op) {
            // Anything else reading a handle is an op on arrays this does not know.
            for s in &n.input {
                let (control, name, slot) = parse_input(s);
                let j = by_name.get(name).copied();
                let handle = j.is_some_and(|j| {
                    passes_handle(j)
                        || (def.node[j].op == "TensorArrayV3"
                            && matches!(slot, super::import::Slot::Index(0))
                            && !control)
                });
                if handle {
                    return Err(bad(n, format!("{op} on a TensorArray is not supported")));
                }
            }
            out.push(n.clone());
            continue;
        }
        let array = if op == "TensorArrayV3" {
            i
        } else {
            *array_of
                .get(&data_input(n, 0)?)
                .ok_or_else(|| bad(n, "its first input is not a TensorArray's handle".into()))?
        };
        let ta = &def.node[array];
        let dtype = type_attr(what, ta, "dtype")?;
        let element: Vec<i64> = match ta.attr.get("element_shape").and_then(|a| a.value.as_ref()) {
            Some(Attr::Shape(s)) if !s.unknown_rank => s.dim.iter().map(|d| d.size).collect(),
            _ => return Err(bad(ta, "a TensorArray whose elements' rank is unknown is not supported".into())),
        };
        let mut b = Builder { prefix: format!("{}/as_tensor", n.name), out: &mut out, anchor: String::new() };
        // Constants made here are ordered after an input in the same loop frame (as TF anchors
        // a loop's constants), so the loop's rewrite finds them inside it.
        let flow = |k: usize| input(what, n, k);
        let controls = n.input.iter().filter(|s| s.starts_with('^')).cloned();
        let made = match op {
            "TensorArrayV3" => {
                if matches!(n.attr.get("dynamic_size").and_then(|a| a.value.as_ref()), Some(Attr::B(true))) {
                    return Err(bad(n, "a TensorArray that grows (dynamic_size) is not supported".into()));
                }
                let size = flow(0)?;
                b.anchor = anchor(&size);
                b.zeros(&n.name, size, &element, dtype)
            }
            "TensorArrayReadV3" | "TensorArrayGatherV3" => {
                let (index, flow_in) = (flow(1)?, flow(2)?);
                b.anchor = anchor(&flow_in);
                let zero = b.konst("axis", Value::from(ndarray::arr0(0i32)));
                gather(&n.name, flow_in, index, zero, dtype)
            }
            "TensorArraySizeV3" => {
                let flow_in = flow(1)?;
                b.anchor = anchor(&flow_in);
                let rows = b.rows(&flow_in);
                NodeDef {
                    name: n.name.clone(),
                    op: "Identity".into(),
                    input: vec![rows],
                    attr: [("T".to_string(), ty(DType::I32))].into(),
                    ..Default::default()
                }
            }
            "TensorArrayWriteV3" | "TensorArrayScatterV3" => {
                let (index, value, flow_in) = (flow(1)?, flow(2)?, flow(3)?);
                b.anchor = anchor(&flow_in);
                let ids = b.row_ids(&flow_in);
                let zero = b.konst("zero", Value::from(ndarray::arr0(0i32)));
                let mut mask_shape = vec![-1i32];
                mask_shape.resize(element.len() + 1, 1);
                let mask_shape = b.konst("mask_shape", Value::from(ndarray::Array1::from(mask_shape)));
                let (hit, picked) = if op == "TensorArrayWriteV3" {
                    let hit = b.node("hit", "Equal", vec![ids, index], &[("T", ty(DType::I32))]);
                    let picked = b.node("value", "ExpandDims", vec![value, zero], &[("T", ty(dtype))]);
                    (hit, picked)
                } else {
                    // Row r takes the value at the first position of r in the indices.
                    let one = b.konst("one", Value::from(ndarray::arr0(1i32)));
                    let column = b.node("row_ids", "ExpandDims", vec![ids, one.clone()], &[("T", ty(DType::I32))]);
                    let eq = b.node("eq", "Equal", vec![column, index], &[("T", ty(DType::I32))]);
                    let eq = b.node("eq_int", "Cast", vec![eq], &[("SrcT", ty(DType::Bool)), ("DstT", ty(DType::I32))]);
                    let pos = b.node(
                        "position",
                        "ArgMax",
                        vec![eq.clone(), one.clone()],
                        &[("T", ty(DType::I32)), ("output_type", ty(DType::I32))],
                    );
                    let any = b.node("any", "Max", vec![eq, one], &[("T", ty(DType::I32))]);
                    let hit = b.node("hit", "Greater", vec![any, zero.clone()], &[("T", ty(DType::I32))]);
                    let picked = gather(&format!("{}/picked", b.prefix), value, pos, zero, dtype);
                    (hit, b.push(picked))
                };
                let mask = b.node("mask", "Reshape", vec![hit, mask_shape], &[("T", ty(DType::Bool))]);
                NodeDef {
                    name: n.name.clone(),
                    op: "SelectV2".into(),
                    input: vec![mask, picked, flow_in],
                    attr: [("T".to_string(), ty(dtype))].into(),
                    ..Default::default()
                }
            }
            // "TensorArrayCloseV3": nothing to free; what waited on it waits on its inputs.
            _ => NodeDef { name: n.name.clone(), op: "NoOp".into(), ..Default::default() },
        };
        let mut made = made;
        made.input.extend(controls);
        arrays.insert(made.name.clone(), dtype);
        out.push(made);
    }
    // The flow (TF's output 1 of TensorArrayV3) is the array, now the node's output 0; handles
    // were read only by what is gone.
    let tas: HashSet<&str> = def.node.iter().filter(|n| n.op == "TensorArrayV3").map(|n| n.name.as_str()).collect();
    for n in &mut out {
        for s in &mut n.input {
            let (control, name, slot) = parse_input(s);
            if !control && tas.contains(name) && matches!(slot, super::import::Slot::Index(1)) {
                *s = name.to_string();
            }
        }
    }
    retype_flows(&mut out, &arrays);
    Ok(Some(GraphDef { node: out, ..def.clone() }))
}

/// Node `n`'s data input `k`.
fn input(what: &str, n: &NodeDef, k: usize) -> Result<String> {
    let s = n.input.get(k).filter(|s| !s.starts_with('^'));
    s.cloned().ok_or_else(|| bad_node(what, n, format!("it has no input {k}")))
}

/// Node `n`'s type attribute `name`, a dtype tensorgraph has.
fn type_attr(what: &str, n: &NodeDef, name: &str) -> Result<DType> {
    match n.attr.get(name).and_then(|a| a.value.as_ref()) {
        Some(&Attr::Type(t)) => {
            dtype_from_enum(t).map_err(|t| bad_node(what, n, format!("{name} {t} is not supported")))
        }
        _ => Err(bad_node(what, n, format!("it has no type attribute {name}"))),
    }
}

/// The control input that orders a constant after the node of tensor `s`.
fn anchor(s: &str) -> String {
    format!("^{}", parse_input(s).1)
}

fn ty(d: DType) -> AttrValue {
    AttrValue { value: Some(Attr::Type(dtype_enum(d))) }
}

fn int(i: i64) -> AttrValue {
    AttrValue { value: Some(Attr::I(i)) }
}

fn gather(name: &str, params: String, indices: String, axis: String, dtype: DType) -> NodeDef {
    let attr = [("Tparams".to_string(), ty(dtype)), ("Taxis".to_string(), ty(DType::I32))];
    NodeDef {
        name: name.into(),
        op: "GatherV2".into(),
        input: vec![params, indices, axis],
        attr: attr.into(),
        ..Default::default()
    }
}

/// Nodes made for one op of an array, named under `prefix`, constants ordered after `anchor`.
struct Builder<'a> {
    prefix: String,
    out: &'a mut Vec<NodeDef>,
    anchor: String,
}

impl Builder<'_> {
    fn push(&mut self, n: NodeDef) -> String {
        let name = n.name.clone();
        self.out.push(n);
        name
    }

    fn node(&mut self, name: &str, op: &str, input: Vec<String>, attr: &[(&str, AttrValue)]) -> String {
        let attr = attr.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        self.push(NodeDef { name: format!("{}/{name}", self.prefix), op: op.into(), input, attr, ..Default::default() })
    }

    fn konst(&mut self, name: &str, v: Value) -> String {
        let attr =
            [("dtype", ty(v.dtype())), ("value", AttrValue { value: Some(Attr::Tensor(super::tensor_proto(&v))) })];
        let input = [self.anchor.clone()].into_iter().filter(|a| !a.is_empty()).collect();
        self.node(name, "Const", input, &attr)
    }

    /// Node `name`: zeros of `[size, element...]` (`size` a run-time int32 scalar), each
    /// unknown (-1) element dimension 1, the known ones in its static shape.
    fn zeros(&mut self, name: &str, size: String, element: &[i64], dtype: DType) -> NodeDef {
        let one = self.konst("shape", Value::from(ndarray::arr1(&[1i32])));
        let rows = self.node("rows", "Reshape", vec![size, one], &[("T", ty(DType::I32))]);
        let known: Vec<i32> = element.iter().map(|&d| if d < 0 { 1 } else { d as i32 }).collect();
        let dims = self.konst("element_dims", Value::from(ndarray::Array1::from(known.clone())));
        let axis = self.konst("axis", Value::from(ndarray::arr0(0i32)));
        let all = self.node("dims", "ConcatV2", vec![rows, dims, axis], &[("T", ty(DType::I32)), ("N", int(2))]);
        let zero = self.konst("zero", Value::filled(dtype, &[], 0.0));
        let zeros = self.node("zeros", "Fill", vec![all, zero], &[("T", ty(dtype))]);
        // The known element dimensions, for shape inference (Fill's dims are computed).
        let static_shape = self.konst("static_shape", Value::from(ndarray::Array1::from([vec![-1], known].concat())));
        let attr = [("T".to_string(), ty(dtype))].into();
        NodeDef {
            name: name.into(),
            op: "Reshape".into(),
            input: vec![zeros, static_shape],
            attr,
            ..Default::default()
        }
    }

    /// The number of rows of array `flow`, an int32 scalar.
    fn rows(&mut self, flow: &str) -> String {
        let shape = self.node("shape", "Shape", vec![flow.to_string()], &[("out_type", ty(DType::I32))]);
        let zero = self.konst("first", Value::from(ndarray::arr0(0i32)));
        let axis = self.konst("shape_axis", Value::from(ndarray::arr0(0i32)));
        self.push(gather(&format!("{}/rows", self.prefix), shape, zero, axis, DType::I32))
    }

    /// `0, 1, ..., rows - 1` of array `flow`.
    fn row_ids(&mut self, flow: &str) -> String {
        let rows = self.rows(flow);
        let start = self.konst("start", Value::from(ndarray::arr0(0i32)));
        let delta = self.konst("delta", Value::from(ndarray::arr0(1i32)));
        self.node("ids", "Range", vec![start, rows, delta], &[("Tidx", ty(DType::I32))])
    }
}

/// TF's flows are float scalars: the nodes passing an array through a loop (`Enter`, `Merge`,
/// `Switch`, `NextIteration`, `Exit`, `Identity`) take the array's type.
fn retype_flows(nodes: &mut [NodeDef], arrays: &HashMap<String, DType>) {
    let mut typed = arrays.clone();
    loop {
        let mut changed = false;
        for n in nodes.iter_mut() {
            if typed.contains_key(&n.name)
                || !matches!(n.op.as_str(), "Enter" | "Merge" | "Switch" | "NextIteration" | "Exit" | "Identity")
            {
                continue;
            }
            let from =
                n.input.iter().filter(|s| !s.starts_with('^')).find_map(|s| typed.get(parse_input(s).1).copied());
            if let Some(d) = from {
                n.attr.insert("T".into(), ty(d));
                typed.insert(n.name.clone(), d);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

/// `def` with TF 2's `TensorList`s (`dynamic_rnn` and `tf.TensorArray` in TF 2's graph mode,
/// inside functional `While`s) as tensors, in the graph and in every function of its library;
/// `None` when it has none. A list is a value already (a variant tensor passed by value): it
/// becomes the array `[length, element...]`, built as [`rewrite_tensor_arrays`] builds one, but
/// a set item gathers the list with the item appended (an index vector of the list's rows,
/// the item's in place of row `index`) so that it needs no rank, which a function's nodes do not
/// know.
pub(super) fn rewrite_tensor_lists(def: &GraphDef, what: &str) -> Result<Option<GraphDef>> {
    let is_list_op = |n: &NodeDef| n.op.starts_with("TensorList");
    let in_functions = def.library.iter().flat_map(|l| &l.function).flat_map(|f| &f.node_def);
    if !def.node.iter().chain(in_functions).any(is_list_op) {
        return Ok(None);
    }
    let mut def = def.clone();
    def.node = list_nodes(&def.node, what)?;
    if let Some(library) = def.library.as_mut() {
        for f in &mut library.function {
            let name = f.signature.as_ref().map_or("", |s| s.name.as_str()).to_string();
            f.node_def = list_nodes(&f.node_def, &format!("{what}, function {name}"))?;
        }
    }
    Ok(Some(def))
}

/// One graph's or function's nodes with their list ops rewritten.
fn list_nodes(nodes: &[NodeDef], what: &str) -> Result<Vec<NodeDef>> {
    let bad = |n: &NodeDef, detail: String| bad_node(what, n, detail);
    let by_name: HashMap<&str, &NodeDef> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut out = Vec::with_capacity(nodes.len());
    for n in nodes {
        if !n.op.starts_with("TensorList") {
            out.push(n.clone());
            continue;
        }
        let input = |k: usize| input(what, n, k);
        let dtype = type_attr(what, n, "element_dtype")?;
        let mut b = Builder { prefix: format!("{}/as_tensor", n.name), out: &mut out, anchor: String::new() };
        let identity = |x: String| NodeDef {
            name: n.name.clone(),
            op: "Identity".into(),
            input: vec![x],
            attr: [("T".to_string(), ty(dtype))].into(),
            ..Default::default()
        };
        let made = match n.op.as_str() {
            "TensorListFromTensor" | "TensorListStack" => identity(input(0)?),
            "TensorListGetItem" => {
                let axis = b.konst("axis", Value::from(ndarray::arr0(0i32)));
                gather(&n.name, input(0)?, input(1)?, axis, dtype)
            }
            "TensorListLength" => identity(b.rows(&input(0)?)),
            "TensorListReserve" => {
                // The element shape is a constant of this graph or function (-1: unknown).
                let shape = input(0)?;
                let c = by_name.get(parse_input(&shape).1).filter(|c| c.op == "Const");
                let value = c.and_then(|c| match c.attr.get("value").and_then(|a| a.value.as_ref()) {
                    Some(Attr::Tensor(t)) => super::tensor_value(t).ok(),
                    _ => None,
                });
                let element: Vec<i64> = match value {
                    Some(v) if v.shape().len() == 1 => v.to_f64_vec().iter().map(|&d| d as i64).collect(),
                    _ => return Err(bad(n, "a TensorList whose element shape is not a constant of known rank".into())),
                };
                b.zeros(&n.name, input(1)?, &element, dtype)
            }
            "TensorListSetItem" => {
                let (list, index, item) = (input(0)?, input(1)?, input(2)?);
                let axis = b.konst("axis", Value::from(ndarray::arr0(0i32)));
                // The list broadcast to the item's shape (its unknown dimensions are 1 until the
                // first item), the item appended as row `rows`, then every row gathered from it.
                let zeros = b.node("item_zeros", "ZerosLike", vec![item.clone()], &[("T", ty(dtype))]);
                let zeros = b.node("item_zeros_row", "ExpandDims", vec![zeros, axis.clone()], &[("T", ty(dtype))]);
                let wide = b.node("broadcast", "AddV2", vec![list.clone(), zeros], &[("T", ty(dtype))]);
                let row = b.node("item_row", "ExpandDims", vec![item, axis.clone()], &[("T", ty(dtype))]);
                let joined = b.node(
                    "appended",
                    "ConcatV2",
                    vec![wide.clone(), row, axis.clone()],
                    &[("T", ty(dtype)), ("N", int(2))],
                );
                let ids = b.row_ids(&wide);
                let rows = format!("{}/rows", b.prefix);
                let hit = b.node("hit", "Equal", vec![ids.clone(), index], &[("T", ty(DType::I32))]);
                let picked = b.node("picked", "SelectV2", vec![hit, rows, ids], &[("T", ty(DType::I32))]);
                gather(&n.name, joined, picked, axis, dtype)
            }
            other => return Err(bad(n, format!("{other} is not supported"))),
        };
        let mut made = made;
        made.input.extend(n.input.iter().filter(|s| s.starts_with('^')).cloned());
        out.push(made);
    }
    Ok(out)
}
