//! Session behaviour: pruning, plan caching, feeds, variables, control dependencies, errors.

use ndarray::{array, Array1};
use tensorgraph::prelude::*;
use tensorgraph::Error;

#[test]
fn an_unfed_placeholder_on_an_unneeded_branch_is_fine() {
    let g = Graph::new();
    let a = g.placeholder(DType::F32, [None]).named("a").unwrap();
    let b = g.placeholder(DType::F32, [None]).named("b").unwrap();
    let ya = math::square(&a).unwrap();
    let _yb = math::square(&b).unwrap();
    let sess = Session::new(&g).unwrap();
    let out = sess.run(&[&ya], &[(&a, array![3.0f32].into())]).unwrap();
    assert_eq!(out[0].as_f32().unwrap()[[0]], 9.0);
}

#[test]
fn missing_feed_names_the_placeholder_and_its_line() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(784)]).named("X").unwrap();
    let y = math::square(&x).unwrap();
    let err = Session::new(&g).unwrap().run(&[&y], &[]).unwrap_err();
    assert!(matches!(err, Error::MissingFeed { .. }));
    let msg = err.to_string();
    assert!(msg.contains("placeholder X (Placeholder) with dtype float32 and shape [?,784]"), "{msg}");
    assert!(msg.contains("defined at tests/session.rs:"), "{msg}");
}

#[test]
fn feeds_of_wrong_dtype_or_shape_are_errors() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(3)]).named("X").unwrap();
    let y = math::square(&x).unwrap();
    let sess = Session::new(&g).unwrap();
    let e = sess.run(&[&y], &[(&x, array![[1i64, 2, 3]].into())]).unwrap_err();
    assert!(matches!(e, Error::FeedDType { expected: DType::F32, got: DType::I64, .. }), "{e}");
    let e = sess.run(&[&y], &[(&x, array![[1.0f32, 2.0]].into())]).unwrap_err();
    assert!(matches!(e, Error::FeedShape { .. }));
    assert!(
        e.to_string().contains("cannot feed a value of shape [1,2] to X (Placeholder), which has shape [?,3]"),
        "{e}"
    );
    let e = sess.run(&[&y], &[(&x, array![1.0f32, 2.0, 3.0].into())]).unwrap_err();
    assert!(matches!(e, Error::FeedShape { .. }));
}

#[test]
fn borrowed_feeds_give_what_owned_feeds_give() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(2)]).named("X").unwrap();
    let k = g.placeholder(DType::I64, Shape::scalar()).named("k").unwrap();
    let y = math::mul(&math::square(&x).unwrap(), &k.cast(DType::F32).unwrap()).unwrap();
    let sess = Session::new(&g).unwrap();
    let images = ndarray::Array2::from_shape_fn((4, 3), |(i, j)| (i * 3 + j) as f32);
    // A column slice: a view that is not contiguous, fed without a copy by the caller.
    let view = images.slice(ndarray::s![1.., ..;2]);
    let borrowed = sess.run(&y, feed! {x => view, k => 2i64}).unwrap();
    let owned = sess.run(&y, feed! {x => view.to_owned(), k => ndarray::arr0(2i64)}).unwrap();
    assert_eq!(borrowed, owned);
    assert_eq!(borrowed.to_f64_vec(), [18.0, 50.0, 72.0, 128.0, 162.0, 242.0]);
    // Fed and fetched: the fetch is the fed value, unchanged.
    let same = sess.run(&x, feed! {&x => &images.slice(ndarray::s![.., 1..])}).unwrap();
    assert_eq!(same.to_f64_vec(), [1.0, 2.0, 4.0, 5.0, 7.0, 8.0, 10.0, 11.0]);
    // Checked as owned feeds are.
    let e = sess.run(&y, feed! {x => &images, k => 2i64}).unwrap_err();
    assert!(e.to_string().contains("cannot feed a value of shape [4,3] to X"), "{e}");
}

#[test]
fn fetched_values_convert_to_what_the_caller_asks_for() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(2)]).named("X").unwrap();
    let y = math::square(&x).unwrap();
    let total = math::reduce_sum(&y, None).unwrap();
    let sess = Session::new(&g).unwrap();
    let x_value = array![[1.0f32, 2.0], [3.0, 4.0]];
    let fetches = std::collections::HashMap::from([("y", &y), ("total", &total), ("x", &x)]);
    let mut values = sess.run(&fetches, feed! {x => &x_value}).unwrap();
    assert_eq!(values.len(), 3);
    let y_value: ndarray::Array2<f32> = values.remove("y").unwrap().try_into().unwrap();
    assert_eq!(y_value, array![[1.0f32, 4.0], [9.0, 16.0]]);
    let total_value: f32 = values.remove("total").unwrap().try_into().unwrap();
    assert_eq!(total_value, 30.0);
    let any_rank: ndarray::ArrayD<f32> = values["x"].clone().try_into().unwrap();
    assert_eq!(any_rank.shape(), [2, 2]);
    // A rank or dtype the value does not have is an error naming both.
    let e = ndarray::Array1::<f32>::try_from(values["x"].clone()).unwrap_err();
    assert!(e.to_string().contains("a float32 array of rank 1") && e.to_string().contains("float32 [2,2]"), "{e}");
    let e = ndarray::Array2::<i64>::try_from(values.remove("x").unwrap()).unwrap_err();
    assert!(e.to_string().contains("int64") && e.to_string().contains("float32 [2,2]"), "{e}");
}

#[test]
fn a_read_ordered_after_an_update_sees_the_new_value_as_in_tf1() {
    // TF1's trap: `with tf.control_dependencies([assign]): y = tf.identity(w)` gives the new value.
    let g = Graph::new();
    let w = g.variable(&g.scalar(1.0, DType::F32).unwrap(), "w", true).unwrap();
    let assign = state::assign(&w, &g.scalar(5.0, DType::F32).unwrap()).unwrap().op();
    let y = g.control_dependencies(&[&assign], || math::identity(w.value())).unwrap();
    let before = math::mul(w.value(), &g.scalar(1.0, DType::F32).unwrap()).unwrap();
    let sess = Session::new(&g).unwrap();
    g.global_variables_initializer().unwrap().run(&sess, &[]).unwrap();
    let y: f32 = y.eval(&sess, &[]).unwrap().try_into().unwrap();
    assert_eq!(y, 5.0);
    // A reader not ordered after the update runs before it (stateless ops first), as in TF1.
    let again = state::assign_add(&w, &g.scalar(1.0, DType::F32).unwrap()).unwrap().op();
    let (b, ()) = sess.run((&before, &again), &[]).unwrap();
    assert_eq!(b.scalar_f64(), Some(5.0));
    assert_eq!(w.eval(&sess, &[]).unwrap().scalar_f64(), Some(6.0));
}

