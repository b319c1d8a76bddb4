//! TF GraphDefs in and out, against a graph real TensorFlow wrote with every op tensorgraph
//! imports and TF's outputs for it (tests/fixtures/tf/make_graph_def_fixture.py).

mod common;

use prost::Message;
use serde::Deserialize;
use std::collections::BTreeMap;
use tensorgraph::io::graph_def::{from_graph_def, to_graph_def};
use tensorgraph::prelude::*;
use tensorgraph::proto::tf::{Attr, AttrValue, GraphDef, NodeDef};

#[derive(Deserialize)]
struct Output {
    shape: Vec<usize>,
    values: Vec<f64>,
}

#[derive(Deserialize)]
struct Fixture {
    x: Vec<Vec<f32>>,
    labels: Vec<i64>,
    outputs: BTreeMap<String, Output>,
}

fn fixture() -> (GraphDef, Fixture) {
    let bytes = std::fs::read("tests/fixtures/tf/ops_graph.pb").unwrap();
    let def = GraphDef::decode(bytes.as_slice()).unwrap();
    let fx = serde_json::from_str(&std::fs::read_to_string("tests/fixtures/tf/ops_graph.json").unwrap()).unwrap();
    (def, fx)
}

/// Runs every fixture output in `g` and compares with TF's values; returns how many matched.
fn check_outputs(g: &Graph, fx: &Fixture) -> usize {
    let sess = Session::new(g).unwrap();
    let x = g.tensor_by_name("x:0").unwrap();
    let labels = g.tensor_by_name("labels:0").unwrap();
    let xv = ndarray::Array2::from_shape_vec((fx.x.len(), 6), fx.x.concat()).unwrap().into_dyn();
    let lv = ndarray::Array1::from(fx.labels.clone()).into_dyn();
    for (name, want) in &fx.outputs {
        let t = g.tensor_by_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = sess.run(&[&t], &[(&x, xv.clone().into()), (&labels, lv.clone().into())]).unwrap().remove(0);
        assert_eq!(got.shape(), want.shape.as_slice(), "{name}");
        for (i, (a, b)) in got.to_f64_vec().iter().zip(&want.values).enumerate() {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{name}[{i}]: ours {a}, TF {b}");
        }
    }
    fx.outputs.len()
}

#[test]
fn a_tensorflow_graph_def_imports_and_gives_tensorflows_outputs() {
    let (def, fx) = fixture();
    let g = from_graph_def(&def, "ops_graph.pb").unwrap();
    assert_eq!(check_outputs(&g, &fx), 79);
    // Constant arguments are folded into their ops; constants read as data stay nodes.
    assert!(g.operation_by_name("sum/reduction_indices").is_err());
    assert!(g.operation_by_name("w").is_ok() && g.operation_by_name("sum").is_ok());
    let non_const = def.node.iter().filter(|n| n.op != "Const").count();
    assert!(g.operations().len() > non_const && g.operations().len() < def.node.len());
}

#[test]
fn export_then_import_keeps_every_node_and_output() {
    let (def, fx) = fixture();
    let g = from_graph_def(&def, "ops_graph.pb").unwrap();
    let out = to_graph_def(&g).unwrap();
    let again = from_graph_def(&GraphDef::decode(out.encode_to_vec().as_slice()).unwrap(), "again").unwrap();
    assert_eq!(check_outputs(&again, &fx), 79);
    // Every node but the constants keeps its name, TF op type and data inputs (TF's equal-parts
    // Split is our SplitV, whose sizes are written out).
    let theirs: BTreeMap<&str, &NodeDef> = def.node.iter().map(|n| (n.name.as_str(), n)).collect();
    let ours: BTreeMap<&str, &NodeDef> = out.node.iter().map(|n| (n.name.as_str(), n)).collect();
    for (name, t) in theirs.iter().filter(|(_, t)| t.op != "Const") {
        let o = ours.get(name).unwrap_or_else(|| panic!("{name} was lost"));
        assert!(o.op == t.op || (t.op.as_str(), o.op.as_str()) == ("Split", "SplitV"), "{name}: {} vs {}", o.op, t.op);
        if o.op != t.op {
            continue;
        }
        let data = |n: &NodeDef| n.input.iter().filter(|i| !i.starts_with('^')).count();
        assert_eq!(data(o), data(t), "{name}: inputs {:?} vs TF's {:?}", o.input, t.input);
    }
}

#[test]
fn a_graph_built_here_exports_with_constant_arguments_as_nodes() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(6)]).named("x").unwrap();
    let r = array::reshape(&x, &[-1, 3, 2]).unwrap();
    let m = math::reduce_mean(&r, Some(&[1])).named("m").unwrap();
    let def = to_graph_def(&g).unwrap();
    let names: Vec<&str> = def.node.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["x", "Reshape/shape", "Reshape", "m/reduction_indices", "m"]);
    let mean = &def.node[4];
    assert_eq!(
        (mean.op.as_str(), mean.input.clone()),
        ("Mean", vec!["Reshape".to_string(), "m/reduction_indices".into()])
    );
    let back = from_graph_def(&def, "built").unwrap();
    let (x2, m2) = (back.tensor_by_name("x:0").unwrap(), back.tensor_by_name("m:0").unwrap());
    assert_eq!(m2.shape(), m.shape());
    let xv = Value::from(ndarray::Array2::from_shape_fn((2, 6), |(i, j)| (i * 6 + j) as f32).into_dyn());
    let ours = Session::new(&g).unwrap().run(&[&m], &[(&x, (&xv).into())]).unwrap();
    let theirs = Session::new(&back).unwrap().run(&[&m2], &[(&x2, (&xv).into())]).unwrap();
    assert_eq!(ours, theirs);
}

fn node(name: &str, op: &str, inputs: &[&str]) -> NodeDef {
    NodeDef {
        name: name.into(),
        op: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn what_cannot_be_imported_names_the_node_and_the_op() {
    let (mut def, _) = fixture();
    let e = |d: &GraphDef| from_graph_def(d, "g.pb").unwrap_err().to_string();
    def.node.push(node("mystery", "FancyNewOp", &["x"]));
    let msg = e(&def);
    assert!(msg.contains("mystery") && msg.contains("FancyNewOp") && msg.contains("g.pb"), "{msg}");
    def.node.pop();
    def.node.push(node("dangling", "Identity", &["nowhere:0"]));
    assert!(e(&def).contains("nowhere"), "{}", e(&def));
    def.node.pop();
    // A reshape whose shape is computed at run time, of floats.
    def.node.push(node("dyn", "Reshape", &["x", "x"]));
    let msg = e(&def);
    assert!(msg.contains("dyn") && msg.contains("shape must be") && msg.contains("float32"), "{msg}");
    def.node.pop();
    // A cycle.
    def.node.push(node("cyc_a", "Identity", &["cyc_b"]));
    def.node.push(node("cyc_b", "Identity", &["cyc_a"]));
    assert!(e(&def).contains("cycle"), "{}", e(&def));
    def.node.truncate(def.node.len() - 2);
    // Two nodes of one name.
    def.node.push(node("x", "Identity", &["w"]));
    assert!(e(&def).contains("second node of that name"), "{}", e(&def));
    def.node.pop();
    // One output per slice: a count that is not the dimension's is refused before it allocates.
    let mut unpack = node("many", "Unpack", &["x"]);
    let int = |i| AttrValue { value: Some(Attr::I(i)) };
    unpack.attr.insert("num".into(), int(1 << 40));
    unpack.attr.insert("axis".into(), int(1));
    def.node.push(unpack);
    let msg = e(&def);
    assert!(msg.contains("many") && msg.contains("is not the size of axis 1"), "{msg}");
}

#[test]
fn a_broadcast_gradient_is_written_as_tf_spells_it_and_read_back_as_one_op() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(3)]).named("x").unwrap();
    let b = g.constant(ndarray::array![0.5f32, -1.0, 2.0]).named("b").unwrap();
    let loss = math::reduce_sum(&math::square(&(&x + &b).unwrap()).unwrap(), None).unwrap();
    let db = tensorgraph::gradients(&[&loss], &[&b], None).unwrap().remove(0).unwrap();
    let def = to_graph_def(&g).unwrap();
    let ops: Vec<&str> = def.node.iter().map(|n| n.op.as_str()).collect();
    assert!(ops.contains(&"BroadcastGradientArgs"), "{ops:?}");
    let back = from_graph_def(&def, "grad.pb").unwrap();
    assert_eq!(back.to_text(), g.to_text());
    let xv = Value::from(ndarray::array![[1.0f32, 2.0, 3.0], [0.0, -1.0, 4.0]].into_dyn());
    let ours = Session::new(&g).unwrap().run(&db, &[(&x, (&xv).into())]).unwrap();
    let (x2, db2) = (back.tensor_by_name("x:0").unwrap(), back.tensor_by_name(&db.name()).unwrap());
    assert_eq!(Session::new(&back).unwrap().run(&db2, &[(&x2, (&xv).into())]).unwrap(), ours);
}

