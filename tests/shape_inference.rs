//! Build-time shape and dtype inference, with unknown batch dimensions, and its errors.

use tensorgraph::prelude::*;
use tensorgraph::Error;

fn ph(g: &Graph, dtype: DType, shape: impl Into<Shape>) -> Tensor {
    g.placeholder(dtype, shape).named("p").unwrap()
}

#[test]
fn unknown_batch_dimension_flows_through_a_layer() {
    let g = Graph::new();
    let x = ph(&g, DType::F32, [None, Some(784)]);
    let w = ph(&g, DType::F32, [784, 300]);
    let b = ph(&g, DType::F32, [300]);
    let h = nn::relu(&nn::bias_add(&math::matmul(&x, &w, false, false).unwrap(), &b).unwrap()).unwrap();
    assert_eq!(h.shape().to_string(), "[?,300]");
    let m = math::reduce_mean(&h, Some(&[0])).unwrap();
    assert_eq!(m.shape().to_string(), "[300]");
    let s = math::reduce_sum_keep_dims(&h, Some(&[1])).unwrap();
    assert_eq!(s.shape().to_string(), "[?,1]");
    assert_eq!(math::argmax(&h, -1).unwrap().shape().to_string(), "[?]");
    assert_eq!(math::argmax(&h, -1).unwrap().dtype(), DType::I64);
    assert_eq!(math::matmul(&h, &h, true, false).unwrap().shape().to_string(), "[300,300]");
    assert_eq!(array::transpose(&h, None).unwrap().shape().to_string(), "[300,?]");
}

#[test]
fn broadcasting_shapes() {
    let g = Graph::new();
    let cases: &[(Shape, Shape, &str)] = &[
        (Shape::from([None, Some(3)]), Shape::known(&[3]), "[?,3]"),
        (Shape::known(&[2, 1, 4]), Shape::known(&[3, 1]), "[2,3,4]"),
        (Shape::scalar(), Shape::from([None]), "[?]"),
        (Shape::from([None, Some(1)]), Shape::from([Some(1), None]), "[?,?]"),
        (Shape::from([Some(1)]), Shape::from([None]), "[?]"),
    ];
    for (a, b, want) in cases {
        let t = math::add(&ph(&g, DType::F32, a.clone()), &ph(&g, DType::F32, b.clone())).unwrap();
        assert_eq!(t.shape().to_string(), *want, "{a} + {b}");
    }
    let err = math::mul(&ph(&g, DType::F32, [2, 3]), &ph(&g, DType::F32, [4])).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }));
    assert!(err.to_string().contains("cannot broadcast [2,3] with [4]"), "{err}");
}

#[test]
fn matmul_mismatch_names_node_op_shapes_and_location() {
    let g = Graph::new();
    let x = ph(&g, DType::F32, [None, Some(784)]);
    let w = ph(&g, DType::F32, [300, 100]);
    let err = g.name_scope("dnn", || g.name_scope("hidden1", || math::matmul(&x, &w, false, false))).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("shape mismatch in dnn/hidden1/MatMul (MatMul): [?,784] x [300,100]"), "{msg}");
    assert!(msg.contains("defined at tests/shape_inference.rs:"), "{msg}");
}

#[test]
fn dtype_errors() {
    let g = Graph::new();
    let f = ph(&g, DType::F32, [2]);
    let i = ph(&g, DType::I64, [2]);
    let e = math::add(&f, &i).unwrap_err();
    assert!(matches!(e, Error::DTypeMismatch { .. }) && e.to_string().contains("float32 vs int64"), "{e}");
    assert!(matches!(nn::relu(&i).unwrap_err(), Error::DTypeMismatch { .. }));
    assert!(matches!(math::div(&i, &i).unwrap_err(), Error::DTypeMismatch { .. }));
    let b = ph(&g, DType::Bool, [2]);
    assert!(matches!(math::add(&b, &b).unwrap_err(), Error::DTypeMismatch { .. }));
    // Labels must be integers.
    let logits = ph(&g, DType::F32, [None, Some(10)]);
    let e = nn::sparse_softmax_cross_entropy_with_logits(&logits, &logits).named("x").unwrap_err();
    assert!(e.to_string().contains("labels must be int32 or int64"), "{e}");
}

#[test]
fn reshape_inference_and_errors() {
    let g = Graph::new();
    let x = ph(&g, DType::F32, [None, Some(784)]);
    assert_eq!(array::reshape(&x, &[-1, 28, 28, 1]).unwrap().shape().to_string(), "[?,28,28,1]");
    let k = ph(&g, DType::F32, [4, 6]);
    assert_eq!(array::reshape(&k, &[3, -1]).unwrap().shape().to_string(), "[3,8]");
    assert!(matches!(array::reshape(&k, &[5, -1]).unwrap_err(), Error::ShapeMismatch { .. }));
    assert!(matches!(array::reshape(&k, &[2, 2]).unwrap_err(), Error::ShapeMismatch { .. }));
    assert!(matches!(array::reshape(&k, &[-1, -1]).unwrap_err(), Error::InvalidArgument { .. }));
}

