//! Every op's forward pass on hand-checked values.

mod common;
#[path = "common/ops.rs"]
mod ops;
use common::{assert_close, run1};
use ndarray::{array, ArrayD, IxDyn};
use tensorgraph::prelude::*;
use tensorgraph::{cond, while_loop};

fn c(g: &Graph, v: impl Into<Value>) -> Tensor {
    g.constant(v).unwrap()
}

#[test]
fn matmul_with_transposes() {
    let g = Graph::new();
    let a = c(&g, array![[1.0f32, 2.0], [3.0, 4.0]]);
    let b = c(&g, array![[5.0f32, 6.0], [7.0, 8.0]]);
    assert_close(&run1(&g, &math::matmul(&a, &b, false, false).unwrap(), &[]), &[2, 2], &[19.0, 22.0, 43.0, 50.0]);
    assert_close(&run1(&g, &math::matmul(&a, &b, true, false).unwrap(), &[]), &[2, 2], &[26.0, 30.0, 38.0, 44.0]);
    assert_close(&run1(&g, &math::matmul(&a, &b, false, true).unwrap(), &[]), &[2, 2], &[17.0, 23.0, 39.0, 53.0]);
    assert_close(&run1(&g, &math::matmul(&a, &b, true, true).unwrap(), &[]), &[2, 2], &[23.0, 31.0, 34.0, 46.0]);
}

#[test]
fn binary_ops_broadcast() {
    let g = Graph::new();
    let a = c(&g, array![[1.0f32, -2.0, 3.0], [4.0, 5.0, -6.0]]);
    let b = c(&g, array![2.0f32, 2.0, -1.0]);
    let cases: Vec<(Tensor, Vec<f64>)> = vec![
        (math::add(&a, &b).unwrap(), vec![3.0, 0.0, 2.0, 6.0, 7.0, -7.0]),
        (math::sub(&a, &b).unwrap(), vec![-1.0, -4.0, 4.0, 2.0, 3.0, -5.0]),
        (math::mul(&a, &b).unwrap(), vec![2.0, -4.0, -3.0, 8.0, 10.0, 6.0]),
        (math::div(&a, &b).unwrap(), vec![0.5, -1.0, -3.0, 2.0, 2.5, 6.0]),
        (math::maximum(&a, &b).unwrap(), vec![2.0, 2.0, 3.0, 4.0, 5.0, -1.0]),
        (math::minimum(&a, &b).unwrap(), vec![1.0, -2.0, -1.0, 2.0, 2.0, -6.0]),
        (math::pow(&math::abs(&a).unwrap(), &b).unwrap(), vec![1.0, 4.0, 1.0 / 3.0, 16.0, 25.0, 1.0 / 6.0]),
    ];
    for (t, want) in cases {
        assert_close(&run1(&g, &t, &[]), &[2, 3], &want);
    }
}

/// The operators add the same ops as the named functions; numbers become constants of the
/// tensor's dtype (also int32, where a fraction truncates as TF's cast of a Python float would
/// not: write integer-valued numbers).
#[test]
fn tensor_operators() {
    let g = Graph::new();
    let a = c(&g, array![[1.0f32, -2.0, 3.0], [4.0, 5.0, -6.0]]);
    let b = c(&g, array![2.0f32, 2.0, -1.0]);
    let i = c(&g, array![7i32, -3]);
    let cases: Vec<(Tensor, Vec<f64>)> = vec![
        ((&a + &b).unwrap(), vec![3.0, 0.0, 2.0, 6.0, 7.0, -7.0]),
        ((&a - &b).unwrap(), vec![-1.0, -4.0, 4.0, 2.0, 3.0, -5.0]),
        ((&a * &b).unwrap(), vec![2.0, -4.0, -3.0, 8.0, 10.0, 6.0]),
        ((&a / &b).unwrap(), vec![0.5, -1.0, -3.0, 2.0, 2.5, 6.0]),
        ((&a * 2.0).unwrap(), vec![2.0, -4.0, 6.0, 8.0, 10.0, -12.0]),
        ((1.0 - &b).unwrap(), vec![-1.0, -1.0, 2.0]),
        ((&b / 4.0).unwrap(), vec![0.5, 0.5, -0.25]),
        ((-&b).unwrap(), vec![-2.0, -2.0, 1.0]),
        (((&i * 2.0).unwrap() + 1.0).unwrap(), vec![15.0, -5.0]),
    ];
    for (t, want) in cases {
        assert_eq!(run1(&g, &t, &[]).to_f64_vec(), want, "{}", t.name());
    }
    assert_eq!((&i + 1.0).unwrap().dtype(), DType::I32);
    assert!((&a + &i).is_err(), "float32 + int32 is a dtype error, as in TF");
}

/// log1p keeps the digits `log(1 + x)` loses for tiny x (in float32, 1 + 1e-10 is 1).
#[test]
fn log1p_is_accurate_near_zero() {
    let g = Graph::new();
    let x = c(&g, array![1e-10f32, -1e-12, 0.0, -1.0]);
    let out = run1(&g, &math::log1p(&x).unwrap(), &[]).to_f64_vec();
    assert!((out[0] - 1e-10).abs() < 1e-16 && (out[1] + 1e-12).abs() < 1e-18, "{out:?}");
    assert_eq!((out[2], out[3]), (0.0, f64::NEG_INFINITY));
}

#[test]
fn comparisons_give_bool() {
    let g = Graph::new();
    let a = c(&g, array![1i64, 2, 3]);
    let b = c(&g, array![2i64]);
    let out = |t: Tensor| run1(&g, &t, &[]).into_bool().unwrap().into_raw_vec_and_offset().0;
    assert_eq!(out(math::equal(&a, &b).unwrap()), [false, true, false]);
    assert_eq!(out(math::not_equal(&a, &b).unwrap()), [true, false, true]);
    assert_eq!(out(math::less(&a, &b).unwrap()), [true, false, false]);
    assert_eq!(out(math::less_equal(&a, &b).unwrap()), [true, true, false]);
    assert_eq!(out(math::greater(&a, &b).unwrap()), [false, false, true]);
    assert_eq!(out(math::greater_equal(&a, &b).unwrap()), [false, true, true]);
    // TF's logical ops: bools only, broadcasting.
    let (p, q) = (c(&g, array![true, true, false, false]), c(&g, array![true, false, true, false]));
    assert_eq!(out(math::logical_and(&p, &q).unwrap()), [true, false, false, false]);
    assert_eq!(out(math::logical_or(&p, &q).unwrap()), [true, true, true, false]);
    assert_eq!(out(math::logical_not(&p).unwrap()), [false, false, true, true]);
    let t = c(&g, array![true]);
    assert_eq!(out(math::logical_and(&p, &t).unwrap()), [true, true, false, false]);
    let err = math::logical_and(&a, &b).unwrap_err().to_string();
    assert!(err.contains("expected bool, got int64") && err.contains("LogicalAnd"), "{err}");
    assert!(math::logical_not(&a).is_err());
}