/// TF's `IdentityN` passes its inputs on; reading an output it does not have is an error
/// naming it, and so is a mark (ours) naming inputs that do not exist.
#[test]
fn an_identity_n_and_a_forged_mark_are_read_or_refused_by_name() {
    let (mut def, fx) = fixture();
    def.node.push(node("pair", "IdentityN", &["x", "x"]));
    def.node.push(node("second", "Neg", &["pair:1"]));
    let g = from_graph_def(&def, "g.pb").unwrap();
    let (x, second) = (g.tensor_by_name("x:0").unwrap(), g.tensor_by_name("second:0").unwrap());
    let xv = ndarray::Array2::from_shape_vec((fx.x.len(), fx.x[0].len()), fx.x.concat()).unwrap();
    let got = Session::new(&g).unwrap().run(&second, feed! {x => &xv}).unwrap().to_f64_vec();
    assert!(got.iter().zip(xv.iter()).all(|(a, b)| *a == -f64::from(*b)));
    def.node.last_mut().unwrap().input = vec!["pair:2".into()];
    let e = from_graph_def(&def, "g.pb").unwrap_err().to_string();
    assert!(e.contains("pair") && e.contains("IdentityN") && e.contains("no output"), "{e}");
    def.node.truncate(def.node.len() - 2);
    let mut forged = node("forged", "Neg", &["x"]);
    let strings = |v: &[&str]| AttrValue {
        value: Some(Attr::List(tensorgraph::proto::tf::ListValue {
            s: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
            ..Default::default()
        })),
    };
    forged.attr.insert("_tg_op".into(), AttrValue { value: Some(Attr::S(b"TgSliceGrad".to_vec())) });
    forged.attr.insert("_tg_inputs".into(), strings(&["x", "nowhere", "x"]));
    forged.attr.insert("_tg_parts".into(), strings(&[]));
    def.node.push(forged);
    let e = from_graph_def(&def, "g.pb").unwrap_err().to_string();
    assert!(e.contains("nowhere"), "{e}");
}

/// TF's compact constants (one value repeated to fill the shape) can declare more than memory
/// holds in a few bytes: an error naming the node, not an abort.
#[test]
fn a_compact_constant_too_large_for_memory_is_an_error() {
    use tensorgraph::proto::tf::{Attr, AttrValue, Dim, TensorProto, TensorShapeProto};
    let huge = TensorProto {
        dtype: 1,
        tensor_shape: Some(TensorShapeProto { dim: vec![Dim { size: 1 << 40 }], unknown_rank: false }),
        float_val: vec![0.0],
        ..Default::default()
    };
    let mut c = node("zeros", "Const", &[]);
    c.attr.insert("dtype".into(), AttrValue { value: Some(Attr::Type(1)) });
    c.attr.insert("value".into(), AttrValue { value: Some(Attr::Tensor(huge)) });
    let def = GraphDef { node: vec![c], ..Default::default() };
    let e = from_graph_def(&def, "huge.pb").unwrap_err().to_string();
    assert!(e.contains("zeros") && e.contains("allocate"), "{e}");
}

#[derive(Deserialize)]
struct LoopFixture {
    x: Vec<Vec<f32>>,
    n: i32,
    ops: Vec<String>,
    outputs: BTreeMap<String, Output>,
}

/// TF's functional loops and conditionals (`make_control_flow_graph_fixture.py`: a counted loop
/// over captured tensors with a fed trip count, a `cond`, a loop growing a tensor with a `cond`
/// inside, nested loops) with TF's outputs.
fn loop_fixture() -> (GraphDef, LoopFixture) {
    let bytes = std::fs::read("tests/fixtures/tf/control_flow_graph.pb").unwrap();
    let def = GraphDef::decode(bytes.as_slice()).unwrap();
    let text = std::fs::read_to_string("tests/fixtures/tf/control_flow_graph.json").unwrap();
    (def, serde_json::from_str(&text).unwrap())
}

fn check_loop_outputs(g: &Graph, fx: &LoopFixture) -> usize {
    let sess = Session::new(g).unwrap();
    let (x, n) = (g.tensor_by_name("x:0").unwrap(), g.tensor_by_name("n:0").unwrap());
    let xv = ndarray::Array2::from_shape_vec((fx.x.len(), 3), fx.x.concat()).unwrap();
    for (name, want) in &fx.outputs {
        let t = g.tensor_by_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = sess.run(&t, feed! {x => &xv, n => fx.n}).unwrap();
        assert_eq!(got.shape(), want.shape.as_slice(), "{name}");
        for (i, (a, b)) in got.to_f64_vec().iter().zip(&want.values).enumerate() {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{name}[{i}]: ours {a}, TF {b}");
        }
    }
    fx.outputs.len()
}

#[test]
fn tensorflows_functional_loops_and_conditionals_import_and_give_its_outputs() {
    let (def, fx) = loop_fixture();
    assert!(fx.ops.contains(&"StatelessWhile".into()) && fx.ops.contains(&"StatelessIf".into()));
    assert_eq!(def.library.as_ref().unwrap().function.len(), 14);
    let g = from_graph_def(&def, "control_flow_graph.pb").unwrap();
    assert_eq!(check_loop_outputs(&g, &fx), 6);
    // Written back (functions into the library, `node:output_arg:index` names), read again.
    let out = to_graph_def(&g).unwrap();
    assert_eq!(out.library.as_ref().unwrap().function.len(), 14);
    let again = from_graph_def(&GraphDef::decode(out.encode_to_vec().as_slice()).unwrap(), "again").unwrap();
    assert_eq!(check_loop_outputs(&again, &fx), 6);
}

#[derive(Deserialize)]
struct V1Fixture {
    x: Vec<Vec<f32>>,
    ops: Vec<String>,
    /// By the value fed to the second placeholder, then by tensor.
    outputs: BTreeMap<String, BTreeMap<String, Output>>,
}

