//! Batch-parallel inference in chunks of rows (`Session::set_batch_splitting`): the same bits as
//! one pass over the batch, only where the steps are row-wise and the run has no effects.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use tensorgraph::prelude::*;
use tensorgraph::{BatchSplit, Value};

struct Cnn {
    g: Graph,
    x: Tensor,
    y: Tensor,
    logits: Tensor,
    accuracy: Tensor,
    loss: Tensor,
    train: Operation,
}

/// The slides' CNN (smaller layers), weights from a seed.
fn cnn() -> Cnn {
    let g = Graph::new();
    g.set_random_seed(3);
    let x = g.placeholder(DType::F32, [None, Some(784)]).named("X").unwrap();
    let y = g.placeholder(DType::I64, [None]).named("y").unwrap();
    let img = array::reshape(&x, &[-1, 28, 28, 1]).unwrap();
    let c1 = layers::conv2d(&img, 8, 3, 1, Padding::Same, Some(nn::relu), "conv1").unwrap();
    let c2 = layers::conv2d(&c1, 16, 3, 2, Padding::Same, Some(nn::relu), "conv2").unwrap();
    let p3 = nn::max_pool(&c2, [1, 2, 2, 1], [1, 2, 2, 1], Padding::Valid).unwrap();
    let fc1 = layers::dense(&array::reshape(&p3, &[-1, 16 * 7 * 7]).unwrap(), 32, Some(nn::relu), "fc1").unwrap();
    let logits = layers::dense(&fc1, 10, None, "output").unwrap();
    let xent = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits).unwrap();
    let loss = math::reduce_mean(&xent, None).unwrap();
    let accuracy = math::reduce_mean(&nn::in_top_k(&logits, &y, 1).unwrap().cast(DType::F32).unwrap(), None).unwrap();
    let train = GradientDescent::new(0.01).minimize(&loss).unwrap();
    Cnn { g, x, y, logits, accuracy, loss, train }
}

fn batch(n: usize) -> (Array2<f32>, ndarray::Array1<i64>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let x = Array2::from_shape_fn((n, 784), |_| rng.random::<f32>());
    let y = ndarray::Array1::from_shape_fn(n, |_| rng.random_range(0..10i64));
    (x, y)
}

fn bits(v: &Value) -> Vec<u32> {
    v.as_f32().unwrap().iter().map(|x| x.to_bits()).collect()
}

/// How many times the two convolutions ran since profiling started (conv2 with its pooling,
/// and conv1 in it where nothing else reads conv1's output).
fn conv_runs(sess: &Session) -> u64 {
    let convs = |name: &str| name.matches("_FusedConv2D").count() as u64;
    sess.profile().iter().map(|(name, n, _)| n * convs(name)).sum::<u64>() / 2
}

#[test]
fn chunks_give_the_bits_of_one_pass() {
    let m = cnn();
    let (x, y) = batch(300);
    let mut sess = Session::new(&m.g).unwrap();
    m.g.global_variables_initializer().unwrap().run(&sess, &[]).unwrap();
    let run = |sess: &Session| sess.run((&m.logits, &m.accuracy, &m.loss), feed! {m.x => &x, m.y => &y}).unwrap();
    sess.set_batch_splitting(BatchSplit::Off);
    sess.set_profiling(true);
    let whole = run(&sess);
    assert_eq!(conv_runs(&sess), 1);
    for (rows, chunks) in [(7, 43), (64, 5), (100, 3), (299, 2), (300, 1)] {
        sess.set_batch_splitting(BatchSplit::Rows(rows));
        sess.set_profiling(true);
        let split = run(&sess);
        assert_eq!(conv_runs(&sess), chunks, "{rows} rows per chunk");
        assert_eq!(bits(&split.0), bits(&whole.0), "logits, {rows} rows per chunk");
        assert_eq!(bits(&split.1), bits(&whole.1), "accuracy, {rows} rows per chunk");
        assert_eq!(bits(&split.2), bits(&whole.2), "loss, {rows} rows per chunk");
    }
    assert_eq!(split_logits_shape(&sess, &m, &x, &y), [300, 10]);
}

