//! Hostile and careless use (issue #15): every case here once panicked, aborted, hung, lost data
//! or silently did the wrong thing. Each must now be a clean `Err` naming what is wrong, or TF's
//! result.

mod common;

use ndarray::{array, ArrayD, Axis, IxDyn};
use std::path::Path;
use std::time::Duration;
use tensorgraph::io::{latest_checkpoint, Saver};
use tensorgraph::prelude::*;
use tensorgraph::Error;

fn tmp(name: &str) -> common::Scratch {
    common::scratch(&format!("hostile-{name}"))
}

/// Runs `f` on another thread and fails the test (instead of hanging it) if it takes too long.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs)).expect("hung: no answer in time")
}

/// A tensor of `shape` holding -2..2 in a repeating pattern (the folded ops' tests' feeds).
fn ramp(shape: &[usize]) -> ArrayD<f32> {
    let n = shape.iter().product::<usize>();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|k| (k * 7 % 5) as f32 - 2.0).collect()).unwrap()
}

fn init(g: &Graph) -> Session {
    let sess = Session::new(g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    sess
}

// ---- panics ------------------------------------------------------------------------------

#[test]
fn fetching_one_tensor_twice_returns_it_twice() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None]).named("x").unwrap();
    let y = math::square(&x).unwrap();
    let sess = Session::new(&g).unwrap();
    let out = sess.run(&[&y, &y, &x, &x], &[(&x, array![1.0f32, 3.0].into())]).unwrap();
    assert_eq!(out.len(), 4);
    assert_eq!(out[0].to_f64_vec(), [1.0, 9.0]);
    assert_eq!(out[1].to_f64_vec(), [1.0, 9.0]);
    assert_eq!(out[3].to_f64_vec(), [1.0, 3.0]);
}

#[test]
fn an_empty_batch_flows_through_every_layer_kind() {
    let g = Graph::new();
    g.set_random_seed(1);
    let x = g.placeholder(DType::F32, [None, Some(4)]).named("x").unwrap();
    let y = g.placeholder(DType::I64, [None]).named("y").unwrap();
    let h = layers::dense(&x, 3, Some(nn::relu), "h").unwrap();
    let logits = layers::dense(&h, 2, None, "out").unwrap();
    let p = nn::softmax(&logits).unwrap();
    let xent = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits).named("xent").unwrap();
    let loss = math::reduce_mean(&xent, None).named("loss").unwrap();
    let b = g.constant(array![1.0f32, 2.0, 3.0, 4.0]).named("b").unwrap();
    let sum = math::add(&math::mul(&x, &b).unwrap(), &b).unwrap();
    let img = array::reshape(&x, &[-1, 2, 2, 1]).unwrap();
    let f = g.constant(ArrayD::from_elem(IxDyn(&[2, 2, 1, 3]), 0.5f32)).named("f").unwrap();
    let conv = nn::conv2d(&img, &f, [1, 1, 1, 1], Padding::Same).unwrap();
    let pool = nn::max_pool(&conv, [1, 2, 2, 1], [1, 2, 2, 1], Padding::Valid).unwrap();
    let sess = init(&g);
    let empty = ArrayD::<f32>::zeros(IxDyn(&[0, 4]));
    let labels = ArrayD::<i64>::zeros(IxDyn(&[0]));
    let out = sess
        .run(&[&h, &logits, &p, &xent, &loss, &sum, &conv, &pool], &[(&x, empty.into()), (&y, labels.into())])
        .unwrap();
    assert_eq!(out[0].shape(), [0, 3]);
    assert_eq!(out[2].shape(), [0, 2]);
    assert_eq!(out[3].shape(), [0]);
    assert!(out[4].scalar_f64().unwrap().is_nan(), "TF: the mean of nothing is NaN");
    assert_eq!(out[5].shape(), [0, 4]);
    assert_eq!(out[6].shape(), [0, 2, 2, 3]);
    assert_eq!(out[7].shape(), [0, 1, 1, 3]);
    // And the gradients of an empty batch.
    let grads = tensorgraph::gradients(&[&loss], &[&x], None).unwrap();
    let empty = ArrayD::<f32>::zeros(IxDyn(&[0, 4]));
    let dx = sess
        .run(&[grads[0].as_ref().unwrap()], &[(&x, empty.into()), (&y, ArrayD::<i64>::zeros(IxDyn(&[0])).into())])
        .unwrap();
    assert_eq!(dx[0].shape(), [0, 4]);
}

#[test]
fn a_zero_length_row_broadcast_is_empty_not_a_panic() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, None]).named("x").unwrap();
    let b = g.placeholder(DType::F32, [None]).named("b").unwrap();
    let y = math::add(&x, &b).unwrap();
    let z = math::mul(&x, &b).unwrap();
    let sess = Session::new(&g).unwrap();
    let feeds = [(&x, ArrayD::<f32>::zeros(IxDyn(&[70000, 0])).into()), (&b, ArrayD::<f32>::zeros(IxDyn(&[0])).into())];
    let out = sess.run(&[&y, &z], &feeds).unwrap();
    assert_eq!(out[0].shape(), [70000, 0]);
    let feeds = [(&x, ArrayD::<f32>::zeros(IxDyn(&[3, 0])).into()), (&b, ArrayD::<f32>::zeros(IxDyn(&[0])).into())];
    assert_eq!(sess.run(&[&y], &feeds).unwrap()[0].shape(), [3, 0]);
}

#[test]
fn a_huge_dilation_is_an_error_or_tensorflows_result() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(5), Some(5), Some(1)]).named("x").unwrap();
    let f = g.constant(ArrayD::from_elem(IxDyn(&[3, 3, 1, 1]), 1.0f32)).named("f").unwrap();
    // Dilated extents that overflow, and VALID windows wider than the input.
    for (d, padding) in [(usize::MAX / 2, Padding::Same), (usize::MAX, Padding::Valid), (1 << 40, Padding::Valid)] {
        let e = nn::conv2d_dilated(&x, &f, [1, 1, 1, 1], padding, [1, d, d, 1]).unwrap_err();
        assert!(e.to_string().contains("Conv2D"), "{e}");
    }
    // SAME with a dilation far wider than the image: every tap but the centre falls in the
    // padding, so the output is the input times the centre tap (TF's result), known or not.
    let xu = g.placeholder(DType::F32, [None, None, None, Some(1)]).named("xu").unwrap();
    let same = nn::conv2d_dilated(&x, &f, [1, 1, 1, 1], Padding::Same, [1, 1 << 40, 1 << 40, 1]).unwrap();
    let unknown = nn::conv2d_dilated(&xu, &f, [1, 1, 1, 1], Padding::Same, [1, 1 << 40, 1 << 40, 1]).unwrap();
    let sess = Session::new(&g).unwrap();
    let img = ArrayD::from_shape_fn(IxDyn(&[1, 5, 5, 1]), |i| (i[1] * 5 + i[2]) as f32);
    let out = sess.run(&[&same, &unknown], &[(&x, img.clone().into()), (&xu, img.clone().into())]).unwrap();
    for o in out {
        assert_eq!(o.as_f32().unwrap(), &img);
    }
    // Unknown sizes meet the overflow at run time.
    let y = nn::conv2d_dilated(&xu, &f, [1, 1, 1, 1], Padding::Same, [1, usize::MAX / 2, usize::MAX / 2, 1]);
    assert!(y.is_err());
    let e = nn::conv2d(&x, &f, [1, 0, 1, 1], Padding::Same).unwrap_err();
    assert!(e.to_string().contains("stride"), "{e}");
}

