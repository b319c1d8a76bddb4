//! Checkpoints and graph files: round trips, and every kind of damage is an error, not a panic.

mod common;

use ndarray::array;
use tensorgraph::io::{export_meta_graph, import_meta_graph, latest_checkpoint, Saver};
use tensorgraph::prelude::*;
use tensorgraph::Error;

fn tmp(name: &str) -> common::Scratch {
    common::scratch(&format!("persist-{name}"))
}

/// A small trained model: an MLP with Adam (so slots and beta powers exist too).
fn model() -> (Graph, Tensor, Tensor, Tensor, Operation) {
    let g = Graph::new();
    g.set_random_seed(5);
    let x = g.placeholder(DType::F32, [None, Some(4)]).named("x").unwrap();
    let y = g.placeholder(DType::I64, [None]).named("y").unwrap();
    let h = layers::dense(&x, 8, Some(nn::relu), "h").unwrap();
    let logits = layers::dense(&h, 3, None, "out").unwrap();
    let loss =
        math::reduce_mean(&nn::sparse_softmax_cross_entropy_with_logits(&y, &logits).named("xent").unwrap(), None)
            .named("loss")
            .unwrap();
    let train = g.name_scope("train", || Adam::new(0.01).minimize(&loss)).unwrap();
    g.add_to_collection("outputs", &logits);
    g.add_operation_to_collection(tensorgraph::collections::TRAIN_OP, &train);
    (g, x, y, logits, train)
}

fn feed<'a>(x: &'a Tensor, y: &'a Tensor) -> Vec<(&'a Tensor, Feed<'a>)> {
    vec![
        (x, array![[0.1f32, -0.2, 0.3, 0.9], [1.0, 0.5, -0.5, 0.0], [0.0, 0.2, 0.4, -1.0]].into()),
        (y, array![0i64, 2, 1].into()),
    ]
}

fn trained() -> (Graph, Tensor, Tensor, Tensor, Session) {
    let (g, x, y, logits, train) = model();
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    for _ in 0..5 {
        sess.run(&train, &feed(&x, &y)).unwrap();
    }
    (g, x, y, logits, sess)
}

#[test]
fn checkpoint_round_trip_is_bit_identical_including_slots() {
    let (g, _, _, _, sess) = trained();
    let dir = tmp("roundtrip");
    let path = Saver::new(&g).save(&sess, dir.join("model"), Some(5)).unwrap();
    let fresh = Session::new(&g).unwrap();
    assert_eq!(Saver::new(&g).restore(&fresh, &path).unwrap(), Some(5));
    let vars = g.global_variables();
    assert!(vars.iter().any(|v| v.name() == "h/kernel/Adam_1") && vars.iter().any(|v| v.name() == "beta1_power"));
    for v in vars {
        assert_eq!(sess.variable_value(&v).unwrap(), fresh.variable_value(&v).unwrap(), "{}", v.name());
    }
}

#[test]
fn max_to_keep_prunes_old_checkpoints_and_latest_is_found() {
    let (g, _, _, _, sess) = trained();
    let dir = tmp("keep");
    let saver = Saver::new(&g).max_to_keep(2);
    for step in 0..4 {
        saver.save(&sess, dir.join("model"), Some(step)).unwrap();
    }
    assert!(!dir.join("model-0.index").exists() && !dir.join("model-1.index").exists());
    assert!(!dir.join("model-0.data-00000-of-00001").exists());
    assert!(dir.join("model-2.index").exists() && dir.join("model-3.index").exists());
    assert_eq!(latest_checkpoint(&dir).unwrap(), dir.join("model-3"));
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files remain");
}

fn expect_bad_file(r: tensorgraph::Result<Option<u64>>, needle: &str) {
    match r {
        Err(Error::BadFile { detail, .. }) => assert!(detail.contains(needle), "{detail}"),
        other => panic!("expected BadFile containing {needle:?}, got {other:?}"),
    }
}