#[test]
fn unary_ops() {
    let g = Graph::new();
    let x = c(&g, array![-1.0f64, 0.5, 2.0]);
    let p = c(&g, array![0.25f64, 1.0, 4.0]);
    let e = std::f64::consts::E;
    let cases: Vec<(Tensor, Vec<f64>)> = vec![
        (nn::relu(&x).unwrap(), vec![0.0, 0.5, 2.0]),
        (nn::sigmoid(&x).unwrap(), vec![1.0 / (1.0 + e), 1.0 / (1.0 + (-0.5f64).exp()), 1.0 / (1.0 + (-2.0f64).exp())]),
        (nn::tanh(&x).unwrap(), vec![(-1.0f64).tanh(), 0.5f64.tanh(), 2.0f64.tanh()]),
        (math::exp(&x).unwrap(), vec![1.0 / e, 0.5f64.exp(), 2.0f64.exp()]),
        (math::log(&p).unwrap(), vec![0.25f64.ln(), 0.0, 4.0f64.ln()]),
        (math::log1p(&p).unwrap(), vec![1.25f64.ln(), 2.0f64.ln(), 5.0f64.ln()]),
        (math::neg(&x).unwrap(), vec![1.0, -0.5, -2.0]),
        (math::square(&x).unwrap(), vec![1.0, 0.25, 4.0]),
        (math::sqrt(&p).unwrap(), vec![0.5, 1.0, 2.0]),
        (math::rsqrt(&p).unwrap(), vec![2.0, 1.0, 0.5]),
        (math::abs(&x).unwrap(), vec![1.0, 0.5, 2.0]),
        (math::sign(&x).unwrap(), vec![-1.0, 1.0, 1.0]),
        (math::reciprocal(&p).unwrap(), vec![4.0, 1.0, 0.25]),
    ];
    for (t, want) in cases {
        assert_close(&run1(&g, &t, &[]), &[3], &want);
    }
    let i = c(&g, array![-3i32, 0, 2]);
    assert_close(&run1(&g, &math::abs(&i).unwrap(), &[]), &[3], &[3.0, 0.0, 2.0]);
    assert_close(&run1(&g, &math::neg(&i).unwrap(), &[]), &[3], &[3.0, 0.0, -2.0]);
    assert_close(&run1(&g, &math::square(&i).unwrap(), &[]), &[3], &[9.0, 0.0, 4.0]);
    assert_close(&run1(&g, &math::sign(&i).unwrap(), &[]), &[3], &[-1.0, 0.0, 1.0]);
}

#[test]
fn sigmoid_is_stable_at_extremes() {
    let g = Graph::new();
    let x = c(&g, array![-1000.0f32, 1000.0]);
    assert_close(&run1(&g, &nn::sigmoid(&x).unwrap(), &[]), &[2], &[0.0, 1.0]);
}

#[test]
fn bias_add_add_n_and_grad_helpers() {
    let g = Graph::new();
    let x = c(&g, array![[1.0f32, 2.0], [3.0, 4.0]]);
    let b = c(&g, array![10.0f32, 20.0]);
    assert_close(&run1(&g, &nn::bias_add(&x, &b).unwrap(), &[]), &[2, 2], &[11.0, 22.0, 13.0, 24.0]);
    assert_close(&run1(&g, &math::add_n(&[&x, &x, &x]).unwrap(), &[]), &[2, 2], &[3.0, 6.0, 9.0, 12.0]);
    let f = c(&g, array![[-1.0f32, 0.0], [2.0, 3.0]]);
    assert_close(&run1(&g, &nn::relu_grad(&x, &f).unwrap(), &[]), &[2, 2], &[0.0, 0.0, 3.0, 4.0]);
    let s = c(&g, array![[0.5f32, 0.25], [0.0, 1.0]]);
    assert_close(&run1(&g, &nn::sigmoid_grad(&s, &x).unwrap(), &[]), &[2, 2], &[0.25, 0.375, 0.0, 0.0]);
    assert_close(&run1(&g, &nn::tanh_grad(&s, &x).unwrap(), &[]), &[2, 2], &[0.75, 1.875, 3.0, 0.0]);
}

#[test]
fn reductions_over_axes_with_keep_dims() {
    let g = Graph::new();
    let x = c(&g, array![[1.0f32, 5.0, 3.0], [4.0, 2.0, 6.0]]);
    assert_close(&run1(&g, &math::reduce_sum(&x, None).unwrap(), &[]), &[], &[21.0]);
    assert_close(&run1(&g, &math::reduce_sum(&x, Some(&[0])).unwrap(), &[]), &[3], &[5.0, 7.0, 9.0]);
    assert_close(&run1(&g, &math::reduce_mean(&x, Some(&[-1])).unwrap(), &[]), &[2], &[3.0, 4.0]);
    assert_close(&run1(&g, &math::reduce_max_keep_dims(&x, Some(&[1])).unwrap(), &[]), &[2, 1], &[5.0, 6.0]);
    assert_close(&run1(&g, &math::reduce_min(&x, Some(&[0, 1])).unwrap(), &[]), &[], &[1.0]);
    assert_close(&run1(&g, &math::reduce_sum_keep_dims(&x, None).unwrap(), &[]), &[1, 1], &[21.0]);
    let i = c(&g, array![[1i64, 2], [3, 4]]);
    assert_close(&run1(&g, &math::reduce_sum(&i, Some(&[1])).unwrap(), &[]), &[2], &[3.0, 7.0]);
}