#[test]
fn uninitialized_variable_is_named() {
    let g = Graph::new();
    let w = g.variable(&g.constant(array![1.0f32, 2.0]).unwrap(), "weights", true).unwrap();
    let y = math::square(&w).unwrap();
    let sess = Session::new(&g).unwrap();
    let e = sess.run(&[&y], &[]).unwrap_err();
    assert!(matches!(e, Error::UninitializedVariable { .. }));
    assert!(e.to_string().contains("attempting to use uninitialized value weights (VariableV2)"), "{e}");
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    assert_eq!(sess.run(&[&y], &[]).unwrap()[0].to_f64_vec(), [1.0, 4.0]);
}

#[test]
fn plans_are_cached_per_signature() {
    let g = Graph::new();
    let a = g.placeholder(DType::F32, [None]).named("a").unwrap();
    let b = math::square(&a).unwrap();
    let c = math::neg(&a).unwrap();
    let sess = Session::new(&g).unwrap();
    let feed = || vec![(&a, Feed::from(array![2.0f32]))];
    for _ in 0..3 {
        sess.run(&[&b], &feed()).unwrap();
    }
    assert_eq!(sess.cached_plans(), 1);
    sess.run(&[&c], &feed()).unwrap();
    sess.run(&[&b, &c], &feed()).unwrap();
    assert_eq!(sess.cached_plans(), 3);
    // Feeding an intermediate changes the signature (and prunes what is upstream of it).
    let out = sess.run(&[&c], &[(&a, array![1.0f32].into())]).unwrap();
    assert_eq!(out[0].to_f64_vec(), [-1.0]);
    assert_eq!(sess.cached_plans(), 3);
    let d = math::neg(&b).unwrap();
    let out = sess.run(&[&d], &[(&b, array![5.0f32].into())]).unwrap();
    assert_eq!(out[0].to_f64_vec(), [-5.0]);
    assert_eq!(sess.cached_plans(), 4);
}

#[test]
fn fetching_a_fed_tensor_returns_the_feed() {
    let g = Graph::new();
    let a = g.placeholder(DType::I32, [2]).named("a").unwrap();
    let out = Session::new(&g).unwrap().run(&[&a, &a], &[(&a, array![4i32, 5].into())]).unwrap();
    assert_eq!(out[0], out[1]);
    assert_eq!(out[0].to_f64_vec(), [4.0, 5.0]);
}

#[test]
fn assign_ops_and_control_dependencies() {
    let g = Graph::new();
    let v = g.variable(&g.scalar(1.0, DType::F32).unwrap(), "v", true).unwrap();
    let two = g.scalar(2.0, DType::F32).unwrap();
    let add = state::assign_add(&v, &two).unwrap();
    // Like TF1: `v` itself is the snapshot `v/read`; a read ordered after the update needs
    // `read_value()` inside the control-dependency context.
    let read_after = g.control_dependencies(&[&add.op()], || v.read_value()).unwrap();
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    assert_eq!(sess.run(&[&read_after], &[]).unwrap()[0].scalar_f64(), Some(3.0));
    assert_eq!(sess.run(&[&read_after], &[]).unwrap()[0].scalar_f64(), Some(5.0));
    let sub = state::assign_sub(&v, &two).unwrap();
    assert_eq!(sess.run(&[&sub], &[]).unwrap()[0].scalar_f64(), Some(3.0));
    let set = state::assign(&v, &g.scalar(-4.0, DType::F32).unwrap()).unwrap();
    sess.run(&set.op(), &[]).unwrap();
    assert_eq!(sess.run(&v, &[]).unwrap().scalar_f64(), Some(-4.0));
    // group runs all its members.
    let both = state::group(&g, &[&add.op(), &add.op()]).unwrap();
    sess.run(&both, &[]).unwrap();
    assert_eq!(sess.run(&v, &[]).unwrap().scalar_f64(), Some(-2.0));
}

#[test]
fn numerics_check_names_the_first_op_producing_nan() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None]).named("x").unwrap();
    let l = g.name_scope("bad", || math::log(&x)).unwrap();
    let y = math::square(&l).unwrap();
    let mut sess = Session::new(&g).unwrap();
    assert!(sess.run(&[&y], &[(&x, array![-1.0f32].into())]).is_ok());
    sess.set_check_numerics(true);
    let e = sess.run(&[&y], &[(&x, array![-1.0f32].into())]).unwrap_err();
    assert!(matches!(e, Error::NonFinite { .. }));
    assert!(e.to_string().contains("bad/Log (Log) produced NaN"), "{e}");
    let e = sess.run(&[&y], &[(&x, array![0.0f32].into())]).unwrap_err();
    assert!(e.to_string().contains("produced Inf"), "{e}");
}

#[test]
fn runtime_shape_errors_name_the_node_and_input_shapes() {
    let g = Graph::new();
    let a = g.placeholder(DType::F32, [None, None]).named("a").unwrap();
    let b = g.placeholder(DType::F32, [None, None]).named("b").unwrap();
    let c = math::matmul(&a, &b, false, false).unwrap();
    let e = Session::new(&g)
        .unwrap()
        .run(
            &[&c],
            &[(&a, ndarray::Array2::<f32>::zeros((2, 3)).into()), (&b, ndarray::Array2::<f32>::zeros((2, 3)).into())],
        )
        .unwrap_err();
    assert!(matches!(e, Error::Runtime { .. }));
    let m = e.to_string();
    assert!(m.contains("MatMul (MatMul) failed on inputs (float32 [2,3], float32 [2,3])"), "{m}");
    let s = math::add(&a, &b).unwrap();
    let e = Session::new(&g)
        .unwrap()
        .run(
            &[&s],
            &[(&a, ndarray::Array2::<f32>::zeros((2, 3)).into()), (&b, ndarray::Array2::<f32>::zeros((4, 3)).into())],
        )
        .unwrap_err();
    assert!(e.to_string().contains("incompatible shapes for broadcasting: [2,3] and [4,3]"), "{e}");
}