#[test]
fn axis_and_attribute_errors() {
    let g = Graph::new();
    let x = ph(&g, DType::F32, [None, Some(3)]);
    assert!(matches!(math::reduce_sum(&x, Some(&[2])).unwrap_err(), Error::InvalidArgument { .. }));
    assert!(matches!(math::argmax(&x, -3).unwrap_err(), Error::InvalidArgument { .. }));
    assert!(matches!(array::transpose(&x, Some(&[0, 0])).unwrap_err(), Error::InvalidArgument { .. }));
    assert!(matches!(array::squeeze(&x, Some(&[1])).unwrap_err(), Error::ShapeMismatch { .. }));
    assert!(matches!(array::concat(&[&x, &ph(&g, DType::F32, [2, 4])], 0).unwrap_err(), Error::ShapeMismatch { .. }));
    assert_eq!(array::concat(&[&x, &ph(&g, DType::F32, [2, 3])], 0).unwrap().shape().to_string(), "[?,3]");
    assert!(matches!(array::slice(&x, &[0, 2], &[-1, 2]).unwrap_err(), Error::ShapeMismatch { .. }));
    let b = ph(&g, DType::F32, [4]);
    assert!(matches!(nn::bias_add(&x, &b).unwrap_err(), Error::ShapeMismatch { .. }));
    let labels = ph(&g, DType::I64, [None]);
    assert!(matches!(nn::in_top_k(&x, &labels, 0).unwrap_err(), Error::InvalidArgument { .. }));
}

#[test]
fn names_follow_tf_uniquification() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [2]).named("x").unwrap();
    let x1 = g.placeholder(DType::F32, [2]).named("x").unwrap();
    assert_eq!((x.op_name(), x1.op_name()), ("x".to_string(), "x_1".to_string()));
    let a = g.name_scope("s", || math::neg(&x)).unwrap();
    let b = g.name_scope("s", || math::neg(&x)).unwrap();
    let c = g.name_scope("s", || g.name_scope("inner", || Ok((math::neg(&x)?, math::neg(&x)?)))).unwrap();
    assert_eq!(a.op_name(), "s/Neg");
    assert_eq!(b.op_name(), "s_1/Neg");
    assert_eq!((c.0.op_name(), c.1.op_name()), ("s_2/inner/Neg".to_string(), "s_2/inner/Neg_1".to_string()));
    assert_eq!(g.tensor_by_name("s_1/Neg:0").unwrap(), b);
    assert!(g.tensor_by_name("nope:0").is_err());
    // A failed op does not use up its name.
    assert!(math::matmul(&x, &x, false, false).is_err());
    assert_eq!(math::neg(&x).unwrap().op_name(), "Neg");
}

#[test]
fn naming_an_op_leaves_the_counters_as_if_built_with_that_name() {
    let g = Graph::new();
    let a = g.placeholder(DType::F32, [2]).unwrap();
    let b = g.placeholder(DType::F32, [2]).named("b").unwrap();
    let c = g.placeholder(DType::F32, [2]).unwrap();
    assert_eq!([a.op_name(), b.op_name(), c.op_name()], ["Placeholder", "b", "Placeholder_1"]);
    // Renaming to the same name is a no-op; inside a scope the name is scoped, uniquified as TF.
    assert_eq!(b.clone().named("b").unwrap().op_name(), "b");
    let d = g.name_scope("s", || Ok((math::neg(&a).named("n")?, math::neg(&a).named("n")?))).unwrap();
    assert_eq!((d.0.op_name(), d.1.op_name()), ("s/n".to_string(), "s/n_1".to_string()));
    // The released auto name is taken by the next unnamed op, and the lookup follows the rename.
    assert_eq!(math::neg(&a).unwrap().op_name(), "Neg");
    assert_eq!(g.tensor_by_name("s/n_1:0").unwrap(), d.1);
    assert!(g.tensor_by_name("s/Neg:0").is_err());
    // A verbatim name (ending in '/') that is taken is TF's duplicate-name error, naming the node.
    let err = math::neg(&a).named("b/").unwrap_err().to_string();
    assert!(err.contains("duplicate node name") && err.contains("Neg"), "{err}");
    // Errors from the builder pass through `named` untouched.
    assert!(matches!(math::matmul(&a, &a, false, false).named("m").unwrap_err(), Error::ShapeMismatch { .. }));
}

#[test]
fn tensors_of_different_graphs_do_not_mix() {
    let (g1, g2) = (Graph::new(), Graph::new());
    let a = ph(&g1, DType::F32, [2]);
    let b = ph(&g2, DType::F32, [2]);
    assert!(matches!(math::add(&a, &b).unwrap_err(), Error::GraphMismatch { .. }));
}

#[test]
fn variables_need_known_shapes_and_unique_names() {
    let g = Graph::new();
    let x = ph(&g, DType::F32, [None]);
    assert!(matches!(g.variable(&x, "v", true).unwrap_err(), Error::InvalidArgument { .. }));
    g.get_variable("w", &[2], DType::F32, &tensorgraph::Initializer::Zeros, true).unwrap();
    let e = g.get_variable("w", &[2], DType::F32, &tensorgraph::Initializer::Zeros, true).unwrap_err();
    assert!(matches!(e, Error::DuplicateVariable { .. }) && e.to_string().contains("variable w already exists"), "{e}");
    let e = layers::dense(&x, 3, None, "d").unwrap_err();
    assert!(e.to_string().contains("dense layer 'd' needs a float [batch, features] input"), "{e}");
}

#[test]
fn text_dump_lists_every_node_by_scope() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(4)]).named("X").unwrap();
    g.name_scope("dnn", || layers::dense(&x, 2, Some(nn::relu), "hidden1")).unwrap();
    let text = g.to_text();
    for needle in [
        "(root)",
        "dnn/hidden1/",
        "dnn/hidden1/MatMul",
        "MatMul",
        "[?,2]",
        "X:0, hidden1/kernel/read:0",
        "hidden1/kernel/Assign",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}
