//! Every differentiable op against finite differences (f64), second-order derivatives, and the
//! structure of the backward graph.

#[path = "common/ops.rs"]
mod ops;

use ndarray::{array, ArrayD, IxDyn};
use std::collections::BTreeSet;
use std::sync::Mutex;
use tensorgraph::prelude::*;

type Build = dyn Fn(&[Tensor]) -> Result<Tensor>;
type UnaryFn = fn(&Tensor) -> Result<Tensor>;
type BinaryFn = fn(&Tensor, &Tensor) -> Result<Tensor>;

/// The op types on the differentiated side of some gradient check in this file: every node of a
/// graph as it stands when its gradient is first checked (the backward ops of a first gradient
/// are recorded when a second-order check differentiates them).
static CHECKED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

fn record(g: &Graph) {
    CHECKED.lock().unwrap().extend(g.operations().iter().map(|o| o.op_type()));
}

/// `compute_gradient_error`, recording the ops of the graph it checks.
fn compute_gradient_error(
    sess: &mut Session,
    x: &Tensor,
    x0: &Value,
    y: &Tensor,
    feeds: &[(&Tensor, Feed)],
) -> Result<f64> {
    record(sess.graph());
    tensorgraph::gradient_checker::compute_gradient_error(sess, x, x0, y, feeds)
}

/// Checks d(build(inputs))/d(input i) for every input against central differences.
fn check(name: &str, inputs: &[ArrayD<f64>], build: &Build) {
    let g = Graph::new();
    let phs: Vec<Tensor> = inputs
        .iter()
        .enumerate()
        .map(|(i, a)| g.placeholder(DType::F64, a.shape()).named(&format!("in{i}")).unwrap())
        .collect();
    let y = build(&phs).unwrap();
    record(&g);
    let mut sess = Session::new(&g).unwrap();
    for i in 0..inputs.len() {
        let feeds: Vec<(&Tensor, Feed)> = phs
            .iter()
            .zip(inputs)
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, (p, a))| (p, a.clone().into()))
            .collect();
        let x0 = inputs[i].clone().into();
        let err = tensorgraph::gradient_checker::compute_gradient_error(&mut sess, &phs[i], &x0, &y, &feeds).unwrap();
        assert!(err < 1e-6, "{name}: gradient error {err} for input {i}");
    }
}

/// Deterministic values in [lo, hi) without ties.
fn vals(shape: &[usize], lo: f64, hi: f64, salt: u64) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    let mut v: Vec<f64> = (0..n).map(|i| ((i as u64 * 7919 + salt * 104729) % 1009) as f64 / 1009.0).collect();
    for (i, x) in v.iter_mut().enumerate() {
        *x = lo + (hi - lo) * *x + i as f64 * 1e-4;
    }
    ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
}

#[test]
fn matmul_all_transposes() {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a = vals(if ta { &[4, 3] } else { &[3, 4] }, -1.0, 1.0, 1);
        let b = vals(if tb { &[2, 4] } else { &[4, 2] }, -1.0, 1.0, 2);
        check(&format!("matmul {ta} {tb}"), &[a, b], &move |x| math::matmul(&x[0], &x[1], ta, tb));
    }
}

#[test]
fn unary_ops() {
    let any = vals(&[2, 3], -2.0, 2.0, 3);
    let pos = vals(&[2, 3], 0.5, 3.0, 4);
    let away_from_zero = any.mapv(|v| if v.abs() < 0.1 { v + 0.3 } else { v });
    let cases: Vec<(&str, ArrayD<f64>, UnaryFn)> = vec![
        ("relu", away_from_zero.clone(), nn::relu),
        ("sigmoid", any.clone(), nn::sigmoid),
        ("tanh", any.clone(), nn::tanh),
        ("exp", any.clone(), math::exp),
        ("log", pos.clone(), math::log),
        ("log1p", any.mapv(|v| v.abs() * 0.9 - 0.5), math::log1p),
        ("neg", any.clone(), math::neg),
        ("square", any.clone(), math::square),
        ("sqrt", pos.clone(), math::sqrt),
        ("rsqrt", pos.clone(), math::rsqrt),
        ("abs", away_from_zero.clone(), math::abs),
        ("reciprocal", pos.clone(), math::reciprocal),
        ("softmax", any.clone(), nn::softmax),
        ("elu", away_from_zero.clone(), nn::elu),
        ("selu", away_from_zero.clone(), nn::selu),
        ("softplus", any.clone(), nn::softplus),
        ("softsign", away_from_zero.clone(), nn::softsign),
        ("swish", any.clone(), nn::swish),
        ("log_softmax", any.clone(), nn::log_softmax),
        ("erf", any.clone(), math::erf),
    ];
    for (name, x, f) in cases {
        check(name, &[x], &move |t| f(&t[0]));
    }
    check("leaky_relu", std::slice::from_ref(&away_from_zero), &|t| nn::leaky_relu(&t[0], 0.2));
    // Second order through the composite activation gradients.
    for (name, f) in [("elu", nn::elu as UnaryFn), ("selu", nn::selu), ("softplus", nn::softplus), ("swish", nn::swish)]
    {
        let g = Graph::new();
        let x = g.placeholder(DType::F64, [2, 3]).named("x").unwrap();
        let y = math::reduce_sum(&f(&x).unwrap(), None).unwrap();
        let dx = tensorgraph::gradients(&[&y], &[&x], None).unwrap().remove(0).unwrap();
        let mut sess = Session::new(&g).unwrap();
        let err = compute_gradient_error(&mut sess, &x, &away_from_zero.clone().into(), &dx, &[]).unwrap();
        assert!(err < 1e-6, "second derivative of {name}: {err}");
    }
}

