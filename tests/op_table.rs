//! The op table (issue #16): every op has one definition (TF name, inputs, outputs,
//! statefulness) and its attributes by TF's names, and the rest of the engine agrees with it.
//! `common/ops.rs` lists one instance of each variant behind an exhaustive match.

#[path = "common/ops.rs"]
mod ops;

use ops::{every_op, function_arity, variant, N_VARIANTS};
use std::collections::HashSet;
use tensorgraph::op_def::ArgKind;
use tensorgraph::{DType, Op, Shape, TensorSpec};
use tensorgraph_graph::infer::{infer, InferError};

#[test]
fn every_variant_is_listed() {
    let seen: HashSet<usize> = every_op().iter().map(variant).collect();
    let missing: Vec<usize> = (0..N_VARIANTS).filter(|i| !seen.contains(i)).collect();
    assert!(missing.is_empty(), "variants without an instance in every_op: {missing:?}");
}

#[test]
fn definitions_are_well_formed() {
    for op in every_op() {
        let def = op.def();
        assert!(!def.name.is_empty() && def.name.chars().next().unwrap().is_ascii_uppercase(), "{op:?}");
        assert_eq!(op.type_name(), def.name);
        let unique = |names: Vec<&str>| names.len() == names.iter().collect::<HashSet<_>>().len();
        assert!(unique(def.inputs.iter().map(|a| a.name).collect()), "{}: input names repeat", def.name);
        assert!(unique(def.outputs.to_vec()), "{}: output names repeat", def.name);
        assert!(unique(op.attrs().iter().map(|(n, _)| *n).collect()), "{}: attribute names repeat", def.name);
        let variadic = def.inputs.iter().filter(|a| a.kind == ArgKind::Variadic).count();
        let last = def.inputs.last().is_some_and(|a| a.kind == ArgKind::Variadic);
        assert!(variadic == 0 || (variadic == 1 && last), "{}: a variadic input must be the last", def.name);
        // Whatever takes a variable by reference changes state.
        assert!(def.ref_inputs().count() == 0 || def.stateful, "{} takes a Ref but is not stateful", def.name);
        if let Op::Apply(a) = op {
            assert!(a.grad_input() >= a.num_refs() && a.grad_input() < a.num_inputs(), "{}", def.name);
            assert!(def.inputs[..a.num_refs()].iter().all(|i| i.kind == ArgKind::Ref), "{}", def.name);
        }
    }
}

/// Shape inference checks arity from the definition: one input too many or too few is the
/// arity error, the right count is not.
#[test]
fn inference_takes_the_definitions_arity() {
    let spec = TensorSpec::new(DType::F32, Shape::from([Some(2), Some(2)]));
    for op in every_op() {
        let def = op.def();
        let n = def.inputs.len();
        let arity_error = |got: usize| match infer(&op, &vec![spec.clone(); got]) {
            Err(InferError::Invalid(m)) => m.contains(" inputs, got ") || m.contains("needs at least one input"),
            _ => false,
        };
        // A functional op takes what its functions take.
        if let Some(n) = function_arity(&op) {
            assert!(!arity_error(n) && arity_error(n + 1) && arity_error(n - 1), "{}: function arity", def.name);
            continue;
        }
        if def.inputs.first().is_some_and(|a| a.kind == ArgKind::Variadic) {
            assert!(arity_error(0) && !arity_error(1) && !arity_error(4), "{}: variadic arity", def.name);
            continue;
        }
        assert!(!arity_error(n), "{}: {n} inputs refused", def.name);
        assert!(arity_error(n + 1), "{}: {} inputs accepted", def.name, n + 1);
        if n > 0 {
            assert!(arity_error(n - 1), "{}: {} inputs accepted", def.name, n - 1);
        }
    }
}

/// The output names are TF's (`op_registry.json`, from TF 2.21's op registry by
/// `fixtures/tf/make_op_registry_fixture.py`): inside a GraphDef function a node's output is
/// named `node:output_arg:index`, so a wrong name writes a function TF refuses.
#[test]
fn output_names_are_tfs() {
    let text = std::fs::read_to_string("tests/fixtures/tf/op_registry.json").unwrap();
    let registry: serde_json::Value = serde_json::from_str(&text).unwrap();
    let (mut checked, mut wrong) = (0, vec![]);
    for op in every_op() {
        let def = op.def();
        let Some(tf) = registry.get(def.name) else {
            assert!(["SumToShape", "SliceGrad", "WhileGrad"].contains(&def.name), "{} is not a TF op", def.name);
            continue;
        };
        let tf_outputs: Vec<&str> = tf["outputs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        // TF's Apply ops also output the variable; ours are effects only.
        if def.outputs.is_empty() && matches!(op, Op::Apply(_)) {
            continue;
        }
        // Batch norm here takes its training switch as a tensor: written as tensorgraph's own
        // op, with TF's first outputs.
        let ours_only = matches!(op, Op::FusedBatchNorm { .. } | Op::FusedBatchNormGrad);
        if def.outputs != tf_outputs && !(ours_only && tf_outputs.starts_with(def.outputs)) {
            wrong.push(format!("{}: {:?}, TF {:?}", def.name, def.outputs, tf_outputs));
        }
        checked += 1;
    }
    assert!(wrong.is_empty(), "outputs named unlike TF's:\n{}", wrong.join("\n"));
    assert!(checked > 70, "{checked}");
}
