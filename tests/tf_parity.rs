//! Parity with real TensorFlow on fixtures it computed (tests/fixtures/tf/make_fixtures.py):
//! convolution and its gradients (SAME/VALID, strides, dilation), pooling with ties, the
//! cross-entropy at extreme logits, and the optimizers' updates with learning-rate schedules.

use ndarray::{ArrayD, IxDyn};
use serde::Deserialize;
use tensorgraph::array::MirrorMode;
use tensorgraph::control_flow::{cond, while_loop};
use tensorgraph::prelude::*;
use tensorgraph::train::{self, Adagrad, Momentum, Optimizer, RMSProp};
use tensorgraph::Index;

#[derive(Deserialize)]
struct Arr {
    shape: Vec<usize>,
    data: Vec<f64>,
}

impl Arr {
    fn f32(&self) -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(&self.shape), self.data.iter().map(|&v| v as f32).collect()).unwrap()
    }
}

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let text = std::fs::read_to_string(format!("tests/fixtures/tf/{name}")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Within 1e-5 of TF relative to the tensor's largest magnitude.
fn assert_matches(what: &str, got: &Value, want: &Arr) {
    assert_eq!(got.shape(), &want.shape[..], "{what}: shape");
    let scale = want.data.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.to_f64_vec().iter().zip(&want.data).enumerate() {
        assert!((a - b).abs() <= 1e-5 * scale, "{what}[{i}]: ours {a}, TF {b}");
    }
}

fn padding(p: &str) -> Padding {
    if p == "SAME" {
        Padding::Same
    } else {
        Padding::Valid
    }
}

#[derive(Deserialize)]
struct ConvCase {
    strides: [usize; 2],
    dilation: usize,
    padding: String,
    x: Arr,
    filter: Arr,
    y: Arr,
    dy: Arr,
    dx: Arr,
    dfilter: Arr,
}

#[test]
fn conv2d_forward_and_gradients_match_tensorflow() {
    let cases: Vec<ConvCase> = load("conv.json");
    for (i, c) in cases.iter().enumerate() {
        let g = Graph::new();
        let x = g.constant(c.x.f32()).named("x").unwrap();
        let f = g.constant(c.filter.f32()).named("f").unwrap();
        let dy = g.constant(c.dy.f32()).named("dy").unwrap();
        let s = [1, c.strides[0], c.strides[1], 1];
        let y = nn::conv2d_dilated(&x, &f, s, padding(&c.padding), [1, c.dilation, c.dilation, 1]).unwrap();
        let grads = tensorgraph::gradients(&[&y], &[&x, &f], Some(&[&dy])).unwrap();
        let (dx, df) = (grads[0].clone().unwrap(), grads[1].clone().unwrap());
        let out = Session::new(&g).unwrap().run(&[&y, &dx, &df], &[]).unwrap();
        let tag = format!("case {i} ({:?} {} dilation {})", c.strides, c.padding, c.dilation);
        assert_matches(&format!("{tag} y"), &out[0], &c.y);
        assert_matches(&format!("{tag} dx"), &out[1], &c.dx);
        assert_matches(&format!("{tag} dfilter"), &out[2], &c.dfilter);
    }
}

#[derive(Deserialize)]
struct PoolCase {
    kind: String,
    ksize: usize,
    stride: usize,
    padding: String,
    x: Arr,
    y: Arr,
    dy: Arr,
    dx: Arr,
}

#[test]
fn pooling_forward_and_gradients_match_tensorflow_including_ties() {
    let cases: Vec<PoolCase> = load("pool.json");
    for (i, c) in cases.iter().enumerate() {
        let g = Graph::new();
        let x = g.constant(c.x.f32()).named("x").unwrap();
        let dy = g.constant(c.dy.f32()).named("dy").unwrap();
        let (k, s, p) = ([1, c.ksize, c.ksize, 1], [1, c.stride, c.stride, 1], padding(&c.padding));
        let y = if c.kind == "max" { nn::max_pool(&x, k, s, p) } else { nn::avg_pool(&x, k, s, p) }.unwrap();
        let dx = tensorgraph::gradients(&[&y], &[&x], Some(&[&dy])).unwrap().remove(0).unwrap();
        let out = Session::new(&g).unwrap().run(&[&y, &dx], &[]).unwrap();
        let tag = format!("case {i} ({} {}x{} s{} {})", c.kind, c.ksize, c.ksize, c.stride, c.padding);
        assert_matches(&format!("{tag} y"), &out[0], &c.y);
        assert_matches(&format!("{tag} dx"), &out[1], &c.dx);
    }
}

#[derive(Deserialize)]
struct XentCase {
    logits: Arr,
    labels: Vec<i64>,
    loss: Arr,
    dy: Arr,
    dlogits: Arr,
}

#[test]
fn sparse_softmax_cross_entropy_matches_tensorflow_at_extreme_logits() {
    let cases: Vec<XentCase> = load("xent.json");
    for c in &cases {
        let g = Graph::new();
        let logits = g.constant(c.logits.f32()).named("logits").unwrap();
        let labels = g.constant(ndarray::Array1::from(c.labels.clone())).named("labels").unwrap();
        let dy = g.constant(c.dy.f32()).named("dy").unwrap();
        let loss = nn::sparse_softmax_cross_entropy_with_logits(&labels, &logits).named("xent").unwrap();
        let dl = tensorgraph::gradients(&[&loss], &[&logits], Some(&[&dy])).unwrap().remove(0).unwrap();
        let out = Session::new(&g).unwrap().run(&[&loss, &dl], &[]).unwrap();
        assert_matches("loss", &out[0], &c.loss);
        assert_matches("dlogits", &out[1], &c.dlogits);
    }
}

#[derive(Deserialize)]
struct OptimizerCase {
    label: String,
    w0: Arr,
    grads: Vec<Arr>,
    /// After each step, every global variable by name.
    steps: Vec<std::collections::BTreeMap<String, Arr>>,
    variable_names: Vec<String>,
}

/// The optimizer and learning rate each fixture case was made with (see make_fixtures.py).
fn optimizer_for(label: &str, g: &Graph) -> (Box<dyn Optimizer>, bool) {
    let step = || train::get_or_create_global_step(g).unwrap();
    let opt: Box<dyn Optimizer> = match label {
        "gradient_descent" => Box::new(GradientDescent::new(0.1)),
        "momentum" => Box::new(Momentum::new(0.1, 0.9)),
        "momentum_nesterov" => Box::new(Momentum::new(0.05, 0.8).use_nesterov(true)),
        "adagrad" => Box::new(Adagrad::new(0.1)),
        "adagrad_initial" => Box::new(Adagrad::new(0.5).initial_accumulator_value(0.01)),
        "rmsprop" => Box::new(RMSProp::new(0.01)),
        "rmsprop_momentum" => Box::new(RMSProp::new(0.01).decay(0.8).momentum(0.5).epsilon(1e-6)),
        "rmsprop_centered" => Box::new(RMSProp::new(0.02).momentum(0.9).centered(true)),
        "adam" => Box::new(Adam::default()),
        "adam_custom" => Box::new(Adam { learning_rate: 0.1.into(), beta1: 0.5, beta2: 0.9, epsilon: 1e-3 }),
        "momentum_exponential_decay" => {
            Box::new(Momentum::new(train::exponential_decay(0.1, &step(), 3, 0.5, false).unwrap(), 0.9))
        }
        "gradient_descent_exponential_staircase" => {
            Box::new(GradientDescent::new(train::exponential_decay(0.2, &step(), 2, 0.1, true).unwrap()))
        }
        "gradient_descent_piecewise" => {
            Box::new(GradientDescent::new(train::piecewise_constant(&step(), &[1.0, 2.0], &[0.3, 0.1, 0.01]).unwrap()))
        }
        other => panic!("no optimizer for fixture case {other}"),
    };
    (opt, label.contains("decay") || label.contains("staircase") || label.contains("piecewise"))
}

#[test]
fn optimizer_updates_slot_names_and_schedules_match_tensorflow() {
    let cases: Vec<OptimizerCase> = load("optimizers.json");
    assert_eq!(cases.len(), 13);
    for c in &cases {
        let g = Graph::new();
        let w = g.variable(&g.constant(c.w0.f32()).named("w0").unwrap(), "w", true).unwrap();
        let grad = g.placeholder(DType::F32, [3, 2]).named("g").unwrap();
        let (opt, scheduled) = optimizer_for(&c.label, &g);
        let global_step = scheduled.then(|| train::get_or_create_global_step(&g).unwrap());
        let step = opt.apply_gradients(&[(Some(grad.clone()), w.clone())], global_step.as_ref()).unwrap();
        let vars = g.global_variables();
        let mut names: Vec<String> = vars.iter().map(|v| v.name()).collect();
        names.sort();
        assert_eq!(names, c.variable_names, "{}: slot and accumulator names as TF's", c.label);
        let sess = Session::new(&g).unwrap();
        sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
        for (k, (gr, want)) in c.grads.iter().zip(&c.steps).enumerate() {
            sess.run(&step, &[(&grad, gr.f32().into())]).unwrap();
            for v in &vars {
                let got = sess.run(&[v], &[]).unwrap().remove(0);
                assert_matches(&format!("{} step {k} {}", c.label, v.name()), &got, &want[&v.name()]);
            }
        }
    }
}

#[derive(Deserialize)]
struct BatchNormCase {
    momentum: f64,
    epsilon: f64,
    batches: Vec<Arr>,
    gamma: Arr,
    beta: Arr,
    dy: Arr,
    y_train: Arr,
    dx: Arr,
    dgamma: Arr,
    dbeta: Arr,
    moving_mean: Arr,
    moving_variance: Arr,
    y_infer: Arr,
    variable_names: Vec<String>,
}

/// `tf.layers.batch_normalization` on a 4-D (TF's fused kernel) and a 2-D input: training
/// output and gradients, moving averages after two training updates and one inference update,
/// then the inference output.
#[test]
fn batch_normalization_matches_tensorflow() {
    let cases: Vec<BatchNormCase> = load("batch_norm.json");
    for c in &cases {
        let what = format!("shape {:?}", c.batches[0].shape);
        let g = Graph::new();
        let x = g.placeholder(DType::F32, &c.batches[0].shape[..]).named("x").unwrap();
        let training = g.placeholder_with_default(&g.scalar(0.0, DType::Bool).unwrap()).named("training").unwrap();
        let bn = layers::BatchNormalization::new().momentum(c.momentum).epsilon(c.epsilon);
        let y = bn.build(&x, &training, "bn").unwrap();
        let mut names: Vec<String> = g.global_variables().iter().map(|v| v.name()).collect();
        names.sort();
        assert_eq!(names, c.variable_names);
        let var = |n: &str| g.global_variables().into_iter().find(|v| v.name() == format!("bn/{n}")).unwrap();
        let (gamma, beta, mm, mv) = (var("gamma"), var("beta"), var("moving_mean"), var("moving_variance"));
        let dy = g.constant(c.dy.f32()).named("dy").unwrap();
        let grads = tensorgraph::gradients(&[&y], &[&x, &gamma, &beta], Some(&[&dy])).unwrap();
        let grads: Vec<Tensor> = grads.into_iter().map(Option::unwrap).collect();
        let updates = g.get_operation_collection(collections::UPDATE_OPS);
        let update_refs: Vec<&Operation> = updates.iter().collect();

        let sess = Session::new(&g).unwrap();
        sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
        sess.set_variable_value(&gamma, c.gamma.f32().into()).unwrap();
        sess.set_variable_value(&beta, c.beta.f32().into()).unwrap();
        let feed =
            |b: &Arr, t: bool| vec![(&x, Feed::from(b.f32())), (&training, Feed::from(ndarray::arr0(t).into_dyn()))];
        let out = sess.run(&[&y, &grads[0], &grads[1], &grads[2]], &feed(&c.batches[0], true)).unwrap();
        assert_matches(&format!("{what} y (training)"), &out[0], &c.y_train);
        assert_matches(&format!("{what} dx"), &out[1], &c.dx);
        assert_matches(&format!("{what} dgamma"), &out[2], &c.dgamma);
        assert_matches(&format!("{what} dbeta"), &out[3], &c.dbeta);
        sess.run(&update_refs[..], &feed(&c.batches[0], true)).unwrap();
        sess.run(&update_refs[..], &feed(&c.batches[1], true)).unwrap();
        sess.run(&update_refs[..], &feed(&c.batches[1], false)).unwrap();
        let stats = sess.run(&[&mm, &mv], &[]).unwrap();
        assert_matches(&format!("{what} moving_mean"), &stats[0], &c.moving_mean);
        assert_matches(&format!("{what} moving_variance"), &stats[1], &c.moving_variance);
        let y_infer = sess.run(&[&y], &[(&x, Feed::from(c.batches[2].f32()))]).unwrap().remove(0);
        assert_matches(&format!("{what} y (inference)"), &y_infer, &c.y_infer);
    }
}

/// Variables of 40,000 elements are updated in chunks of 16,384 on both cores: each element
/// must come out exactly as it does in a small variable (one chunk), at the chunk boundaries
/// and between them, for every update rule.
#[test]
fn large_variables_update_chunk_by_chunk_as_small_ones() {
    const N: usize = 40_000;
    let picks = [0, 1, 16_383, 16_384, 20_000, 32_767, 32_768, 39_999];
    let value = |i: usize| ((i * 37 % 101) as f32 - 50.0) / 25.0;
    let grad = |i: usize, k: usize| ((i * 13 + k * 7) % 29) as f32 / 10.0 - 1.4;
    let run = |label: &str, idx: &[usize]| -> Vec<f32> {
        let g = Graph::new();
        let w0 = ndarray::Array1::from_iter(idx.iter().map(|&i| value(i))).into_dyn();
        let w = g.variable(&g.constant(w0).named("w0").unwrap(), "w", true).unwrap();
        let gr = g.placeholder(DType::F32, [idx.len()]).named("g").unwrap();
        let (opt, _) = optimizer_for(label, &g);
        let step = opt.apply_gradients(&[(Some(gr.clone()), w.clone())], None).unwrap();
        let sess = Session::new(&g).unwrap();
        sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
        for k in 0..3 {
            let feed = ndarray::Array1::from_iter(idx.iter().map(|&i| grad(i, k))).into_dyn();
            sess.run(&step, &[(&gr, feed.into())]).unwrap();
        }
        sess.run(&[&w], &[]).unwrap().remove(0).as_f32().unwrap().iter().copied().collect()
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let all: Vec<usize> = (0..N).collect();
    for label in ["gradient_descent", "momentum_nesterov", "adagrad", "rmsprop_momentum", "rmsprop_centered", "adam"] {
        let (large, small) = pool.install(|| (run(label, &all), run(label, &picks)));
        let at_picks: Vec<f32> = picks.iter().map(|&i| large[i]).collect();
        assert_eq!(at_picks, small, "{label}");
    }
}

/// Numbers as TF's repr strings ('nan', 'inf', exact integers), read by the case's dtype.
#[derive(Deserialize)]
struct Exact {
    shape: Vec<usize>,
    data: Vec<String>,
}

impl Exact {
    fn value(&self, dtype: &str) -> Value {
        let dims = IxDyn(&self.shape);
        let f = |s: &String| s.parse::<f64>().unwrap_or_else(|_| panic!("not a number: {s}"));
        match dtype {
            "float32" => ArrayD::from_shape_vec(dims, self.data.iter().map(|s| f(s) as f32).collect()).unwrap().into(),
            "int32" => ArrayD::from_shape_vec(dims, self.data.iter().map(|s| s.parse::<i32>().unwrap()).collect())
                .unwrap()
                .into(),
            "int64" => ArrayD::from_shape_vec(dims, self.data.iter().map(|s| s.parse::<i64>().unwrap()).collect())
                .unwrap()
                .into(),
            other => panic!("dtype {other}"),
        }
    }
}

#[derive(Deserialize)]
struct EdgeCase {
    op: String,
    dtype: String,
    x: Exact,
    y: Option<Exact>,
    axis: Option<i64>,
    out: Exact,
}

/// NaN through relu, integer overflow (TF wraps), reductions over empty axes (0, NaN, -inf,
/// +inf, the integer limits), log1p near zero and its gradient: exactly TF's values
/// (tests/fixtures/tf/make_edge_fixtures.py).
#[test]
fn edge_case_semantics_match_tensorflow() {
    let cases: Vec<EdgeCase> = load("edge_cases.json");
    for c in &cases {
        let g = Graph::new();
        let x = g.constant(c.x.value(&c.dtype)).named("x").unwrap();
        let y = c.y.as_ref().map(|y| g.constant(y.value(&c.dtype)).named("y").unwrap());
        let axes = c.axis.map(|a| vec![a]);
        let axes = axes.as_deref();
        let out = match c.op.as_str() {
            "relu" => nn::relu(&x),
            "log1p" => math::log1p(&x),
            "add" => math::add(&x, y.as_ref().unwrap()),
            "sub" => math::sub(&x, y.as_ref().unwrap()),
            "mul" => math::mul(&x, y.as_ref().unwrap()),
            "neg" => math::neg(&x),
            "abs" => math::abs(&x),
            "square" => math::square(&x),
            "reduce_sum" => math::reduce_sum(&x, axes),
            "reduce_mean" => math::reduce_mean(&x, axes),
            "reduce_max" => math::reduce_max(&x, axes),
            "reduce_min" => math::reduce_min(&x, axes),
            "log1p_grad" => {
                let s = math::reduce_sum(&math::log1p(&x).unwrap(), None).unwrap();
                Ok(tensorgraph::gradients(&[&s], &[&x], None).unwrap().remove(0).unwrap())
            }
            other => panic!("op {other}"),
        }
        .unwrap();
        let got = Session::new(&g).unwrap().run(&[&out], &[]).unwrap().remove(0);
        let want = c.out.value(&c.dtype);
        let what = format!("{} {} of {:?}", c.op, c.dtype, c.x.data);
        assert_eq!(got.shape(), want.shape(), "{what}");
        match (&got, &want) {
            (Value::I32(a), Value::I32(b)) => assert_eq!(a, b, "{what}"),
            (Value::I64(a), Value::I64(b)) => assert_eq!(a, b, "{what}"),
            _ => {
                for (a, b) in got.to_f64_vec().into_iter().zip(want.to_f64_vec()) {
                    let same = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-6 * b.abs();
                    assert!(same, "{what}: ours {a}, TF {b}");
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct ArrayOpsFixture {
    cases: Vec<ArrayOpCase>,
    errors: Vec<ArrayOpError>,
}

#[derive(Deserialize)]
struct ArrayOpCase {
    op: String,
    x: Arr,
    attrs: serde_json::Value,
    outs: Vec<Arr>,
    grad: Arr,
}

#[derive(Deserialize)]
struct ArrayOpError {
    op: String,
    message: String,
}

/// The fixture's weights: ((i % 7) - 3) / 2 in row-major order.
fn fixture_weights(shape: &[usize]) -> ArrayD<f32> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|i| ((i % 7) as f32 - 3.0) * 0.5).collect()).unwrap()
}

/// The fixtures' loss: Σ_i Σ(out_i · w_i), `w_i` the fixture's weights of TF's output shape.
fn weighted_sum(outs: &[Tensor], tf_outs: &[Arr]) -> Tensor {
    let terms: Vec<Tensor> = outs
        .iter()
        .zip(tf_outs)
        .filter(|(o, _)| o.dtype().is_float())
        .map(|(o, want)| {
            let w = o.graph().constant(fixture_weights(&want.shape)).unwrap();
            math::reduce_sum(&math::mul(o, &w).unwrap(), None).unwrap()
        })
        .collect();
    math::add_n(&terms.iter().collect::<Vec<_>>()).unwrap()
}

/// An integer fixture array as a constant of its own dtype.
fn int_constant(g: &Graph, a: &serde_json::Value) -> Tensor {
    let shape: Vec<usize> = serde_json::from_value(a["shape"].clone()).unwrap();
    let data: Vec<i64> = serde_json::from_value(a["data"].clone()).unwrap();
    let v = ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap();
    match a["dtype"].as_str() {
        Some("int32") => g.constant(v.mapv(|x| x as i32)).unwrap(),
        _ => g.constant(v).unwrap(),
    }
}

#[test]
fn gather_segment_sum_split_stack_unstack_match_tensorflow() {
    let fixture: ArrayOpsFixture = load("array_ops.json");
    for c in &fixture.cases {
        let g = Graph::new();
        let x = g.placeholder(DType::F32, c.x.shape.as_slice()).named("x").unwrap();
        let axis = c.attrs["axis"].as_i64().unwrap_or(0);
        let outs = match c.op.as_str() {
            "gather" => vec![array::gather(&x, &int_constant(&g, &c.attrs["indices"]), axis).unwrap()],
            "embedding_lookup" => vec![nn::embedding_lookup(&x, &int_constant(&g, &c.attrs["indices"])).unwrap()],
            "unsorted_segment_sum" => {
                let num = g.scalar(c.attrs["num_segments"].as_f64().unwrap(), DType::I32).unwrap();
                vec![math::unsorted_segment_sum(&x, &int_constant(&g, &c.attrs["indices"]), &num).unwrap()]
            }
            "split" => match c.attrs.get("sizes") {
                Some(s) => array::split(&x, serde_json::from_value::<Vec<usize>>(s.clone()).unwrap(), axis).unwrap(),
                None => array::split(&x, c.attrs["num"].as_u64().unwrap() as usize, axis).unwrap(),
            },
            "stack" => {
                let two = (&x * 2.0).unwrap();
                let sq = (&x * &x).unwrap();
                let xs: Vec<&Tensor> =
                    if c.outs[0].shape.len() == 3 && c.outs[0].shape[axis.rem_euclid(3) as usize] == 3 {
                        vec![&x, &two, &sq]
                    } else {
                        vec![&x, &sq]
                    };
                vec![array::stack(&xs, axis).unwrap()]
            }
            "unstack" => array::unstack(&x, axis).unwrap(),
            "strided_slice" => {
                let spec: Vec<serde_json::Value> = serde_json::from_value(c.attrs["index"].clone()).unwrap();
                let int = |v: &serde_json::Value| v.as_i64();
                let index: Vec<Index> = spec
                    .iter()
                    .map(|p| match p[0].as_str().unwrap() {
                        "all" => Index::All,
                        "at" => Index::At(p[1].as_i64().unwrap()),
                        "range" => Index::Range(int(&p[1]), int(&p[2]), p[3].as_i64().unwrap()),
                        "new" => Index::NewAxis,
                        _ => Index::Ellipsis,
                    })
                    .collect();
                vec![array::strided_slice(&x, &index).unwrap()]
            }
            "reshape_dynamic" => {
                let shape: Vec<i32> = serde_json::from_value(c.attrs["shape"].clone()).unwrap();
                vec![array::reshape_dynamic(&x, &g.constant(ndarray::Array1::from(shape)).unwrap()).unwrap()]
            }
            "slice_dynamic" => {
                let v = |k: &str| {
                    g.constant(ndarray::Array1::from(serde_json::from_value::<Vec<i32>>(c.attrs[k].clone()).unwrap()))
                        .unwrap()
                };
                vec![array::slice_dynamic(&x, &v("begin"), &v("size")).unwrap()]
            }
            "mirror_pad" => {
                let p: Vec<[usize; 2]> = serde_json::from_value(c.attrs["paddings"].clone()).unwrap();
                let p: Vec<(usize, usize)> = p.iter().map(|&[a, b]| (a, b)).collect();
                let mode = if c.attrs["mode"] == "SYMMETRIC" { MirrorMode::Symmetric } else { MirrorMode::Reflect };
                vec![array::mirror_pad(&x, &p, mode).unwrap()]
            }
            "tile" => {
                vec![array::tile(&x, &serde_json::from_value::<Vec<usize>>(c.attrs["multiples"].clone()).unwrap())
                    .unwrap()]
            }
            other => panic!("op {other}"),
        };
        let loss = weighted_sum(&outs, &c.outs);
        let dx = tensorgraph::gradients(&[&loss], &[&x], None).unwrap().remove(0).unwrap();
        let sess = Session::new(&g).unwrap();
        let mut fetches: Vec<&Tensor> = outs.iter().collect();
        fetches.push(&dx);
        let got = sess.run(&fetches, feed! {x => c.x.f32()}).unwrap();
        let what = format!("{} {}", c.op, c.attrs);
        for (i, want) in c.outs.iter().enumerate() {
            assert_matches(&format!("{what} output {i}"), &got[i], want);
        }
        assert_matches(&format!("{what} gradient"), &got[outs.len()], &c.grad);
    }
    for e in &fixture.errors {
        let g = Graph::new();
        let data = g.constant(ndarray::Array2::<f32>::zeros((if e.op == "gather" { 4 } else { 2 }, 2))).unwrap();
        let bad = |v: [i64; 2]| g.constant(ndarray::arr1(&v)).unwrap();
        let out = match e.op.as_str() {
            "gather" => array::gather(&data, &bad([1, 7]), 0).unwrap(),
            _ => math::unsorted_segment_sum(&data, &bad([0, 5]), &g.scalar(3.0, DType::I64).unwrap()).unwrap(),
        };
        let err = Session::new(&g).unwrap().run(&out, &[]).unwrap_err().to_string();
        assert!(err.contains(&e.message), "{}: ours {err:?}, TF says {:?}", e.op, e.message);
    }
}

#[derive(Deserialize)]
struct MathCase {
    op: String,
    xs: Vec<Arr>,
    attrs: serde_json::Value,
    outs: Vec<Arr>,
    grads: Vec<Arr>,
}

#[test]
fn composite_math_clipping_and_losses_match_tensorflow() {
    let cases: Vec<MathCase> = load("math_ops.json");
    for c in &cases {
        let g = Graph::new();
        let xs: Vec<Tensor> = c.xs.iter().map(|x| g.placeholder(DType::F32, x.shape.as_slice()).unwrap()).collect();
        let num = |k: &str| c.attrs[k].as_f64().unwrap();
        let scalar = |k: &str| g.scalar(num(k), DType::F32).unwrap();
        let axes: Option<Vec<i64>> = c.attrs.get("axes").map(|a| serde_json::from_value(a.clone()).unwrap());
        let axes = axes.as_deref();
        let outs: Vec<Tensor> = match c.op.as_str() {
            "squared_difference" => vec![math::squared_difference(&xs[0], &xs[1]).unwrap()],
            "reduce_logsumexp" => vec![math::reduce_logsumexp(&xs[0], axes).unwrap()],
            "clip_by_value" => vec![math::clip_by_value(&xs[0], &scalar("lo"), &scalar("hi")).unwrap()],
            "clip_by_norm" => vec![math::clip_by_norm(&xs[0], &scalar("clip"), axes).unwrap()],
            "clip_by_global_norm" => math::clip_by_global_norm(&[&xs[0], &xs[1]], num("clip")).unwrap().0,
            "global_norm" => vec![math::global_norm(&[&xs[0], &xs[1]]).unwrap()],
            "l2_normalize" => vec![nn::l2_normalize(&xs[0], axes.unwrap(), 1e-12).unwrap()],
            "softmax_cross_entropy_with_logits" => {
                vec![nn::softmax_cross_entropy_with_logits(&xs[0], &xs[1]).unwrap()]
            }
            "mean_squared_error" => vec![tensorgraph::losses::mean_squared_error(&xs[0], &xs[1]).unwrap()],
            "huber_loss" => vec![tensorgraph::losses::huber_loss(&xs[0], &xs[1], num("delta")).unwrap()],
            "cumsum" | "cumprod" => {
                let f = if c.op == "cumsum" { math::cumsum } else { math::cumprod };
                let flag = |k: &str| c.attrs[k].as_bool().unwrap();
                vec![f(&xs[0], num("axis") as i64, flag("exclusive"), flag("reverse")).unwrap()]
            }
            "reduce_prod" => vec![math::reduce_prod(&xs[0], axes).unwrap()],
            "top_k" => {
                let (v, i) = nn::top_k(&xs[0], num("k") as usize, true).unwrap();
                vec![v, i]
            }
            "batch_matmul" => {
                let flag = |k: &str| c.attrs[k].as_bool().unwrap();
                vec![math::batch_matmul(&xs[0], &xs[1], flag("adj_x"), flag("adj_y")).unwrap()]
            }
            "erf" => vec![math::erf(&xs[0]).unwrap()],
            "depthwise_conv2d" => {
                let s = num("strides") as usize;
                let padding = if c.attrs["padding"] == "SAME" { Padding::Same } else { Padding::Valid };
                vec![nn::depthwise_conv2d(&xs[0], &xs[1], [1, s, s, 1], padding).unwrap()]
            }
            "conv2d_transpose" => {
                let [h, w, ch]: [usize; 3] = serde_json::from_value(c.attrs["output_shape"].clone()).unwrap();
                let s = num("strides") as usize;
                let padding = if c.attrs["padding"] == "SAME" { Padding::Same } else { Padding::Valid };
                let out = [None, Some(h), Some(w), Some(ch)];
                vec![nn::conv2d_transpose(&xs[0], &xs[1], out, [1, s, s, 1], padding).unwrap()]
            }
            other => panic!("op {other}"),
        };
        let loss = weighted_sum(&outs, &c.outs);
        let grads = tensorgraph::gradients(&[&loss], &xs.iter().collect::<Vec<_>>(), None).unwrap();
        let mut fetches: Vec<&Tensor> = outs.iter().collect();
        fetches.extend(grads.iter().map(|d| d.as_ref().unwrap()));
        let feeds: Vec<(&Tensor, Feed)> = xs.iter().zip(&c.xs).map(|(t, x)| (t, x.f32().into())).collect();
        let got = Session::new(&g).unwrap().run(&fetches, &feeds).unwrap();
        let what = format!("{} {}", c.op, c.attrs);
        for (i, want) in c.outs.iter().enumerate() {
            assert_matches(&format!("{what} output {i}"), &got[i], want);
        }
        for (i, want) in c.grads.iter().enumerate() {
            assert_matches(&format!("{what} gradient {i}"), &got[outs.len() + i], want);
        }
    }
}

#[derive(Deserialize)]
struct RnnVariable {
    name: String,
    value: Arr,
}

#[derive(Deserialize)]
struct RnnCase {
    cell: String,
    lengths: Option<Vec<i32>>,
    x: Arr,
    variables: Vec<RnnVariable>,
    outputs: Arr,
    state: Vec<Arr>,
    dx: Arr,
    dvars: Vec<Arr>,
}

#[test]
fn recurrent_cells_under_dynamic_rnn_match_tensorflow() {
    use tensorgraph::rnn::{self, BasicLSTMCell, BasicRNNCell, GRUCell, LSTMCell, MultiRNNCell, RNNCell};
    let cases: Vec<RnnCase> = load("rnn.json");
    // Each case unrolled over 4 known steps, and in a while_loop over steps known at run time.
    for (c, time) in cases.iter().flat_map(|c| [(c, Some(4)), (c, None)]) {
        let g = Graph::new();
        let x = g.placeholder(DType::F32, [None, time, Some(5)]).named("x").unwrap();
        let cell: Box<dyn RNNCell> = match c.cell.as_str() {
            "basic_rnn" => Box::new(BasicRNNCell::new(6)),
            "basic_lstm" => Box::new(BasicLSTMCell::new(6)),
            "lstm" => Box::new(LSTMCell::new(6)),
            "lstm_peephole_clip" => {
                Box::new(LSTMCell { use_peepholes: true, cell_clip: Some(0.5), ..LSTMCell::new(6) })
            }
            "lstm_projection" => Box::new(LSTMCell {
                use_peepholes: true,
                cell_clip: Some(0.5),
                num_proj: Some(3),
                proj_clip: Some(0.25),
                ..LSTMCell::new(6)
            }),
            "gru" => Box::new(GRUCell::new(6)),
            "multi_lstm" => {
                Box::new(MultiRNNCell::new(vec![Box::new(BasicLSTMCell::new(6)), Box::new(BasicLSTMCell::new(4))]))
            }
            other => panic!("cell {other}"),
        };
        let lengths = c.lengths.as_ref().map(|l| g.constant(ndarray::Array1::from(l.clone())).unwrap());
        let (outputs, state) = rnn::dynamic_rnn(cell.as_ref(), &x, lengths.as_ref(), None).unwrap();
        let what = format!("{} lengths {:?} time {time:?}", c.cell, c.lengths);
        // The variables TF made, by TF's names and in TF's order.
        let vars = g.trainable_variables();
        let names: Vec<String> = vars.iter().map(|v| v.name()).collect();
        let tf_names: Vec<&str> = c.variables.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, tf_names, "{what}");
        let weighted = |t: &Tensor, shape: &[usize]| {
            let w = g.constant(fixture_weights(&shape[1..])).unwrap();
            math::reduce_sum(&math::mul(t, &w).unwrap(), None).unwrap()
        };
        let mut terms = vec![weighted(&outputs, &c.outputs.shape)];
        terms.extend(state.iter().zip(&c.state).map(|(s, want)| weighted(s, &want.shape)));
        let loss = math::add_n(&terms.iter().collect::<Vec<_>>()).unwrap();
        let mut wrt: Vec<&Tensor> = vec![&x];
        wrt.extend(vars.iter().map(|v| v.value()));
        let grads: Vec<Tensor> =
            tensorgraph::gradients(&[&loss], &wrt, None).unwrap().into_iter().map(Option::unwrap).collect();

        let sess = Session::new(&g).unwrap();
        for (v, tf) in vars.iter().zip(&c.variables) {
            sess.set_variable_value(v, Value::from(tf.value.f32())).unwrap();
        }
        let mut fetches = vec![&outputs];
        fetches.extend(state.iter());
        fetches.extend(grads.iter());
        let got = sess.run(&fetches, feed! {x => c.x.f32()}).unwrap();
        assert_matches(&format!("{what} outputs"), &got[0], &c.outputs);
        for (k, want) in c.state.iter().enumerate() {
            assert_matches(&format!("{what} state {k}"), &got[1 + k], want);
        }
        let grads = &got[1 + state.len()..];
        assert_matches(&format!("{what} d inputs"), &grads[0], &c.dx);
        for ((want, got), name) in c.dvars.iter().zip(&grads[1..]).zip(&names) {
            assert_matches(&format!("{what} d {name}"), got, want);
        }
    }
}

#[derive(Deserialize)]
struct LstmBlockCase {
    use_peephole: bool,
    cell_clip: f64,
    inputs: std::collections::BTreeMap<String, Arr>,
    outputs: Vec<Arr>,
}

/// TF's own `LSTMBlockCell` op with peepholes and cell clipping (TF registers no gradient for
/// it; ours is checked by finite differences in gradients.rs, and through BasicLSTMCell above).
#[test]
fn lstm_block_cell_op_matches_tensorflow() {
    let cases: Vec<LstmBlockCase> = load("lstm_block.json");
    for c in &cases {
        let g = Graph::new();
        let input = |k: &str| g.constant(c.inputs[k].f32()).unwrap();
        let (x, cs, h, w, b) = (input("x"), input("cs_prev"), input("h_prev"), input("w"), input("b"));
        let (wci, wcf, wco) = (input("wci"), input("wcf"), input("wco"));
        let outs =
            nn::lstm_block_cell(&x, &cs, &h, &w, [&wci, &wcf, &wco], &b, 1.0, c.cell_clip, c.use_peephole).unwrap();
        let got = Session::new(&g).unwrap().run(&outs, &[]).unwrap();
        for (k, (got, want)) in got.iter().zip(&c.outputs).enumerate() {
            assert_matches(&format!("peephole {} clip {} output {k}", c.use_peephole, c.cell_clip), got, want);
        }
    }
}

#[derive(Deserialize)]
struct ControlFlowFixture {
    cases: Vec<ControlFlowCase>,
}

#[derive(Deserialize)]
struct ControlFlowCase {
    case: String,
    n: i32,
    pred: bool,
    xs: Vec<Arr>,
    outs: Vec<Arr>,
    grads: Vec<Arr>,
}

/// `make_control_flow_fixtures.py`'s loops and conds, built the same way; trip counts and
/// predicates are fed when the graph runs.
#[test]
fn while_loop_and_cond_match_tensorflow_forward_and_backward() {
    fn step(h: &Tensor, w: &Tensor) -> Result<Tensor> {
        math::add(&nn::tanh(&math::mul(h, w)?)?, &(h * 0.5)?)
    }
    fn counter(v: &Tensor) -> Result<Tensor> {
        math::add(v, &v.graph().scalar(1.0, DType::I32)?)
    }
    fn looped(h: &Tensor, w: &Tensor, n: &Tensor, max: Option<u64>) -> Result<Tensor> {
        let i0 = h.graph().scalar(0.0, DType::I32)?;
        let out = while_loop(|v| math::less(&v[0], n), |v| Ok(vec![counter(&v[0])?, step(&v[1], w)?]), &[&i0, h], max)?;
        Ok(out[1].clone())
    }
    let fixture: ControlFlowFixture = load("control_flow.json");
    for c in &fixture.cases {
        let g = Graph::new();
        let x = g.placeholder(DType::F32, [2, 3]).named("x").unwrap();
        let w = g.placeholder(DType::F32, [3]).named("w").unwrap();
        let n = g.placeholder(DType::I32, Shape::scalar()).named("n").unwrap();
        let p = g.placeholder(DType::Bool, Shape::scalar()).named("p").unwrap();
        let outs: Vec<Tensor> = match c.case.as_str() {
            "loop" => vec![looped(&x, &w, &n, None).unwrap()],
            "maximum_iterations" => vec![looped(&x, &w, &n, Some(2)).unwrap()],
            "gather_by_counter" => {
                let (i0, acc0) = (g.scalar(0.0, DType::I32).unwrap(), array::zeros(&g, &[3], DType::F32).unwrap());
                let body = |v: &[Tensor]| {
                    Ok(vec![counter(&v[0])?, math::add(&v[1], &math::mul(&array::gather(&x, &v[0], 0)?, &w)?)?])
                };
                vec![while_loop(|v| math::less(&v[0], &n), body, &[&i0, &acc0], None).unwrap().remove(1)]
            }
            "nested" => {
                let j0 = g.scalar(0.0, DType::I32).unwrap();
                let body = |v: &[Tensor]| {
                    let two = v[0].graph().scalar(2.0, DType::I32)?;
                    let inner = looped(&v[1], &(&w + 0.1)?, &two, None)?;
                    Ok(vec![counter(&v[0])?, math::sqrt(&(&math::square(&inner)? + 1.0)?)?])
                };
                vec![while_loop(|v| math::less(&v[0], &n), body, &[&j0, &x], None).unwrap().remove(1)]
            }
            "cond" => cond(&p, || Ok(vec![math::mul(&x, &w)?, math::exp(&w)?]), || Ok(vec![nn::tanh(&x)?, w.clone()]))
                .unwrap(),
            other => panic!("case {other}"),
        };
        let loss = weighted_sum(&outs, &c.outs);
        let grads: Vec<Tensor> = tensorgraph::gradients(&[&loss], &[&x, &w], None)
            .unwrap()
            .into_iter()
            .zip([&x, &w])
            .map(|(d, v)| d.unwrap_or_else(|| array::zeros_like(v).unwrap()))
            .collect();
        let sess = Session::new(&g).unwrap();
        let fetches: Vec<&Tensor> = outs.iter().chain(&grads).collect();
        let got = sess.run(&fetches, feed! {x => c.xs[0].f32(), w => c.xs[1].f32(), n => c.n, p => c.pred}).unwrap();
        let what = format!("{} (n = {}, pred = {})", c.case, c.n, c.pred);
        for (i, want) in c.outs.iter().chain(&c.grads).enumerate() {
            assert_matches(&format!("{what} fetch {i}"), &got[i], want);
        }
    }
}

#[derive(Deserialize)]
struct SummaryFixture {
    cases: Vec<SummaryCase>,
}

#[derive(Deserialize)]
struct SummaryCase {
    kind: String,
    x: Arr,
    nan_at: Vec<usize>,
    attrs: serde_json::Value,
    values: Vec<serde_json::Value>,
}

/// `make_summary_fixtures.py`'s summaries, decoded: tags, scalars, histogram buckets (exactly
/// TF's limits and counts) and image pixels (exactly TF's bytes after PNG decoding).
#[test]
fn summary_ops_write_what_tensorflow_writes() {
    use prost::Message;
    use tensorgraph::proto::tf::Summary;
    use tensorgraph::summary;
    let fixture: SummaryFixture = load("summaries.json");
    for c in &fixture.cases {
        let g = Graph::new();
        let x = g.placeholder(DType::F32, c.x.shape.as_slice()).named("x").unwrap();
        let s = match c.kind.as_str() {
            "scalar" => summary::scalar("loss", &x).unwrap(),
            "histogram" => summary::histogram("weights", &x).unwrap(),
            "image" => summary::image("input", &x, c.attrs["max_outputs"].as_u64().unwrap() as usize).unwrap(),
            _ => {
                let a =
                    summary::scalar("a", &array::strided_slice(&x, &[Index::At(0), Index::At(0)]).unwrap()).unwrap();
                let b = summary::histogram("b", &x).unwrap();
                summary::merge(&[&a, &b]).unwrap()
            }
        };
        let mut xv = c.x.f32();
        for &i in &c.nan_at {
            xv.as_slice_mut().unwrap()[i] = f32::NAN;
        }
        let out = Session::new(&g).unwrap().run(&s, feed! {x => xv}).unwrap();
        let bytes = out.as_string().unwrap().iter().next().unwrap().clone();
        let got = Summary::decode(bytes.as_slice()).unwrap();
        assert_eq!(got.value.len(), c.values.len(), "{}: values", c.kind);
        for (v, want) in got.value.iter().zip(&c.values) {
            let what = format!("{} {}", c.kind, v.tag);
            assert_eq!(v.tag, want["tag"].as_str().unwrap(), "{what}: tag");
            if let Some(x) = want.get("simple_value") {
                assert_eq!(v.simple_value, Some(x.as_f64().unwrap() as f32), "{what}");
            }
            if let Some(h) = want.get("histo") {
                let ours = v.histo.as_ref().unwrap();
                let list = |k: &str| serde_json::from_value::<Vec<f64>>(h[k].clone()).unwrap();
                assert_eq!(ours.bucket_limit, list("bucket_limit"), "{what}: bucket limits");
                assert_eq!(ours.bucket, list("bucket"), "{what}: bucket counts");
                for (k, ours) in [
                    ("min", ours.min),
                    ("max", ours.max),
                    ("num", ours.num),
                    ("sum", ours.sum),
                    ("sum_squares", ours.sum_squares),
                ] {
                    let tf = h[k].as_f64().unwrap();
                    assert!((ours - tf).abs() <= 1e-6 * tf.abs().max(1.0), "{what}: {k} ours {ours}, TF {tf}");
                }
            }
            if let Some(im) = want.get("image") {
                let ours = v.image.as_ref().unwrap();
                assert_eq!(
                    (ours.height as i64, ours.width as i64, ours.colorspace as i64),
                    (im["height"].as_i64().unwrap(), im["width"].as_i64().unwrap(), im["colorspace"].as_i64().unwrap()),
                    "{what}"
                );
                let mut reader =
                    png::Decoder::new(std::io::Cursor::new(&ours.encoded_image_string)).read_info().unwrap();
                let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
                reader.next_frame(&mut pixels).unwrap();
                let tf: Vec<u8> = serde_json::from_value::<Vec<u8>>(im["pixels"]["data"].clone()).unwrap();
                assert_eq!(pixels, tf, "{what}: pixels");
            }
        }
    }
}