#[test]
fn binary_ops_with_broadcasting() {
    let shapes: [(&[usize], &[usize]); 4] = [(&[2, 3], &[2, 3]), (&[2, 3], &[3]), (&[2, 1], &[1, 3]), (&[], &[2, 2])];
    let ops: Vec<(&str, BinaryFn)> = vec![
        ("add", math::add),
        ("sub", math::sub),
        ("mul", math::mul),
        ("div", math::div),
        ("maximum", math::maximum),
        ("minimum", math::minimum),
        ("pow", math::pow),
    ];
    for (sa, sb) in shapes {
        for (name, f) in &ops {
            let f = *f;
            let a = vals(sa, 0.5, 2.0, 5);
            let b = vals(sb, 0.6, 2.1, 6);
            check(&format!("{name} {sa:?} {sb:?}"), &[a, b], &move |t| f(&t[0], &t[1]));
        }
    }
}

#[test]
fn select_routes_the_gradient_to_the_taken_branch_with_broadcasting() {
    let shapes: [(&[usize], &[usize]); 3] = [(&[2, 3], &[2, 3]), (&[2, 3], &[3]), (&[2, 1], &[1, 3])];
    for (sa, sb) in shapes {
        let (a, b) = (vals(sa, -1.0, 1.0, 7), vals(sb, -1.0, 1.0, 8));
        // The condition depends on the inputs but is piecewise constant, as in TF.
        check(&format!("select {sa:?} {sb:?}"), &[a, b], &|t| {
            let cond = math::greater(&t[0], &t[1])?;
            math::select(&cond, &math::square(&t[0])?, &math::mul(&t[1], &t[1].graph().scalar(3.0, DType::F64)?)?)
        });
    }
    // A scalar condition broadcast over both branches, as batch norm uses it.
    let g = Graph::new();
    let c = g.placeholder(DType::Bool, Shape::scalar()).named("c").unwrap();
    let x = g.placeholder(DType::F64, [2]).named("x").unwrap();
    let y = g.placeholder(DType::F64, [2]).named("y").unwrap();
    let s = math::select(&c, &x, &y).unwrap();
    let grads = tensorgraph::gradients(&[&s], &[&x, &y], None).unwrap();
    let (dx, dy) = (grads[0].clone().unwrap(), grads[1].clone().unwrap());
    let sess = Session::new(&g).unwrap();
    for on in [true, false] {
        let feeds = [
            (&c, Feed::from(ndarray::arr0(on).into_dyn())),
            (&x, array![1.0, 2.0].into()),
            (&y, array![3.0, 4.0].into()),
        ];
        let out = sess.run(&[&s, &dx, &dy], &feeds).unwrap();
        let (want, wdx) = if on { (vec![1.0, 2.0], 1.0) } else { (vec![3.0, 4.0], 0.0) };
        assert_eq!(out[0].to_f64_vec(), want);
        assert_eq!(out[1].to_f64_vec(), vec![wdx; 2]);
        assert_eq!(out[2].to_f64_vec(), vec![1.0 - wdx; 2]);
    }
}

#[test]
fn floor_has_no_gradient_but_its_neighbours_do() {
    let g = Graph::new();
    let x = g.placeholder(DType::F64, [3]).named("x").unwrap();
    let y = math::add(&math::floor(&x).unwrap(), &x).unwrap();
    let d = tensorgraph::gradients(&[&y], &[&x], None).unwrap().remove(0).unwrap();
    let out = Session::new(&g).unwrap().run(&[&y, &d], &[(&x, array![-1.5, 0.25, 2.0].into())]).unwrap();
    assert_eq!(out[0].to_f64_vec(), vec![-3.5, 0.25, 4.0]);
    assert_eq!(out[1].to_f64_vec(), vec![1.0; 3]);
}

#[test]
fn activation_gradient_ops_are_differentiable() {
    let s = vals(&[2, 3], 0.1, 0.9, 7);
    let d = vals(&[2, 3], -1.0, 1.0, 8);
    check("sigmoid_grad", &[s.clone(), d.clone()], &|t| nn::sigmoid_grad(&t[0], &t[1]));
    check("tanh_grad", &[s.clone(), d.clone()], &|t| nn::tanh_grad(&t[0], &t[1]));
    let f = d.mapv(|v| if v.abs() < 0.1 { v + 0.3 } else { v });
    check("relu_grad", &[s, f], &|t| nn::relu_grad(&t[0], &t[1]));
}

