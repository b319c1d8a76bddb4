//! ONNX export of inference graphs (numbers against ONNX Runtime: tests/tf_interop.sh).

use tensorgraph::io::onnx::{to_onnx, OPSET};
use tensorgraph::prelude::*;

#[test]
fn a_cnn_with_batch_norm_exports_in_nchw_with_oihw_filters() {
    let g = Graph::new();
    g.set_random_seed(1);
    let x = g.placeholder(DType::F32, [None, Some(8), Some(8), Some(1)]).named("X").unwrap();
    let training = g.placeholder_with_default(&g.scalar(0.0, DType::Bool).unwrap()).named("training").unwrap();
    let c = layers::conv2d(&x, 4, 3, 2, Padding::Same, Some(nn::relu), "conv").unwrap();
    let b = layers::batch_normalization(&c, &training, "bn").unwrap();
    let p = layers::max_pooling2d(&b, 2, 2, Padding::Valid, "pool").unwrap();
    let logits = layers::dense(&layers::flatten(&p).unwrap(), 3, None, "out").unwrap();
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();

    let model = to_onnx(&g, &sess, &[&logits]).unwrap();
    assert_eq!((model.opset_import[0].version, model.ir_version), (OPSET, 7));
    let graph = model.graph.unwrap();
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
    for op in ["Conv", "BatchNormalization", "MaxPool", "Relu", "Reshape", "MatMul", "Add"] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
    // Each NCHW op sits between two transposes.
    let conv = ops.iter().position(|&o| o == "Conv").unwrap();
    assert_eq!((ops[conv - 1], ops[conv + 1]), ("Transpose", "Transpose"));
    let filter = graph.initializer.iter().find(|t| t.name == "conv/Conv2D/filter_oihw").unwrap();
    assert_eq!(filter.dims, [4, 1, 3, 3]);
    assert_eq!(graph.input.len(), 1, "the training switch is fixed at its default, not an input");
    assert_eq!(graph.output[0].name, logits.name());
}

/// `mnist_cnn_plus`'s kinds of layers after a few training steps (moving averages away from
/// their start): batch norm of an image and of a dense layer's `[batch, units]` (no
/// transposes), dropout blended away by its switch at its default (ONNX's own draw feeds it).
/// tests/tf_interop.py runs the model in ONNX Runtime against our logits.
#[test]
fn batch_norm_of_dense_layers_and_dropout_export_for_inference() {
    let g = Graph::new();
    g.set_random_seed(2);
    let x = g.placeholder(DType::F32, [None, Some(6), Some(6), Some(1)]).named("X").unwrap();
    let y = g.placeholder(DType::I64, [None]).named("y").unwrap();
    let training = g.placeholder_with_default(&g.scalar(0.0, DType::Bool).unwrap()).named("training").unwrap();
    let c = layers::conv2d(&x, 3, 3, 1, Padding::Same, None, "conv").unwrap();
    let c = nn::relu(&layers::batch_normalization(&c, &training, "bn1").unwrap()).unwrap();
    let h = layers::dense(&layers::flatten(&c).unwrap(), 8, None, "fc").unwrap();
    let h = nn::relu(&layers::batch_normalization(&h, &training, "bn2").unwrap()).unwrap();
    let h = nn::dropout(&h, 0.5, &training, Some(4)).unwrap();
    let logits = layers::dense(&h, 3, None, "out").unwrap();
    let loss = math::reduce_mean(&nn::sparse_softmax_cross_entropy_with_logits(&y, &logits).unwrap(), None).unwrap();
    let updates = g.get_operation_collection(tensorgraph::collections::UPDATE_OPS);
    let refs: Vec<&Operation> = updates.iter().collect();
    let train = g.control_dependencies(&refs, || GradientDescent::new(0.1).minimize(&loss)).unwrap();
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    let xv = ndarray::Array4::from_shape_fn((5, 6, 6, 1), |(a, b, c, _)| ((a * 17 + b * 5 + c) % 9) as f32 / 4.0 - 1.0);
    let yv = ndarray::array![0i64, 1, 2, 1, 0];
    for _ in 0..5 {
        sess.run(&train, feed! {x => &xv, y => &yv, training => true}).unwrap();
    }
    let mean = sess.variable_value(&g.global_variables().into_iter().find(|v| v.name() == "bn2/moving_mean").unwrap());
    assert!(mean.unwrap().unwrap().to_f64_vec().iter().any(|m| *m != 0.0));
    let model = to_onnx(&g, &sess, &[&logits]).unwrap();
    let graph = model.graph.as_ref().unwrap();
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops.iter().filter(|&&o| o == "BatchNormalization").count(), 2, "{ops:?}");
    assert!(ops.contains(&"RandomUniformLike"), "{ops:?}");
    leave_for_onnx_runtime("cnn_plus_layers", &model, &sess, &x, &logits, xv.into_dyn());
}

#[test]
fn a_training_op_is_named_as_having_no_onnx_form() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(3)]).named("X").unwrap();
    let y = g.placeholder(DType::I64, [None]).named("y").unwrap();
    let xent = nn::sparse_softmax_cross_entropy_with_logits(&y, &x).named("xent").unwrap();
    let e = to_onnx(&g, &Session::new(&g).unwrap(), &[&xent]).unwrap_err().to_string();
    assert!(e.contains("xent") && e.contains("SparseSoftmaxCrossEntropyWithLogits") && e.contains("ONNX"), "{e}");
}