#[test]
fn damaged_checkpoints_are_errors() {
    let (g, _, _, _, sess) = trained();
    let dir = tmp("damaged");
    let prefix = Saver::new(&g).save(&sess, dir.join("model"), None).unwrap();
    let index = dir.join("model.index");
    let data = dir.join("model.data-00000-of-00001");
    let (index_bytes, data_bytes) = (std::fs::read(&index).unwrap(), std::fs::read(&data).unwrap());
    let saver = Saver::new(&g);
    let fresh = Session::new(&g).unwrap();
    let restore = || saver.restore(&fresh, &prefix);

    std::fs::write(&index, &index_bytes[..index_bytes.len() - 7]).unwrap();
    expect_bad_file(restore(), "magic");
    std::fs::write(&index, &index_bytes[..10]).unwrap();
    expect_bad_file(restore(), "shorter than a table");
    let mut flipped = index_bytes.clone();
    flipped[3] ^= 0x40;
    std::fs::write(&index, &flipped).unwrap();
    expect_bad_file(restore(), "CRC");
    // A graph file is not a checkpoint index.
    export_meta_graph(&g, &index).unwrap();
    expect_bad_file(restore(), "not a TF checkpoint index");
    std::fs::write(&index, &index_bytes).unwrap();
    std::fs::write(&data, &data_bytes[..data_bytes.len() - 4]).unwrap();
    expect_bad_file(restore(), "outside");
    let mut flipped = data_bytes.clone();
    flipped[0] ^= 0x40;
    std::fs::write(&data, &flipped).unwrap();
    expect_bad_file(restore(), "CRC");
    std::fs::write(&data, &data_bytes).unwrap();
    restore().unwrap();
    assert!(matches!(saver.restore(&fresh, dir.join("missing")).unwrap_err(), Error::Io { .. }));
}

#[test]
fn restore_names_missing_variables_and_mismatches() {
    let (g, _, _, _, sess) = trained();
    let dir = tmp("mismatch");
    let only_h = Saver::with_vars(&g.trainable_variables()[..2]);
    let path = only_h.save(&sess, dir.join("partial"), None).unwrap();
    let fresh = Session::new(&g).unwrap();
    expect_bad_file(Saver::new(&g).restore(&fresh, &path), "out/kernel is missing");

    let other = Graph::new();
    let x = other.placeholder(DType::F32, [None, Some(5)]).named("x").unwrap();
    layers::dense(&x, 8, None, "h").unwrap();
    let s2 = Session::new(&other).unwrap();
    expect_bad_file(
        Saver::new(&other).restore(&s2, &path),
        "h/kernel is float32 [4,8] in the file but float32 [5,8] in the graph",
    );
}

#[test]
fn graph_file_round_trip_computes_the_same_outputs() {
    let (g, x, y, logits, sess) = trained();
    let dir = tmp("meta");
    export_meta_graph(&g, dir.join("model.meta")).unwrap();
    let ckpt = Saver::new(&g).save(&sess, dir.join("model"), Some(1)).unwrap();
    let sess = sess;
    let want = sess.run(&[&logits], &feed(&x, &y)).unwrap().remove(0);

    // TF's Saver nodes and their SaverDef are in the file (for TF's import_meta_graph; the
    // interop script runs them) and are dropped again on import.
    use prost::Message;
    let meta = tensorgraph::proto::tf::MetaGraphDef::decode(std::fs::read(dir.join("model.meta")).unwrap().as_slice())
        .unwrap();
    let saver = meta.saver_def.as_ref().unwrap();
    assert_eq!(
        (saver.restore_op_name.as_str(), saver.filename_tensor_name.as_str()),
        ("save/restore_all", "save/Const:0")
    );
    let nodes = &meta.graph_def.as_ref().unwrap().node;
    let save = nodes.iter().find(|n| n.name == "save/SaveV2").unwrap();
    assert_eq!(save.input.len(), 3 + g.global_variables().len()); // every variable and Adam slot
    assert!(save.input[3..].windows(2).all(|w| w[0] < w[1]), "sorted by name: {:?}", save.input);
    let h = import_meta_graph(dir.join("model.meta")).unwrap();
    assert_eq!(h.to_text(), g.to_text());
    let s2 = Session::new(&h).unwrap();
    Saver::new(&h).restore(&s2, &ckpt).unwrap();
    let (x2, y2) = (h.tensor_by_name("x:0").unwrap(), h.tensor_by_name("y:0").unwrap());
    let logits2 = h.get_collection("outputs").remove(0);
    assert_eq!(s2.run(&[&logits2], &feed(&x2, &y2)).unwrap().remove(0), want);
    // The imported graph can be extended and trained further.
    let train2 = h.get_operation_collection(tensorgraph::collections::TRAIN_OP).remove(0);
    assert_eq!(train2.name(), "train/Adam");
    assert_eq!(h.trainable_variables().len(), 4, "trainable flags survive");
    s2.run(&train2, &feed(&x2, &y2)).unwrap();

    let bytes = std::fs::read(dir.join("model.meta")).unwrap();
    std::fs::write(dir.join("bad.meta"), &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(import_meta_graph(dir.join("bad.meta")).unwrap_err(), Error::BadFile { .. }));
}