// ---- aborts: sizes from attributes or values -----------------------------------------------

#[test]
fn a_huge_pad_or_one_hot_is_an_error_not_an_abort() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(2)]).named("x").unwrap();
    let padded = array::pad(&x, &[(0, 0), (1 << 40, 1 << 40)]).unwrap();
    let idx = g.placeholder(DType::I64, [None]).named("idx").unwrap();
    let hot = array::one_hot(&idx, 1 << 42, 1.0, 0.0, DType::F32).unwrap();
    let sess = Session::new(&g).unwrap();
    let e = sess.run(&[&padded], &[(&x, array![[1.0f32, 2.0]].into())]).unwrap_err();
    assert!(matches!(&e, Error::Runtime { node, .. } if node.name == "Pad"), "{e}");
    let e = sess.run(&[&hot], &[(&idx, array![0i64, 1].into())]).unwrap_err();
    assert!(matches!(&e, Error::Runtime { node, .. } if node.name == "OneHot"), "{e}");
    assert!(e.to_string().contains("too large"), "{e}");
    // A product of dimensions that overflows usize is refused while building.
    let e = array::pad(&x, &[(0, 0), (usize::MAX - 1, 5)]).unwrap_err();
    assert!(e.to_string().contains("Pad"), "{e}");
    let e = array::fill(&g, &[1 << 40, 1 << 40], DType::F32, 0.0).unwrap_err();
    assert!(e.to_string().contains("Fill"), "{e}");
}

// ---- integer arithmetic as TF does it (two's complement wrap) in every build ----------------

#[test]
fn integer_overflow_wraps_as_in_tensorflow() {
    let g = Graph::new();
    let a = g.constant(array![i32::MAX, i32::MIN, 7]).named("a").unwrap();
    let b = g.constant(array![1i32, -1, 2]).named("b").unwrap();
    let c = g.constant(array![i64::MAX, i64::MIN]).named("c").unwrap();
    let sum = math::add(&a, &b).unwrap();
    let diff = math::sub(&b, &a).unwrap();
    let prod = math::mul(&a, &a).unwrap();
    let neg = math::neg(&c).unwrap();
    let abs = math::abs(&c).unwrap();
    let sq = math::square(&c).unwrap();
    let s = math::reduce_sum(&a, None).named("s").unwrap();
    let sess = Session::new(&g).unwrap();
    let out = sess.run(&[&sum, &diff, &prod, &neg, &abs, &sq, &s], &[]).unwrap();
    assert_eq!(out[0].as_i32().unwrap().as_slice().unwrap(), &[i32::MIN, i32::MAX, 9]);
    assert_eq!(out[1].as_i32().unwrap().as_slice().unwrap(), &[i32::MIN + 2, i32::MAX, -5]);
    assert_eq!(out[2].as_i32().unwrap().as_slice().unwrap(), &[1, 0, 49]);
    assert_eq!(out[3].as_i64().unwrap().as_slice().unwrap(), &[-i64::MAX, i64::MIN]);
    assert_eq!(out[4].as_i64().unwrap().as_slice().unwrap(), &[i64::MAX, i64::MIN]);
    assert_eq!(out[5].as_i64().unwrap().as_slice().unwrap(), &[1, 0]);
    assert_eq!(out[6].as_i32().unwrap().iter().next(), Some(&6));
}

// ---- checkpoints ---------------------------------------------------------------------------

fn small_model() -> (Graph, Session) {
    let g = Graph::new();
    g.variable(&g.constant(array![1.0f32, 2.0]).unwrap(), "w", true).unwrap();
    let sess = init(&g);
    (g, sess)
}

#[test]
fn an_index_naming_a_foreign_path_never_gets_it_deleted() {
    let (g, sess) = small_model();
    let dir = tmp("foreign-index");
    let victim_dir = tmp("victim");
    let victim = victim_dir.join("precious.txt");
    std::fs::write(&victim, "days of training").unwrap();
    let inside = dir.join("notes.txt");
    std::fs::write(&inside, "mine").unwrap();
    let index = format!(
        "all_model_checkpoint_paths: \"{}\"\nall_model_checkpoint_paths: \"../{}/precious.txt\"\n\
         model_checkpoint_path: \"notes.txt\"\n",
        victim.display(),
        victim_dir.file_name().unwrap().to_str().unwrap()
    );
    std::fs::write(dir.join("checkpoint"), index).unwrap();
    let saver = Saver::new(&g).max_to_keep(1);
    for step in 0..3 {
        saver.save(&sess, dir.join("model"), Some(step)).unwrap();
    }
    assert!(victim.exists(), "a file outside the directory was deleted");
    assert!(inside.exists(), "a file the saver did not write was deleted");
    assert_eq!(latest_checkpoint(&dir).unwrap(), dir.join("model-2"));
}

#[test]
fn pruning_one_prefix_keeps_the_other_prefixes() {
    let (g, sess) = small_model();
    let dir = tmp("prefixes");
    let saver = Saver::new(&g).max_to_keep(2);
    for step in 0..3 {
        saver.save(&sess, dir.join("a"), Some(step)).unwrap();
    }
    for step in 0..3 {
        saver.save(&sess, dir.join("b"), Some(step)).unwrap();
    }
    for kept in ["a-1", "a-2", "b-1", "b-2"] {
        assert!(dir.join(format!("{kept}.index")).exists(), "{kept} was deleted");
    }
    for pruned in ["a-0", "b-0"] {
        assert!(!dir.join(format!("{pruned}.index")).exists(), "{pruned} was kept");
        assert!(!dir.join(format!("{pruned}.data-00000-of-00001")).exists(), "{pruned}'s data was kept");
    }
}