fn split_logits_shape(sess: &Session, m: &Cnn, x: &Array2<f32>, y: &ndarray::Array1<i64>) -> Vec<usize> {
    sess.run(&m.logits, feed! {m.x => x, m.y => y}).unwrap().shape().to_vec()
}

#[test]
fn a_training_step_is_never_split() {
    let m = cnn();
    let (x, y) = batch(300);
    let mut sess = Session::new(&m.g).unwrap();
    m.g.global_variables_initializer().unwrap().run(&sess, &[]).unwrap();
    sess.set_batch_splitting(BatchSplit::Rows(10));
    sess.set_profiling(true);
    sess.run(&m.train, feed! {m.x => &x, m.y => &y}).unwrap();
    assert_eq!(conv_runs(&sess), 1);
}

#[test]
fn automatic_chunks_split_only_large_batches() {
    let m = cnn();
    let mut sess = Session::new(&m.g).unwrap();
    m.g.global_variables_initializer().unwrap().run(&sess, &[]).unwrap();
    sess.set_profiling(true);
    let (x, y) = batch(20);
    sess.run(&m.accuracy, feed! {m.x => &x, m.y => &y}).unwrap();
    assert_eq!(conv_runs(&sess), 1, "20 images fit in one chunk on any machine");
    // conv2's input and output rows here are 25 KiB and 3 KiB; the L2 of no CPU is 512 MiB.
    let (x, y) = batch(20_000);
    sess.set_profiling(true);
    sess.run(&m.accuracy, feed! {m.x => &x, m.y => &y}).unwrap();
    assert!(conv_runs(&sess) > 1);
}

#[test]
fn an_error_in_a_chunk_names_the_whole_batch() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, None]).named("X").unwrap();
    let w = g.constant(Array2::<f32>::ones((4, 16))).unwrap();
    let h = nn::relu(&math::matmul(&x, &w, false, false).unwrap()).unwrap();
    let total = math::reduce_sum(&math::reduce_sum(&h, Some(&[1])).unwrap(), None).unwrap();
    let mut sess = Session::new(&g).unwrap();
    sess.set_batch_splitting(BatchSplit::Rows(8));
    sess.set_profiling(true);
    let ok: f32 = sess.run(&total, feed! {x => Array2::<f32>::ones((100, 4))}).unwrap().try_into().unwrap();
    assert_eq!(ok, 6400.0);
    assert_eq!(sess.profile().iter().find(|p| p.0 == "_FusedMatMul").map(|p| p.1), Some(13));
    let e = sess.run(&total, feed! {x => Array2::<f32>::ones((100, 5))}).unwrap_err().to_string();
    assert!(e.contains("[100,5]"), "{e}");
}

