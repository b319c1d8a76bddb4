//! End to end: the slides' MLP (smaller hidden layers) learns a fixture cut from MNIST.

use std::time::Instant;
use tensorgraph::data::mnist::{read_data_sets_with, Options};
use tensorgraph::prelude::*;

#[test]
fn mlp_learns_the_mnist_fixture_in_seconds() {
    let start = Instant::now();
    let g = Graph::new();
    g.set_random_seed(42);
    let x = g.placeholder(DType::F32, [None, Some(784)]).named("X").unwrap();
    let y = g.placeholder(DType::I64, [None]).named("y").unwrap();
    let logits = g
        .name_scope("dnn", || {
            let h1 = layers::dense(&x, 300, Some(nn::relu), "hidden1")?;
            let h2 = layers::dense(&h1, 100, Some(nn::relu), "hidden2")?;
            layers::dense(&h2, 10, None, "outputs")
        })
        .unwrap();
    let loss = g
        .name_scope("loss", || {
            let xent = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits).named("xentropy")?;
            math::reduce_mean(&xent, None).named("loss")
        })
        .unwrap();
    let train = g.name_scope("train", || GradientDescent::new(0.1).minimize(&loss)).unwrap();
    let accuracy = g
        .name_scope("eval", || {
            math::reduce_mean(&nn::in_top_k(&logits, &y, 1)?.cast(DType::F32)?, None).named("accuracy")
        })
        .unwrap();
    assert_eq!(train.name(), "train/GradientDescent");
    assert!(g.operation_by_name("train/gradients/dnn/hidden1/MatMul_grad/MatMul_1").is_ok());

    let mut d =
        read_data_sets_with("tests/fixtures/mnist-small", &Options { validation_size: 0, seed: Some(1) }).unwrap();
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    let test = [(&x, d.test.images.clone().into()), (&y, d.test.labels.clone().into())];
    let before = sess.run(&[&accuracy, &loss], &test).unwrap();
    for _ in 0..5 * 2000 / 50 {
        let (xb, yb) = d.train.next_batch(50);
        sess.run(&train, &[(&x, xb.into()), (&y, yb.into())]).unwrap();
    }
    let after = sess.run(&[&accuracy, &loss], &test).unwrap();
    let (acc0, acc1) = (before[0].scalar_f64().unwrap(), after[0].scalar_f64().unwrap());
    let (loss0, loss1) = (before[1].scalar_f64().unwrap(), after[1].scalar_f64().unwrap());
    assert!(acc0 < 0.3, "untrained accuracy {acc0}");
    assert!(acc1 > 0.85, "accuracy after 5 epochs on 2000 images: {acc1} (loss {loss0} -> {loss1})");
    assert!(loss1 < loss0 / 3.0, "loss {loss0} -> {loss1}");
    assert!(start.elapsed().as_secs() < 60, "took {:?}", start.elapsed());
}