#[test]
fn a_failed_index_write_keeps_every_checkpoint_the_index_names() {
    let (g, sess) = small_model();
    let dir = tmp("index-fails");
    let saver = Saver::new(&g).max_to_keep(1);
    saver.save(&sess, dir.join("model"), Some(1)).unwrap();
    // Make the index unwritable: a non-empty directory cannot be renamed over.
    let index = dir.join("checkpoint");
    std::fs::remove_file(&index).unwrap();
    std::fs::create_dir_all(index.join("blocker")).unwrap();
    assert!(saver.save(&sess, dir.join("model"), Some(2)).is_err());
    assert!(dir.join("model-1.index").exists(), "pruned before the new index was in place");
    std::fs::remove_dir_all(&index).unwrap();
    std::fs::write(&index, "model_checkpoint_path: \"model-1\"\n").unwrap();
    let fresh = Session::new(&g).unwrap();
    Saver::new(&g).restore(&fresh, latest_checkpoint(&dir).unwrap()).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_damaged_index_does_not_stop_the_next_save() {
    let (g, sess) = small_model();
    let dir = tmp("damaged-index");
    let saver = Saver::new(&g).max_to_keep(1);
    saver.save(&sess, dir.join("model"), Some(1)).unwrap();
    std::fs::write(dir.join("checkpoint"), [0xFFu8, 0xFE, b'\n', 0, 7, b'\n']).unwrap();
    let path = saver.save(&sess, dir.join("model"), Some(2)).unwrap();
    assert_eq!(latest_checkpoint(&dir).unwrap(), path);
    // model-1 is no longer named by the index, so it is not the saver's to prune: it stays.
    assert!(dir.join("model-1.index").exists());
}

#[test]
fn temp_files_of_killed_saves_are_cleaned_by_the_next_save() {
    let (g, sess) = small_model();
    let dir = tmp("stale-tmp");
    // What a save killed between write and rename leaves (the pid is one no process has).
    let stale = [".model-3.index.tmp4294967", ".model-3.data-00000-of-00001.tmp4294967", ".checkpoint.tmp4294967"];
    for s in stale {
        std::fs::write(dir.join(s), "partial").unwrap();
    }
    let unrelated = dir.join(".other.tmp4294967");
    std::fs::write(&unrelated, "not ours").unwrap();
    Saver::new(&g).save(&sess, dir.join("model"), Some(4)).unwrap();
    for s in stale {
        assert!(!dir.join(s).exists(), "{s} was left behind");
    }
    assert!(unrelated.exists(), "a file the saver does not write was deleted");
}

#[test]
fn a_prefix_ending_in_a_separator_saves_inside_that_directory() {
    let (g, sess) = small_model();
    let dir = tmp("dir-prefix");
    let prefix = format!("{}{}", dir.join("ckpts").display(), std::path::MAIN_SEPARATOR);
    let path = Saver::new(&g).save(&sess, &prefix, Some(3)).unwrap();
    assert_eq!(path, dir.join("ckpts").join("-3"));
    assert_eq!(latest_checkpoint(dir.join("ckpts")).unwrap(), path);
}

#[test]
fn restore_names_the_missing_file() {
    let (g, sess) = small_model();
    let e = Saver::new(&g).restore(&sess, "/nonexistent/model-3").unwrap_err();
    assert!(e.to_string().contains("/nonexistent/model-3.index"), "{e}");
}

// ---- state -----------------------------------------------------------------------------------

#[test]
fn assign_checks_the_value_shape_against_the_variable() {
    let g = Graph::new();
    let w = g.variable(&g.constant(array![1.0f32, 2.0]).unwrap(), "w", true).unwrap();
    let v = g.placeholder(DType::F32, [None]).named("v").unwrap();
    let assign = state::assign(&w, &v).unwrap();
    let add = state::assign_add(&w, &v).unwrap();
    let sess = init(&g);
    for op in [&assign, &add] {
        let e = sess.run(&[op], &[(&v, array![1.0f32, 2.0, 3.0, 4.0, 5.0].into())]).unwrap_err();
        assert!(e.to_string().contains("[5]") && e.to_string().contains("[2]"), "{e}");
    }
    assert_eq!(sess.run(&[w.value()], &[]).unwrap()[0].to_f64_vec(), [1.0, 2.0]);
    // A statically wrong shape is refused while building.
    let c = g.constant(array![1.0f32, 2.0, 3.0]).unwrap();
    assert!(state::assign(&w, &c).is_err());
}

#[test]
fn a_verbatim_name_is_unique_too() {
    let g = Graph::new();
    let a = g.placeholder(DType::F32, [None]).named("x/").unwrap();
    let b = g.placeholder(DType::F32, [None]).named("x").unwrap();
    assert_eq!(a.op_name(), "x");
    assert_ne!(a.op_name(), b.op_name());
    // A verbatim name that is taken is an error, as in TF (a duplicate node name).
    let e = g.placeholder(DType::F32, [None]).named("x/").unwrap_err();
    assert!(e.to_string().contains("x"), "{e}");
    let names: std::collections::HashSet<String> = g.operations().iter().map(|o| o.name()).collect();
    assert_eq!(names.len(), g.operations().len());
}

#[test]
fn handles_from_another_graph_are_refused() {
    let (g1, sess1) = small_model();
    let (g2, _) = small_model();
    let w2 = g2.global_variables().remove(0);
    assert!(sess1.variable_value(&w2).is_err());
    let s = Session::new(&g1).unwrap();
    assert!(s.set_variable_value(&w2, array![5.0f32, 6.0].into_dyn().into()).is_err());
    let dir = tmp("foreign-saver");
    let e = Saver::with_vars(std::slice::from_ref(&w2)).save(&sess1, dir.join("m"), None).unwrap_err();
    assert!(e.to_string().contains("w"), "{e}");
    let path = Saver::new(&g1).save(&sess1, dir.join("ok"), None).unwrap();
    assert!(Saver::with_vars(&[w2]).restore(&s, &path).is_err());
    // The session of g1 still holds g1's value.
    let w1 = g1.global_variables().remove(0);
    assert_eq!(sess1.variable_value(&w1).unwrap().unwrap().to_f64_vec(), [1.0, 2.0]);
}

#[test]
fn feeding_one_tensor_twice_is_an_error() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None]).named("x").unwrap();
    let y = math::square(&x).unwrap();
    let sess = Session::new(&g).unwrap();
    let e = sess.run(&[&y], &[(&x, array![1.0f32].into()), (&x, array![2.0f32].into())]).unwrap_err();
    assert!(e.to_string().contains("x") && e.to_string().contains("twice"), "{e}");
}

