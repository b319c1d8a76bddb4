//! End to end: the slides' CNN (conv 32, conv 64 stride 2, max-pool, dense 64, dense 10) with
//! Adam learns a 2,000-image fixture cut from MNIST.

use tensorgraph::data::mnist::{read_data_sets_with, Options};
use tensorgraph::prelude::*;

#[test]
fn cnn_with_adam_learns_the_mnist_fixture() {
    let g = Graph::new();
    g.set_random_seed(7);
    let x = g.placeholder(DType::F32, [None, Some(784)]).named("X").unwrap();
    let y = g.placeholder(DType::I64, [None]).named("y").unwrap();
    let logits = (|| {
        let img = array::reshape(&x, &[-1, 28, 28, 1])?;
        let c1 = layers::conv2d(&img, 32, 3, 1, Padding::Same, Some(nn::relu), "conv1")?;
        let c2 = layers::conv2d(&c1, 64, 3, 2, Padding::Same, Some(nn::relu), "conv2")?;
        let p3 = nn::max_pool(&c2, [1, 2, 2, 1], [1, 2, 2, 1], Padding::Valid)?;
        let fc1 = layers::dense(&array::reshape(&p3, &[-1, 64 * 7 * 7])?, 64, Some(nn::relu), "fc1")?;
        layers::dense(&fc1, 10, None, "output")
    })()
    .unwrap();
    let loss =
        math::reduce_mean(&nn::sparse_softmax_cross_entropy_with_logits(&y, &logits).named("xent").unwrap(), None)
            .named("loss")
            .unwrap();
    let train = g.name_scope("train", || Adam::default().minimize(&loss)).unwrap();
    let accuracy =
        math::reduce_mean(&nn::in_top_k(&logits, &y, 1).unwrap().cast(DType::F32).unwrap(), None).named("acc").unwrap();
    assert!(g.operation_by_name("train/gradients/conv1/Conv2D_grad/Conv2DBackpropFilter").is_ok());
    assert!(g.operation_by_name("conv1/kernel/Adam_1").is_ok());

    let mut d =
        read_data_sets_with("tests/fixtures/mnist-small", &Options { validation_size: 0, seed: Some(2) }).unwrap();
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    let test = [(&x, d.test.images.clone().into()), (&y, d.test.labels.clone().into())];
    for _ in 0..2 * 2000 / 100 {
        let (xb, yb) = d.train.next_batch(100);
        sess.run(&train, &[(&x, xb.into()), (&y, yb.into())]).unwrap();
    }
    let acc = sess.run(&[&accuracy], &test).unwrap()[0].scalar_f64().unwrap();
    assert!(acc > 0.8, "test accuracy after 2 epochs of 2000 images: {acc}");
}