#[test]
fn reductions() {
    let x = vals(&[3, 4], -1.0, 1.0, 9);
    for axes in [None, Some(vec![0i64]), Some(vec![1]), Some(vec![0, 1])] {
        for keep in [false, true] {
            let a = axes.clone();
            check(&format!("sum {axes:?} {keep}"), std::slice::from_ref(&x), &move |t| {
                if keep {
                    math::reduce_sum_keep_dims(&t[0], a.as_deref())
                } else {
                    math::reduce_sum(&t[0], a.as_deref())
                }
            });
            let a = axes.clone();
            check(&format!("mean {axes:?} {keep}"), std::slice::from_ref(&x), &move |t| {
                if keep {
                    math::reduce_mean_keep_dims(&t[0], a.as_deref())
                } else {
                    math::reduce_mean(&t[0], a.as_deref())
                }
            });
            let a = axes.clone();
            check(&format!("max {axes:?} {keep}"), std::slice::from_ref(&x), &move |t| {
                if keep {
                    math::reduce_max_keep_dims(&t[0], a.as_deref())
                } else {
                    math::reduce_max(&t[0], a.as_deref())
                }
            });
            let a = axes.clone();
            check(&format!("min {axes:?}"), std::slice::from_ref(&x), &move |t| math::reduce_min(&t[0], a.as_deref()));
            // Exact zeros: the product of the others, not a division by zero.
            let mut z = x.clone();
            z[[1, 2]] = 0.0;
            z[[2, 2]] = 0.0;
            let a = axes.clone();
            check(&format!("prod {axes:?} {keep}"), &[z], &move |t| {
                if keep {
                    math::reduce_prod_keep_dims(&t[0], a.as_deref())
                } else {
                    math::reduce_prod(&t[0], a.as_deref())
                }
            });
        }
    }
}

/// Running sums and products both ways, top_k (ties broken by index, so no kink at the test
/// values), batched matmul with broadcast batch axes and every adjoint pair.
#[test]
fn scans_top_k_and_batch_matmul() {
    let x = vals(&[3, 4], 0.2, 1.5, 21);
    for (exclusive, reverse) in [(false, false), (true, false), (false, true), (true, true)] {
        for axis in [0, -1] {
            check("cumsum", std::slice::from_ref(&x), &move |t| math::cumsum(&t[0], axis, exclusive, reverse));
            check("cumprod", std::slice::from_ref(&x), &move |t| math::cumprod(&t[0], axis, exclusive, reverse));
        }
    }
    check("top_k", std::slice::from_ref(&x), &|t| Ok(nn::top_k(&t[0], 2, true)?.0));
    let (xd, kd) = (vals(&[2, 5, 4, 3], -1.0, 1.0, 28), vals(&[3, 2, 3, 2], -1.0, 1.0, 29));
    for (stride, padding) in [(1, Padding::Same), (2, Padding::Valid), (2, Padding::Same)] {
        check("depthwise_conv2d", &[xd.clone(), kd.clone()], &move |t| {
            math::square(&nn::depthwise_conv2d(&t[0], &t[1], [1, stride, stride, 1], padding)?)
        });
    }
    let (z, k) = (vals(&[2, 3, 3, 2], -1.0, 1.0, 26), vals(&[3, 3, 1, 2], -1.0, 1.0, 27));
    check("conv2d_transpose", &[z, k], &|t| {
        math::square(&nn::conv2d_transpose(
            &t[0],
            &t[1],
            [None, Some(6), Some(6), Some(1)],
            [1, 2, 2, 1],
            Padding::Same,
        )?)
    });
    check("slice_dynamic", std::slice::from_ref(&x), &|t| {
        let (b, s) = (t[0].graph().constant(array![1i64, 1])?, t[0].graph().constant(array![-1i64, 2])?);
        math::square(&array::slice_dynamic(&t[0], &b, &s)?)
    });
    // A reshape to a run-time shape (its gradient is one too), and a constant one of an input
    // with two unknown dimensions (whose gradient reads the input's shape as the graph runs).
    check("reshape_dynamic", std::slice::from_ref(&x), &|t| {
        let shape = t[0].graph().constant(array![-1i32, 2])?;
        math::square(&array::reshape_dynamic(&t[0], &shape)?)
    });
    check("reshape_of_unknown_dimensions", std::slice::from_ref(&x), &|t| {
        let unknown = array::reshape_dynamic(&t[0], &math::shape(&t[0], DType::I32)?)?;
        assert_eq!(unknown.shape().dims().iter().filter(|d| d.is_none()).count(), 2);
        math::square(&array::reshape(&unknown, &[-1])?)
    });
    // SliceGrad, through a second derivative.
    check("slice_grad", std::slice::from_ref(&x), &|t| {
        let (b, s) = (t[0].graph().constant(array![1i64, 1])?, t[0].graph().constant(array![-1i64, 2])?);
        let y = math::reduce_sum(&math::square(&array::slice_dynamic(&t[0], &b, &s)?)?, None)?;
        Ok(tensorgraph::gradients(&[&y], &[&t[0]], None)?.remove(0).expect("a gradient"))
    });
    for mode in [array::MirrorMode::Reflect, array::MirrorMode::Symmetric] {
        check("mirror_pad", std::slice::from_ref(&x), &move |t| {
            math::square(&array::mirror_pad(&t[0], &[(2, 1), (1, 3)], mode)?)
        });
        // MirrorPadGrad, through a second derivative.
        check("mirror_pad_grad", std::slice::from_ref(&x), &move |t| {
            let y = math::reduce_sum(&math::square(&array::mirror_pad(&t[0], &[(2, 1), (1, 3)], mode)?)?, None)?;
            Ok(tensorgraph::gradients(&[&y], &[&t[0]], None)?.remove(0).expect("a gradient"))
        });
    }
    let (a, b) = (vals(&[2, 1, 3, 4], -1.0, 1.0, 22), vals(&[3, 4, 5], -1.0, 1.0, 23));
    check("batch_matmul", &[a.clone(), b.clone()], &|t| math::batch_matmul(&t[0], &t[1], false, false));
    let bt = vals(&[3, 5, 4], -1.0, 1.0, 24);
    check("batch_matmul adj_y", &[a.clone(), bt.clone()], &|t| math::batch_matmul(&t[0], &t[1], false, true));
    let at = vals(&[2, 1, 4, 3], -1.0, 1.0, 25);
    check("batch_matmul adj_x", &[at.clone(), b], &|t| math::batch_matmul(&t[0], &t[1], true, false));
    check("batch_matmul adj_x adj_y", &[at, bt], &|t| math::batch_matmul(&t[0], &t[1], true, true));
}