#[test]
fn two_file_writers_in_one_second_write_two_files() {
    let dir = tmp("writers");
    let mut a = tensorgraph::summary::FileWriter::new(&dir, None).unwrap();
    let mut b = tensorgraph::summary::FileWriter::new(&dir, None).unwrap();
    assert_ne!(a.path(), b.path());
    a.add_scalar("loss", 1.0, 1).unwrap();
    b.add_scalar("loss", 2.0, 1).unwrap();
    let la = std::fs::metadata(a.path()).unwrap().len();
    let lb = std::fs::metadata(b.path()).unwrap().len();
    assert!(la > 0 && lb > 0 && la == lb, "{la} {lb}");
}

// ---- cost ------------------------------------------------------------------------------------

#[test]
fn the_plan_cache_is_bounded() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None]).named("x").unwrap();
    let ys: Vec<Tensor> = (0..40).map(|i| math::mul(&x, &g.scalar(i as f64, DType::F32).unwrap()).unwrap()).collect();
    let sess = Session::new(&g).unwrap();
    // 40 * 39 ordered pairs of fetches: that many distinct plans.
    for a in &ys {
        for b in &ys {
            sess.run(&[a, b], &[(&x, array![1.0f32].into())]).unwrap();
        }
    }
    assert!(sess.cached_plans() <= Session::MAX_CACHED_PLANS, "{}", sess.cached_plans());
    // Still right after eviction.
    assert_eq!(sess.run(&[&ys[3]], &[(&x, array![2.0f32].into())]).unwrap()[0].to_f64_vec(), [6.0]);
}

#[test]
fn reading_the_graph_inside_a_read_does_not_hang() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(2)]).named("x").unwrap();
    let shape = within(10, move || g.read(|_| x.shape().to_string()));
    assert_eq!(shape, "[?,2]");
}

#[test]
fn building_inside_a_read_is_an_error_not_a_hang() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(2)]).named("x").unwrap();
    let (g2, x2) = (g.clone(), x.clone());
    let r = within(10, move || g.read(|_| nn::relu(&x).map(|t| t.name())));
    let e = r.unwrap_err();
    assert!(e.to_string().contains("read"), "{e}");
    // The builders without a Result (as TF's) panic with the same words instead of hanging.
    let r = within(10, move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g2.read(|_| g2.add_to_collection("c", &x2))))
    });
    let payload = r.unwrap_err();
    let msg = payload.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("inside Graph::read"), "{msg}");
}

#[test]
fn a_file_that_claims_a_huge_size_is_refused_before_decompressing() {
    // A protobuf that declares a 15 GiB field in a few bytes: an error, no allocation.
    let mut bytes = vec![0x12]; // MetaGraphDef.graph_def, length-delimited
    prost::encoding::encode_varint(15 << 30, &mut bytes);
    bytes.extend_from_slice(&[0u8; 64]);
    let e = tensorgraph::io::meta_graph::import_meta_graph_bytes(&bytes, Path::new("bomb.meta")).unwrap_err();
    assert!(e.to_string().contains("bomb.meta"), "{e}");
}

#[cfg(unix)]
#[test]
fn a_fifo_or_a_device_is_not_read_as_a_data_file() {
    let dir = tmp("fifo");
    let fifo = dir.join("model.meta");
    let index = dir.join("ck.index");
    let mkfifo = |p: &Path| std::process::Command::new("mkfifo").arg(p).status().map(|s| s.success()).unwrap_or(false);
    let ok = mkfifo(&fifo) && mkfifo(&index);
    let (g, sess) = small_model();
    if ok {
        let f = dir.join("ck");
        let g2 = g.clone();
        let e = within(10, move || {
            let s = Session::new(&g2).unwrap();
            Saver::new(&g2).restore(&s, &f).map(drop).map_err(|e| e.to_string())
        })
        .unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let e = within(10, move || tensorgraph::io::import_meta_graph(&fifo).map(drop).map_err(|e| e.to_string()))
            .unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let mnist_dir = dir.join("mnist");
        std::fs::create_dir_all(&mnist_dir).unwrap();
        let img = mnist_dir.join("train-images-idx3-ubyte.gz");
        std::process::Command::new("mkfifo").arg(&img).status().unwrap();
        let e = within(10, move || tensorgraph::data::mnist::read_images(&img).map(drop).map_err(|e| e.to_string()))
            .unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }
    #[cfg(unix)]
    if Path::new("/dev/zero").exists() {
        // A checkpoint whose index is a device (through a link).
        std::os::unix::fs::symlink("/dev/zero", dir.join("z.index")).unwrap();
        let e = Saver::new(&g).restore(&sess, dir.join("z")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}

// ---- semantics -------------------------------------------------------------------------------

#[test]
fn relu_keeps_nan_as_tensorflow_does() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(2)]).named("x").unwrap();
    let w = g.constant(array![[1.0f32, 0.0], [0.0, 1.0]]).named("w").unwrap();
    let y = nn::relu(&x).unwrap();
    // Through the fused MatMul+Relu epilogue too.
    let z = nn::relu(&math::matmul(&x, &w, false, false).unwrap()).unwrap();
    let mut sess = Session::new(&g).unwrap();
    let feed = || [(&x, array![[f32::NAN, -1.0]].into())];
    let out = sess.run(&[&y, &z], &feed()).unwrap();
    let (ry, rz) = (out[0].as_f32().unwrap(), out[1].as_f32().unwrap());
    assert!(ry[[0, 0]].is_nan() && ry[[0, 1]] == 0.0, "{ry}");
    assert!(rz[[0, 0]].is_nan(), "{rz}"); // and z[0, 1] = relu(NaN * 0 - 1) is NaN too
    sess.set_check_numerics(true);
    let e = sess.run(&[&z], &feed()).unwrap_err();
    assert!(matches!(e, Error::NonFinite { .. }), "{e}");
}

#[test]
fn a_fused_bias_may_be_any_layout() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(3)]).named("x").unwrap();
    let b = g.placeholder(DType::F32, [Some(3)]).named("b").unwrap();
    let w = g.constant(ndarray::Array2::<f32>::eye(3)).named("w").unwrap();
    let y = nn::relu(&nn::bias_add(&math::matmul(&x, &w, false, false).unwrap(), &b).unwrap()).unwrap();
    let sess = Session::new(&g).unwrap();
    let mut bias = array![1.0f32, -5.0, 3.0];
    bias.invert_axis(Axis(0)); // [3, -5, 1], stored backwards
    assert!(bias.as_slice().is_none());
    let out = sess.run(&[&y], &[(&x, array![[1.0f32, 1.0, 1.0]].into()), (&b, bias.into_dyn().into())]).unwrap();
    assert_eq!(out[0].to_f64_vec(), [4.0, 0.0, 2.0]);
}