/// Checks every output of `fx` with `x` and `second` fed (the key of `fx.outputs`, as `feed`
/// makes it); the number checked.
fn check_v1_outputs(g: &Graph, fx: &V1Fixture, second: &str, feed: impl Fn(&str) -> Feed<'static>) -> usize {
    let sess = Session::new(g).unwrap();
    let (x, other) = (g.tensor_by_name("x:0").unwrap(), g.tensor_by_name(second).unwrap());
    let xv = ndarray::Array2::from_shape_vec((fx.x.len(), 3), fx.x.concat()).unwrap();
    let mut checked = 0;
    for (fed, outputs) in &fx.outputs {
        for (name, want) in outputs {
            let t = g.tensor_by_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            let got =
                sess.run(&t, feed! {x => xv.clone(), other => feed(fed)}).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got.shape(), want.shape.as_slice(), "{name}, {second} = {fed}");
            for (i, (a, b)) in got.to_f64_vec().iter().zip(&want.values).enumerate() {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{name}[{i}], {second} = {fed}: ours {a}, TF {b}");
            }
            checked += 1;
        }
    }
    checked
}

fn v1_fixture(name: &str) -> (GraphDef, V1Fixture) {
    let bytes = std::fs::read(format!("tests/fixtures/tf/{name}.pb")).unwrap();
    let def = GraphDef::decode(bytes.as_slice()).unwrap();
    let text = std::fs::read_to_string(format!("tests/fixtures/tf/{name}.json")).unwrap();
    (def, serde_json::from_str(&text).unwrap())
}

/// TF1's conditionals (`make_control_flow_v1_graph_fixture.py`: `tf.cond` in graph mode after
/// `disable_v2_behavior()`, as every TF 1.x graph has them: `Switch`/`Merge`, constants ordered
/// after their branch's pivot, a cond inside a cond, several outputs) run with TF's outputs for
/// both values of the predicate, and are written back as the same ops.
#[test]
fn tensorflow_1_conditionals_import_and_give_its_outputs() {
    let (def, fx) = v1_fixture("control_flow_v1_graph");
    assert!(fx.ops.contains(&"Switch".into()) && fx.ops.contains(&"Merge".into()));
    let g = from_graph_def(&def, "control_flow_v1_graph.pb").unwrap();
    let pred = |fed: &str| Feed::from(fed == "true");
    assert_eq!(check_v1_outputs(&g, &fx, "training:0", pred), 10);
    let out = to_graph_def(&g).unwrap();
    assert!(out.node.iter().any(|n| n.op == "Switch") && out.node.iter().any(|n| n.op == "Merge"));
    let again = from_graph_def(&GraphDef::decode(out.encode_to_vec().as_slice()).unwrap(), "again").unwrap();
    assert_eq!(check_v1_outputs(&again, &fx, "training:0", pred), 10);

    // A tensor on the branch not taken is an error naming it; gradients through Switch are
    // refused rather than silently zero.
    let sess = Session::new(&g).unwrap();
    let (x, training) = (g.tensor_by_name("x:0").unwrap(), g.tensor_by_name("training:0").unwrap());
    let in_true_branch = g.tensor_by_name("simple/mul:0").unwrap();
    let xv = ndarray::Array2::<f32>::ones((2, 3));
    let e = sess.run(&in_true_branch, feed! {x => &xv, training => false}).unwrap_err().to_string();
    assert!(e.contains("simple/mul") && e.contains("dead"), "{e}");
    let v: ndarray::ArrayD<f32> =
        sess.run(&in_true_branch, feed! {x => &xv, training => true}).unwrap().try_into().unwrap();
    assert!(v.iter().all(|&v| v == 2.0));
    let y = g.tensor_by_name("simple_out:0").unwrap();
    let e = tensorgraph::gradients(&[&math::reduce_sum(&y, None).unwrap()], &[&x], None).unwrap_err().to_string();
    assert!(e.contains("Merge"), "{e}");
}

/// TF1's loops (`make_while_v1_graph_fixture.py`: `tf.while_loop` in graph mode after
/// `disable_v2_behavior()`, as every TF 1.x graph has them: `Enter`/`Merge`/`Switch`/`LoopCond`/
/// `NextIteration`/`Exit` frames; tensors from outside read in the body, a loop inside a loop, a
/// conditional in the body, `maximum_iterations`, a loop variable that grows) run with TF's
/// outputs for a run-time trip count of 0 and 3, and are written back as functional `While`s.
#[test]
fn tensorflow_1_loops_import_and_give_its_outputs() {
    let (def, fx) = v1_fixture("while_v1_graph");
    assert!(["Enter", "Exit", "NextIteration", "LoopCond"].iter().all(|op| fx.ops.contains(&op.to_string())));
    let g = from_graph_def(&def, "while_v1_graph.pb").unwrap();
    let trips = |fed: &str| Feed::from(fed.parse::<i32>().unwrap());
    assert_eq!(check_v1_outputs(&g, &fx, "n:0", trips), 16);
    let out = to_graph_def(&g).unwrap();
    assert!(out.node.iter().all(|n| !["Enter", "Exit", "NextIteration", "LoopCond"].contains(&n.op.as_str())));
    assert_eq!(out.node.iter().filter(|n| n.op == "StatelessWhile").count(), 7, "the inner loop is in a body");
    let again = from_graph_def(&GraphDef::decode(out.encode_to_vec().as_slice()).unwrap(), "again").unwrap();
    assert_eq!(check_v1_outputs(&again, &fx, "n:0", trips), 16);
}

#[derive(Deserialize)]
struct RnnFixture {
    /// By batch size.
    x: BTreeMap<String, Vec<f32>>,
    ops: Vec<String>,
    outputs: BTreeMap<String, BTreeMap<String, Output>>,
}

/// Checks a `dynamic_rnn` fixture's outputs for each batch size; the number checked.
fn check_rnn_outputs(g: &Graph, fx: &RnnFixture) -> usize {
    let sess = Session::new(g).unwrap();
    let x = g.tensor_by_name("x:0").unwrap();
    let mut checked = 0;
    for (batch, xs) in &fx.x {
        let xv = ndarray::Array3::from_shape_vec((batch.parse().unwrap(), 5, 4), xs.clone()).unwrap();
        for (name, want) in &fx.outputs[batch] {
            let t = g.tensor_by_name(name).unwrap();
            let got = sess.run(&t, feed! {x => &xv}).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got.shape(), want.shape.as_slice(), "{name}, batch {batch}");
            for (i, (a, b)) in got.to_f64_vec().iter().zip(&want.values).enumerate() {
                assert!((a - b).abs() <= 1e-5, "{name}[{i}], batch {batch}: ours {a}, TF {b}");
            }
            checked += 1;
        }
    }
    checked
}

fn rnn_fixture(name: &str) -> (GraphDef, RnnFixture) {
    let bytes = std::fs::read(format!("tests/fixtures/tf/{name}.pb")).unwrap();
    let text = std::fs::read_to_string(format!("tests/fixtures/tf/{name}.json")).unwrap();
    (GraphDef::decode(bytes.as_slice()).unwrap(), serde_json::from_str(&text).unwrap())
}