#[test]
fn broadcasting_edge_cases_at_run_time() {
    let g = Graph::new();
    let a = g.placeholder(DType::F32, [None, None]).named("a").unwrap();
    let b = g.placeholder(DType::F32, [None]).named("b").unwrap();
    let s = math::mul(&a, &b).unwrap();
    let sess = Session::new(&g).unwrap();
    // [3,1] * [2] -> [3,2]
    let out =
        sess.run(&[&s], &[(&a, array![[1.0f32], [2.0], [3.0]].into()), (&b, array![10.0f32, 100.0].into())]).unwrap();
    assert_eq!(out[0].shape(), &[3, 2]);
    assert_eq!(out[0].to_f64_vec(), [10.0, 100.0, 20.0, 200.0, 30.0, 300.0]);
    // Empty batch.
    let out = sess
        .run(&[&s], &[(&a, ndarray::Array2::<f32>::zeros((0, 2)).into()), (&b, Array1::<f32>::zeros(2).into())])
        .unwrap();
    assert_eq!(out[0].shape(), &[0, 2]);
    // Scalar-like [1,1] against a vector.
    let out = sess.run(&[&s], &[(&a, array![[2.0f32]].into()), (&b, array![1.0f32, 2.0, 3.0].into())]).unwrap();
    assert_eq!(out[0].shape(), &[1, 3]);
    assert_eq!(out[0].to_f64_vec(), [2.0, 4.0, 6.0]);
}

#[test]
fn foreign_tensors_are_rejected() {
    let (g1, g2) = (Graph::new(), Graph::new());
    let a = g1.placeholder(DType::F32, [1]).named("a").unwrap();
    let sess = Session::new(&g2).unwrap();
    assert!(matches!(sess.run(&[&a], &[]).unwrap_err(), Error::ForeignTensor { .. }));
}

#[test]
fn variable_updates_run_after_reads_of_the_same_step() {
    // y reads w; the update writes w. The fetched y must use the old value.
    let g = Graph::new();
    let w = g.variable(&g.scalar(1.0, DType::F32).unwrap(), "w", true).unwrap();
    let y = math::mul(&w, &g.scalar(10.0, DType::F32).unwrap()).unwrap();
    let step = GradientDescent::new(0.5).minimize(&y).unwrap();
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    let out = sess.run_with(&[&y], &[&step], &[]).unwrap();
    assert_eq!(out[0].scalar_f64(), Some(10.0));
    assert_eq!(sess.run(&w, &[]).unwrap().scalar_f64(), Some(1.0 - 0.5 * 10.0));
}

#[test]
fn in_place_reuse_never_changes_a_value_someone_else_reads() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [3]).named("x").unwrap();
    let s = math::mul(&x, &g.scalar(1.0, DType::F32).unwrap()).unwrap(); // an intermediate
    let r = nn::relu(&s).unwrap(); // reads s, which the Add below still needs
    let sum = math::add(&s, &r).unwrap();
    let neg = math::neg(&sum).unwrap(); // last reader of sum: may reuse its buffer
    let sq = math::mul(&neg, &neg).unwrap(); // the same slot twice in one step
    let sess = Session::new(&g).unwrap();
    let feed = [(&x, Feed::from(array![-1.0f32, 2.0, -3.0]))];
    let out = sess.run(&[&s, &r, &neg, &sq], &feed).unwrap();
    assert_eq!(out[0].to_f64_vec(), [-1.0, 2.0, -3.0]);
    assert_eq!(out[1].to_f64_vec(), [0.0, 2.0, 0.0]);
    assert_eq!(out[2].to_f64_vec(), [1.0, -4.0, 3.0]);
    assert_eq!(out[3].to_f64_vec(), [1.0, 16.0, 9.0]);
    // The feed itself is never modified.
    assert_eq!(feed[0].1.to_value().to_f64_vec(), [-1.0, 2.0, -3.0]);
}

/// Shapes too large to allocate (as a graph file could declare) are errors naming the node, not
/// aborts: an element count that overflows while building, and 4 TiB (which the allocator
/// refuses) when run.
#[test]
fn impossible_allocations_are_errors() {
    let g = Graph::new();
    let e = array::fill(&g, &[1 << 40, 1 << 30], DType::F32, 1.0).unwrap_err().to_string();
    assert!(e.contains("Fill") && e.contains("too many elements"), "{e}");
    let e = random::random_uniform(&g, &[1 << 40, 1 << 30], DType::F32, 0.0, 1.0, Some(1)).unwrap_err();
    assert!(e.to_string().contains("RandomUniform"), "{e}");
    let shape = [1usize << 40];
    let fill = array::fill(&g, &shape, DType::F32, 1.0).unwrap();
    let noise = random::random_uniform(&g, &shape, DType::F32, 0.0, 1.0, Some(1)).unwrap();
    let sess = Session::new(&g).unwrap();
    for t in [&fill, &noise] {
        let e = sess.run(&[t], &[]).unwrap_err().to_string();
        assert!(e.contains(&t.op_name()) && e.contains("cannot allocate"), "{e}");
    }
}