#[test]
fn a_bad_dropout_rate_blames_dropout_not_its_input() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(3)]).named("x").unwrap();
    let training = g.placeholder(DType::Bool, Shape::scalar()).named("training").unwrap();
    let e = nn::dropout(&x, 1.5, &training, None).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("dropout") && !msg.starts_with("invalid argument to x "), "{msg}");
    assert!(msg.contains("tests/hostile.rs"), "{msg}");
}

#[test]
fn a_damaged_name_in_a_file_is_described_not_dumped() {
    let (g, _sess) = small_model();
    let dir = tmp("utf8");
    let path = dir.join("m.meta");
    tensorgraph::io::export_meta_graph(&g, &path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(6).position(|w| w == b"w/read").unwrap();
    bytes[at] = 0xFF;
    let e = tensorgraph::io::meta_graph::import_meta_graph_bytes(&bytes, &path).unwrap_err().to_string();
    assert!(!e.contains('{') && e.contains("UTF-8") && e.contains("m.meta"), "{e}");
}

// ---- concurrency -----------------------------------------------------------------------------

#[test]
fn several_threads_may_run_one_session() {
    let g = Graph::new();
    g.set_random_seed(3);
    let x = g.placeholder(DType::F32, [None, Some(8)]).named("x").unwrap();
    let h = layers::dense(&x, 16, Some(nn::relu), "h").unwrap();
    let y = layers::dense(&h, 4, None, "y").unwrap();
    let sess = init(&g);
    let input = |i: usize| ArrayD::from_shape_fn(IxDyn(&[3, 8]), |ix| (ix[0] * 8 + ix[1] + i) as f32 * 0.01);
    let expected: Vec<Vec<f64>> =
        (0..4).map(|i| sess.run(&[&y], &[(&x, input(i).into())]).unwrap()[0].to_f64_vec()).collect();
    std::thread::scope(|s| {
        for (i, want) in expected.iter().enumerate() {
            let (sess, x, y) = (&sess, &x, &y);
            s.spawn(move || {
                for _ in 0..200 {
                    assert_eq!(&sess.run(&[y], &[(x, input(i).into())]).unwrap()[0].to_f64_vec(), want);
                }
            });
        }
    });
}

#[test]
fn training_and_inference_may_share_a_session() {
    let g = Graph::new();
    g.set_random_seed(3);
    let x = g.placeholder(DType::F32, [None, Some(2)]).named("x").unwrap();
    let y = layers::dense(&x, 1, None, "y").unwrap();
    let loss = math::reduce_mean(&math::square(&y).unwrap(), None).named("loss").unwrap();
    let train = GradientDescent::new(0.1).minimize(&loss).unwrap();
    let sess = init(&g);
    let feed = || [(&x, array![[1.0f32, 2.0]].into_dyn().into())];
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..100 {
                sess.run(&train, &feed()).unwrap();
            }
        });
        s.spawn(|| {
            for _ in 0..100 {
                let v = sess.run(&[&loss], &feed()).unwrap()[0].scalar_f64().unwrap();
                assert!(v.is_finite());
            }
        });
    });
    let after = sess.run(&[&loss], &feed()).unwrap()[0].scalar_f64().unwrap();
    assert!(after < 1e-6, "{after}");
}

// ---- random graphs, random feeds ---------------------------------------------------------------

mod random_graphs {
    use super::*;
    use proptest::prelude::*;

    /// One graph-building step on the tensors built so far (`a`, `b` pick operands).
    #[derive(Clone, Debug)]
    enum Step {
        Unary(u8, usize),
        Binary(u8, usize, usize),
        MatMul(usize, usize, bool, bool),
        Reduce(u8, usize, i64, bool),
        Reshape(usize, Vec<i64>),
        Concat(usize, usize, i64),
        Pad(usize, usize, usize),
        OneHot(usize, usize),
        Softmax(usize),
        Cast(usize, u8),
        Conv(usize, usize, usize, bool),
        Pool(usize, usize, usize, bool),
        Slice(usize, Vec<usize>, Vec<i64>),
        Transpose(usize),
        Xent(usize, usize),
        Gradient(usize, usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        let i = 0usize..8;
        prop_oneof![
            (0u8..12, i.clone()).prop_map(|(k, a)| Step::Unary(k, a)),
            (0u8..8, i.clone(), i.clone()).prop_map(|(k, a, b)| Step::Binary(k, a, b)),
            (i.clone(), i.clone(), any::<bool>(), any::<bool>()).prop_map(|(a, b, p, q)| Step::MatMul(a, b, p, q)),
            (0u8..4, i.clone(), -3i64..3, any::<bool>()).prop_map(|(k, a, x, d)| Step::Reduce(k, a, x, d)),
            (i.clone(), proptest::collection::vec(-2i64..5, 0..4)).prop_map(|(a, t)| Step::Reshape(a, t)),
            (i.clone(), i.clone(), -2i64..3).prop_map(|(a, b, x)| Step::Concat(a, b, x)),
            (i.clone(), 0usize..3, 0usize..3).prop_map(|(a, p, q)| Step::Pad(a, p, q)),
            (i.clone(), 0usize..5).prop_map(|(a, d)| Step::OneHot(a, d)),
            i.clone().prop_map(Step::Softmax),
            (i.clone(), 0u8..5).prop_map(|(a, d)| Step::Cast(a, d)),
            (i.clone(), 1usize..4, 1usize..3, any::<bool>()).prop_map(|(a, k, s, p)| Step::Conv(a, k, s, p)),
            (i.clone(), 1usize..4, 1usize..3, any::<bool>()).prop_map(|(a, k, s, p)| Step::Pool(a, k, s, p)),
            (i.clone(), proptest::collection::vec(0usize..3, 1..4), proptest::collection::vec(-1i64..3, 1..4))
                .prop_map(|(a, b, s)| Step::Slice(a, b, s)),
            i.clone().prop_map(Step::Transpose),
            (i.clone(), i.clone()).prop_map(|(a, b)| Step::Xent(a, b)),
            (i.clone(), i).prop_map(|(a, b)| Step::Gradient(a, b)),
        ]
    }

    const DTYPES: [DType; 6] = [DType::F32, DType::F64, DType::I32, DType::I64, DType::Bool, DType::String];