#[test]
fn layer_ops() {
    let x = vals(&[4, 3], -1.0, 1.0, 10);
    let b = vals(&[3], -1.0, 1.0, 11);
    check("bias_add", &[x.clone(), b], &|t| nn::bias_add(&t[0], &t[1]));
    check("add_n", &[x.clone(), x.clone(), x.clone()], &|t| math::add_n(&[&t[0], &t[1], &math::square(&t[2])?]));
    check("identity", std::slice::from_ref(&x), &|t| math::identity(&t[0]));
    // Cross-entropy with respect to the logits (labels are integers).
    let logits = vals(&[4, 5], -3.0, 3.0, 12);
    check("sparse_softmax_cross_entropy", &[logits], &|t| {
        let labels = t[0].graph().constant(array![0i64, 4, 2, 2])?;
        nn::sparse_softmax_cross_entropy_with_logits(&labels, &t[0]).named("xent")
    });
}

#[test]
fn cast_between_floats_passes_the_gradient_through() {
    // Finite differences through f32 rounding are too coarse for 1e-6, so check exactly.
    let g = Graph::new();
    let x = g.placeholder(DType::F64, [3]).named("x").unwrap();
    let y = math::reduce_sum(&math::square(&x).unwrap().cast(DType::F32).unwrap(), None).unwrap();
    let dx = tensorgraph::gradients(&[&y], &[&x], None).unwrap().remove(0).unwrap();
    assert_eq!(dx.dtype(), DType::F64);
    let out = Session::new(&g).unwrap().run(&[&dx], &[(&x, array![1.0, -2.0, 0.5].into())]).unwrap();
    assert_eq!(out[0].to_f64_vec(), [2.0, -4.0, 1.0]);
    let i = math::argmax(&x, 0).unwrap().cast(DType::F64).unwrap();
    assert!(tensorgraph::gradients(&[&i], &[&x], None).unwrap()[0].is_none(), "no gradient through integers");
}

#[test]
fn array_ops() {
    let x = vals(&[2, 3, 4], -1.0, 1.0, 13);
    check("reshape", std::slice::from_ref(&x), &|t| math::square(&array::reshape(&t[0], &[6, -1])?));
    check("transpose", std::slice::from_ref(&x), &|t| math::square(&array::transpose(&t[0], Some(&[2, 0, 1]))?));
    check("expand_dims", std::slice::from_ref(&x), &|t| math::square(&array::expand_dims(&t[0], 1)?));
    let y = vals(&[2, 1, 4], -1.0, 1.0, 14);
    check("squeeze", std::slice::from_ref(&y), &|t| math::square(&array::squeeze(&t[0], None)?));
    check("concat", &[x.clone(), y.clone()], &|t| math::square(&array::concat(&[&t[0], &t[1]], 1)?));
    check("slice", std::slice::from_ref(&x), &|t| math::square(&array::slice(&t[0], &[0, 1, 1], &[-1, 2, 2])?));
    check("pad", std::slice::from_ref(&x), &|t| math::square(&array::pad(&t[0], &[(1, 0), (0, 2), (1, 1)])?));
    check("broadcast_to", &[y.clone(), x.clone()], &|t| math::square(&array::broadcast_to(&t[0], &t[1])?));
    check("sum_to_shape", &[x.clone(), y.clone()], &|t| math::square(&array::sum_to_shape(&t[0], &t[1])?));
    // Repeated indices add up; other axes; matrix indices; dropped (negative) segment ids.
    fn int(t: &Tensor, v: ArrayD<i64>) -> Result<Tensor> {
        t.graph().constant(v)
    }
    fn ids(v: &[i64], shape: &[usize]) -> ArrayD<i64> {
        ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).unwrap()
    }
    check("gather", std::slice::from_ref(&x), &|t| {
        math::square(&array::gather(&t[0], &int(&t[0], ids(&[2, 0, 2, 1], &[4]))?, 1)?)
    });
    check("gather_matrix_indices", std::slice::from_ref(&x), &|t| {
        math::square(&array::gather(&t[0], &int(&t[0], ids(&[1, 1, 0, 1], &[2, 2]))?, 0)?)
    });
    check("embedding_lookup", std::slice::from_ref(&x), &|t| {
        math::square(&nn::embedding_lookup(&t[0], &int(&t[0], ids(&[1, 1, 1], &[3]))?)?)
    });
    check("unsorted_segment_sum", std::slice::from_ref(&x), &|t| {
        let num = t[0].graph().scalar(4.0, DType::I64)?;
        math::square(&math::unsorted_segment_sum(&t[0], &int(&t[0], ids(&[0, -1, 3, 3, 0, 1], &[2, 3]))?, &num)?)
    });
    // Pieces and slices nothing depends on get zero gradients.
    check("split", std::slice::from_ref(&x), &|t| math::square(&array::split(&t[0], [1, 3], 2)?[1]));
    check("stack", &[x.clone(), vals(&[2, 3, 4], -1.0, 1.0, 15)], &|t| {
        math::square(&array::stack(&[&t[0], &t[1]], 1)?)
    });
    check("unstack", std::slice::from_ref(&x), &|t| math::square(&array::unstack(&t[0], -1)?[2]));
    check("tile", std::slice::from_ref(&y), &|t| math::square(&array::tile(&t[0], &[2, 3, 1])?));
    check("strided_slice", std::slice::from_ref(&x), &|t| {
        use tensorgraph::Index::*;
        math::square(&array::strided_slice(&t[0], &[Range(None, None, -1), NewAxis, Ellipsis, At(-2)])?)
    });
    // The gradient op's own gradient: the slice again.
    check("strided_slice_grad", &[vals(&[2, 3], -1.0, 1.0, 16), x.clone()], &|t| {
        let spec = tensorgraph::SliceSpec::from_indices(&[
            tensorgraph::Index::All,
            tensorgraph::Index::Range(None, None, -1),
            tensorgraph::Index::At(1),
        ]);
        math::square(&array::strided_slice_grad(&t[0], &t[1], &spec)?)
    });
    // One LSTM step, with and without peepholes (and a clip that does not bind, whose
    // gradient TF ignores): every input through the new cell state and output.
    let lstm_inputs = [
        vals(&[3, 2], -1.0, 1.0, 21),
        vals(&[3, 4], -1.0, 1.0, 22),
        vals(&[3, 4], -1.0, 1.0, 23),
        vals(&[6, 16], -0.5, 0.5, 24),
        vals(&[4], -0.5, 0.5, 25),
        vals(&[4], -0.5, 0.5, 26),
        vals(&[4], -0.5, 0.5, 27),
        vals(&[16], -0.5, 0.5, 28),
    ];
    for peephole in [false, true] {
        check("lstm_block_cell", &lstm_inputs, &move |t| {
            let out =
                nn::lstm_block_cell(&t[0], &t[1], &t[2], &t[3], [&t[4], &t[5], &t[6]], &t[7], 1.0, 50.0, peephole)?;
            math::add(&math::mul(&out[1], &out[1])?, &math::mul(&out[6], &out[1])?)
        });
    }
}