#[test]
fn dot_json_and_summary_describe_the_graph() {
    let (g, ..) = model();
    let dot = tensorgraph::inspect::to_dot(&g);
    assert!(dot.starts_with("digraph"));
    assert!(dot.contains("subgraph \"cluster_train/gradients\""), "gradients cluster");
    assert!(dot.contains("style=dashed"), "control edges");
    assert!(dot.contains("label=\"[?,8]\""), "edges carry shapes");
    let json: serde_json::Value = serde_json::from_str(&tensorgraph::inspect::to_json(&g).unwrap()).unwrap();
    assert!(json.get("dag").is_some());
    let s = tensorgraph::inspect::summary(&g);
    assert!(s.contains("h ") && s.contains("[?,8]") && s.contains("40"), "{s}");
    assert!(s.contains("Trainable params: 67"), "{s}");
}

/// Files of tensorgraph's former formats (gzip'd bincode behind a `TGRAPH`/`TGCKPT` magic),
/// including inputs the fuzzers once found in their readers, are refused as old formats.
#[test]
fn former_formats_are_refused_by_name() {
    let p = std::path::Path::new("old.tgraph");
    for fixture in ["meta_graph-oom-1", "meta_graph-petgraph-holes"] {
        let mut bytes = b"TGRAPH\0\x01".to_vec();
        bytes.extend(std::fs::read(format!("tests/fixtures/fuzz/{fixture}")).unwrap());
        let e = tensorgraph::io::meta_graph::import_meta_graph_bytes(&bytes, p).unwrap_err().to_string();
        assert!(e.contains("former format") && e.contains("old.tgraph"), "{e}");
    }
    let g = Graph::new();
    let e = tensorgraph::io::Saver::new(&g).restore(&Session::new(&g).unwrap(), "model-3.tgckpt").unwrap_err();
    assert!(e.to_string().contains("former format"), "{e}");
}

/// Resuming from a checkpoint continues exactly: every optimizer's slots, the global step that
/// drives the learning-rate schedule, and batch norm's moving averages are saved and restored.
#[test]
fn resumed_training_matches_uninterrupted_training_for_every_optimizer() {
    use tensorgraph::train::{Adagrad, Momentum, RMSProp};
    type MakeOptimizer = fn(&Tensor) -> Box<dyn Optimizer>;
    let optimizers: Vec<(&str, MakeOptimizer)> = vec![
        ("momentum", |lr| Box::new(Momentum::new(lr, 0.9).use_nesterov(true))),
        ("adagrad", |lr| Box::new(Adagrad::new(lr))),
        ("rmsprop", |lr| Box::new(RMSProp::new(lr).momentum(0.5).centered(true))),
        ("adam", |lr| Box::new(Adam::new(lr))),
    ];
    for (name, make) in optimizers {
        let g = Graph::new();
        g.set_random_seed(9);
        let x = g.placeholder(DType::F32, [None, Some(4)]).named("x").unwrap();
        let y = g.placeholder(DType::I64, [None]).named("y").unwrap();
        let training = g.placeholder_with_default(&g.scalar(1.0, DType::Bool).unwrap()).named("training").unwrap();
        let h = layers::batch_normalization(&layers::dense(&x, 8, None, "h").unwrap(), &training, "bn").unwrap();
        let logits = layers::dense(&nn::relu(&h).unwrap(), 3, None, "out").unwrap();
        let xent = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits).named("xent").unwrap();
        let loss = math::reduce_mean(&xent, None).named("loss").unwrap();
        let step = train::get_or_create_global_step(&g).unwrap();
        let lr = train::exponential_decay(0.05, &step, 2, 0.5, true).unwrap();
        let updates = g.get_operation_collection(tensorgraph::collections::UPDATE_OPS);
        let refs: Vec<&Operation> = updates.iter().collect();
        let train_op = g.control_dependencies(&refs, || make(&lr).minimize_with(&loss, None, Some(&step))).unwrap();

        let mut a = Session::new(&g).unwrap();
        a.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
        for _ in 0..3 {
            a.run(&train_op, &feed(&x, &y)).unwrap();
        }
        let dir = tmp(&format!("resume-{name}"));
        let path = Saver::new(&g).save(&a, dir.join("model"), Some(3)).unwrap();
        let mut b = Session::new(&g).unwrap();
        Saver::new(&g).restore(&b, &path).unwrap();
        for sess in [&mut a, &mut b] {
            for _ in 0..2 {
                sess.run(&train_op, &feed(&x, &y)).unwrap();
            }
        }
        let vars = g.global_variables();
        assert!(vars.iter().any(|v| v.name() == "bn/moving_variance"), "{name}");
        assert!(vars.iter().any(|v| v.name().starts_with("h/kernel/")), "{name}: slots exist");
        for v in &vars {
            assert_eq!(a.variable_value(v).unwrap(), b.variable_value(v).unwrap(), "{name}: {}", v.name());
        }
        assert_eq!(a.variable_value(&step).unwrap().unwrap().scalar_f64(), Some(5.0));
    }
}