/// Kernels write into buffers recycled from earlier steps: results must not depend on what a
/// buffer held before, also when the batch size changes between runs, and a repeated run must
/// take every tensor buffer from the pool.
#[test]
fn recycled_buffers_never_change_results() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(8), Some(8), Some(3)]).named("x").unwrap();
    let f = g
        .constant(
            ndarray::Array::from_shape_fn((3, 3, 3, 16), |(a, b, c, d)| ((a + 2 * b + 3 * c + d) % 7) as f32 - 3.0)
                .into_dyn(),
        )
        .named("f")
        .unwrap();
    let h = nn::relu(&nn::conv2d(&x, &f, [1, 1, 1, 1], Padding::Same).unwrap()).unwrap();
    let p = nn::max_pool(&h, [1, 2, 2, 1], [1, 2, 2, 1], Padding::Valid).unwrap();
    let flat = array::reshape(&p, &[-1, 4 * 4 * 16]).unwrap();
    let w = g
        .constant(ndarray::Array::from_shape_fn((256, 10), |(i, j)| ((i * 3 + j) % 11) as f32 * 0.01).into_dyn())
        .named("w")
        .unwrap();
    let loss = math::reduce_sum(&math::square(&math::matmul(&flat, &w, false, false).unwrap()).unwrap(), None)
        .named("loss")
        .unwrap();
    let grads = tensorgraph::gradients(&[&loss], &[&x, &f], None).unwrap();
    let (dx, df) = (grads[0].clone().unwrap(), grads[1].clone().unwrap());
    let batch = |n: usize| {
        Value::from(
            ndarray::Array::from_shape_fn((n, 8, 8, 3), |(b, i, j, c)| ((b * 5 + i * 7 + j * 3 + c) % 9) as f32 - 4.0)
                .into_dyn(),
        )
    };
    let run = |sess: &mut Session, n: usize| -> Vec<Vec<f64>> {
        sess.run(&[&loss, &dx, &df], &[(&x, batch(n).into())]).unwrap().iter().map(Value::to_f64_vec).collect()
    };
    let mut sess = Session::new(&g).unwrap();
    let first = run(&mut sess, 4);
    assert_eq!(run(&mut sess, 4), first);
    let small = run(&mut sess, 2);
    assert_eq!(small, run(&mut Session::new(&g).unwrap(), 2));
    assert_eq!(run(&mut sess, 4), first);
    // Fetched tensors go to the caller; everything else comes back for the next run.
    let sums =
        [&loss, &math::reduce_sum(&dx, None).named("sdx").unwrap(), &math::reduce_sum(&df, None).named("sdf").unwrap()];
    sess.run(&sums, &[(&x, batch(4).into())]).unwrap();
    let fresh = sess.fresh_buffers();
    sess.run(&sums, &[(&x, batch(4).into())]).unwrap();
    assert_eq!(sess.fresh_buffers(), fresh, "a repeated run allocated tensor buffers");
}

/// Conv2D/MatMul + BiasAdd + Relu run as one fused step (TF's `_FusedConv2D`, `_FusedMatMul`)
/// with results identical to the separate ops; an intermediate that is fetched or read twice
/// keeps its own step. The conv's bias is an Identity of a constant made after the Conv2D (a
/// frozen TF graph's read of a variable): it moves ahead with its constant.
#[test]
fn bias_and_relu_fold_into_their_producer_with_identical_results() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(6), Some(6), Some(2)]).named("x").unwrap();
    let pattern = |n: usize, salt: usize| (0..n).map(|i| ((i * 7 + salt) % 11) as f32 - 5.0).collect::<Vec<_>>();
    let cf = g
        .constant(ndarray::Array::from_shape_vec((3, 3, 2, 4), pattern(72, 1)).unwrap().into_dyn())
        .named("cf")
        .unwrap();
    let conv = nn::conv2d(&x, &cf, [1, 1, 1, 1], Padding::Same).unwrap();
    let cb = math::identity(&g.constant(ndarray::Array::from_vec(pattern(4, 2))).named("cb").unwrap()).unwrap();
    let conv = nn::relu(&nn::bias_add(&conv, &cb).unwrap()).unwrap();
    let flat = array::reshape(&conv, &[-1, 144]).unwrap();
    let w =
        g.constant(ndarray::Array::from_shape_vec((144, 5), pattern(720, 3)).unwrap().into_dyn()).named("w").unwrap();
    let b = g.constant(ndarray::Array::from_vec(pattern(5, 4))).named("b").unwrap();
    let pre = math::matmul(&flat, &w, false, false).unwrap();
    let dense = nn::relu(&nn::bias_add(&pre, &b).unwrap()).unwrap(); // bias + relu
    let relu_only = nn::relu(&math::matmul(&flat, &w, false, false).unwrap()).unwrap();
    let bias_only = nn::bias_add(&math::matmul(&flat, &w, false, false).unwrap(), &b).unwrap();
    let feed = || [(&x, Feed::from(ndarray::Array::from_shape_vec((3, 6, 6, 2), pattern(216, 5)).unwrap().into_dyn()))];
    let fetches = [&conv, &dense, &relu_only, &bias_only];

    let mut fused = Session::new(&g).unwrap();
    fused.set_profiling(true);
    let got = fused.run(&fetches, &feed()).unwrap();
    let ops: Vec<&str> = fused.profile().iter().map(|p| p.0).collect();
    assert!(ops.contains(&"_FusedConv2D") && ops.contains(&"_FusedMatMul"), "{ops:?}");
    assert!(!ops.contains(&"Relu") && !ops.contains(&"BiasAdd"), "{ops:?}");

    let mut separate = Session::new(&g).unwrap();
    separate.set_check_numerics(true); // checks every op's output, so nothing is fused
    separate.set_profiling(true);
    let want = separate.run(&fetches, &feed()).unwrap();
    assert!(separate.profile().iter().all(|p| !p.0.starts_with("_Fused")));
    for (a, b) in got.iter().zip(&want) {
        assert_eq!(a.to_f64_vec(), b.to_f64_vec());
    }
    assert!(got[1].to_f64_vec().contains(&0.0) && got[1].to_f64_vec().iter().any(|&v| v > 0.0));

    // Fetching the pre-activation keeps it: the MatMul is not fused, and both values are right.
    let both = fused.run(&[&pre, &dense], &feed()).unwrap();
    let relu_of_pre: Vec<f64> =
        both[0].to_f64_vec().iter().enumerate().map(|(i, v)| (v + f64::from(b_value(i % 5))).max(0.0)).collect();
    assert_eq!(both[1].to_f64_vec(), relu_of_pre);
    fn b_value(j: usize) -> f32 {
        ((j * 7 + 4) % 11) as f32 - 5.0
    }
}

/// A session that ran `init`, then `train` three times on `feeds`, profiling; with `check` it
/// checks every op's output, so nothing is fused.
fn trained_three_steps(
    g: &Graph,
    init: &Operation,
    train: &Operation,
    feeds: &[(&Tensor, Feed)],
    check: bool,
) -> Session {
    let mut sess = Session::new(g).unwrap();
    sess.set_check_numerics(check);
    sess.set_profiling(true);
    sess.run(init, &[]).unwrap();
    for _ in 0..3 {
        sess.run(train, feeds).unwrap();
    }
    sess
}