/// TF1's `dynamic_rnn` as TF 1.x graphs have it (`make_dynamic_rnn_fixtures.py v1`: a
/// BasicLSTMCell and a GRUCell, each a while frame over `TensorArrayV3`s, frozen) gives TF's
/// logits and sequence for batches of 3 and 1, and is written back as TF ops.
#[test]
fn tensorflow_1_dynamic_rnn_imports_and_gives_its_outputs() {
    let (def, fx) = rnn_fixture("dynamic_rnn_v1_graph");
    assert!(fx.ops.contains(&"TensorArrayScatterV3".into()) && fx.ops.contains(&"LoopCond".into()));
    let g = from_graph_def(&def, "dynamic_rnn_v1_graph.pb").unwrap();
    assert_eq!(check_rnn_outputs(&g, &fx), 4);
    // The transpose's perm, a ConcatV2 of a Range of constants, is computed at import (TF's
    // constant folding) and not made; the sequence keeps its known width.
    assert!(g.operation_by_name("lstm/rnn/concat").is_err());
    assert_eq!(g.tensor_by_name("sequence_out:0").unwrap().shape().to_string(), "[?,?,8]");
    let out = to_graph_def(&g).unwrap();
    assert!(out.node.iter().all(|n| !n.op.starts_with("TensorArray")));
    let again = from_graph_def(&GraphDef::decode(out.encode_to_vec().as_slice()).unwrap(), "again").unwrap();
    assert_eq!(check_rnn_outputs(&again, &fx), 4);
}

/// The same in TF 2's graph mode (`make_dynamic_rnn_fixtures.py v2`: eager off, control flow v2,
/// as `../shared/peers/tf_rnn_peer.py` builds it): `StatelessWhile`s over `TensorList`s.
#[test]
fn tensorflow_2_graph_mode_dynamic_rnn_imports_and_gives_its_outputs() {
    let (def, fx) = rnn_fixture("dynamic_rnn_v2_graph");
    assert!(fx.ops.contains(&"TensorListSetItem".into()) && fx.ops.contains(&"StatelessWhile".into()));
    let g = from_graph_def(&def, "dynamic_rnn_v2_graph.pb").unwrap();
    assert_eq!(check_rnn_outputs(&g, &fx), 4);
    let out = to_graph_def(&g).unwrap();
    let functions = out.library.as_ref().map_or(vec![], |l| l.function.iter().flat_map(|f| &f.node_def).collect());
    assert!(out.node.iter().chain(functions).all(|n| !n.op.starts_with("TensorList")));
    let again = from_graph_def(&GraphDef::decode(out.encode_to_vec().as_slice()).unwrap(), "again").unwrap();
    assert_eq!(check_rnn_outputs(&again, &fx), 4);
}

/// What TF1's `TensorArray`s do that the import does not (grow, concatenate) is an error naming
/// the node.
#[test]
fn unsupported_tensor_arrays_are_errors() {
    let bytes = std::fs::read("tests/fixtures/tf/dynamic_rnn_v1_graph.pb").unwrap();
    let def = GraphDef::decode(bytes.as_slice()).unwrap();
    let edit = |name: &str, f: &dyn Fn(&mut NodeDef)| {
        let mut d = def.clone();
        f(d.node.iter_mut().find(|n| n.name == name).unwrap());
        from_graph_def(&d, "edited").map(|_| ()).unwrap_err().to_string()
    };
    let e = edit("lstm/rnn/TensorArray", &|n| {
        n.attr.insert("dynamic_size".into(), AttrValue { value: Some(Attr::B(true)) });
    });
    assert!(e.contains("lstm/rnn/TensorArray (TensorArrayV3)") && e.contains("dynamic_size"), "{e}");
    let e = edit("lstm/rnn/TensorArrayStack/TensorArrayGatherV3", &|n| n.op = "TensorArrayConcatV3".into());
    assert!(e.contains("lstm/rnn/TensorArrayStack/TensorArrayGatherV3") && e.contains("TensorArrayConcatV3"), "{e}");
    let e = edit("lstm/rnn/TensorArray", &|n| {
        n.attr.remove("element_shape");
    });
    assert!(e.contains("lstm/rnn/TensorArray") && e.contains("rank is unknown"), "{e}");
    // TF 2's lists: an op on them the import does not know.
    let (mut v2, _) = rnn_fixture("dynamic_rnn_v2_graph");
    let stack = v2.node.iter_mut().find(|n| n.op == "TensorListStack").unwrap();
    stack.op = "TensorListConcatV2".into();
    let name = stack.name.clone();
    let e = from_graph_def(&v2, "edited").map(|_| ()).unwrap_err().to_string();
    assert!(e.contains(&name) && e.contains("TensorListConcatV2 is not supported"), "{e}");
}

/// Broken TF1 loop frames are errors naming the node, not panics or wrong loops.
#[test]
fn broken_tensorflow_1_loops_are_errors() {
    let (def, _) = v1_fixture("while_v1_graph");
    let edit = |f: &dyn Fn(&mut Vec<NodeDef>)| {
        let mut d = def.clone();
        f(&mut d.node);
        from_graph_def(&d, "edited").map(|_| ()).unwrap_err().to_string()
    };
    let find = |nodes: &mut Vec<NodeDef>, name: &str| nodes.iter().position(|n| n.name == name).unwrap();
    let e = edit(&|n| {
        let i = find(n, "power/LoopCond");
        n[i].op = "Identity".into();
    });
    assert!(e.contains("power/while_context has 0 LoopCond"), "{e}");
    let e = edit(&|n| {
        let i = find(n, "power_out");
        n[i].input = vec!["power/Merge_1".into()];
    });
    assert!(e.contains("power_out") && e.contains("no iteration reads it"), "{e}");
    let e = edit(&|n| {
        let i = find(n, "power/Exit_1");
        n[i].input = vec!["x".into()];
    });
    assert!(e.contains("power/Exit_1") && e.contains("outside any loop"), "{e}");
    let e = edit(&|n| {
        let i = find(n, "power/NextIteration_1");
        n[i].input.clear();
    });
    assert!(e.contains("power/NextIteration_1") && e.contains("no data input"), "{e}");
    let e = edit(&|n| {
        let i = find(n, "power/MatMul");
        n[i].input[1] = "w".into();
    });
    assert!(e.contains("power/MatMul") && e.contains("reads w from outside its loop"), "{e}");
}