#[test]
fn second_derivative_of_x_cubed() {
    let g = Graph::new();
    let x = g.placeholder(DType::F64, [3]).named("x").unwrap();
    let y = math::mul(&math::square(&x).unwrap(), &x).unwrap();
    let dy = tensorgraph::gradients(&[&y], &[&x], None).unwrap().remove(0).unwrap();
    let d2y = tensorgraph::gradients(&[&dy], &[&x], None).unwrap().remove(0).unwrap();
    let mut sess = Session::new(&g).unwrap();
    let xv = array![-1.5, 0.5, 2.0];
    let out = sess.run(&[&dy, &d2y], &[(&x, xv.clone().into())]).unwrap();
    assert_eq!(out[0].to_f64_vec(), xv.mapv(|v| 3.0 * v * v).to_vec());
    assert_eq!(out[1].to_f64_vec(), xv.mapv(|v| 6.0 * v).to_vec());
    // And the second derivative against finite differences of the first.
    let err = compute_gradient_error(&mut sess, &x, &xv.into(), &dy, &[]).unwrap();
    assert!(err < 1e-6, "{err}");
}

#[test]
fn hessian_vector_product_of_a_small_mlp() {
    let g = Graph::new();
    let x = g.constant(vals(&[5, 3], -1.0, 1.0, 15)).named("x").unwrap();
    let labels = g.constant(array![0i64, 1, 1, 0, 1]).named("labels").unwrap();
    let w1 = g.placeholder(DType::F64, [3, 4]).named("w1").unwrap();
    let w2 = g.placeholder(DType::F64, [4, 2]).named("w2").unwrap();
    let v1 = g.placeholder(DType::F64, [3, 4]).named("v1").unwrap();
    let v2 = g.placeholder(DType::F64, [4, 2]).named("v2").unwrap();
    let h = nn::tanh(&math::matmul(&x, &w1, false, false).unwrap()).unwrap();
    let h = math::add(&h, &nn::sigmoid(&h).unwrap()).unwrap();
    let logits = math::matmul(&h, &w2, false, false).unwrap();
    let xent = nn::sparse_softmax_cross_entropy_with_logits(&labels, &logits).named("xent").unwrap();
    let loss = math::reduce_mean(&xent, None).named("loss").unwrap();
    let grads = tensorgraph::gradients(&[&loss], &[&w1, &w2], None).unwrap();
    let (g1, g2) = (grads[0].clone().unwrap(), grads[1].clone().unwrap());
    let gv = math::add(
        &math::reduce_sum(&math::mul(&g1, &v1).unwrap(), None).unwrap(),
        &math::reduce_sum(&math::mul(&g2, &v2).unwrap(), None).unwrap(),
    )
    .unwrap();
    let hv = tensorgraph::gradients(&[&gv], &[&w1, &w2], None).unwrap();
    let (hv1, hv2) = (hv[0].clone().unwrap(), hv[1].clone().unwrap());

    let (w1v, w2v) = (vals(&[3, 4], -1.0, 1.0, 16), vals(&[4, 2], -1.0, 1.0, 17));
    let (v1v, v2v) = (vals(&[3, 4], -1.0, 1.0, 18), vals(&[4, 2], -1.0, 1.0, 19));
    let sess = Session::new(&g).unwrap();
    let feeds = |a: ArrayD<f64>, b: ArrayD<f64>| {
        vec![(&w1, Feed::from(a)), (&w2, Feed::from(b)), (&v1, Feed::from(v1v.clone())), (&v2, Feed::from(v2v.clone()))]
    };
    let got = sess.run(&[&hv1, &hv2], &feeds(w1v.clone(), w2v.clone())).unwrap();
    let eps = 1e-5;
    let plus = sess.run(&[&g1, &g2], &feeds(&w1v + &(&v1v * eps), &w2v + &(&v2v * eps))).unwrap();
    let minus = sess.run(&[&g1, &g2], &feeds(&w1v - &(&v1v * eps), &w2v - &(&v2v * eps))).unwrap();
    for k in 0..2 {
        let (p, m, h) = (plus[k].to_f64_vec(), minus[k].to_f64_vec(), got[k].to_f64_vec());
        for i in 0..h.len() {
            let fd = (p[i] - m[i]) / (2.0 * eps);
            assert!((fd - h[i]).abs() < 1e-6, "hvp[{k}][{i}]: {} vs finite difference {fd}", h[i]);
        }
    }
}