#[test]
fn argmax_cast_and_size() {
    let g = Graph::new();
    let x = c(&g, array![[1.0f32, 5.0, 5.0], [7.0, 2.0, 6.0]]);
    assert_close(&run1(&g, &math::argmax(&x, 1).unwrap(), &[]), &[2], &[1.0, 0.0]);
    assert_close(&run1(&g, &math::argmax(&x, 0).unwrap(), &[]), &[3], &[1.0, 0.0, 1.0]);
    assert_close(&run1(&g, &math::argmin(&x, 1).unwrap(), &[]), &[2], &[0.0, 1.0]);
    assert_close(&run1(&g, &math::argmin(&c(&g, array![[2i32, 1, 1]]), -1).unwrap(), &[]), &[1], &[1.0]);
    let f = c(&g, array![-1.7f32, 0.0, 2.9]);
    assert_close(&run1(&g, &f.cast(DType::I32).unwrap(), &[]), &[3], &[-1.0, 0.0, 2.0]);
    assert_close(&run1(&g, &f.cast(DType::Bool).unwrap().cast(DType::F64).unwrap(), &[]), &[3], &[1.0, 0.0, 1.0]);
    assert_close(&run1(&g, &math::size(&x, None, DType::I32).unwrap(), &[]), &[], &[6.0]);
    assert_close(&run1(&g, &math::size(&x, Some(&[1]), DType::F32).unwrap(), &[]), &[], &[3.0]);
    // Shape at run time: the fed batch, not the static `?`.
    let p = g.placeholder(DType::F32, [None, Some(3)]).unwrap();
    let fed = Value::from(ndarray::Array2::<f32>::zeros((4, 3)).into_dyn());
    assert_close(&run1(&g, &math::shape(&p, DType::I64).unwrap(), &[(&p, fed.into())]), &[2], &[4.0, 3.0]);
    assert_close(&run1(&g, &math::shape(&c(&g, ndarray::arr0(1.0f32)), DType::I32).unwrap(), &[]), &[0], &[]);
    assert!(math::shape(&x, DType::F32).is_err());
}

#[test]
fn softmax_and_log_softmax() {
    let g = Graph::new();
    let x = c(&g, array![[1.0f64, 2.0, 3.0], [0.0, 0.0, 0.0]]);
    let z: f64 = (1.0f64).exp() + (2.0f64).exp() + (3.0f64).exp();
    let sm = [1f64.exp() / z, 2f64.exp() / z, 3f64.exp() / z, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0];
    assert_close(&run1(&g, &nn::softmax(&x).unwrap(), &[]), &[2, 3], &sm);
    let lsm: Vec<f64> = sm.iter().map(|v| v.ln()).collect();
    assert_close(&run1(&g, &nn::log_softmax(&x).unwrap(), &[]), &[2, 3], &lsm);
}

#[test]
fn sparse_softmax_cross_entropy_matches_hand_values_and_extremes() {
    let g = Graph::new();
    let logits = c(&g, array![[2.0f64, 1.0, 0.1], [1e4, -1e4, 0.0], [0.0, 0.0, 0.0]]);
    let labels = c(&g, array![0i64, 1, 2]);
    let xent = nn::sparse_softmax_cross_entropy_with_logits(&labels, &logits).named("xent").unwrap();
    let lse = (2f64.exp() + 1f64.exp() + 0.1f64.exp()).ln();
    assert_close(&run1(&g, &xent, &[]), &[3], &[lse - 2.0, 2e4, 3f64.ln()]);
    let bad = c(&g, array![0i64, 3, 0]);
    let xent = nn::sparse_softmax_cross_entropy_with_logits(&bad, &logits).named("bad").unwrap();
    let err = Session::new(&g).unwrap().run(&[&xent], &[]).unwrap_err().to_string();
    assert!(err.contains("bad (SparseSoftmaxCrossEntropyWithLogits)") && err.contains("label 3"), "{err}");
}

#[test]
fn in_top_k_follows_tf_on_ties() {
    let g = Graph::new();
    let p = c(&g, array![[0.1f32, 0.5, 0.5], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]]);
    let t = c(&g, array![2i64, 1, 0]);
    let out = run1(&g, &nn::in_top_k(&p, &t, 1).unwrap(), &[]);
    assert_eq!(out.into_bool().unwrap().into_raw_vec_and_offset().0, [true, false, false]);
    let out = run1(&g, &nn::in_top_k(&p, &t, 2).unwrap(), &[]);
    assert_eq!(out.into_bool().unwrap().into_raw_vec_and_offset().0, [true, true, false]);
}

