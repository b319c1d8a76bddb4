//! Layer options and graph helpers beyond the slides: regularizers, placeholder defaults, the
//! logistic loss at extreme logits, variable reuse.

use ndarray::array;
use tensorgraph::layers::{Dense, Regularizer};
use tensorgraph::prelude::*;

#[test]
fn regularization_losses_are_collected_and_summed() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(2)]).named("x").unwrap();
    assert_eq!(tensorgraph::losses::get_regularization_loss(&g).unwrap().op().op_type(), "Const");
    let h = Dense::new(3).kernel_regularizer(Regularizer::L2(0.5)).build(&x, "a").unwrap();
    let _ = Dense::new(1).kernel_regularizer(Regularizer::L1(0.25)).build(&h, "b").unwrap();
    let total = tensorgraph::losses::get_regularization_loss(&g).unwrap();
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    let kernels: Vec<Variable> = g.trainable_variables().into_iter().filter(|v| v.name().ends_with("kernel")).collect();
    let w: Vec<Vec<f64>> = kernels.iter().map(|k| sess.variable_value(k).unwrap().unwrap().to_f64_vec()).collect();
    let want = 0.5 * w[0].iter().map(|v| v * v).sum::<f64>() + 0.25 * w[1].iter().map(|v| v.abs()).sum::<f64>();
    let got = sess.run(&[&total], &[]).unwrap()[0].scalar_f64().unwrap();
    assert!((got - want).abs() < 1e-5 * want.max(1.0), "{got} vs {want}");
}

#[test]
fn placeholder_with_default_is_its_default_unless_fed() {
    let g = Graph::new();
    let d = g.constant(array![1.0f32, 2.0]).named("d").unwrap();
    let p = g.placeholder_with_default(&d).named("p").unwrap();
    let y = math::mul(&p, &g.scalar(10.0, DType::F32).unwrap()).unwrap();
    let sess = Session::new(&g).unwrap();
    assert_eq!(sess.run(&[&y], &[]).unwrap()[0].to_f64_vec(), vec![10.0, 20.0]);
    assert_eq!(sess.run(&[&y], &[(&p, array![3.0f32, 4.0].into())]).unwrap()[0].to_f64_vec(), vec![30.0, 40.0]);
}

#[test]
fn logistic_loss_is_stable_at_extreme_logits() {
    let g = Graph::new();
    let logits = g.constant(array![-1e30f32, -50.0, 0.0, 50.0, 1e30]).named("l").unwrap();
    let labels = g.constant(array![0.0f32, 1.0, 0.5, 0.0, 1.0]).named("z").unwrap();
    let loss = nn::sigmoid_cross_entropy_with_logits(&labels, &logits).unwrap();
    let got = Session::new(&g).unwrap().run(&[&loss], &[]).unwrap()[0].to_f64_vec();
    let want = [0.0, 50.0, std::f64::consts::LN_2, 50.0, 0.0];
    for (a, b) in got.iter().zip(want) {
        assert!((a - b).abs() < 1e-5, "{got:?}");
    }
}

#[test]
fn reusing_a_variable_with_another_shape_is_an_error() {
    let g = Graph::new();
    let _s = g.enter_variable_scope_reuse("d");
    g.get_variable("w", &[2], DType::F32, &Initializer::Zeros, true).unwrap();
    let e = g.get_variable("w", &[3], DType::F32, &Initializer::Zeros, true).unwrap_err().to_string();
    assert!(e.contains("reusing d/w as float32 [3] but it is float32 [2]"), "{e}");
}