#[test]
fn backward_graph_structure() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(3)]).named("x").unwrap();
    let other = g.placeholder(DType::F32, [None, Some(3)]).named("other").unwrap();
    let y = math::add(
        &math::mul(&x, &x).unwrap(),
        &math::argmax(&x, 1).unwrap().cast(DType::F32).unwrap().cast(DType::F32).unwrap(),
    );
    let y = math::reduce_sum(&math::add(&y.unwrap(), &math::exp(&x).unwrap()).unwrap(), None).named("y").unwrap();
    let grads = tensorgraph::gradients(&[&y], &[&x, &other], None).unwrap();
    assert!(grads[1].is_none(), "y does not depend on `other`");
    let dx = grads[0].clone().unwrap();
    assert!(dx.op_name().starts_with("gradients/"), "{}", dx.op_name());
    assert_eq!(dx.op().op_type(), "AddN", "three uses of x (two in mul, one in exp) are summed by AddN");
    let sess = Session::new(&g).unwrap();
    let xv = array![[1.0f32, 2.0, -1.0]];
    let out = sess.run(&[&dx], &[(&x, xv.clone().into())]).unwrap();
    let want: Vec<f64> = xv.iter().map(|&v| 2.0 * v as f64 + (v as f64).exp()).collect();
    for (a, b) in out[0].to_f64_vec().iter().zip(&want) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    // A second call opens a new scope, as TF's gradients_1.
    let again = tensorgraph::gradients(&[&y], &[&x], None).unwrap().remove(0).unwrap();
    assert!(again.op_name().starts_with("gradients_1/"), "{}", again.op_name());
}

#[test]
fn gradient_through_an_unknown_batch_dimension_reduces_broadcasts_at_run_time() {
    let g = Graph::new();
    let x = g.placeholder(DType::F64, [None, Some(3)]).named("x").unwrap();
    let b = g.placeholder(DType::F64, [None, Some(3)]).named("b").unwrap();
    let y = math::reduce_sum(&math::mul(&x, &b).unwrap(), None).unwrap();
    let db = tensorgraph::gradients(&[&y], &[&b], None).unwrap().remove(0).unwrap();
    let sess = Session::new(&g).unwrap();
    // b is fed as [1,3] and broadcast against x [2,3]: its gradient is summed back to [1,3].
    let out = sess
        .run(&[&db], &[(&x, array![[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]].into()), (&b, array![[1.0, 1.0, 1.0]].into())])
        .unwrap();
    assert_eq!(out[0].shape(), &[1, 3]);
    assert_eq!(out[0].to_f64_vec(), [11.0, 22.0, 33.0]);
}

#[test]
fn no_gradient_through_state_ops_is_an_error() {
    let g = Graph::new();
    let v = g.variable(&g.scalar(1.0, DType::F64).unwrap(), "v", true).unwrap();
    let a = state::assign_add(&v, &g.scalar(1.0, DType::F64).unwrap()).unwrap();
    let y = math::square(&a).unwrap();
    assert!(tensorgraph::gradients(&[&y], &[&v], None).unwrap()[0].is_none(), "v/read is not on the path");
    let e = tensorgraph::gradients(&[&y], &[v.var_ref()], None).unwrap_err();
    assert!(e.to_string().contains("no gradient defined for AssignAdd (AssignAdd)"), "{e}");
}

#[test]
fn convolution_and_its_backward_ops() {
    for (s, d, p) in [(1, 1, Padding::Same), (2, 1, Padding::Same), (2, 1, Padding::Valid), (1, 2, Padding::Same)] {
        let x = vals(&[2, 5, 5, 2], -1.0, 1.0, 20);
        let w = vals(&[3, 3, 2, 3], -1.0, 1.0, 21);
        let (st, dl) = ([1, s, s, 1], [1, d, d, 1]);
        check(&format!("conv2d s{s} d{d} {p:?}"), &[x.clone(), w.clone()], &move |t| {
            nn::conv2d_dilated(&t[0], &t[1], st, p, dl)
        });
        // The backward ops are differentiable too (second order through convolutions).
        let g = Graph::new();
        let out_shape = nn::conv2d_dilated(
            &g.placeholder(DType::F64, x.shape()).named("x").unwrap(),
            &g.placeholder(DType::F64, w.shape()).named("w").unwrap(),
            st,
            p,
            dl,
        )
        .unwrap()
        .shape()
        .to_vec()
        .unwrap();
        let dy = vals(&out_shape, -1.0, 1.0, 22);
        check(&format!("conv2d_backprop_input s{s} {p:?}"), &[x.clone(), w.clone(), dy.clone()], &move |t| {
            nn::conv2d_backprop_input(&t[0], &t[1], &t[2], st, p, dl)
        });
        check(&format!("conv2d_backprop_filter s{s} {p:?}"), &[x, w, dy], &move |t| {
            nn::conv2d_backprop_filter(&t[0], &t[1], &t[2], st, p, dl)
        });
    }
}