#[test]
fn shape_ops() {
    let g = Graph::new();
    let x = c(&g, array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let all = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    assert_close(&run1(&g, &array::reshape(&x, &[3, -1]).unwrap(), &[]), &[3, 2], &all);
    assert_close(&run1(&g, &array::transpose(&x, None).unwrap(), &[]), &[3, 2], &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let e = array::expand_dims(&x, -1).unwrap();
    assert_close(&run1(&g, &e, &[]), &[2, 3, 1], &all);
    assert_close(&run1(&g, &array::squeeze(&e, None).unwrap(), &[]), &[2, 3], &all);
    let cat = array::concat(&[&x, &x], 0).unwrap();
    assert_close(&run1(&g, &cat, &[]), &[4, 3], &[all, all].concat());
    let cat1 = array::concat(&[&x, &x], 1).unwrap();
    assert_close(&run1(&g, &cat1, &[]), &[2, 6], &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 4.0, 5.0, 6.0]);
    assert_close(&run1(&g, &array::slice(&x, &[0, 1], &[-1, 2]).unwrap(), &[]), &[2, 2], &[2.0, 3.0, 5.0, 6.0]);
    let padded = array::pad(&x, &[(1, 0), (0, 1)]).unwrap();
    assert_close(&run1(&g, &padded, &[]), &[3, 4], &[0., 0., 0., 0., 1., 2., 3., 0., 4., 5., 6., 0.]);
}

#[test]
fn one_hot_fill_and_likes() {
    let g = Graph::new();
    let idx = c(&g, array![0i64, 2, 5]);
    let oh = array::one_hot(&idx, 3, 1.0, 0.0, DType::F32).unwrap();
    assert_close(&run1(&g, &oh, &[]), &[3, 3], &[1., 0., 0., 0., 0., 1., 0., 0., 0.]);
    assert_close(&run1(&g, &array::fill(&g, &[2], DType::F64, 7.5).unwrap(), &[]), &[2], &[7.5, 7.5]);
    assert_close(&run1(&g, &array::zeros(&g, &[1, 2], DType::I32).unwrap(), &[]), &[1, 2], &[0.0, 0.0]);
    assert_close(&run1(&g, &array::ones_like(&oh).unwrap(), &[]), &[3, 3], &[1.0; 9]);
    assert_close(&run1(&g, &array::zeros_like(&idx).unwrap(), &[]), &[3], &[0.0; 3]);
}

#[test]
fn broadcast_to_and_sum_to_shape_are_adjoint() {
    let g = Graph::new();
    let small = c(&g, array![[1.0f32], [2.0]]);
    let big = c(&g, ArrayD::<f32>::zeros(IxDyn(&[3, 2, 4])));
    let b = array::broadcast_to(&small, &big).unwrap();
    assert_close(&run1(&g, &b, &[]), &[3, 2, 4], &[[1.0; 4], [2.0; 4]].concat().repeat(3));
    let s = array::sum_to_shape(&b, &small).unwrap();
    assert_close(&run1(&g, &s, &[]), &[2, 1], &[12.0, 24.0]);
}

#[test]
fn random_ops_are_seeded_and_in_range() {
    let g = Graph::new();
    g.set_random_seed(7);
    let u = random::random_uniform(&g, &[1000], DType::F32, -2.0, 3.0, None).unwrap();
    let t = random::truncated_normal(&g, &[1000], DType::F64, 1.0, 0.5, None).unwrap();
    let n = random::random_normal(&g, &[4000], DType::F64, 1.0, 0.5, None).unwrap();
    let (_, ns) = common::flat(&run1(&g, &n, &[]));
    let (m, var) = (ns.iter().sum::<f64>() / 4000.0, ns.iter().map(|v| (v - 1.0).powi(2)).sum::<f64>() / 4000.0);
    assert!((m - 1.0).abs() < 0.05 && (var.sqrt() - 0.5).abs() < 0.05, "normal: mean {m}, var {var}");
    let (_, us) = common::flat(&run1(&g, &u, &[]));
    assert!(us.iter().all(|&v| (-2.0..3.0).contains(&v)));
    let mean = us.iter().sum::<f64>() / 1000.0;
    assert!((mean - 0.5).abs() < 0.2, "{mean}");
    let (_, ts) = common::flat(&run1(&g, &t, &[]));
    assert!(ts.iter().all(|&v| (0.0..=2.0).contains(&v)));
    // Same seeds in a fresh session: the same numbers; a second draw in one session: new ones.
    assert_eq!(common::flat(&run1(&g, &u, &[])).1, us);
    let sess = Session::new(&g).unwrap();
    let first = sess.run(&[&u], &[]).unwrap().remove(0);
    let second = sess.run(&[&u], &[]).unwrap().remove(0);
    assert_ne!(first, second);
}

/// The plumbing ops: placeholders (fed or defaulted), identity, stop_gradient, select, floor,
/// and variables with their assignments and a no-op target.
#[test]
fn plumbing_and_state_ops() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None]).named("x").unwrap();
    let d = g.placeholder_with_default(&c(&g, array![9.0f32])).named("d").unwrap();
    let cond = math::greater(&x, &c(&g, ndarray::arr0(0.0f32))).unwrap();
    let sel = math::select(&cond, &x, &math::neg(&x).unwrap()).unwrap();
    let fl = math::floor(&c(&g, array![-1.5f32, -0.0, 2.7])).unwrap();
    let id = math::identity(&x).named("id").unwrap();
    let sg = array::stop_gradient(&x).unwrap();
    let w = g.variable(&c(&g, array![1.0f32, 2.0]), "w", true).unwrap();
    let add = state::assign_add(&w, &c(&g, array![0.5f32, 0.5])).unwrap();
    let sub = state::assign_sub(&w, &c(&g, array![1.0f32, 1.0])).unwrap();
    let set = state::assign(&w, &c(&g, array![7.0f32, 8.0])).unwrap();
    let nothing = state::no_op(&g).named("nothing").unwrap();
    common::record(&g);
    let sess = Session::new(&g).unwrap();
    sess.run((&g.global_variables_initializer().unwrap(), &nothing), &[]).unwrap();
    let feed = [(&x, array![-2.0f32, 3.0].into_dyn().into())];
    let out = sess.run(&[&sel, &fl, &id, &sg, &d], &feed).unwrap();
    assert_eq!(out[0].to_f64_vec(), [2.0, 3.0]);
    assert_eq!(out[1].to_f64_vec(), [-2.0, 0.0, 2.0]);
    assert_eq!((out[2].to_f64_vec(), out[3].to_f64_vec()), (vec![-2.0, 3.0], vec![-2.0, 3.0]));
    assert_eq!(out[4].to_f64_vec(), [9.0]);
    assert_eq!(sess.run(&[&d], &[(&d, array![4.0f32].into_dyn().into())]).unwrap()[0].to_f64_vec(), [4.0]);
    assert_eq!(sess.run(&[&add], &[]).unwrap()[0].to_f64_vec(), [1.5, 2.5]);
    assert_eq!(sess.run(&[&sub], &[]).unwrap()[0].to_f64_vec(), [0.5, 1.5]);
    assert_eq!(sess.run(&[&set], &[]).unwrap()[0].to_f64_vec(), [7.0, 8.0]);
    assert_eq!(sess.run(&[w.value()], &[]).unwrap()[0].to_f64_vec(), [7.0, 8.0]);
}

#[test]
fn more_activations() {
    let g = Graph::new();
    let x = c(&g, array![-2.0f64, -0.5, 0.0, 1.5, 40.0]);
    let (a, s) = (1.673_263_242_354_377_3, 1.050_700_987_355_480_5);
    let e = |v: f64| if v > 0.0 { v } else { v.exp() - 1.0 };
    let xs = [-2.0f64, -0.5, 0.0, 1.5, 40.0];
    let want = |f: &dyn Fn(f64) -> f64| xs.iter().map(|&v| f(v)).collect::<Vec<_>>();
    assert_close(&run1(&g, &nn::elu(&x).unwrap(), &[]), &[5], &want(&e));
    assert_close(
        &run1(&g, &nn::selu(&x).unwrap(), &[]),
        &[5],
        &want(&|v| if v > 0.0 { s * v } else { s * a * (v.exp() - 1.0) }),
    );
    assert_close(&run1(&g, &nn::softplus(&x).unwrap(), &[]), &[5], &want(&|v| (1.0 + v.exp()).ln()));
    assert_close(&run1(&g, &nn::softsign(&x).unwrap(), &[]), &[5], &want(&|v| v / (1.0 + v.abs())));
    assert_close(
        &run1(&g, &nn::leaky_relu(&x, 0.2).unwrap(), &[]),
        &[5],
        &want(&|v| if v > 0.0 { v } else { 0.2 * v }),
    );
    assert_close(&run1(&g, &nn::swish(&x).unwrap(), &[]), &[5], &want(&|v| v / (1.0 + (-v).exp())));
    // softplus stays finite far out.
    let big = c(&g, array![1000.0f32, -1000.0]);
    assert_close(&run1(&g, &nn::softplus(&big).unwrap(), &[]), &[2], &[1000.0, 0.0]);
}