/// Layers create the bias after the Conv2D/MatMul (as this crate's layers do): its read is
/// moved ahead so the fusion still applies, and training matches the unfused graph exactly.
#[test]
fn layer_biases_created_after_their_op_still_fuse() {
    let g = Graph::new();
    g.set_random_seed(3);
    let x = g.placeholder(DType::F32, [None, Some(4), Some(4), Some(1)]).named("x").unwrap();
    let c = layers::conv2d(&x, 3, 3, 1, Padding::Same, Some(nn::relu), "c").unwrap();
    let flat = array::reshape(&c, &[-1, 48]).unwrap();
    let d = layers::dense(&flat, 2, Some(nn::relu), "d").unwrap();
    let loss = math::reduce_sum(&math::square(&d).unwrap(), None).named("loss").unwrap();
    let train = GradientDescent::new(0.01).minimize(&loss).unwrap();
    let init = g.global_variables_initializer().unwrap();
    let feed = || {
        [(
            &x,
            Feed::from(
                ndarray::Array::from_shape_fn((2, 4, 4, 1), |(b, i, j, _)| (b + i * 4 + j) as f32 * 0.1).into_dyn(),
            ),
        )]
    };
    let mut losses = vec![];
    for check in [false, true] {
        let sess = trained_three_steps(&g, &init, &train, &feed(), check);
        losses.push(sess.run(&[&loss], &feed()).unwrap()[0].to_f64_vec());
        let fused = sess.profile().iter().filter(|p| p.0.starts_with("_Fused")).count();
        assert_eq!(fused, if check { 0 } else { 2 }, "{:?}", sess.profile());
    }
    assert_eq!(losses[0], losses[1]);
}

/// A weight gradient's MatMul folds into the update that alone reads it (computed in blocks
/// beside the update for short inner dimensions, whole for long ones); a product reading a
/// variable does not (its read would move past other updates). Training gives the bits of the
/// unfused graph, with SGD and Adam, at batches on either side of the rule.
#[test]
fn weight_gradient_products_fold_into_their_updates_with_identical_results() {
    for (adam, batch) in [(false, 3), (false, 40), (true, 3), (true, 40)] {
        let g = Graph::new();
        g.set_random_seed(7);
        let x = g.placeholder(DType::F32, [None, Some(200)]).named("x").unwrap();
        let h = layers::dense(&x, 200, Some(nn::relu), "h").unwrap(); // 40,000 weights: several blocks
        let y = layers::dense(&h, 3, None, "y").unwrap();
        let init_of = |seed: usize| {
            g.constant(ndarray::Array::from_shape_fn((3, 3), move |(i, j)| ((i * 3 + j + seed) % 5) as f32 * 0.1))
                .unwrap()
        };
        let w2 = g.variable(&init_of(0), "w2", true).unwrap();
        let z = math::matmul(&y, &w2, false, false).unwrap(); // w2's gradient yᵀ·dz folds
                                                              // u·v of two variables: each one's gradient product reads the other variable, and must
                                                              // not fold: v is updated first, and u's product must still see v before its update.
        let (v, u) = (g.variable(&init_of(1), "v", true).unwrap(), g.variable(&init_of(2), "u", true).unwrap());
        let uv = math::matmul(&u, &v, false, false).unwrap();
        let squares = |t: &Tensor| math::reduce_sum(&math::square(t).unwrap(), None).unwrap();
        let loss = math::add(&squares(&z), &squares(&uv)).unwrap().named("loss").unwrap();
        let train = if adam { Adam::new(0.01).minimize(&loss) } else { GradientDescent::new(0.001).minimize(&loss) };
        let train = train.unwrap();
        let init = g.global_variables_initializer().unwrap();
        let data = ndarray::Array::from_shape_fn((batch, 200), |(i, j)| ((i * 31 + j * 7) % 13) as f32 * 0.1 - 0.6);
        let feed = || [(&x, Feed::from(data.clone().into_dyn()))];
        let vars = g.trainable_variables();
        let mut results = vec![];
        for check in [false, true] {
            let sess = trained_three_steps(&g, &init, &train, &feed(), check);
            let reads: Vec<&Tensor> = vars.iter().map(|v| &**v).collect();
            let values: Vec<Vec<f64>> = sess.run(&reads, &[]).unwrap().iter().map(Value::to_f64_vec).collect();
            results.push(values);
            let name = if adam { "Apply+MatMul" } else { "ApplyGradientDescent+MatMul" };
            let calls = sess.profile().iter().find(|p| p.0 == name).map(|p| p.1);
            // Three a step: the two dense kernels' and w2's (u's and v's read a variable).
            assert_eq!(calls, (!check).then_some(9), "{adam} {batch}: {:?}", sess.profile());
        }
        assert!(results[0] == results[1], "adam {adam}, batch {batch}");
    }
}