#[test]
fn second_order_through_a_convolution() {
    let g = Graph::new();
    let x = g.placeholder(DType::F64, [1, 4, 4, 1]).named("x").unwrap();
    let w = g.constant(vals(&[2, 2, 1, 2], -1.0, 1.0, 23)).named("w").unwrap();
    let y = math::reduce_sum(
        &math::square(&nn::tanh(&nn::conv2d(&x, &w, [1, 2, 2, 1], Padding::Same).unwrap()).unwrap()).unwrap(),
        None,
    )
    .unwrap();
    let dx = tensorgraph::gradients(&[&y], &[&x], None).unwrap().remove(0).unwrap();
    let mut sess = Session::new(&g).unwrap();
    let err = compute_gradient_error(&mut sess, &x, &vals(&[1, 4, 4, 1], -1.0, 1.0, 24).into(), &dx, &[]).unwrap();
    assert!(err < 1e-6, "Hessian through conv: {err}");
}

#[test]
fn pooling_and_its_backward_ops() {
    // Distinct values, so the max is unique and the max-pool is differentiable at the point.
    // The last two cases' windows tile the input (MaxPoolGrad writes dx without zeroing it).
    let odd = [(2, 2, Padding::Valid), (3, 2, Padding::Same), (2, 1, Padding::Same)].map(|c| ([2, 5, 5, 2], c));
    let tiled = [([2, 4, 6, 2], (2, 2, Padding::Valid)), ([1, 6, 4, 3], (2, 2, Padding::Same))];
    for (shape, (k, s, p)) in odd.into_iter().chain(tiled) {
        let x = vals(&shape, -1.0, 1.0, 25);
        let (kk, ss) = ([1, k, k, 1], [1, s, s, 1]);
        check(&format!("max_pool {k} {s} {p:?}"), std::slice::from_ref(&x), &move |t| nn::max_pool(&t[0], kk, ss, p));
        check(&format!("avg_pool {k} {s} {p:?}"), std::slice::from_ref(&x), &move |t| nn::avg_pool(&t[0], kk, ss, p));
        let g = Graph::new();
        let y_shape = nn::max_pool(&g.placeholder(DType::F64, x.shape()).named("x").unwrap(), kk, ss, p)
            .unwrap()
            .shape()
            .to_vec()
            .unwrap();
        let dy = vals(&y_shape, -1.0, 1.0, 26);
        let xc = x.clone();
        check(&format!("max_pool_grad {k} {s} {p:?}"), std::slice::from_ref(&dy), &move |t| {
            nn::max_pool_grad(&t[0].graph().constant(xc.clone()).named("x")?, &t[0], kk, ss, p)
        });
        let xc = x.clone();
        check(&format!("avg_pool_grad {k} {s} {p:?}"), std::slice::from_ref(&dy), &move |t| {
            nn::avg_pool_grad(&t[0].graph().constant(xc.clone()).named("x")?, &t[0], kk, ss, p)
        });
        let xc = x.clone();
        check(&format!("max_pool_grad_grad {k} {s} {p:?}"), std::slice::from_ref(&x), &move |t| {
            nn::max_pool_grad_grad(&t[0].graph().constant(xc.clone()).named("x")?, &t[0], kk, ss, p)
        });
    }
}

/// Batch normalization, d/dx (in training through the batch statistics) and d/dgamma, d/dbeta
/// (fed through the variables' reads), for a 4-D and a 2-D input, training and not.
#[test]
fn batch_normalization_in_training_and_inference_mode() {
    for (shape, on) in [(&[3usize, 2, 2, 3][..], 1.0), (&[5, 4][..], 1.0), (&[5, 4][..], 0.0)] {
        let g = Graph::new();
        let x = g.placeholder(DType::F64, shape).named("x").unwrap();
        let training = g.scalar(on, DType::Bool).unwrap();
        let y = layers::batch_normalization(&x, &training, "bn").unwrap();
        // A non-symmetric read-out, so the gradient is not trivially zero.
        let w = g.constant(vals(shape, -1.0, 1.0, 11)).named("w").unwrap();
        let loss = math::reduce_sum(&math::mul(&math::square(&y).unwrap(), &w).unwrap(), None).unwrap();
        let vars = g.trainable_variables();
        let mut sess = Session::new(&g).unwrap();
        sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
        let c = *shape.last().unwrap();
        let gamma = ndarray::Array1::from_vec((0..c).map(|i| 0.7 + 0.2 * i as f64).collect()).into_dyn();
        let beta = ndarray::Array1::from_vec((0..c).map(|i| 0.1 - 0.3 * i as f64).collect()).into_dyn();
        let x0 = vals(shape, -2.0, 2.0, 12);
        let gb = [(&*vars[0], Feed::from(gamma.clone())), (&*vars[1], Feed::from(beta.clone()))];
        let err = compute_gradient_error(&mut sess, &x, &x0.clone().into(), &loss, &gb).unwrap();
        assert!(err < 1e-6, "{shape:?} training {on}: d/dx error {err}");
        for (i, v) in [gamma, beta].into_iter().enumerate() {
            let other = &gb[1 - i];
            let feeds = [(&x, Feed::from(x0.clone())), (other.0, other.1.clone())];
            let err = compute_gradient_error(&mut sess, &vars[i], &v.into(), &loss, &feeds).unwrap();
            assert!(err < 1e-6, "{shape:?} d/d{} error {err}", vars[i].name());
        }
    }
}