    fn build(g: &Graph, ts: &[Tensor], s: &Step) -> tensorgraph::Result<Tensor> {
        let t = |i: usize| &ts[i % ts.len()];
        match s.clone() {
            Step::Unary(k, a) => {
                let f = [
                    nn::relu,
                    nn::sigmoid,
                    nn::tanh,
                    nn::elu,
                    nn::selu,
                    nn::softplus,
                    math::exp,
                    math::log,
                    math::neg,
                    math::abs,
                    math::square,
                    math::sqrt,
                ];
                f[k as usize % f.len()](t(a))
            }
            Step::Binary(k, a, b) => {
                let f =
                    [math::add, math::sub, math::mul, math::div, math::maximum, math::minimum, math::pow, math::less];
                f[k as usize % f.len()](t(a), t(b))
            }
            Step::MatMul(a, b, p, q) => math::matmul(t(a), t(b), p, q),
            Step::Reduce(k, a, x, d) => match k {
                0 => math::reduce_sum(t(a), Some(&[x])),
                1 => math::reduce_mean(t(a), Some(&[x])),
                2 if d => math::reduce_max_keep_dims(t(a), Some(&[x])),
                2 => math::reduce_max(t(a), None),
                _ => math::argmax(t(a), x),
            },
            Step::Reshape(a, target) => array::reshape(t(a), &target),
            Step::Concat(a, b, x) => array::concat(&[t(a), t(b)], x),
            Step::Pad(a, p, q) => {
                let r = t(a).shape().rank();
                array::pad(t(a), &vec![(p, q); r])
            }
            Step::OneHot(a, d) => array::one_hot(t(a), d, 1.0, 0.0, DType::F32),
            Step::Softmax(a) => nn::softmax(t(a)),
            Step::Cast(a, d) => math::cast(t(a), DTYPES[d as usize % 5]),
            Step::Conv(a, k, s, p) => {
                let c = t(a).shape().dims().last().copied().flatten().unwrap_or(1);
                let f = g.constant(ArrayD::from_elem(IxDyn(&[k, k, c, 2]), 0.5f32))?;
                let pad = if p { Padding::Same } else { Padding::Valid };
                nn::conv2d(t(a), &f, [1, s, s, 1], pad)
            }
            Step::Pool(a, k, s, p) => {
                let pad = if p { Padding::Same } else { Padding::Valid };
                nn::max_pool(t(a), [1, k, k, 1], [1, s, s, 1], pad)
            }
            Step::Slice(a, b, s) => array::slice(t(a), &b, &s),
            Step::Transpose(a) => array::transpose(t(a), None),
            Step::Xent(a, b) => nn::sparse_softmax_cross_entropy_with_logits(t(a), t(b)),
            Step::Gradient(a, b) => {
                let gs = tensorgraph::gradients(&[t(a)], &[t(b)], None)?;
                gs.into_iter().next().flatten().ok_or_else(|| Error::NotFound { what: "gradient", name: "".into() })
            }
        }
    }

    /// A value of `dtype` and `shape`, with NaN, infinities, zeros and negatives among floats.
    fn value(dtype: DType, shape: &[usize], seed: u8) -> Value {
        let f = |i: usize| [f64::NAN, 0.0, -1.5, 2.0, f64::INFINITY, 0.25, -0.0, 7.0][(i + seed as usize) % 8];
        let a = ArrayD::from_shape_fn(IxDyn(shape), |ix| f(ndarray::Dimension::slice(&ix).iter().sum::<usize>()));
        match dtype {
            DType::F32 => a.mapv(|v| v as f32).into(),
            DType::F64 => a.into(),
            DType::I32 => a.mapv(|v| if v.is_finite() { v as i32 } else { -7 }).into(),
            DType::I64 => a.mapv(|v| if v.is_finite() { v as i64 } else { 3 }).into(),
            DType::Bool => a.mapv(|v| v > 0.0).into(),
            DType::String => a.mapv(|v| format!("{v}").into_bytes()).into(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever is built, fed and fetched: `Ok` or `Err`, never a panic or an abort.
        #[test]
        fn every_run_returns(
            dtypes in proptest::collection::vec(0usize..6, 1..3),
            ranks in proptest::collection::vec(0usize..5, 1..3),
            dims in proptest::collection::vec(proptest::option::of(0usize..4), 8),
            steps in proptest::collection::vec(step(), 1..10),
            feed_dims in proptest::collection::vec(0usize..4, 8),
            feed_dtypes in proptest::collection::vec(0usize..7, 2),
            seed in any::<u8>(),
        ) {
            let g = Graph::new();
            let mut ts = Vec::new();
            let mut placeholders = Vec::new();
            for (k, (&d, &r)) in dtypes.iter().zip(&ranks).enumerate() {
                let shape: Vec<Option<usize>> = dims[..r].to_vec();
                let p = g.placeholder(DTYPES[d], shape).named(&format!("p{k}")).unwrap();
                placeholders.push(p.clone());
                ts.push(p);
            }
            for s in &steps {
                if let Ok(t) = build(&g, &ts, s) {
                    ts.push(t);
                }
            }
            let sess = Session::new(&g).unwrap();
            // Feeds of the placeholder's shape where known, random sizes elsewhere; sometimes of
            // the wrong dtype or rank (an error, not a crash).
            let feeds: Vec<(&Tensor, Feed)> = placeholders.iter().enumerate().map(|(k, p)| {
                let shape: Vec<usize> = p.shape().dims().iter().enumerate()
                    .map(|(i, d)| d.unwrap_or(feed_dims[(i + k) % feed_dims.len()])).collect();
                let dtype = match feed_dtypes[k % 2] { 6 => p.dtype(), d if d >= 4 && k == 0 => DTYPES[d], _ => p.dtype() };
                (p, value(dtype, &shape, seed).into())
            }).collect();
            for t in &ts {
                let _ = sess.run(&[t], &feeds);
            }
            let all: Vec<&Tensor> = ts.iter().collect();
            let _ = sess.run(&all, &feeds);
            let _ = sess.run(&all, &feeds[..feeds.len() - 1]);
        }
    }
}

/// Batch axes that broadcast to more matrices than can be counted, and loops whose body fails
/// at run time: errors naming the op, not a panic or an overflow.
#[test]
fn batch_matmul_overflow_and_failing_loop_bodies_are_errors() {
    use tensorgraph::while_loop;
    let g = Graph::new();
    let a = g.placeholder(DType::F32, [None, None, Some(0), Some(2)]).named("a").unwrap();
    let b = g.placeholder(DType::F32, [None, None, Some(2), Some(0)]).named("b").unwrap();
    let ab = math::batch_matmul(&a, &b, false, false).unwrap();
    let big = 1usize << 40;
    let av = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[big, 1, 0, 2]));
    let bv = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[1, big, 2, 0]));
    let sess = Session::new(&g).unwrap();
    let err = sess.run(&ab, feed! {a => av, b => bv}).unwrap_err().to_string();
    assert!(err.contains("overflow"), "{err}");
    // A body gathering past the end on its third iteration.
    let x = g.constant(ndarray::array![1.0f32, 2.0]).unwrap();
    let i0 = g.scalar(0.0, DType::I64).unwrap();
    let out = while_loop(
        |v| v[0].graph().scalar(1.0, DType::Bool),
        |v| {
            let picked = array::gather(&x, &array::expand_dims(&v[0], 0)?, 0)?;
            Ok(vec![(&v[0] + &v[0].graph().scalar(1.0, DType::I64)?)?, math::reduce_sum(&picked, None)?])
        },
        &[&i0, &g.scalar(0.0, DType::F32).unwrap()],
        Some(10),
    )
    .unwrap();
    let err = sess.run(&out[1], &[]).unwrap_err().to_string();
    assert!(err.contains("GatherV2") && err.contains("2 is not in [0, 2)"), "{err}");
}