#[test]
fn dropout_zeroes_and_rescales_only_in_training() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(1000)]).named("x").unwrap();
    let training = g.placeholder(DType::Bool, Shape::scalar()).named("training").unwrap();
    let y = nn::dropout(&x, 0.3, &training, Some(5)).unwrap();
    let ones = ndarray::Array2::<f32>::ones((20, 1000));
    common::record(&g);
    let mut sess = Session::new(&g).unwrap();
    let run = |sess: &mut Session, t: bool| {
        sess.run(&[&y], &[(&x, ones.clone().into()), (&training, ndarray::arr0(t).into())]).unwrap()[0].to_f64_vec()
    };
    let on = run(&mut sess, true);
    let zeros = on.iter().filter(|&&v| v == 0.0).count() as f64 / on.len() as f64;
    assert!((zeros - 0.3).abs() < 0.02, "dropped fraction {zeros}");
    assert!(on.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
    assert_ne!(run(&mut sess, true), on, "a new mask each step");
    assert!(run(&mut sess, false).iter().all(|&v| v == 1.0), "identity at inference");
    assert!(nn::dropout(&x, 1.0, &training, None).is_err());
    // The gradient flows through the kept elements only.
    let dx = tensorgraph::gradients(&[&y], &[&x], None).unwrap().remove(0).unwrap();
    let out = sess.run(&[&y, &dx], &[(&x, ones.clone().into()), (&training, ndarray::arr0(true).into())]).unwrap();
    for (a, b) in out[0].to_f64_vec().iter().zip(out[1].to_f64_vec()) {
        assert_eq!(*a, b, "d(x·mask·s)/dx = mask·s, equal to y at x = 1");
    }
}

