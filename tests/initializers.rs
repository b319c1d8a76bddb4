//! Initializers against TF1's definitions: ranges and standard deviations of large samples.

use tensorgraph::prelude::*;
use tensorgraph::{Distribution, Initializer};

fn sample(init: Initializer, shape: &[usize]) -> Vec<f64> {
    let g = Graph::new();
    g.set_random_seed(11);
    let v = g.get_variable("w", shape, DType::F32, &init, true).unwrap();
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    sess.run(&v, &[]).unwrap().to_f64_vec()
}

fn std(v: &[f64]) -> f64 {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

#[test]
fn variance_scaling_family_has_the_variances_tf_defines() {
    let shape = [784, 300];
    let (fan_in, fan_avg): (f64, f64) = (784.0, (784.0 + 300.0) / 2.0);
    let cases = [
        ("he_normal", Initializer::he(Distribution::TruncatedNormal, None), (2.0 / fan_in).sqrt()),
        ("he_uniform", Initializer::he(Distribution::Uniform, None), (2.0 / fan_in).sqrt()),
        ("lecun_normal", Initializer::lecun(Distribution::TruncatedNormal, None), (1.0 / fan_in).sqrt()),
        ("lecun_uniform", Initializer::lecun(Distribution::Uniform, None), (1.0 / fan_in).sqrt()),
        ("glorot_normal", Initializer::glorot(Distribution::TruncatedNormal, None), (1.0 / fan_avg).sqrt()),
        ("glorot_uniform", Initializer::glorot(Distribution::Uniform, None), (1.0 / fan_avg).sqrt()),
        ("he_untruncated", Initializer::he(Distribution::UntruncatedNormal, None), (2.0 / fan_in).sqrt()),
        ("GlorotUniform", Initializer::GlorotUniform { seed: None }, (1.0 / fan_avg).sqrt()),
    ];
    for (name, init, want) in cases {
        let v = sample(init.clone(), &shape);
        let got = std(&v);
        assert!((got / want - 1.0).abs() < 0.02, "{name}: std {got}, want {want}");
        if let Initializer::VarianceScaling { distribution: Distribution::Uniform, .. } = init {
            let limit = want * 3f64.sqrt();
            assert!(v.iter().all(|x| x.abs() <= limit), "{name}: outside ±{limit}");
        }
        if let Initializer::VarianceScaling { distribution: Distribution::TruncatedNormal, .. } = init {
            let cut = 2.0 * want / 0.879_625_661_034_239_8;
            assert!(v.iter().all(|x| x.abs() <= cut * 1.0001), "{name}: beyond two standard deviations");
        }
    }
}

#[test]
fn constant_truncated_normal_and_layer_options() {
    assert!(sample(Initializer::Constant(0.25), &[3, 4]).iter().all(|&x| x == 0.25));
    let t = sample(Initializer::TruncatedNormal { mean: 1.0, stddev: 0.1, seed: Some(3) }, &[10_000]);
    assert!(t.iter().all(|&x| (0.8..=1.2).contains(&x)));
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(5)]).named("x").unwrap();
    layers::Dense::new(4).kernel_initializer(Initializer::Constant(0.5)).build(&x, "d").unwrap();
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    let k = g.trainable_variables().into_iter().find(|v| v.name() == "d/kernel").unwrap();
    assert!(sess.run(&k, &[]).unwrap().to_f64_vec().iter().all(|&v| v == 0.5));
}