#[test]
fn losses_and_statistics_composites() {
    let logits = vals(&[3, 2], -3.0, 3.0, 21);
    let labels = vals(&[3, 2], 0.0, 1.0, 22);
    check("sigmoid_cross_entropy_with_logits", &[logits, labels], &|t| {
        nn::sigmoid_cross_entropy_with_logits(&t[1], &t[0])
    });
    check("l2_loss", &[vals(&[2, 3], -1.0, 1.0, 23)], &|t| nn::l2_loss(&t[0]));
    check("moments mean", &[vals(&[4, 3], -1.0, 1.0, 24)], &|t| Ok(nn::moments(&t[0], &[0])?.0));
    check("moments variance", &[vals(&[4, 3], -1.0, 1.0, 25)], &|t| Ok(nn::moments(&t[0], &[0])?.1));
}

/// The op table's side of the checks: every op its definition calls differentiable has its
/// gradient checked by some test above (run again here, recording what they check).
#[test]
fn every_differentiable_op_has_a_gradient_check() {
    matmul_all_transposes();
    unary_ops();
    binary_ops_with_broadcasting();
    select_routes_the_gradient_to_the_taken_branch_with_broadcasting();
    activation_gradient_ops_are_differentiable();
    reductions();
    layer_ops();
    array_ops();
    second_derivative_of_x_cubed();
    hessian_vector_product_of_a_small_mlp();
    convolution_and_its_backward_ops();
    second_order_through_a_convolution();
    pooling_and_its_backward_ops();
    batch_normalization_in_training_and_inference_mode();
    losses_and_statistics_composites();
    scans_top_k_and_batch_matmul();
    control_flow();
    let checked = CHECKED.lock().unwrap().clone();
    let missing: BTreeSet<&str> = ops::every_op()
        .iter()
        .map(tensorgraph::Op::def)
        .filter(|d| d.differentiable && !checked.contains(d.name))
        .map(|d| d.name)
        .collect();
    assert!(missing.is_empty(), "differentiable ops without a gradient check: {missing:?}");
}

/// `while_loop` and `cond`: gradients through 0, 1 and several iterations to the initial values
/// and to captured tensors, through nested loops, and through each branch.
#[test]
fn control_flow() {
    // i, h = 0, x; while i < n: h = tanh(h * w) + 0.5 * h
    fn looped(t: &[Tensor], n: f64) -> Result<Tensor> {
        let g = t[0].graph();
        let (n, w) = (g.scalar(n, DType::I32)?, &t[1]);
        let out = control_flow::while_loop(
            |v| math::less(&v[0], &n),
            |v| {
                let one = v[0].graph().scalar(1.0, DType::I32)?;
                let half = v[1].graph().scalar(0.5, DType::F64)?;
                Ok(vec![
                    math::add(&v[0], &one)?,
                    math::add(&nn::tanh(&math::mul(&v[1], w)?)?, &math::mul(&v[1], &half)?)?,
                ])
            },
            &[&g.scalar(0.0, DType::I32)?, &t[0]],
            None,
        )?;
        math::square(&out[1])
    }
    let (x, w) = (vals(&[2, 3], -1.0, 1.0, 31), vals(&[3], -1.0, 1.0, 32));
    for n in [0.0, 1.0, 3.0] {
        check(&format!("while_loop ({n} iterations)"), &[x.clone(), w.clone()], &move |t| looped(t, n));
    }
    check("while_loop with maximum_iterations", &[x.clone(), w.clone()], &|t| {
        let out = control_flow::while_loop(
            |v| v[0].graph().scalar(1.0, DType::Bool),
            |v| Ok(vec![nn::tanh(&math::mul(&v[0], &t[1])?)?]),
            &[&t[0]],
            Some(2),
        )?;
        math::square(&out[0])
    });
    check("nested while_loop", &[x.clone(), w.clone()], &|t| {
        let two = t[0].graph().scalar(2.0, DType::I32)?;
        let out = control_flow::while_loop(
            |v| math::less(&v[0], &two),
            |v| {
                let inner = looped(&[v[1].clone(), math::add(&t[1], &v[1].graph().scalar(0.1, DType::F64)?)?], 2.0)?;
                Ok(vec![
                    math::add(&v[0], &v[0].graph().scalar(1.0, DType::I32)?)?,
                    math::sqrt(&math::add(&inner, &v[1].graph().scalar(1.0, DType::F64)?)?)?,
                ])
            },
            &[&t[0].graph().scalar(0.0, DType::I32)?, &t[0]],
            None,
        )?;
        Ok(out[1].clone())
    });
    for p in [true, false] {
        check(&format!("cond ({p})"), &[x.clone(), w.clone()], &move |t| {
            let pred = t[0].graph().scalar(p as u8 as f64, DType::Bool)?;
            let out = control_flow::cond(
                &pred,
                || Ok(vec![math::mul(&t[0], &t[1])?, math::exp(&t[1])?]),
                || Ok(vec![nn::tanh(&t[0])?, t[1].clone()]),
            )?;
            math::add(&math::square(&out[0])?, &out[1])
        });
    }
}