/// A reshape to a run-time shape: a shape of floats, of unknown length, with two -1s, with
/// the wrong count, with negative or huge dimensions is an error naming the node, never a panic.
#[test]
fn a_run_time_reshape_to_a_bad_shape_is_an_error() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(4)]).named("x").unwrap();
    let floats = g.constant(ndarray::array![2.0f32, 2.0]).unwrap();
    let e = array::reshape_dynamic(&x, &floats).unwrap_err().to_string();
    assert!(e.contains("shape") && e.contains("float32"), "{e}");
    let unknown = g.placeholder(DType::I32, [None]).unwrap();
    assert!(array::reshape_dynamic(&x, &unknown).unwrap_err().to_string().contains("known length"));
    let shape = g.placeholder(DType::I64, [Some(2)]).named("shape").unwrap();
    let y = array::reshape_dynamic(&x, &shape).unwrap().named("y").unwrap();
    let sess = Session::new(&g).unwrap();
    let xv = ndarray::Array2::<f32>::zeros((3, 4));
    for bad in [[-1i64, -1], [5, 2], [-3, -4], [i64::MAX, 2], [1 << 40, 1 << 40]] {
        let e = sess.run(&y, feed! {x => &xv, shape => ndarray::arr1(&bad)}).unwrap_err().to_string();
        assert!(e.contains("y") && e.contains("reshape"), "{bad:?}: {e}");
    }
    let ok = sess.run(&y, feed! {x => &xv, shape => ndarray::arr1(&[2i64, -1])}).unwrap();
    assert_eq!(ok.shape(), &[2, 6]);
}

/// A weight gradient's MatMul folded into its update, fed run-time shapes that do not multiply
/// or do not fit the variable: an error naming the update and the shapes, never a panic.
#[test]
fn a_folded_gradient_product_with_bad_shapes_is_an_error() {
    let g = Graph::new();
    let (a, b) = (
        g.placeholder(DType::F32, [None, None]).named("a").unwrap(),
        g.placeholder(DType::F32, [None, None]).named("b").unwrap(),
    );
    let w = g.variable(&g.constant(ArrayD::<f32>::zeros(IxDyn(&[3, 2]))).unwrap(), "w", true).unwrap();
    let grad = math::matmul(&a, &b, true, false).unwrap();
    let lr = g.scalar(0.1, DType::F32).unwrap();
    let update = state::apply(tensorgraph::ApplyOp::GradientDescent, &[&w], &[&lr, &grad]).unwrap();
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    let feed = |ra: usize, ca: usize, rb: usize, cb: usize| {
        [
            (&a, Feed::from(ArrayD::<f32>::ones(IxDyn(&[ra, ca])))),
            (&b, Feed::from(ArrayD::<f32>::ones(IxDyn(&[rb, cb])))),
        ]
    };
    // Inner dimensions that differ (4 rows of a against 5 of b), and a product of [5, 2] for a
    // [3, 2] variable.
    let e = sess.run(&update, &feed(4, 3, 5, 2)).unwrap_err().to_string();
    assert!(e.contains("ApplyGradientDescent") && e.contains("cannot multiply [4,3] and [5,2]"), "{e}");
    let e = sess.run(&update, &feed(4, 5, 4, 2)).unwrap_err().to_string();
    assert!(e.contains("ApplyGradientDescent") && e.contains("[3,2]") && e.contains("[5,2]"), "{e}");
    // Shapes that fit update the variable: w -= 0.1 · aᵀ·b, a and b ones of 40 rows.
    sess.run(&update, &feed(40, 3, 40, 2)).unwrap();
    assert_eq!(sess.run(&*w, &[]).unwrap().to_f64_vec(), vec![-4.0; 6]);
}

/// A MaxPool folded into the convolution before it still says, when its window leaves no
/// output (sizes known only at run time), that the MaxPool's window is at fault.
#[test]
fn a_folded_max_pool_with_no_output_names_the_pooling() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, None, None, Some(1)]).named("x").unwrap();
    let f = g.constant(ArrayD::from_elem(IxDyn(&[3, 3, 1, 2]), 1.0f32)).named("f").unwrap();
    let conv = nn::relu(&nn::conv2d(&x, &f, [1, 1, 1, 1], Padding::Valid).unwrap()).unwrap();
    let pooled = nn::max_pool(&conv, [1, 2, 2, 1], [1, 2, 2, 1], Padding::Valid).unwrap();
    let sess = Session::new(&g).unwrap();
    let e = sess.run(&pooled, &[(&x, ArrayD::<f32>::zeros(IxDyn(&[1, 3, 3, 1])).into())]).unwrap_err();
    assert!(e.to_string().contains("MaxPool") && e.to_string().contains("[1,1,1,2]"), "{e}");
}