/// The ReluGrad of a hidden layer folds into the op producing its gradient: the
/// Conv2DBackpropInput of the next convolution, or the MaxPoolGrad of the ReLU's own output,
/// and so does the layer's bias gradient (the Sum over all axes but the channels reading it).
/// Training matches the unfused graph exactly. A ReluGrad whose features broadcast still fuses
/// and gives the separate op's result.
#[test]
fn relu_grad_folds_into_the_input_gradient_with_identical_results() {
    let g = Graph::new();
    g.set_random_seed(5);
    let x = g.placeholder(DType::F32, [None, Some(6), Some(6), Some(2)]).named("x").unwrap();
    let c1 = layers::conv2d(&x, 8, 3, 1, Padding::Same, Some(nn::relu), "c1").unwrap();
    let c2 = layers::conv2d(&c1, 4, 3, 1, Padding::Same, Some(nn::relu), "c2").unwrap();
    let pooled = nn::max_pool(&c2, [1, 2, 2, 1], [1, 2, 2, 1], Padding::Valid).unwrap();
    let loss = math::reduce_sum(&math::square(&pooled).unwrap(), None).named("loss").unwrap();
    let train = GradientDescent::new(0.001).minimize(&loss).unwrap();
    let init = g.global_variables_initializer().unwrap();
    let pattern = |n: usize| (0..n).map(|i| ((i * 7 + 3) % 11) as f32 * 0.1 - 0.5).collect::<Vec<_>>();
    let feed = || [(&x, Feed::from(ndarray::Array::from_shape_vec((2, 6, 6, 2), pattern(144)).unwrap().into_dyn()))];
    // A hand-built ReluGrad with features of one channel, broadcast over the 2 channels.
    let w =
        g.constant(ndarray::Array::from_shape_vec((3, 3, 2, 4), pattern(72)).unwrap().into_dyn()).named("w").unwrap();
    let dy =
        g.constant(ndarray::Array::from_shape_vec((2, 3, 3, 4), pattern(72)).unwrap().into_dyn()).named("dy").unwrap();
    let f1 =
        g.constant(ndarray::Array::from_shape_vec((2, 6, 6, 1), pattern(72)).unwrap().into_dyn()).named("f1").unwrap();
    let dx = nn::conv2d_backprop_input(&x, &w, &dy, [1, 2, 2, 1], Padding::Same, [1, 1, 1, 1]).unwrap();
    let broadcast = nn::relu_grad(&dx, &f1).unwrap();
    // Its bias-style sum folds in too (summed after the separate mask).
    let summed = math::reduce_sum(&broadcast, Some(&[0, 1, 2][..])).unwrap();
    let mut results = vec![];
    for check in [false, true] {
        let sess = trained_three_steps(&g, &init, &train, &feed(), check);
        let mut got: Vec<Vec<f64>> =
            sess.run(&[&loss, &broadcast, &summed], &feed()).unwrap().iter().map(Value::to_f64_vec).collect();
        got.push(sess.run(&[&dx], &feed()).unwrap()[0].to_f64_vec());
        results.push(got);
        // 3 training steps (c2's input gradient, from the pooling's gradient routed through
        // the winners of c2's folded pooling (c2's output not kept) and masked by c2's ReLU,
        // with c2's bias and filter gradients; masked by c1's ReLU, with c1's bias and filter
        // gradients made from it) and the hand-built pair (its gradient fetched, so no filter
        // gradient folds in); the loss's run pools without winners, c1 made inside c2.
        let calls = |name: &str| sess.profile().iter().find(|p| p.0 == name).map(|p| p.1);
        assert_eq!(calls("Conv2DBackpropInput+ReluGrad+Sum"), (!check).then_some(1), "{:?}", sess.profile());
        let folded =
            calls("MaxPoolGradWithArgmax+ReluGrad+Sum+Conv2DBackpropInput+Filter+ReluGrad+Sum+Conv2DBackpropFilter");
        assert_eq!(folded, (!check).then_some(3), "{:?}", sess.profile());
        assert_eq!(calls("Conv2DBackpropFilter"), check.then_some(6), "{:?}", sess.profile());
        assert_eq!(calls("MaxPoolGrad"), check.then_some(3), "{:?}", sess.profile());
        assert_eq!(calls("_FusedConv2D+MaxPoolWithArgmax"), (!check).then_some(3), "{:?}", sess.profile());
        assert_eq!(calls("_FusedConv2D+_FusedConv2D+MaxPool"), (!check).then_some(1), "{:?}", sess.profile());
        if !check {
            assert_eq!(calls("Sum"), Some(1), "the fetched loss's alone: {:?}", sess.profile());
        }
    }
    assert_eq!(results[0], results[1]);
    let (dx, masked) = (&results[0][3], &results[0][1]);
    assert_eq!(results[0][2].len(), 2);
    assert!(masked.iter().zip(dx).any(|(m, d)| *m == 0.0 && *d != 0.0) && masked.iter().any(|&m| m != 0.0));
}

/// In training, a pooled convolution keeps each window's winner instead of its output, and the
/// pooling's gradient routes through them (TF's MaxPoolWithArgmax and MaxPoolGradWithArgmax):
/// without a ReLU, with overlapping SAME windows, with ties (a ReLU's zeros, repeated inputs);
/// where the images' rows and columns are unknown when the plan is made, or the convolution's
/// output is fetched too, the gradient reads that output as before. Every way trains to the
/// unfused graph's values, bit for bit.
#[test]
fn pooling_gradients_route_through_the_forward_winners() {
    let cases = [(false, true, false), (true, true, false), (true, false, false), (true, true, true)];
    for ((relu, known, fetch_conv), below) in cases.into_iter().flat_map(|c| [(c, false), (c, true)]) {
        let g = Graph::new();
        g.set_random_seed(9);
        let side = known.then_some(7);
        let x = g.placeholder(DType::F32, [None, side, side, Some(2)]).named("x").unwrap();
        // With a convolution below, the pooled one's input gradient is made too.
        let input =
            if below { layers::conv2d(&x, 4, 3, 1, Padding::Same, Some(nn::relu), "b").unwrap() } else { x.clone() };
        let conv = layers::conv2d(&input, 5, 3, 1, Padding::Same, relu.then_some(nn::relu as _), "c").unwrap();
        let pooled = nn::max_pool(&conv, [1, 3, 3, 1], [1, 2, 2, 1], Padding::Same).unwrap();
        let loss = math::reduce_sum(&math::square(&pooled).unwrap(), None).named("loss").unwrap();
        let train = GradientDescent::new(0.01).minimize(&loss).unwrap();
        let init = g.global_variables_initializer().unwrap();
        // Repeated values: ties within windows.
        let images =
            ndarray::Array::from_shape_fn((3, 7, 7, 2), |(b, i, j, c)| ((b + i / 2 + j / 2 + c) % 4) as f32 - 1.5);
        let feed = [(&x, Feed::from(images.into_dyn()))];
        let mut results = vec![];
        for check in [false, true] {
            let mut sess = Session::new(&g).unwrap();
            sess.set_check_numerics(check);
            sess.set_profiling(true);
            sess.run(&init, &[]).unwrap();
            let mut got = vec![];
            for _ in 0..3 {
                let fetched: Vec<&Tensor> = if fetch_conv { vec![&loss, &conv] } else { vec![&loss] };
                let (values, ()) = sess.run((&fetched, &train), &feed).unwrap();
                got.extend(values.iter().map(Value::to_f64_vec));
            }
            got.push(sess.run(&[&loss], &feed).unwrap()[0].to_f64_vec());
            results.push(got);
            let ops: Vec<&str> = sess.profile().iter().map(|p| p.0).collect();
            let from_winners = !check && known && !fetch_conv;
            // Below, the routing folds into the input gradient (no `dy` written).
            let name = match (relu, below) {
                (true, false) => "MaxPoolGradWithArgmax+ReluGrad+Sum",
                (false, false) => "MaxPoolGradWithArgmax",
                (true, true) => {
                    "MaxPoolGradWithArgmax+ReluGrad+Sum+Conv2DBackpropInput+Filter+ReluGrad+Sum+Conv2DBackpropFilter"
                }
                (false, true) => {
                    "MaxPoolGradWithArgmax+Sum+Conv2DBackpropInput+Filter+ReluGrad+Sum+Conv2DBackpropFilter"
                }
            };
            let case = format!("relu {relu}, known {known}, fetched {fetch_conv}, below {below}");
            assert_eq!(ops.contains(&name), from_winners, "{case}: {ops:?}");
            assert_eq!(ops.contains(&"_FusedConv2D+MaxPoolWithArgmax"), from_winners, "{ops:?}");
        }
        let bits =
            |r: &Vec<Vec<f64>>| r.iter().map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>()).collect::<Vec<_>>();
        assert_eq!(
            bits(&results[0]),
            bits(&results[1]),
            "relu {relu}, known {known}, fetched {fetch_conv}, below {below}"
        );
    }
}