#[test]
fn an_embedding_lookup_and_a_split_export_as_gather_and_split() {
    let g = Graph::new();
    let ids = g.placeholder(DType::I64, [None]).named("ids").unwrap();
    let table = g.constant(ndarray::Array2::<f32>::ones((5, 3))).named("table").unwrap();
    let rows = nn::embedding_lookup(&table, &ids).named("rows").unwrap();
    let parts = array::split(&rows, [1, 2], 1).unwrap();
    let model = to_onnx(&g, &Session::new(&g).unwrap(), &[&parts[1]]).unwrap();
    let graph = model.graph.unwrap();
    let gather = graph.node.iter().find(|n| n.op_type == "Gather").unwrap();
    assert_eq!((gather.input.len(), gather.attribute[0].name.as_str(), gather.attribute[0].i), (2, "axis", 0));
    let split = graph.node.iter().find(|n| n.op_type == "Split").unwrap();
    assert_eq!(split.output, [format!("{}:0", parts[0].op_name()), parts[1].name()]);
    let sizes = graph.initializer.iter().find(|t| t.name == split.input[1]).unwrap();
    let raw: Vec<i64> = sizes.raw_data.chunks(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!((sizes.dims.as_slice(), raw.as_slice()), (&[2][..], &[1, 2][..]));
}

#[test]
fn an_lstm_over_unstacked_steps_exports_as_onnx_element_wise_ops() {
    // mnist_rnn's graph in small: rows unstacked (Split + Squeeze), a zero state (a Slice of the
    // input, ConstantOfShape), TF's LSTMBlockCell per step (one MatMul, the gates' ops).
    let g = Graph::new();
    g.set_random_seed(1);
    let x = g.placeholder(DType::F32, [None, Some(3), Some(2)]).named("X").unwrap();
    let (_, states) = tensorgraph::rnn::dynamic_rnn(&tensorgraph::rnn::BasicLSTMCell::new(4), &x, None, None).unwrap();
    let logits = layers::dense(states.last().unwrap(), 2, None, "out").unwrap();
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    let graph = to_onnx(&g, &sess, &[&logits]).unwrap().graph.unwrap();
    let count = |op: &str| graph.node.iter().filter(|n| n.op_type == op).count();
    // Three steps: one Split of the rows and one of each step's gates; MatMul per step and the
    // dense layer's.
    assert_eq!((count("Split"), count("Squeeze"), count("MatMul")), (4, 3, 4));
    assert_eq!((count("Sigmoid"), count("Tanh"), count("ConstantOfShape")), (9, 6, 1));
    let cell = graph.node.iter().find(|n| n.op_type == "Concat").unwrap();
    assert!(cell.name.ends_with("/xh"), "{}", cell.name);
    let zeros = graph.node.iter().find(|n| n.op_type == "ConstantOfShape").unwrap();
    let value = zeros.attribute[0].t.as_ref().unwrap();
    assert_eq!((zeros.attribute[0].r#type, value.data_type, value.raw_data.as_slice()), (4, 1, &[0u8; 4][..]));
}

/// TF's `LSTMCell` with peepholes and a cell clip (the fused `LSTMBlockCell`'s options) as
/// ONNX's element-wise ops: the clip binds (large inputs), the peepholes are trained weights.
/// tests/tf_interop.py runs the model in ONNX Runtime against our logits.
#[test]
fn an_lstm_with_peepholes_and_a_cell_clip_exports_for_inference() {
    use tensorgraph::rnn::LSTMCell;
    let g = Graph::new();
    g.set_random_seed(6);
    let x = g.placeholder(DType::F32, [None, Some(3), Some(2)]).named("X").unwrap();
    let cell = LSTMCell { use_peepholes: true, cell_clip: Some(0.5), ..LSTMCell::new(4) };
    let (_, states) = tensorgraph::rnn::dynamic_rnn(&cell, &x, None, None).unwrap();
    let logits = layers::dense(&states[1], 2, None, "out").unwrap();
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    // Peepholes start at zero in TF: give them values so that they count.
    for v in g.global_variables().iter().filter(|v| v.name().contains("_diag")) {
        let values = ndarray::Array1::from_shape_fn(4, |i| 0.5 - 0.3 * i as f32);
        sess.run(&state::assign(v, &g.constant(values).unwrap()).unwrap(), &[]).unwrap();
    }
    let xv = ndarray::Array3::from_shape_fn((4, 3, 2), |(a, b, c)| ((a * 5 + b * 3 + c) % 7) as f32 - 3.0);
    let c_final = sess.run(&states[0], feed! {x => &xv}).unwrap().to_f64_vec();
    assert!(c_final.iter().any(|c| (c.abs() - 0.5).abs() < 1e-6), "the clip binds: {c_final:?}");
    let model = to_onnx(&g, &sess, &[&logits]).unwrap();
    leave_for_onnx_runtime("lstm_peepholes", &model, &sess, &x, &logits, xv.into_dyn());
}

/// With `TG_INTEROP_OUT`, leaves `model` as `<name>.onnx` and the input `xv` with our logits for
/// it as `<name>.json`, for tests/tf_interop.py to compare in ONNX Runtime.
fn leave_for_onnx_runtime(
    name: &str,
    model: &impl prost::Message,
    sess: &Session,
    x: &Tensor,
    logits: &Tensor,
    xv: ndarray::ArrayD<f32>,
) {
    if let Ok(dir) = std::env::var("TG_INTEROP_OUT") {
        let dir = std::path::Path::new(&dir);
        std::fs::write(dir.join(format!("{name}.onnx")), model.encode_to_vec()).unwrap();
        let ours = sess.run(logits, feed! {x => &xv}).unwrap().to_f64_vec();
        let fx = serde_json::json!({"x": xv.iter().collect::<Vec<_>>(), "shape": xv.shape(), "logits": ours});
        std::fs::write(dir.join(format!("{name}.json")), fx.to_string()).unwrap();
    }
}
