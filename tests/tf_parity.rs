//! Parity with real TensorFlow on fixtures it computed (tests/fixtures/tf/make_fixtures.py):
//! convolution and its gradients (SAME/VALID, strides, dilation), pooling with ties, the
//! cross-entropy at extreme logits, and Adam's update.

use ndarray::{ArrayD, IxDyn};
use serde::Deserialize;
use tensorgraph::prelude::*;
use tensorgraph::train::{GradAndVar, Optimizer};

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
        let x = g.constant(c.x.f32(), "x").unwrap();
        let f = g.constant(c.filter.f32(), "f").unwrap();
        let dy = g.constant(c.dy.f32(), "dy").unwrap();
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
        let x = g.constant(c.x.f32(), "x").unwrap();
        let dy = g.constant(c.dy.f32(), "dy").unwrap();
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
        let logits = g.constant(c.logits.f32(), "logits").unwrap();
        let labels = g.constant(ndarray::Array1::from(c.labels.clone()), "labels").unwrap();
        let dy = g.constant(c.dy.f32(), "dy").unwrap();
        let loss = nn::sparse_softmax_cross_entropy_with_logits(&labels, &logits, "xent").unwrap();
        let dl = tensorgraph::gradients(&[&loss], &[&logits], Some(&[&dy])).unwrap().remove(0).unwrap();
        let out = Session::new(&g).unwrap().run(&[&loss, &dl], &[]).unwrap();
        assert_matches("loss", &out[0], &c.loss);
        assert_matches("dlogits", &out[1], &c.dlogits);
    }
}

#[derive(Deserialize)]
struct AdamStep {
    w: Arr,
    m: Arr,
    v: Arr,
    beta1_power: f64,
    beta2_power: f64,
}

#[derive(Deserialize)]
struct AdamCase {
    lr: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    w0: Arr,
    grads: Vec<Arr>,
    steps: Vec<AdamStep>,
    variable_names: Vec<String>,
}

#[test]
fn adam_updates_match_tensorflow() {
    let cases: Vec<AdamCase> = load("adam.json");
    for c in &cases {
        let g = Graph::new();
        let w = g.variable(&g.constant(c.w0.f32(), "w0").unwrap(), "w", true).unwrap();
        let grad = g.placeholder(DType::F32, [3, 2], "g").unwrap();
        let opt = Adam { learning_rate: c.lr, beta1: c.beta1, beta2: c.beta2, epsilon: c.epsilon };
        let gv: Vec<GradAndVar> = vec![(Some(grad.clone()), w.clone())];
        let step = opt.apply_gradients(&gv, None).unwrap();
        let mut names: Vec<String> = g.global_variables().iter().map(|v| v.name()).collect();
        names.sort();
        assert_eq!(names, c.variable_names, "slot and accumulator names as TF's");
        let var = |n: &str| g.global_variables().into_iter().find(|v| v.name() == n).unwrap();
        let (m, v, b1p, b2p) = (var("w/Adam"), var("w/Adam_1"), var("beta1_power"), var("beta2_power"));
        let mut sess = Session::new(&g).unwrap();
        sess.run_targets(&[&g.global_variables_initializer().unwrap()], &[]).unwrap();
        for (k, (gr, want)) in c.grads.iter().zip(&c.steps).enumerate() {
            sess.run_targets(&[&step], &[(&grad, gr.f32().into())]).unwrap();
            let out = sess.run(&[&w, &m, &v, &b1p, &b2p], &[]).unwrap();
            assert_matches(&format!("lr {} step {k} w", c.lr), &out[0], &want.w);
            assert_matches(&format!("step {k} m"), &out[1], &want.m);
            assert_matches(&format!("step {k} v"), &out[2], &want.v);
            assert!((out[3].scalar_f64().unwrap() - want.beta1_power).abs() < 1e-6);
            assert!((out[4].scalar_f64().unwrap() - want.beta2_power).abs() < 1e-6);
        }
    }
}