#[test]
fn loops_and_conditionals_built_here_export_and_import() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(2)]).named("x").unwrap();
    let steps = g.placeholder(DType::I32, Shape::scalar()).named("steps").unwrap();
    let w = g.constant(ndarray::array![[0.5f32, -1.0], [1.0, 0.25]].into_dyn()).named("w").unwrap();
    let zero = g.scalar(0.0, DType::I32).unwrap();
    // Captures in both functions (steps in cond, x and w in the body), a cond in the body.
    let out = tensorgraph::while_loop(
        |v| math::less(&v[0], &steps),
        |v| {
            let one = v[0].graph().scalar(1.0, DType::I32)?;
            let next = nn::tanh(&((&math::matmul(&v[1], &w, false, false)? + &x)?))?;
            let big = math::greater(&math::reduce_sum(&next, None)?, &v[0].graph().scalar(0.0, DType::F32)?)?;
            let picked = tensorgraph::cond(&big, || Ok(vec![next.clone()]), || Ok(vec![math::neg(&next)?]))?;
            Ok(vec![math::add(&v[0], &one)?, picked[0].clone()])
        },
        &[&zero, &array::zeros_like(&x).unwrap()],
        None,
    )
    .unwrap();
    math::square(&out[1]).unwrap().named("y").unwrap();
    // Stopped by maximum_iterations (2) before its condition (100 steps).
    let capped = tensorgraph::while_loop(
        |v| math::less(&v[0], &v[0].graph().scalar(100.0, DType::I32)?),
        |v| Ok(vec![math::add(&v[0], &v[0].graph().scalar(1.0, DType::I32)?)?, (&(&v[1] * 0.5)? + &x)?]),
        &[&zero, &x],
        Some(2),
    )
    .unwrap();
    math::identity(&capped[1]).unwrap().named("z").unwrap();
    let xv = ndarray::array![[0.3f32, -0.2], [1.0, 0.5], [-2.0, 0.1]];
    let run = |g: &Graph| -> (ndarray::ArrayD<f32>, ndarray::ArrayD<f32>) {
        let [x, steps, y, z] = ["x:0", "steps:0", "y:0", "z:0"].map(|n| g.tensor_by_name(n).unwrap());
        let (a, b) = Session::new(g).unwrap().run((&y, &z), feed! {x => &xv, steps => 3}).unwrap();
        (a.try_into().unwrap(), b.try_into().unwrap())
    };
    let (want, want_z) = run(&g);
    // x, then x/2 + x, then 3x/4 + x.
    assert!(want_z.iter().zip(xv.iter()).all(|(z, x)| (z - 1.75 * x).abs() < 1e-6), "{want_z}");
    let def = to_graph_def(&g).unwrap();
    let names: Vec<&str> =
        def.library.as_ref().unwrap().function.iter().map(|f| f.signature.as_ref().unwrap().name.as_str()).collect();
    assert_eq!(names.len(), 6, "{names:?}"); // cond, body, the body's then and else; the capped loop's
    let back = from_graph_def(&GraphDef::decode(def.encode_to_vec().as_slice()).unwrap(), "back").unwrap();
    assert_eq!(run(&back), (want.clone(), want_z.clone()));
    assert!(want.iter().all(|v| *v > 0.0));
    // For tests/tf_interop.py, which runs this graph in TensorFlow.
    if let Ok(dir) = std::env::var("TG_INTEROP_OUT") {
        let dir = std::path::Path::new(&dir);
        std::fs::write(dir.join("loops.pb"), def.encode_to_vec()).unwrap();
        let values = |a: &ndarray::ArrayD<f32>| a.iter().copied().collect::<Vec<_>>();
        let fx = serde_json::json!({"x": values(&xv.clone().into_dyn()), "steps": 3, "y": values(&want), "z": values(&want_z)});
        std::fs::write(dir.join("loops.json"), fx.to_string()).unwrap();
    }
}

/// A loop's gradient (`WhileGrad`) is written as TF writes one, two loops (the forward one
/// keeping each iteration's variables, the backward one applying the body's gradient), and
/// read back as those loops with the same gradients: for 3 trips, none, and a loop capped by
/// `maximum_iterations`.
#[test]
fn a_loops_gradient_is_written_as_two_loops() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(2)]).named("x").unwrap();
    let w = g.placeholder(DType::F32, [Some(2), Some(2)]).named("w").unwrap();
    let steps = g.placeholder(DType::I32, Shape::scalar()).named("steps").unwrap();
    let zero = g.scalar(0.0, DType::I32).unwrap();
    // Captures: steps in the condition, w and x in the body.
    let looped = |max: Option<u64>| {
        tensorgraph::while_loop(
            |v| math::less(&v[0], &steps),
            |v| {
                let one = v[0].graph().scalar(1.0, DType::I32)?;
                Ok(vec![math::add(&v[0], &one)?, nn::tanh(&((&math::matmul(&v[1], &w, false, false)? + &x)?))?])
            },
            &[&zero, &x],
            max,
        )
        .unwrap()
    };
    let (free, capped) = (looped(None), looped(Some(2)));
    let y = math::add(
        &math::reduce_sum(&math::square(&free[1]).unwrap(), None).unwrap(),
        &math::reduce_sum(&capped[1], None).unwrap(),
    )
    .unwrap()
    .named("y")
    .unwrap();
    let mut grads = tensorgraph::gradients(&[&y], &[&x, &w], None).unwrap().into_iter();
    grads.next().flatten().unwrap().named("dx").unwrap();
    grads.next().flatten().unwrap().named("dw").unwrap();
    let xv = ndarray::array![[0.3f32, -0.2], [1.0, 0.5], [-2.0, 0.1]];
    let wv = ndarray::array![[0.5f32, -1.0], [1.0, 0.25]];
    let run = |g: &Graph, n: i32| -> Vec<Vec<f64>> {
        let [x, w, steps] = ["x:0", "w:0", "steps:0"].map(|s| g.tensor_by_name(s).unwrap());
        let fetches = ["y:0", "dx:0", "dw:0"].map(|s| g.tensor_by_name(s).unwrap());
        let sess = Session::new(g).unwrap();
        let out = sess.run(&fetches.iter().collect::<Vec<_>>(), feed! {x => &xv, w => &wv, steps => n}).unwrap();
        out.iter().map(|v| v.to_f64_vec()).collect()
    };
    let def = to_graph_def(&g).unwrap();
    let ops: Vec<&str> = def.node.iter().filter(|n| n.name.contains("WhileGrad")).map(|n| n.op.as_str()).collect();
    assert_eq!(ops.iter().filter(|&&op| op == "StatelessWhile").count(), 4, "{ops:?}");
    assert!(def.node.iter().all(|n| !n.op.starts_with("Tg")));
    let back = from_graph_def(&GraphDef::decode(def.encode_to_vec().as_slice()).unwrap(), "back").unwrap();
    for n in [3, 0] {
        let (want, got) = (run(&g, n), run(&back, n));
        for (a, b) in want.iter().zip(&got) {
            assert!(a.iter().zip(b).all(|(a, b)| (a - b).abs() <= 1e-6), "{n} steps: {want:?} vs {got:?}");
        }
    }
    // No trip: y = sum(x²) + sum(x), so dx = 2x + 1 and dw = 0 (through the empty histories).
    let none = run(&g, 0);
    assert!(none[1].iter().zip(xv.iter()).all(|(d, &x)| (d - (2.0 * x as f64 + 1.0)).abs() < 1e-6), "{none:?}");
    assert!(none[2].iter().all(|&d| d == 0.0) && run(&g, 3)[2].iter().all(|&d| d != 0.0));
    // For tests/tf_interop.py, which runs this graph in TensorFlow.
    if let Ok(dir) = std::env::var("TG_INTEROP_OUT") {
        let dir = std::path::Path::new(&dir);
        std::fs::write(dir.join("loop_grad.pb"), def.encode_to_vec()).unwrap();
        let fx = serde_json::json!({"x": xv.iter().collect::<Vec<_>>(), "w": wv.iter().collect::<Vec<_>>(),
            "outputs": {"3": run(&g, 3), "0": run(&g, 0)}});
        std::fs::write(dir.join("loop_grad.json"), fx.to_string()).unwrap();
    }
}