#[test]
fn gather_segment_sum_split_stack_unstack_edge_cases() {
    let g = Graph::new();
    let params = c(&g, array![[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]]);
    let idx = |v: ArrayD<i64>| c(&g, v);
    let rows = array::gather(&params, &idx(array![2i64, 2, 0].into_dyn()), 0).unwrap();
    assert_close(&run1(&g, &rows, &[]), &[3, 2], &[5.0, 6.0, 5.0, 6.0, 1.0, 2.0]);
    let cols = array::gather(&params, &c(&g, array![[1i32], [0]]), 1).unwrap();
    assert_close(&run1(&g, &cols, &[]), &[3, 2, 1], &[2.0, 1.0, 4.0, 3.0, 6.0, 5.0]);
    // No indices: no rows, the params' other dimensions kept.
    let none = array::gather(&params, &idx(ArrayD::zeros(IxDyn(&[0]))), 0).unwrap();
    assert_close(&run1(&g, &none, &[]), &[0, 2], &[]);
    // A negative or too large index is an error naming it, as TF's.
    for (bad, text) in [(-1i64, "indices[1] = -1 is not in [0, 3)"), (3, "indices[1] = 3 is not in [0, 3)")] {
        let t = array::gather(&params, &idx(array![0i64, bad].into_dyn()), 0).unwrap();
        let e = Session::new(&g).unwrap().run(&t, &[]).unwrap_err();
        assert!(e.to_string().contains(text) && e.to_string().contains("GatherV2"), "{e}");
    }
    // Negative segment ids are dropped; empty segments are zero.
    let n = g.scalar(4.0, DType::I32).unwrap();
    let sums = math::unsorted_segment_sum(&params, &idx(array![3i64, -1, 3].into_dyn()), &n).unwrap();
    assert_close(&run1(&g, &sums, &[]), &[4, 2], &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 6.0, 8.0]);
    let ints = math::unsorted_segment_sum(&c(&g, array![5i64, 7, 9]), &idx(array![0i64, 0, 1].into_dyn()), &n).unwrap();
    assert_close(&run1(&g, &ints, &[]), &[4], &[12.0, 9.0, 0.0, 0.0]);
    assert!(math::unsorted_segment_sum(&params, &idx(array![0i64, 1].into_dyn()), &n).is_err(), "ids of 2 rows for 3");
    // A piece of size 0; stacking one tensor; unstacking.
    let parts = array::split(&params, [0, 2], 1).unwrap();
    assert_close(&run1(&g, &parts[0], &[]), &[3, 0], &[]);
    assert_close(&run1(&g, &parts[1], &[]), &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert!(array::split(&params, 4, 0).is_err() && array::split(&params, [1, 1], 0).is_err());
    let stacked = array::stack(&[&params], 0).unwrap();
    assert_close(&run1(&g, &stacked, &[]), &[1, 3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let cols = array::unstack(&params, 1).unwrap();
    assert_eq!(cols.len(), 2);
    assert_close(&run1(&g, &cols[1], &[]), &[3], &[2.0, 4.0, 6.0]);
    let p = g.placeholder(DType::F32, [None, Some(2)]).unwrap();
    assert!(array::unstack(&p, 0).is_err(), "the unstacked axis' size must be known");
    let tiled = array::tile(&c(&g, array![[1i64, 2]]), &[2, 2]).unwrap();
    assert_close(&run1(&g, &tiled, &[]), &[2, 4], &[1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    assert_close(&run1(&g, &array::tile(&params, &[0, 1]).unwrap(), &[]), &[0, 2], &[]);
    assert!(array::tile(&params, &[2]).is_err(), "one multiple per dimension");
    assert_eq!(array::tile(&p, &[3, 2]).unwrap().shape().to_string(), "[?,4]");
    // Strided slices: a position out of bounds is an error naming it; ranges clamp.
    use tensorgraph::Index::*;
    let x = c(&g, array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    assert_close(&run1(&g, &array::strided_slice(&x, &[All, At(-1)]).unwrap(), &[]), &[2], &[3.0, 6.0]);
    assert_close(&run1(&g, &array::strided_slice(&x, &[Range(Some(5), None, 1)]).unwrap(), &[]), &[0, 3], &[]);
    assert!(array::strided_slice(&x, &[At(2)]).is_err() && array::strided_slice(&x, &[All, All, All]).is_err());
    assert!(array::strided_slice(&x, &[Range(None, None, 0)]).is_err(), "a stride of 0");
    assert!(array::strided_slice(&x, &[Range(None, None, i64::MIN)]).is_err());
    assert!(array::strided_slice(&x, &vec![NewAxis; 70]).is_err(), "more entries than mask bits");
    assert!(array::range(&g, 0.0, 1e12, 1.0, DType::F64).is_err(), "no memory for it: an error, not an abort");
    // On a batch of unknown size the index resolves when run.
    let q = g.placeholder(DType::F32, [None, Some(3)]).unwrap();
    let last_row = array::strided_slice(&q, &[At(-1)]).unwrap();
    let fed = Value::from(ndarray::Array2::<f32>::ones((4, 3)));
    assert_close(&run1(&g, &last_row, &[(&q, fed.into())]), &[3], &[1.0, 1.0, 1.0]);
    let empty = Value::from(ndarray::Array2::<f32>::ones((0, 3)));
    let e = Session::new(&g).unwrap().run(&last_row, &[(&q, empty.into())]).unwrap_err();
    assert!(e.to_string().contains("index -1 is out of bounds for a dimension of size 0"), "{e}");
    let r = array::range(&g, 3.0, 10.0, 3.0, DType::I64).unwrap();
    assert_close(&run1(&g, &r, &[]), &[3], &[3.0, 6.0, 9.0]);
    assert_close(&run1(&g, &array::range(&g, 1.0, -1.0, -0.5, DType::F32).unwrap(), &[]), &[4], &[1.0, 0.5, 0.0, -0.5]);
    assert_close(&run1(&g, &array::range(&g, 5.0, 1.0, 1.0, DType::I32).unwrap(), &[]), &[0], &[]);
    assert!(array::range(&g, 0.0, 1.0, 0.0, DType::F32).is_err());
    let lengths = c(&g, array![2i32, 0, 3]);
    let mask = array::sequence_mask(&lengths, 3, DType::F32).unwrap();
    assert_close(&run1(&g, &mask, &[]), &[3, 3], &[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    let spec = tensorgraph::SliceSpec::from_indices(&[All, Range(None, None, -2)]);
    let dy = c(&g, array![[1.0f32, 2.0], [3.0, 4.0]]);
    let placed = array::strided_slice_grad(&dy, &x, &spec).unwrap();
    assert_close(&run1(&g, &placed, &[]), &[2, 3], &[2.0, 0.0, 1.0, 4.0, 0.0, 3.0]);
    assert!(array::stack(&[&params, &p], 0).is_ok() && array::stack(&[&params, &cols[0]], 0).is_err());
}

/// Integer running sums, empty and single axes, NaN and ties in top_k, k = 0, an empty batch,
/// products over nothing, where, fill from run-time dims, mirror padding's limits, erf.
#[test]
fn scans_top_k_products_and_batch_matmul() {
    let g = Graph::new();
    let ints = c(&g, array![[1i64, 2, 3], [4, 5, 6]]);
    assert_close(
        &run1(&g, &math::cumsum(&ints, 1, false, false).unwrap(), &[]),
        &[2, 3],
        &[1.0, 3.0, 6.0, 4.0, 9.0, 15.0],
    );
    assert_close(
        &run1(&g, &math::cumprod(&ints, 0, true, true).unwrap(), &[]),
        &[2, 3],
        &[4.0, 5.0, 6.0, 1.0, 1.0, 1.0],
    );
    let empty = c(&g, ArrayD::<f32>::zeros(IxDyn(&[2, 0])));
    assert_close(&run1(&g, &math::cumsum(&empty, 1, true, false).unwrap(), &[]), &[2, 0], &[]);
    assert_close(&run1(&g, &math::reduce_prod(&empty, Some(&[1])).unwrap(), &[]), &[2], &[1.0, 1.0]);
    let x = c(&g, array![[2.0f32, f32::NAN, 2.0, -1.0]]);
    let (v, i) = nn::top_k(&x, 3, true).unwrap();
    let v = run1(&g, &v, &[]).to_f64_vec();
    assert!(v[0].is_nan() && v[1..] == [2.0, 2.0], "{v:?}");
    assert_close(&run1(&g, &i, &[]), &[1, 3], &[1.0, 0.0, 2.0]);
    let (none, _) = nn::top_k(&x, 0, true).unwrap();
    assert_close(&run1(&g, &none, &[]), &[1, 0], &[]);
    assert!(nn::top_k(&x, 5, true).is_err());
    let a = g.placeholder(DType::F32, [None, Some(2), Some(3)]).named("a").unwrap();
    let b = c(&g, array![[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0]]);
    let ab = math::batch_matmul(&a, &b, false, false).unwrap();
    assert_eq!(ab.shape().to_string(), "[?,2,2]");
    let none = ArrayD::<f32>::zeros(IxDyn(&[0, 2, 3]));
    assert_close(&run1(&g, &ab, feed! {a => none}), &[0, 2, 2], &[]);
    let one = ndarray::Array3::from_shape_vec((1, 2, 3), vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap().into_dyn();
    assert_close(&run1(&g, &ab, feed! {a => one}), &[1, 2, 2], &[4.0, 5.0, 10.0, 11.0]);
    assert!(math::batch_matmul(&a, &c(&g, array![[1.0f32, 2.0]]), false, false).is_err());
    // where: coordinates of the true elements; of a scalar; of nothing.
    let m = c(&g, array![[true, false], [false, true]]);
    assert_close(&run1(&g, &array::where_true(&m).unwrap(), &[]), &[2, 2], &[0.0, 0.0, 1.0, 1.0]);
    assert_close(&run1(&g, &array::where_true(&c(&g, ndarray::arr0(2.0f32))).unwrap(), &[]), &[1, 0], &[]);
    let none = c(&g, array![0i32, 0]);
    assert_close(&run1(&g, &array::where_true(&none).unwrap(), &[]), &[0, 1], &[]);
    // fill from run-time dims; negative dims are an error.
    let d = g.placeholder(DType::I32, [2]).named("d").unwrap();
    let filled = array::fill_dims(&d, &c(&g, ndarray::arr0(1.5f32))).unwrap();
    assert_eq!(filled.shape().to_string(), "[?,?]");
    assert_close(&run1(&g, &filled, feed! {d => array![1i32, 2].into_dyn()}), &[1, 2], &[1.5, 1.5]);
    let sess = Session::new(&g).unwrap();
    assert!(sess.run(&filled, feed! {d => array![-1i32, 2].into_dyn()}).unwrap_err().to_string().contains("negative"));
    // Mirror pads beyond what the input can mirror are errors (REFLECT: size - 1).
    let row = c(&g, array![[1.0f32, 2.0, 3.0]]);
    assert!(array::mirror_pad(&row, &[(0, 0), (3, 0)], array::MirrorMode::Reflect).is_err());
    let sym = array::mirror_pad(&row, &[(0, 0), (3, 0)], array::MirrorMode::Symmetric).unwrap();
    assert_close(&run1(&g, &sym, &[]), &[1, 6], &[3.0, 2.0, 1.0, 1.0, 2.0, 3.0]);
    // range and slice over run-time tensors.
    let n = g.placeholder(DType::I64, Shape::scalar()).named("n").unwrap();
    let r = array::range_of(&c(&g, ndarray::arr0(10i64)), &n, &c(&g, ndarray::arr0(-3i64))).unwrap();
    assert_close(&run1(&g, &r, feed! {n => 0i64}), &[4], &[10.0, 7.0, 4.0, 1.0]);
    assert_close(&run1(&g, &r, feed! {n => 20i64}), &[0], &[]);
    let rf =
        array::range_of(&c(&g, ndarray::arr0(0.5f32)), &c(&g, ndarray::arr0(2.0f32)), &c(&g, ndarray::arr0(0.5f32)))
            .unwrap();
    assert_close(&run1(&g, &rf, &[]), &[3], &[0.5, 1.0, 1.5]);
    let zero_step = array::range_of(&c(&g, ndarray::arr0(0i64)), &n, &c(&g, ndarray::arr0(0i64))).unwrap();
    assert!(sess.run(&zero_step, feed! {n => 3i64}).unwrap_err().to_string().contains("delta != 0"));
    let begin = g.placeholder(DType::I32, [2]).named("begin").unwrap();
    let table = c(&g, array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let part = array::slice_dynamic(&table, &begin, &c(&g, array![1i32, -1])).unwrap();
    assert_close(&run1(&g, &part, feed! {begin => array![1i32, 1].into_dyn()}), &[1, 2], &[5.0, 6.0]);
    let err = sess.run(&part, feed! {begin => array![2i32, 0].into_dyn()}).unwrap_err().to_string();
    assert!(err.contains("does not fit [2,3]"), "{err}");
    let e = math::erf(&c(&g, array![0.0f64, 0.5, -2.0, 10.0])).unwrap();
    assert_close(&run1(&g, &e, &[]), &[4], &[0.0, 0.520_499_877_813_046_5, -0.995_322_265_018_952_7, 1.0]);
}

/// `while_loop` and `cond` decide at run time: trip counts and branches from fed values, loop
/// variables whose shapes change from one iteration to the next, only the taken branch run,
/// variables made inside a body living in the main graph; and the build errors.
#[test]
fn loops_and_conditionals() {
    let g = Graph::new();
    g.set_random_seed(7);
    let n = g.placeholder(DType::I64, Shape::scalar()).named("n").unwrap();
    let one = g.scalar(1.0, DType::I64).unwrap();
    // i, acc = 1, 1; while i <= n: acc *= i; i += 1
    let fact = while_loop(
        |v| math::less_equal(&v[0], &n),
        |v| Ok(vec![math::add(&v[0], &one)?, math::mul(&v[1], &v[0])?]),
        &[&one, &one],
        None,
    )
    .unwrap();
    let sess = Session::new(&g).unwrap();
    for (k, want) in [(0i64, 1.0), (1, 1.0), (5, 120.0)] {
        assert_eq!(sess.run(&fact[1], feed! {n => k}).unwrap().scalar_f64(), Some(want));
    }
    // A loop variable of unknown length doubling each iteration; capped by maximum_iterations.
    let x = g.placeholder(DType::F32, [None]).named("x").unwrap();
    let grow = |max| {
        while_loop(
            |v| math::less(&math::size(&v[0], None, DType::I64)?, &math::mul(&n, &n)?),
            |v| Ok(vec![array::concat(&[&v[0], &(&v[0] * 2.0)?], 0)?]),
            &[&x],
            max,
        )
        .unwrap()
        .remove(0)
    };
    let (free, capped, none) = (grow(None), grow(Some(1)), grow(Some(0)));
    let got = sess.run((&free, &capped, &none), feed! {x => array![1.0f32].into_dyn(), n => 3i64}).unwrap();
    assert_close(&got.0, &[16], &[1.0, 2.0, 2.0, 4.0, 2.0, 4.0, 4.0, 8.0, 2.0, 4.0, 4.0, 8.0, 4.0, 8.0, 8.0, 16.0]);
    assert_close(&got.1, &[2], &[1.0, 2.0]);
    assert_close(&got.2, &[1], &[1.0]);
    // Only the branch taken runs: the other's out-of-range gather never does.
    let p = g.placeholder(DType::Bool, Shape::scalar()).named("p").unwrap();
    let bad = g.constant(array![7i64]).unwrap();
    let picked = cond(&p, || Ok(vec![math::square(&x)?]), || Ok(vec![array::gather(&x, &bad, 0)?])).unwrap();
    assert_eq!(picked[0].shape().to_string(), "[?]");
    let xv = array![1.0f32, -2.0].into_dyn();
    assert_close(&sess.run(&picked[0], feed! {x => &xv, p => true}).unwrap(), &[2], &[1.0, 4.0]);
    let err = sess.run(&picked[0], feed! {x => &xv, p => false}).unwrap_err().to_string();
    assert!(err.contains("cond/GatherV2") && err.contains("7"), "{err}");
    // Branches of different static shapes give what they agree on.
    let two =
        cond(&p, || Ok(vec![g.constant(array![1.0f32, 2.0])?]), || Ok(vec![g.constant(array![3.0f32])?])).unwrap();
    assert_eq!(two[0].shape().to_string(), "[?]");
    assert_close(&sess.run(&two[0], feed! {p => false}).unwrap(), &[1], &[3.0]);
    // A variable made in a body is the main graph's, and training reaches it through the loop.
    let h = g.placeholder(DType::F32, [2, 2]).named("h").unwrap();
    let looped = while_loop(
        |v| math::less(&v[0], &n),
        |v| {
            let dense = layers::dense(&v[1], 2, Some(nn::tanh), "cell")?;
            Ok(vec![math::add(&v[0], &one)?, dense])
        },
        &[&n.graph().scalar(0.0, DType::I64).unwrap(), &h],
        None,
    )
    .unwrap();
    let names: Vec<String> = g.global_variables().iter().map(|v| v.name()).collect();
    assert!(names.contains(&"cell/kernel".to_string()), "{names:?}");
    let loss = math::reduce_sum(&math::square(&looped[1]).unwrap(), None).unwrap();
    let train = train::GradientDescent::new(0.1).minimize(&loss).unwrap();
    common::record(&g);
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    let hv = array![[0.5f32, -1.0], [1.0, 0.25]].into_dyn();
    let before = sess.run(&loss, feed! {h => &hv, n => 3i64}).unwrap().scalar_f64().unwrap();
    for _ in 0..5 {
        sess.run(&train, feed! {h => &hv, n => 3i64}).unwrap();
    }
    let after = sess.run(&loss, feed! {h => &hv, n => 3i64}).unwrap().scalar_f64().unwrap();
    assert!(after < before, "training through the loop: {before} -> {after}");
    // Build errors name what is wrong.
    let msg = |r: Result<Vec<Tensor>>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let fixed = g.placeholder(DType::F32, [2]).unwrap();
    let no = |v: &[Tensor]| v[0].graph().scalar(0.0, DType::Bool);
    let e = msg(while_loop(no, |v| Ok(vec![array::concat(&[&v[0], &v[0]], 0)?]), &[&fixed], None));
    assert!(e.contains("returns float32 [4]") && e.contains("enters as float32 [2]"), "{e}");
    let e = msg(while_loop(|v| Ok(v[0].clone()), |v| Ok(vec![v[0].clone()]), &[&fixed], None));
    assert!(e.contains("bool scalar") && e.contains("ops_forward.rs"), "{e}");
    let e = msg(while_loop(no, |v| Ok(vec![v[0].clone(), v[0].clone()]), &[&fixed], None));
    assert!(e.contains("returns 2 tensors for 1 loop variables"), "{e}");
    let e = msg(cond(&fixed, || Ok(vec![]), || Ok(vec![])));
    assert!(e.contains("bool scalar"), "{e}");
    let e = msg(cond(&p, || Ok(vec![fixed.clone()]), || Ok(vec![])));
    assert!(e.contains("true_fn returns 1 tensors, false_fn 0"), "{e}");
}

/// Summaries refuse what TF refuses: a NaN in a histogram, one tag twice in a merge, a
/// non-scalar in a scalar summary, images that are not `[batch, h, w, 1|3|4]`.
#[test]
fn summaries_refuse_what_tensorflow_refuses() {
    use tensorgraph::summary;
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [2]).named("x").unwrap();
    let h = summary::histogram("h", &x).unwrap();
    let sess = Session::new(&g).unwrap();
    let err = sess.run(&h, feed! {x => array![1.0f32, f32::NAN].into_dyn()}).unwrap_err().to_string();
    assert!(err.contains("Nan in summary histogram for: h"), "{err}");
    let twice = summary::merge(&[&h, &h]).unwrap();
    let err = sess.run(&twice, feed! {x => array![1.0f32, 2.0].into_dyn()}).unwrap_err().to_string();
    assert!(err.contains("Duplicate tag h found in summary inputs"), "{err}");
    assert!(summary::scalar("s", &x).is_err());
    assert!(summary::image("i", &x, 1).is_err());
    assert!(summary::image("i", &g.placeholder(DType::F32, [1, 2, 2, 2]).unwrap(), 1).is_err());
    assert!(summary::merge(&[&x]).is_err() && summary::merge(&[]).is_err());
    assert_eq!(summary::merge_all(&Graph::new()).unwrap().map(|t| t.name()), None);
}

/// The op table's side of the forward tests: every op has one, here or (for the ops whose
/// semantics need a session's state or TF's own numbers) in the test file named below.
#[test]
fn every_op_has_a_forward_test() {
    plumbing_and_state_ops();
    matmul_with_transposes();
    binary_ops_broadcast();
    tensor_operators();
    log1p_is_accurate_near_zero();
    comparisons_give_bool();
    unary_ops();
    sigmoid_is_stable_at_extremes();
    bias_add_add_n_and_grad_helpers();
    reductions_over_axes_with_keep_dims();
    argmax_cast_and_size();
    softmax_and_log_softmax();
    sparse_softmax_cross_entropy_matches_hand_values_and_extremes();
    in_top_k_follows_tf_on_ties();
    shape_ops();
    one_hot_fill_and_likes();
    broadcast_to_and_sum_to_shape_are_adjoint();
    random_ops_are_seeded_and_in_range();
    more_activations();
    dropout_zeroes_and_rescales_only_in_training();
    gather_segment_sum_split_stack_unstack_edge_cases();
    loops_and_conditionals();
    scans_top_k_products_and_batch_matmul();
    let elsewhere = [
        // Forward values checked against TensorFlow's own numbers in tf_parity.rs.
        ("Conv2D", "tf_parity.rs conv.json"),
        ("Conv2DBackpropInput", "tf_parity.rs conv.json"),
        ("Conv2DBackpropFilter", "tf_parity.rs conv.json"),
        ("MaxPool", "tf_parity.rs pool.json"),
        ("LSTMBlockCell", "tf_parity.rs lstm_block.json and rnn.json"),
        ("LSTMBlockCellGrad", "tf_parity.rs rnn.json (BasicLSTMCell's gradients)"),
        ("MaxPoolGrad", "tf_parity.rs pool.json"),
        ("AvgPool", "tf_parity.rs pool.json"),
        ("AvgPoolGrad", "tf_parity.rs pool.json"),
        ("FusedBatchNorm", "tf_parity.rs batch_norm.json"),
        ("FusedBatchNormGrad", "tf_parity.rs batch_norm.json"),
        ("ApplyGradientDescent", "tf_parity.rs optimizers.json"),
        ("ApplyMomentum", "tf_parity.rs optimizers.json"),
        ("ApplyAdagrad", "tf_parity.rs optimizers.json"),
        ("ApplyRMSProp", "tf_parity.rs optimizers.json"),
        ("ApplyCenteredRMSProp", "tf_parity.rs optimizers.json"),
        ("ApplyAdam", "tf_parity.rs optimizers.json"),
        ("MirrorPadGrad", "tf_parity.rs array_ops.json (mirror_pad's gradients)"),
        ("SliceGrad", "tf_parity.rs array_ops.json (slice_dynamic's gradient)"),
        ("DepthwiseConv2dNative", "tf_parity.rs math_ops.json"),
        ("DepthwiseConv2dNativeBackpropInput", "tf_parity.rs math_ops.json (depthwise_conv2d's gradients)"),
        ("DepthwiseConv2dNativeBackpropFilter", "tf_parity.rs math_ops.json (depthwise_conv2d's gradients)"),
        ("ScalarSummary", "tf_parity.rs summaries.json"),
        ("HistogramSummary", "tf_parity.rs summaries.json"),
        ("ImageSummary", "tf_parity.rs summaries.json"),
        ("MergeSummary", "tf_parity.rs summaries.json"),
        ("Switch", "graph_def.rs control_flow_v1_graph (TF's outputs for both branches)"),
        ("Merge", "graph_def.rs control_flow_v1_graph (TF's outputs for both branches)"),
        // MaxPoolGrad's gradient, checked against finite differences.
        ("MaxPoolGradGrad", "gradients.rs pooling_and_its_backward_ops"),
    ];
    let ran = common::RAN.lock().unwrap().clone();
    let missing: std::collections::BTreeSet<&str> = ops::every_op()
        .iter()
        .map(|o| o.type_name())
        .filter(|n| !ran.contains(n) && !elsewhere.iter().any(|(e, _)| e == n))
        .collect();
    assert!(missing.is_empty(), "ops without a forward test: {missing:?}");
}