/// A MaxPool of a convolution's activated output folds into the convolution (TF's MaxPool
/// after `_FusedConv2D`): each chunk of images is pooled while in cache. When nothing else
/// reads the convolution's output (inference) it is not kept; fetched too, it is. Either way
/// the values are the unfused graph's, on a batch split into chunks or not.
#[test]
fn max_pool_folds_into_the_convolution_before_it() {
    let g = Graph::new();
    g.set_random_seed(3);
    let x = g.placeholder(DType::F32, [None, Some(9), Some(9), Some(3)]).named("x").unwrap();
    let conv = layers::conv2d(&x, 8, 3, 1, Padding::Same, Some(nn::relu), "conv").unwrap();
    let pooled = nn::max_pool(&conv, [1, 2, 2, 1], [1, 2, 2, 1], Padding::Same).unwrap();
    let init = g.global_variables_initializer().unwrap();
    let images =
        ndarray::Array::from_shape_fn((50, 9, 9, 3), |(b, i, j, c)| ((b * 31 + i * 7 + j * 3 + c) % 13) as f32 - 6.0);
    let feed = [(&x, Feed::from(images.into_dyn()))];
    let (mut fused, separate) = fused_and_separate(&g, &init);
    fused.set_profiling(true);
    for split in [tensorgraph::BatchSplit::Off, tensorgraph::BatchSplit::Rows(7)] {
        fused.set_batch_splitting(split);
        let want = separate.run(&[&conv, &pooled], &feed).unwrap();
        assert_eq!(fused.run(&[&pooled], &feed).unwrap()[0], want[1]);
        assert_eq!(fused.run(&[&conv, &pooled], &feed).unwrap(), want);
    }
    let ops: Vec<&str> = fused.profile().iter().map(|p| p.0).collect();
    assert!(ops.contains(&"_FusedConv2D+MaxPool") && !ops.contains(&"MaxPool"), "{ops:?}");
}

/// Two sessions of `g` with its variables initialised (the seed's values in both): one fusing,
/// one checking every op's output, so nothing is fused.
fn fused_and_separate(g: &Graph, init: &Operation) -> (Session, Session) {
    let fused = Session::new(g).unwrap();
    let mut separate = Session::new(g).unwrap();
    separate.set_check_numerics(true);
    for sess in [&fused, &separate] {
        sess.run(init, &[]).unwrap();
    }
    (fused, separate)
}

/// A convolution whose output only the convolution above reads (inference) folds into it:
/// each chunk of its images is made where the one above reads it. The values are the unfused
/// graph's, on a batch split into chunks or not; fetched, the lower output is kept and not
/// folded.
#[test]
fn a_convolution_folds_into_the_one_above_it() {
    let g = Graph::new();
    g.set_random_seed(4);
    let x = g.placeholder(DType::F32, [None, Some(9), Some(9), Some(1)]).named("x").unwrap();
    let c1 = layers::conv2d(&x, 8, 3, 1, Padding::Same, Some(nn::relu), "c1").unwrap();
    let c2 = layers::conv2d(&c1, 6, 3, 2, Padding::Same, Some(nn::relu), "c2").unwrap();
    let pooled = nn::max_pool(&c2, [1, 2, 2, 1], [1, 2, 2, 1], Padding::Valid).unwrap();
    let w = g.constant(ndarray::Array::from_elem((3, 3, 8, 2), 0.25f32).into_dyn()).unwrap();
    let bare = nn::conv2d(&c1, &w, [1, 1, 1, 1], Padding::Valid).unwrap();
    let init = g.global_variables_initializer().unwrap();
    // Zeros in the lower rows of each image: windows that read only zeros are left out too.
    let images = ndarray::Array::from_shape_fn((40, 9, 9, 1), |(b, i, j, _)| {
        if i > 5 {
            0.0
        } else {
            ((b * 31 + i * 7 + j * 3) % 13) as f32 - 6.0
        }
    });
    let feed = [(&x, Feed::from(images.into_dyn()))];
    let (mut fused, separate) = fused_and_separate(&g, &init);
    fused.set_profiling(true);
    for split in [tensorgraph::BatchSplit::Off, tensorgraph::BatchSplit::Rows(7)] {
        fused.set_batch_splitting(split);
        let want = separate.run(&[&c1, &pooled, &bare], &feed).unwrap();
        assert_eq!(fused.run(&[&pooled], &feed).unwrap()[0], want[1]);
        assert_eq!(fused.run(&[&c1, &pooled], &feed).unwrap(), want[..2]);
    }
    let ops: Vec<&str> = fused.profile().iter().map(|p| p.0).collect();
    assert!(ops.contains(&"_FusedConv2D+_FusedConv2D+MaxPool") && ops.contains(&"_FusedConv2D+MaxPool"), "{ops:?}");
    // Two convolutions read c1: neither takes it in.
    fused.set_profiling(true);
    let want = separate.run(&[&pooled, &bare], &feed).unwrap();
    assert_eq!(fused.run(&[&pooled, &bare], &feed).unwrap(), want);
    let ops: Vec<&str> = fused.profile().iter().map(|p| p.0).collect();
    assert!(!ops.iter().any(|op| op.contains("_FusedConv2D+_FusedConv2D")), "{ops:?}");
}