/// The gradient of a slice at a run-time place (`SliceGrad`) is written as TF's gradient of
/// `Slice` is, a `Pad` whose paddings are computed from the shapes; a file tensorgraph writes
/// for itself reads it back as `SliceGrad` (its mark), with the same values.
#[test]
fn a_run_time_slices_gradient_is_written_as_a_pad() {
    use tensorgraph::io::graph_def::to_graph_def_with_private_ops;
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(5)]).named("x").unwrap();
    let begin = g.placeholder(DType::I32, [Some(2)]).named("begin").unwrap();
    let size = g.constant(ndarray::array![2i32, -1]).unwrap();
    let part = array::slice_dynamic(&x, &begin, &size).unwrap();
    let y = math::reduce_sum(&math::square(&part).unwrap(), None).unwrap();
    tensorgraph::gradients(&[&y], &[&x], None).unwrap().remove(0).unwrap().named("dx").unwrap();
    let xv = ndarray::Array2::from_shape_fn((4, 5), |(i, j)| (i * 5 + j) as f32 * 0.25 - 2.1);
    let run = |g: &Graph| {
        let [x, begin, dx] = ["x:0", "begin:0", "dx:0"].map(|n| g.tensor_by_name(n).unwrap());
        Session::new(g).unwrap().run(&dx, feed! {x => &xv, begin => ndarray::array![1i32, 2]}).unwrap()
    };
    let want = run(&g);
    assert_eq!(want.to_f64_vec().iter().filter(|v| **v != 0.0).count(), 6);
    let def = to_graph_def(&g).unwrap();
    assert!(def.node.iter().any(|n| n.op == "Pad") && def.node.iter().all(|n| !n.op.starts_with("Tg")));
    let own = to_graph_def_with_private_ops(&g).unwrap();
    let back = from_graph_def(&own, "own").unwrap();
    assert!(back.to_text().contains("SliceGrad") && !back.to_text().contains("Pack"), "{}", back.to_text());
    assert_eq!(run(&back), want);
    if let Ok(dir) = std::env::var("TG_INTEROP_OUT") {
        let dir = std::path::Path::new(&dir);
        std::fs::write(dir.join("slice_grad.pb"), def.encode_to_vec()).unwrap();
        let fx = serde_json::json!({"x": xv.iter().collect::<Vec<_>>(), "begin": [1, 2], "dx": want.to_f64_vec()});
        std::fs::write(dir.join("slice_grad.json"), fx.to_string()).unwrap();
    }
}

/// Trains `g` (its loss `loss:0`, its `train_op`) three steps from a checkpoint, then again in
/// the graph its `.meta` reads back as, from the same checkpoint: the losses must agree. With
/// `TG_INTEROP_OUT`, leaves the files and the feeds under `<it>/<name>` for tests/tf_interop.py
/// to train in TF. Returns the graph read back.
fn trains_the_same_from_its_meta_graph(g: &Graph, name: &str, feeds: &[(&str, Value)]) -> Graph {
    use tensorgraph::io::{export_meta_graph, import_meta_graph, Saver};
    let dir = common::scratch(&format!("meta-{name}"));
    let sess = Session::new(g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    let ckpt = Saver::new(g).save(&sess, dir.join("model"), Some(0)).unwrap();
    let meta = dir.join("model.meta");
    export_meta_graph(g, &meta).unwrap();
    let steps = |g: &Graph, sess: &Session| -> Vec<f64> {
        let fed: Vec<(Tensor, &Value)> = feeds.iter().map(|(n, v)| (g.tensor_by_name(n).unwrap(), v)).collect();
        let fed: Vec<(&Tensor, Feed)> = fed.iter().map(|(t, v)| (t, Feed::from(*v))).collect();
        let loss = g.tensor_by_name("loss:0").unwrap();
        let train = &g.get_operation_collection(tensorgraph::collections::TRAIN_OP)[0];
        (0..3)
            .map(|_| {
                let l = sess.run(&loss, &fed).unwrap().to_f64_vec()[0];
                sess.run(train, &fed).unwrap();
                l
            })
            .collect()
    };
    let ours = steps(g, &sess);
    let back = import_meta_graph(&meta).unwrap();
    let sess2 = Session::new(&back).unwrap();
    Saver::new(&back).restore(&sess2, &ckpt).unwrap();
    let again = steps(&back, &sess2);
    assert!(ours.iter().zip(&again).all(|(a, b)| (a - b).abs() <= 1e-6), "{ours:?} vs {again:?}");
    assert!(ours[2] < ours[0], "{ours:?}");
    if let Ok(out) = std::env::var("TG_INTEROP_OUT") {
        let out = std::path::Path::new(&out).join(name);
        std::fs::create_dir_all(&out).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, out.join(path.file_name().unwrap())).unwrap();
        }
        let values: serde_json::Map<String, serde_json::Value> = feeds
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    serde_json::json!({"shape": v.shape(), "dtype": v.dtype().to_string(), "values": v.to_f64_vec()}),
                )
            })
            .collect();
        let fx = serde_json::json!({"feeds": values, "losses": ours,
            "checkpoint": ckpt.file_name().unwrap().to_str().unwrap()});
        std::fs::write(out.join("steps.json"), fx.to_string()).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
    back
}

/// An LSTM over a run-time number of steps trains through a loop (`WhileGrad`): its training
/// graph saves as a `.meta` (the gradient as TF's two loops), which reads back here and trains
/// step for step as the original from the same checkpoint (tests/tf_interop.py trains it in TF).
#[test]
fn a_looped_rnn_training_graph_saves_as_a_meta_graph() {
    let g = Graph::new();
    g.set_random_seed(3);
    let x = g.placeholder(DType::F32, [None, None, Some(4)]).named("x").unwrap();
    let y = g.placeholder(DType::I64, [None]).named("y").unwrap();
    let cell = tensorgraph::rnn::BasicLSTMCell::new(8);
    let (_, state) = tensorgraph::rnn::dynamic_rnn(&cell, &x, None, None).unwrap();
    let logits = layers::dense(&state[1], 3, None, "out").unwrap();
    let xent = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits).unwrap();
    let loss = math::reduce_mean(&xent, None).unwrap().named("loss").unwrap();
    let train = tensorgraph::train::GradientDescent::new(0.5).minimize(&loss).unwrap();
    g.add_operation_to_collection(tensorgraph::collections::TRAIN_OP, &train);
    let xv = ndarray::Array3::from_shape_fn((5, 6, 4), |(i, t, k)| ((i * 7 + t * 3 + k) % 11) as f32 / 5.0 - 1.0);
    let yv = ndarray::array![0i64, 2, 1, 1, 0];
    let feeds = [("x:0", Value::from(xv.into_dyn())), ("y:0", Value::from(yv.into_dyn()))];
    trains_the_same_from_its_meta_graph(&g, "looped_rnn", &feeds);
}