#[test]
fn a_reshape_that_moves_elements_between_rows_is_not_split() {
    // [N, 6] -> [-1, 4]: the output's rows mix the input's (each chunk's would not be whole).
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(6)]).unwrap();
    let w = g.constant(ndarray::array![[1.0f32], [2.0], [3.0], [4.0]]).unwrap();
    let y = math::matmul(&array::reshape(&x, &[-1, 4]).unwrap(), &w, false, false).unwrap();
    let mut sess = Session::new(&g).unwrap();
    sess.set_batch_splitting(BatchSplit::Rows(2));
    sess.set_profiling(true);
    let xs = Array2::from_shape_fn((6, 6), |(i, j)| (i * 6 + j) as f32);
    let out = sess.run(&y, feed! {x => &xs}).unwrap();
    assert_eq!(out.shape(), [9, 1]);
    assert_eq!(out.as_f32().unwrap()[[1, 0]], 4.0 + 2.0 * 5.0 + 3.0 * 6.0 + 4.0 * 7.0);
    let reshapes: u64 = sess.profile().iter().filter(|p| p.0 == "Reshape").map(|p| p.1).sum();
    assert_eq!(reshapes, 1);
    // [N, 2, 3] -> [-1, 6] keeps rows whole: split.
    let x3 = g.placeholder(DType::F32, [None, Some(2), Some(3)]).unwrap();
    let w6 = g.constant(Array2::<f32>::ones((6, 1))).unwrap();
    let y3 = math::matmul(&array::reshape(&x3, &[-1, 6]).unwrap(), &w6, false, false).unwrap();
    sess.set_profiling(true);
    let out = sess.run(&y3, feed! {x3 => ndarray::Array3::<f32>::ones((6, 2, 3))}).unwrap();
    assert_eq!(out.as_f32().unwrap().iter().copied().collect::<Vec<_>>(), [6.0; 6]);
    let reshapes: u64 = sess.profile().iter().filter(|p| p.0 == "Reshape").map(|p| p.1).sum();
    assert_eq!(reshapes, 3);
}

#[test]
fn a_statistic_of_the_whole_batch_runs_once_before_the_chunks() {
    // (x - mean over the batch) @ w: the mean reads the whole feed, the rest is row-wise.
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(8)]).unwrap();
    let mean = math::reduce_mean(&x, Some(&[0])).unwrap();
    let w = g.constant(Array2::from_shape_fn((8, 16), |(i, j)| (i as f32 - j as f32) / 8.0)).unwrap();
    let h = nn::relu(&math::matmul(&math::sub(&x, &mean).unwrap(), &w, false, false).unwrap()).unwrap();
    let y = math::reduce_max(&h, Some(&[1])).unwrap();
    let xs = Array2::from_shape_fn((50, 8), |(i, j)| ((i * 13 + j * 7) % 11) as f32);
    let mut sess = Session::new(&g).unwrap();
    sess.set_batch_splitting(BatchSplit::Off);
    let whole = sess.run(&y, feed! {x => &xs}).unwrap();
    sess.set_batch_splitting(BatchSplit::Rows(10));
    sess.set_profiling(true);
    let split = sess.run(&y, feed! {x => &xs}).unwrap();
    assert_eq!(bits(&split), bits(&whole));
    let runs = |name: &str| sess.profile().iter().filter(|p| p.0 == name).map(|p| p.1).sum::<u64>();
    assert_eq!((runs("Mean"), runs("_FusedMatMul"), runs("Max")), (1, 5, 5));
}

#[test]
fn an_lstm_over_a_large_batch_is_split_with_the_same_bits() {
    let g = Graph::new();
    g.set_random_seed(2);
    let x = g.placeholder(DType::F32, [None, Some(784)]).unwrap();
    let seq = array::reshape(&x, &[-1, 28, 28]).unwrap();
    let (_, states) =
        tensorgraph::rnn::dynamic_rnn(&tensorgraph::rnn::BasicLSTMCell::new(16), &seq, None, None).unwrap();
    let logits = layers::dense(states.last().unwrap(), 10, None, "out").unwrap();
    let (xs, _) = batch(150);
    let mut sess = Session::new(&g).unwrap();
    g.global_variables_initializer().unwrap().run(&sess, &[]).unwrap();
    sess.set_batch_splitting(BatchSplit::Off);
    let whole = sess.run(&logits, feed! {x => &xs}).unwrap();
    sess.set_batch_splitting(BatchSplit::Rows(40));
    sess.set_profiling(true);
    let split = sess.run(&logits, feed! {x => &xs}).unwrap();
    assert_eq!(bits(&split), bits(&whole));
    let cells: u64 = sess.profile().iter().filter(|p| p.0 == "LSTMBlockCell").map(|p| p.1).sum();
    assert_eq!(cells, 28 * 4);
}