/// A feed read by several inputs is copied once per run (its last reader takes the copy); the
/// caller's value is never modified.
#[test]
fn a_feed_read_three_times_is_copied_once() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(100)]).named("x").unwrap();
    let gram = math::matmul(&x, &x, false, true).unwrap(); // reads x twice; 10x10, not pooled
    let r = nn::relu(&x).unwrap(); // the last reader: works in place on the run's copy
    let feed =
        [(&x, Feed::from(ndarray::Array::from_shape_fn((10, 100), |(i, j)| (i * 7 + j) as f32 - 50.0).into_dyn()))];
    let sess = Session::new(&g).unwrap();
    let out = sess.run(&[&gram, &r], &feed).unwrap();
    // One buffer: the copy of x (a copy per read would have taken two at once for the MatMul).
    assert_eq!(sess.fresh_buffers(), 1);
    let xs = feed[0].1.to_value().to_f64_vec();
    assert_eq!(out[1].to_f64_vec(), xs.iter().map(|v| v.max(0.0)).collect::<Vec<_>>());
    assert_eq!(out[0].to_f64_vec()[0], xs[..100].iter().map(|v| v * v).sum::<f64>());
    assert_eq!(xs[0], -50.0); // the caller's feed is untouched
}

/// A Slice alone reading a MatMul's product folds into it (only the block is computed, from
/// rows of A and columns of B): for every transpose, a block of columns, of rows, of both, the
/// bits of the unfused graph; a block out of range is an error naming the Slice's shapes.
#[test]
fn a_sliced_product_computes_only_its_block_with_identical_results() {
    let values = |n: usize, seed: usize| -> Vec<f32> {
        (0..n).map(|i| ((i * 37 + seed * 11) % 97) as f32 / 89.0 - 0.5).collect()
    };
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let g = Graph::new();
        let (m, k, n) = (7, 300, 40);
        let a = ndarray::Array::from_shape_vec(if ta { (k, m) } else { (m, k) }, values(m * k, 1)).unwrap();
        let b = ndarray::Array::from_shape_vec(if tb { (n, k) } else { (k, n) }, values(k * n, 2)).unwrap();
        let x = g.placeholder(DType::F32, [None, None]).named("a").unwrap();
        let y = g.constant(b.into_dyn()).named("b").unwrap();
        let blocks: Vec<Tensor> = [([0, 5], [-1, -1]), ([2, 0], [3, -1]), ([1, 8], [4, 30])]
            .iter()
            .map(|(begin, size)| array::slice(&math::matmul(&x, &y, ta, tb).unwrap(), begin, size).unwrap())
            .collect();
        let fetches: Vec<&Tensor> = blocks.iter().collect();
        let feeds = [(&x, Feed::from(a.clone().into_dyn()))];
        let mut fused = Session::new(&g).unwrap();
        fused.set_profiling(true);
        let got = fused.run(&fetches, &feeds).unwrap();
        let ops: Vec<&str> = fused.profile().iter().map(|p| p.0).filter(|&op| op != "Const").collect();
        assert_eq!(ops, ["MatMul+Slice"], "{ta} {tb}");
        let mut separate = Session::new(&g).unwrap();
        separate.set_check_numerics(true); // checks every op's output, so nothing is fused
        let want = separate.run(&fetches, &feeds).unwrap();
        for (got, want) in got.iter().zip(&want) {
            assert_eq!(got.shape(), want.shape());
            let bits = |v: Vec<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(got.to_f64_vec()), bits(want.to_f64_vec()), "{ta} {tb}");
        }
        let too_far = array::slice(&math::matmul(&x, &y, ta, tb).unwrap(), &[5, 0], &[4, -1]).unwrap();
        let e = fused.run(&[&too_far], &feeds).unwrap_err().to_string();
        assert!(e.contains("out of bounds for shape [7,40]") && e.contains("MatMul"), "{e}");
    }
}

/// An AddN of products it alone reads becomes a chain of products each adding onto the sum so
/// far (one buffer, no AddN pass): the bits of the unfused graph when AddN's inputs come in the
/// steps' order, with transposes, and AddN's error for products of different shapes.
#[test]
fn an_addn_of_products_accumulates_in_place_with_identical_results() {
    let values = |n: usize, seed: usize| -> Vec<f32> {
        (0..n).map(|i| ((i * 37 + seed * 11) % 97) as f32 / 89.0 - 0.5).collect()
    };
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(30)]).named("x").unwrap();
    let products: Vec<Tensor> = (0..4)
        .map(|i| {
            let w = g.constant(ndarray::Array::from_shape_vec((30, 20), values(600, i)).unwrap().into_dyn()).unwrap();
            math::matmul(&x, &w, false, false).unwrap()
        })
        .collect();
    let transposed = {
        let w = g.constant(ndarray::Array::from_shape_vec((20, 30), values(600, 9)).unwrap().into_dyn()).unwrap();
        math::matmul(&x, &w, false, true).unwrap()
    };
    let mut inputs: Vec<&Tensor> = products.iter().collect();
    inputs.push(&transposed);
    let sum = math::add_n(&inputs).unwrap();
    let feeds = [(&x, Feed::from(ndarray::Array::from_shape_vec((5, 30), values(150, 4)).unwrap().into_dyn()))];
    let mut fused = Session::new(&g).unwrap();
    fused.set_profiling(true);
    let got = fused.run(&[&sum], &feeds).unwrap();
    let ops: Vec<&str> = fused.profile().iter().map(|p| p.0).collect();
    assert!(ops.contains(&"MatMul+AddN") && !ops.contains(&"AddN"), "{ops:?}");
    let mut separate = Session::new(&g).unwrap();
    separate.set_check_numerics(true); // checks every op's output, so nothing is fused
    let want = separate.run(&[&sum], &feeds).unwrap();
    let bits = |v: Vec<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(got[0].to_f64_vec()), bits(want[0].to_f64_vec()));

    // Products of different shapes (x's rows unknown until run): the chain's error, as AddN's.
    let y = g.placeholder(DType::F32, [None, Some(30)]).named("y").unwrap();
    let w = g.constant(ndarray::Array::from_shape_vec((30, 20), values(600, 5)).unwrap().into_dyn()).unwrap();
    let mismatched = math::add_n(&[&products[0], &math::matmul(&y, &w, false, false).unwrap()]).unwrap();
    let y_feed = Feed::from(ndarray::Array::from_shape_vec((3, 30), values(90, 6)).unwrap().into_dyn());
    let e = fused
        .run(&[&mismatched], &[(&x, Feed::from(ndarray::Array::<f32, _>::zeros((5, 30)).into_dyn())), (&y, y_feed)])
        .unwrap_err();
    assert!(e.to_string().contains("[3,30] x [30,20]") && e.to_string().contains("[5,20]"), "{e}");
}