/// A filter gradient folded into the input gradient it reads (the layer below's) still checks
/// its shapes at run time, and its error says it is the Conv2DBackpropFilter's; with shapes
/// that agree, the fold gives the separate ops' result.
#[test]
fn a_folded_filter_gradient_with_bad_shapes_is_an_error() {
    let g = Graph::new();
    let lx = g.placeholder(DType::F32, [None, None, None, Some(1)]).named("lx").unwrap();
    let feats = g.placeholder(DType::F32, [None, None, None, Some(4)]).named("feats").unwrap();
    let dy = g.placeholder(DType::F32, [None, None, None, Some(2)]).named("dy").unwrap();
    let w1 = g.constant(ArrayD::from_elem(IxDyn(&[3, 3, 1, 4]), 0.5f32)).named("w1").unwrap();
    let w2 =
        g.constant(ArrayD::from_shape_fn(IxDyn(&[3, 3, 4, 2]), |i| i[0] as f32 - i[3] as f32)).named("w2").unwrap();
    let dx = nn::conv2d_backprop_input(&feats, &w2, &dy, [1, 2, 2, 1], Padding::Same, [1, 1, 1, 1]).unwrap();
    let masked = nn::relu_grad(&dx, &feats).unwrap();
    let dw = nn::conv2d_backprop_filter(&lx, &w1, &masked, [1, 1, 1, 1], Padding::Same, [1, 1, 1, 1]).unwrap();
    let feed = |lx_side: usize| {
        [
            (&lx, ramp(&[2, lx_side, lx_side, 1]).into()),
            (&feats, ramp(&[2, 6, 6, 4]).into()),
            (&dy, ramp(&[2, 3, 3, 2]).into()),
        ]
    };
    let mut fused = Session::new(&g).unwrap();
    fused.set_profiling(true);
    let e = fused.run(&dw, &feed(5)).unwrap_err().to_string();
    assert!(e.contains("folded Conv2DBackpropFilter") && e.contains("[2,6,6,4]"), "{e}");
    let mut separate = Session::new(&g).unwrap();
    separate.set_check_numerics(true);
    assert_eq!(fused.run(&dw, &feed(6)).unwrap(), separate.run(&dw, &feed(6)).unwrap());
    let ops: Vec<&str> = fused.profile().iter().map(|p| p.0).collect();
    assert!(ops.contains(&"Conv2DBackpropInput+ReluGrad+Conv2DBackpropFilter"), "{ops:?}");
}

/// A pooling's gradient routed through the forward's winners inside the input gradient of the
/// pooled convolution: with a pooled gradient of the wrong shape, the MaxPoolGrad's error,
/// named as the folded op's; with the right one, the separate ops' result.
#[test]
fn a_folded_pooling_gradient_of_a_bad_shape_is_an_error() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(6), Some(6), Some(4)]).named("x").unwrap();
    let dpool = g.placeholder(DType::F32, [None, None, None, Some(2)]).named("dpool").unwrap();
    let w = g.constant(ArrayD::from_shape_fn(IxDyn(&[3, 3, 4, 2]), |i| i[0] as f32 - i[3] as f32)).named("w").unwrap();
    let conv = nn::conv2d(&x, &w, [1, 2, 2, 1], Padding::Same).unwrap();
    let pooled = nn::max_pool(&conv, [1, 2, 2, 1], [1, 1, 1, 1], Padding::Valid).unwrap();
    let dy = nn::max_pool_grad(&conv, &dpool, [1, 2, 2, 1], [1, 1, 1, 1], Padding::Valid).unwrap();
    let dx = nn::conv2d_backprop_input(&x, &w, &dy, [1, 2, 2, 1], Padding::Same, [1, 1, 1, 1]).unwrap();
    let masked = nn::relu_grad(&dx, &x).unwrap();
    let feed = |pooled_side: usize| {
        [(&x, ramp(&[2, 6, 6, 4]).into()), (&dpool, ramp(&[2, pooled_side, pooled_side, 2]).into())]
    };
    let mut fused = Session::new(&g).unwrap();
    fused.set_profiling(true);
    let mut separate = Session::new(&g).unwrap();
    separate.set_check_numerics(true);
    assert_eq!(fused.run(&[&pooled, &masked], &feed(2)).unwrap(), separate.run(&[&pooled, &masked], &feed(2)).unwrap());
    let e = fused.run(&[&pooled, &masked], &feed(3)).unwrap_err().to_string();
    assert!(e.contains("folded MaxPoolGrad") && e.contains("[2,3,3,2]"), "{e}");
    let ops: Vec<&str> = fused.profile().iter().map(|p| p.0).collect();
    assert!(ops.contains(&"MaxPoolGradWithArgmax+Conv2DBackpropInput+ReluGrad"), "{ops:?}");
}

/// A convolution's filter gradient folded into its input gradient (the two read one `dy`)
/// whose input is not of the input gradient's shape runs as the separate op: TF's result where
/// the shapes make sense, else its error, named as the folded op's.
#[test]
fn a_folded_filter_gradient_of_another_input_shape_runs_apart() {
    let g = Graph::new();
    let feats = g.placeholder(DType::F32, [None, None, None, None]).named("feats").unwrap();
    let h = g.placeholder(DType::F32, [None, None, None, None]).named("h").unwrap();
    let dy = g.placeholder(DType::F32, [None, None, None, Some(2)]).named("dy").unwrap();
    let w = g.constant(ArrayD::from_shape_fn(IxDyn(&[3, 3, 4, 2]), |i| i[0] as f32 - i[3] as f32)).named("w").unwrap();
    let dx = nn::conv2d_backprop_input(&feats, &w, &dy, [1, 2, 2, 1], Padding::Same, [1, 1, 1, 1]).unwrap();
    let masked = nn::relu_grad(&dx, &feats).unwrap();
    let dw = nn::conv2d_backprop_filter(&h, &w, &dy, [1, 2, 2, 1], Padding::Same, [1, 1, 1, 1]).unwrap();
    let feed = |h_shape: &[usize]| {
        [(&feats, ramp(&[2, 6, 6, 4]).into()), (&h, ramp(h_shape).into()), (&dy, ramp(&[2, 3, 3, 2]).into())]
    };
    let mut fused = Session::new(&g).unwrap();
    fused.set_profiling(true);
    let mut separate = Session::new(&g).unwrap();
    separate.set_check_numerics(true);
    // The input gradient's shape (made in the kernel), another valid one, then 3 channels.
    for shape in [[2, 6, 6, 4], [2, 5, 5, 4]] {
        let (a, b) = (fused.run(&[&masked, &dw], &feed(&shape)), separate.run(&[&masked, &dw], &feed(&shape)));
        assert_eq!(a.unwrap(), b.unwrap(), "{shape:?}");
    }
    let e = fused.run(&[&masked, &dw], &feed(&[2, 6, 6, 3])).unwrap_err().to_string();
    assert!(e.contains("folded Conv2DBackpropFilter") && e.contains("[2,6,6,3]"), "{e}");
    let ops: Vec<&str> = fused.profile().iter().map(|p| p.0).collect();
    assert!(ops.contains(&"Conv2DBackpropInput+Filter+ReluGrad"), "{ops:?}");
}