/// Batch norm in training (a convolution's output, switched by a run-time tensor, its moving
/// averages updated with the train op): written with its statistics, its gradient and the
/// count of its variance's correction as TF ops (no op of tensorgraph's own), read back as our
/// fused ops (the marks), trained step for step as the original; the TF ops alone (marks
/// removed) train the same (tests/tf_interop.py trains it in TF).
#[test]
fn a_batch_norm_training_graph_saves_as_a_meta_graph() {
    let g = Graph::new();
    g.set_random_seed(5);
    let x = g.placeholder(DType::F32, [None, Some(4), Some(4), Some(2)]).named("x").unwrap();
    let y = g.placeholder(DType::I64, [None]).named("y").unwrap();
    let training = g.placeholder_with_default(&g.scalar(0.0, DType::Bool).unwrap()).named("training").unwrap();
    let h = layers::conv2d(&x, 3, 3, 1, Padding::Same, None, "conv").unwrap();
    let h = nn::relu(&layers::batch_normalization(&h, &training, "bn").unwrap()).unwrap();
    let logits = layers::dense(&array::reshape(&h, &[-1, 48]).unwrap(), 3, None, "out").unwrap();
    let xent = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits).unwrap();
    let loss = math::reduce_mean(&xent, None).unwrap().named("loss").unwrap();
    let updates = g.get_operation_collection(tensorgraph::collections::UPDATE_OPS);
    let refs: Vec<&Operation> = updates.iter().collect();
    let train =
        g.control_dependencies(&refs, || tensorgraph::train::GradientDescent::new(0.1).minimize(&loss)).unwrap();
    g.add_operation_to_collection(tensorgraph::collections::TRAIN_OP, &train);
    let def = to_graph_def(&g).unwrap();
    let ops: Vec<&str> = def
        .node
        .iter()
        .filter(|n| n.name.starts_with("bn/") || n.name.contains("bn/"))
        .map(|n| n.op.as_str())
        .collect();
    assert!(ops.contains(&"IdentityN") && ops.contains(&"StatelessIf") && ops.contains(&"Rsqrt"), "{ops:?}");
    assert!(def.node.iter().all(|n| !n.op.starts_with("Tg")));
    // The dense kernel's update waits for the input gradient's read of it (TF's reads alias the
    // buffer the update writes).
    let kernel = def.node.iter().find(|n| n.op == "ApplyGradientDescent" && n.input[0] == "out/kernel").unwrap();
    assert!(kernel.input.iter().any(|i| i.starts_with("^gradients/") && i.contains("MatMul")), "{:?}", kernel.input);
    let xv = ndarray::Array4::from_shape_fn((6, 4, 4, 2), |(a, b, c, d)| {
        ((a * 31 + b * 7 + c * 3 + d) % 13) as f32 / 6.0 - 1.0
    });
    let yv = ndarray::array![0i64, 2, 1, 1, 0, 2];
    let feeds = [
        ("x:0", Value::from(xv.into_dyn())),
        ("y:0", Value::from(yv.into_dyn())),
        ("training:0", Value::from(ndarray::arr0(true).into_dyn())),
    ];
    let back = trains_the_same_from_its_meta_graph(&g, "batch_norm_training", &feeds);
    // Read back as our fused ops, not their TF forms.
    let text = back.to_text();
    let fused = ["FusedBatchNormGrad", "Size"].iter().all(|op| text.contains(op));
    assert!(fused && ["IdentityN", "Rsqrt", "GatherV2"].iter().all(|op| !text.contains(op)), "{text}");
    // The TF form read as TF ops (the .meta without the marks: IdentityN, the statistics and
    // the gradient as math) trains the same from the same variables.
    use tensorgraph::io::{meta_graph, Saver};
    let mut meta = meta_graph::meta_graph_def(&g, &[]).unwrap();
    for n in &mut meta.graph_def.as_mut().unwrap().node {
        n.attr.remove("_tg_op");
    }
    let plain = meta_graph::import_meta_graph_bytes(&meta.encode_to_vec(), "plain".as_ref()).unwrap().0;
    assert!(plain.to_text().contains("Rsqrt"));
    let dir = common::scratch("bn-plain");
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    let ckpt = Saver::new(&g).save(&sess, dir.join("model"), None).unwrap();
    let sess2 = Session::new(&plain).unwrap();
    Saver::new(&plain).restore(&sess2, &ckpt).unwrap();
    let step_then_loss = |g: &Graph, sess: &Session| {
        let fed: Vec<(Tensor, Feed)> =
            feeds.iter().map(|(n, v)| (g.tensor_by_name(n).unwrap(), Feed::from(v))).collect();
        let fed: Vec<(&Tensor, Feed)> = fed.iter().map(|(t, f)| (t, f.clone())).collect();
        sess.run(&g.operation_by_name(&train.name()).unwrap(), &fed).unwrap();
        sess.run(&g.tensor_by_name("loss:0").unwrap(), &fed).unwrap().to_f64_vec()[0]
    };
    let (a, b) = (step_then_loss(&g, &sess), step_then_loss(&plain, &sess2));
    assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `Size` over some axes (the mean's gradient over them, with unknown dimensions) is written as
/// TF's Shape, Gather, Prod and Cast, and read back as those ops with the same values.
#[test]
fn a_count_over_some_axes_is_written_as_tf_ops() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, None, Some(3)]).named("x").unwrap();
    let m = math::reduce_mean(&math::square(&x).unwrap(), Some(&[0, 2])).unwrap();
    tensorgraph::gradients(&[&m], &[&x], None).unwrap().remove(0).unwrap().named("dx").unwrap();
    math::size(&x, Some(&[0, 1]), DType::F32).unwrap().named("count").unwrap();
    let def = to_graph_def(&g).unwrap();
    let ops =
        |prefix: &str| def.node.iter().filter(|n| n.name.starts_with(prefix)).map(|n| n.op.clone()).collect::<Vec<_>>();
    assert_eq!(ops("count"), ["Shape", "Const", "Const", "GatherV2", "Const", "Prod", "Cast"]);
    assert!(def.node.iter().all(|n| !n.op.starts_with("Tg")));
    let xv = ndarray::Array3::from_shape_fn((2, 5, 3), |(i, j, k)| (i * 15 + j * 3 + k) as f32 * 0.1 - 1.0);
    let run = |g: &Graph| {
        let [x, dx, count] = ["x:0", "dx:0", "count:0"].map(|n| g.tensor_by_name(n).unwrap());
        Session::new(g).unwrap().run(&[&dx, &count], feed! {x => &xv}).unwrap()
    };
    let back = from_graph_def(&GraphDef::decode(def.encode_to_vec().as_slice()).unwrap(), "back").unwrap();
    let (want, got) = (run(&g), run(&back));
    assert_eq!(got, want);
    assert_eq!(want[1].scalar_f64(), Some(10.0));
    // For tests/tf_interop.py, which runs this graph in TensorFlow.
    if let Ok(dir) = std::env::var("TG_INTEROP_OUT") {
        let dir = std::path::Path::new(&dir);
        std::fs::write(dir.join("count.pb"), def.encode_to_vec()).unwrap();
        let values = |v: &Value| v.to_f64_vec();
        let fx =
            serde_json::json!({"x": xv.iter().collect::<Vec<_>>(), "dx": values(&want[0]), "count": values(&want[1])});
        std::fs::write(dir.join("count.json"), fx.to_string()).unwrap();
    }
}

#[derive(Deserialize)]
struct BatchNormFixture {
    x: Vec<f32>,
    training_off: BTreeMap<String, Output>,
    training_on: BTreeMap<String, Output>,
}

/// TF's fused batch norm (`make_batch_norm_graph_fixture.py`): in inference and training mode
/// (the batch variance TF gives is Bessel-corrected), and behind a run-time switch (an `If` whose
/// branches hold the two modes), with TF's outputs; then written back and read again.
#[test]
fn tensorflows_batch_norm_imports_in_both_modes_and_behind_a_switch() {
    let def = GraphDef::decode(std::fs::read("tests/fixtures/tf/batch_norm_graph.pb").unwrap().as_slice()).unwrap();
    let text = std::fs::read_to_string("tests/fixtures/tf/batch_norm_graph.json").unwrap();
    let fx: BatchNormFixture = serde_json::from_str(&text).unwrap();
    let xv = ndarray::Array4::from_shape_vec((2, 3, 4, 3), fx.x.clone()).unwrap();
    let check = |g: &Graph, only_y: bool| {
        let sess = Session::new(g).unwrap();
        let (x, training) = (g.tensor_by_name("x:0").unwrap(), g.tensor_by_name("training:0").unwrap());
        for (on, outputs) in [(false, &fx.training_off), (true, &fx.training_on)] {
            for (name, want) in outputs.iter().filter(|(name, _)| !only_y || name.ends_with("_y:0")) {
                let t = g.tensor_by_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
                let got = sess.run(&t, feed! {x => &xv, training => on}).unwrap();
                assert_eq!(got.shape(), want.shape.as_slice(), "{name}");
                for (i, (a, b)) in got.to_f64_vec().iter().zip(&want.values).enumerate() {
                    assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{name} (training {on})[{i}]: ours {a}, TF {b}");
                }
            }
        }
    };
    let g = from_graph_def(&def, "batch_norm_graph.pb").unwrap();
    check(&g, false);
    // Written back whole: the batch norms whose statistics are read (TF's batch variance is
    // Bessel-corrected, ours not: its correction reads ours) with them as TF ops.
    let whole = to_graph_def(&g).unwrap();
    assert!(whole.node.iter().any(|n| n.op == "IdentityN"));
    check(&from_graph_def(&whole, "whole").unwrap(), false);
    // Pruned to the outputs y: TF's FusedBatchNormV3 alone.
    let ys: Vec<Tensor> = ["infer_y:0", "train_y:0", "switch_y:0"].map(|n| g.tensor_by_name(n).unwrap()).to_vec();
    let pruned = tensorgraph::io::graph_def::freeze(&g, &Session::new(&g).unwrap(), &ys).unwrap();
    assert!(pruned.node.iter().any(|n| n.op == "FusedBatchNormV3"));
    check(&from_graph_def(&pruned, "again").unwrap(), true);
}