/// A graph with every kind of op the examples train (conv, pooling, batch norm with its update
/// ops, dropout, Adam with a decaying rate and a global step, random initializers) through
/// `.meta` and back: the same graph node for node, and the same training from the same values.
#[test]
fn a_cnn_training_graph_round_trips_through_a_meta_graph_exactly() {
    let g = Graph::new();
    g.set_random_seed(11);
    let x = g.placeholder(DType::F32, [None, Some(4), Some(4), Some(1)]).named("x").unwrap();
    let y = g.placeholder(DType::I64, [None]).named("y").unwrap();
    let training = g.placeholder_with_default(&g.scalar(0.0, DType::Bool).unwrap()).named("training").unwrap();
    let c = layers::conv2d(&x, 3, 2, 1, Padding::Same, Some(nn::relu), "conv").unwrap();
    let p = layers::max_pooling2d(&c, 2, 2, Padding::Valid, "pool").unwrap();
    let b = layers::batch_normalization(&p, &training, "bn").unwrap();
    let d = nn::dropout(&layers::flatten(&b).unwrap(), 0.25, &training, Some(3)).unwrap();
    let logits = layers::dense(&d, 3, None, "out").unwrap();
    let xent = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits).unwrap();
    let loss = math::reduce_mean(&xent, None).named("loss").unwrap();
    let step = train::get_or_create_global_step(&g).unwrap();
    let lr = train::exponential_decay(0.01, &step, 10, 0.5, false).unwrap();
    let updates = g.get_operation_collection(tensorgraph::collections::UPDATE_OPS);
    let update_refs: Vec<&Operation> = updates.iter().collect();
    let train =
        g.control_dependencies(&update_refs, || Adam::new(&lr).minimize_with(&loss, None, Some(&step))).unwrap();
    g.add_operation_to_collection(tensorgraph::collections::TRAIN_OP, &train);
    g.add_to_collection("losses", &loss);

    let dir = tmp("cnn-meta");
    export_meta_graph(&g, dir.join("cnn.meta")).unwrap();
    let h = import_meta_graph(dir.join("cnn.meta")).unwrap();
    assert_eq!(h.to_text(), g.to_text());
    assert_eq!(h.global_variables().len(), g.global_variables().len());
    assert_eq!(h.get_operation_collection(tensorgraph::collections::UPDATE_OPS).len(), updates.len());

    // The same initial values (initializers' ranges and seeds travel) and bit-identical
    // training (dropout's seeds too).
    let (s1, s2) = (Session::new(&g).unwrap(), Session::new(&h).unwrap());
    s1.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    s2.run(&h.global_variables_initializer().unwrap(), &[]).unwrap();
    for (v, w) in g.global_variables().iter().zip(h.global_variables()) {
        assert_eq!(v.name(), w.name());
        assert_eq!(s1.variable_value(v).unwrap(), s2.variable_value(&w).unwrap(), "{}", v.name());
    }
    let losses = |g: &Graph, sess: &Session| -> Vec<Value> {
        let t = |n: &str| g.tensor_by_name(n).unwrap();
        let train = g.get_operation_collection(tensorgraph::collections::TRAIN_OP).remove(0);
        let xv = ndarray::Array4::from_shape_fn((2, 4, 4, 1), |(i, j, k, _)| (i + j * k) as f32 * 0.1).into_dyn();
        let (tx, ty, tt) = (t("x:0"), t("y:0"), t("training:0"));
        let feeds =
            [(&tx, Feed::from(xv)), (&ty, array![0i64, 2].into()), (&tt, ndarray::arr0(true).into_dyn().into())];
        (0..3).map(|_| sess.run_with(&[&t("loss:0")], &[&train], &feeds).unwrap().remove(0)).collect()
    };
    let (l1, l2) = (losses(&g, &s1), losses(&h, &s2));
    assert_eq!(l1, l2);
    assert_ne!(l1[0], l1[2], "training moved the loss");
}