/// A batch norm switched by a run-time tensor (`layers::batch_normalization`'s `training`) is
/// written as TF writes it: an `If` over FusedBatchNormV3 in training and inference mode.
#[test]
fn a_batch_norm_switched_at_run_time_is_written_as_an_if() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(2), Some(2), Some(3)]).named("x").unwrap();
    let training = g.placeholder_with_default(&g.scalar(0.0, DType::Bool).unwrap()).named("training").unwrap();
    let y = layers::batch_normalization(&x, &training, "bn").unwrap().named("y").unwrap();
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    let def = tensorgraph::io::graph_def::freeze(&g, &sess, std::slice::from_ref(&y)).unwrap();
    let ifs: Vec<&NodeDef> = def.node.iter().filter(|n| n.op == "StatelessIf").collect();
    assert_eq!(ifs.len(), 1);
    assert_eq!(def.library.as_ref().unwrap().function.len(), 2);
    let xv =
        ndarray::Array4::from_shape_fn((2, 2, 2, 3), |(a, b, c, d)| (a * 12 + b * 6 + c * 3 + d) as f32 * 0.3 - 1.0);
    let back = from_graph_def(&def, "back").unwrap();
    let [x2, t2, y2] = ["x:0", "training:0", "y:0"].map(|n| back.tensor_by_name(n).unwrap());
    let s2 = Session::new(&back).unwrap();
    for on in [false, true] {
        let want = sess.run(&y, feed! {x => &xv, training => on}).unwrap();
        assert_eq!(s2.run(&y2, feed! {x2 => &xv, t2 => on}).unwrap(), want, "training {on}");
    }
    if let Ok(dir) = std::env::var("TG_INTEROP_OUT") {
        let dir = std::path::Path::new(&dir);
        std::fs::write(dir.join("batch_norm.pb"), def.encode_to_vec()).unwrap();
        let run = |on: bool| sess.run(&y, feed! {x => &xv, training => on}).unwrap().to_f64_vec();
        let fx =
            serde_json::json!({"x": xv.iter().collect::<Vec<_>>(), "y_inference": run(false), "y_training": run(true)});
        std::fs::write(dir.join("batch_norm.json"), fx.to_string()).unwrap();
    }
}

/// A forged library whose function loops over itself is an error naming the node, not a stack
/// overflow or an endless import.
#[test]
fn a_function_that_calls_itself_is_an_error() {
    use tensorgraph::proto::tf::{ArgDef, FunctionDef, FunctionDefLibrary, ListValue, NameAttrList, OpDef};
    let func =
        |name: &str| AttrValue { value: Some(Attr::Func(NameAttrList { name: name.into(), ..Default::default() })) };
    let int32 = AttrValue { value: Some(Attr::List(ListValue { r#type: vec![3], ..Default::default() })) };
    let mut w = node("w", "StatelessWhile", &["a"]);
    w.attr.extend([("T".to_string(), int32.clone()), ("cond".into(), func("f")), ("body".into(), func("f"))]);
    let arg = |name: &str| ArgDef { name: name.into(), r#type: 3 };
    let f = FunctionDef {
        signature: Some(OpDef {
            name: "f".into(),
            input_arg: vec![arg("a")],
            output_arg: vec![arg("out")],
            is_stateful: false,
        }),
        node_def: vec![w],
        ret: [("out".to_string(), "w:output:0".to_string())].into(),
    };
    let mut c = node("x", "Const", &[]);
    c.attr.insert("dtype".into(), AttrValue { value: Some(Attr::Type(3)) });
    let zero = tensorgraph::io::graph_def::tensor_proto(&Value::from(ndarray::arr0(0i32).into_dyn()));
    c.attr.insert("value".into(), AttrValue { value: Some(Attr::Tensor(zero)) });
    let mut top = node("loop", "StatelessWhile", &["x"]);
    top.attr.extend([("T".to_string(), int32), ("cond".into(), func("f")), ("body".into(), func("f"))]);
    let def =
        GraphDef { node: vec![c, top], library: Some(FunctionDefLibrary { function: vec![f] }), ..Default::default() };
    let e = from_graph_def(&def, "self.pb").unwrap_err().to_string();
    assert!(e.contains("function f") && (e.contains("nested") || e.contains("function graphs")), "{e}");
}

/// Found by fuzzing: a node listing fewer inputs than its op reads (a `MaxPoolGrad` of two) is
/// an error naming it, not an index out of bounds.
#[test]
fn a_node_missing_an_input_is_an_error() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [Some(1), Some(4), Some(4), Some(1)]).named("x").unwrap();
    let p = nn::max_pool(&x, [1, 2, 2, 1], [1, 2, 2, 1], Padding::Valid).unwrap();
    tensorgraph::gradients(&[&math::reduce_sum(&p, None).unwrap()], &[&x], None).unwrap();
    let mut def = to_graph_def(&g).unwrap();
    let grad = def.node.iter_mut().find(|n| n.op == "MaxPoolGrad").unwrap();
    grad.input.truncate(2);
    let name = grad.name.clone();
    let e = from_graph_def(&def, "short.pb").unwrap_err().to_string();
    assert!(e.contains(&name) && e.contains("takes input 2, but the node lists 2 inputs"), "{e}");
}

/// A `Merge` with no `Switch` before it (both inputs live) passes on its first input and says
/// so in `value_index`, as TF's does.
#[test]
fn a_merge_of_live_inputs_passes_on_the_first() {
    let konst = |name: &str, v: f32| {
        let mut c = node(name, "Const", &[]);
        c.attr.insert("dtype".into(), AttrValue { value: Some(Attr::Type(1)) });
        let t = tensorgraph::io::graph_def::tensor_proto(&Value::from(ndarray::arr0(v).into_dyn()));
        c.attr.insert("value".into(), AttrValue { value: Some(Attr::Tensor(t)) });
        c
    };
    let def = GraphDef {
        node: vec![konst("a", 3.0), konst("b", 4.0), node("m", "Merge", &["a", "b"])],
        ..Default::default()
    };
    let g = from_graph_def(&def, "merge.pb").unwrap();
    let (m, index) = (g.tensor_by_name("m:0").unwrap(), g.tensor_by_name("m:1").unwrap());
    let (v, i) = Session::new(&g).unwrap().run((&m, &index), &[]).unwrap();
    assert_eq!((v.to_f64_vec(), i.to_f64_vec()), (vec![3.0], vec![0.0]));
}
