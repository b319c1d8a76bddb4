//! Writes seed inputs for the graph targets: real graphs (the slides' MLP and CNN with their
//! training ops, and one graph per other op family) as `.meta` files, so fuzzing starts from
//! graphs that import and run.
//!
//! `cargo run --bin seed_corpus -- corpus/meta_graph`

use tensorgraph::prelude::*;

fn mlp() -> tensorgraph::Result<Graph> {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(6)]).named("X")?;
    let y = g.placeholder(DType::I64, [None]).named("y")?;
    let h = layers::dense(&x, 5, Some(nn::relu), "hidden1")?;
    let logits = layers::dense(&h, 3, None, "outputs")?;
    let xent = nn::sparse_softmax_cross_entropy_with_logits(&y, &logits).named("xentropy")?;
    let loss = math::reduce_mean(&xent, None).named("loss")?;
    Adam::new(0.01).minimize(&loss)?;
    let correct = nn::in_top_k(&logits, &y, 1)?;
    math::reduce_mean(&correct.cast(DType::F32)?, None).named("accuracy")?;
    Ok(g)
}

fn cnn() -> tensorgraph::Result<Graph> {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(6), Some(6), Some(1)]).named("X")?;
    let y = g.placeholder(DType::I64, [None]).named("y")?;
    let training = g.placeholder_with_default(&g.constant(ndarray::arr0(false))?).named("training")?;
    let c = layers::conv2d(&x, 2, 3, 1, Padding::Same, Some(nn::relu), "conv1")?;
    let c = layers::batch_normalization(&c, &training, "bn")?;
    let p = nn::max_pool(&c, [1, 2, 2, 1], [1, 2, 2, 1], Padding::Valid)?;
    let a = nn::avg_pool(&p, [1, 2, 2, 1], [1, 1, 1, 1], Padding::Same)?;
    let f = layers::flatten(&a)?;
    let d = nn::dropout(&f, 0.5, &training, Some(1))?;
    let logits = layers::dense(&d, 3, None, "out")?;
    let loss = math::reduce_mean(&nn::sparse_softmax_cross_entropy_with_logits(&y, &logits).named("x")?, None).named("loss")?;
    GradientDescent::new(0.1).minimize(&loss)?;
    Ok(g)
}

fn array_ops() -> tensorgraph::Result<Graph> {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(3)]).named("x")?;
    let i = g.placeholder(DType::I64, [None]).named("i")?;
    let p = array::pad(&x, &[(1, 0), (0, 2)])?;
    let h = array::one_hot(&i, 4, 1.0, 0.0, DType::F32)?;
    let c = array::concat(&[&x, &x], 1)?;
    let s = array::slice(&c, &[0, 1], &[-1, 3])?;
    let t = array::transpose(&s, None)?;
    let r = array::reshape(&t, &[-1])?;
    let e = array::expand_dims(&r, 0)?;
    array::squeeze(&e, None)?;
    math::argmax(&h, 1)?;
    math::reduce_max(&p, Some(&[0])).named("m")?;
    math::select(&math::greater(&x, &g.scalar(0.0, DType::F32)?)?, &x, &math::neg(&x)?)?;
    let w = g.variable(&g.constant(ndarray::array![1i32, 2, 3])?, "counts", false)?;
    state::assign_add(&w, &g.constant(ndarray::array![1i32, 1, 1])?)?;
    math::add_n(&[&x, &x, &x])?;
    nn::softmax(&x)?;
    nn::log_softmax(&x)?;
    nn::elu(&x)?;
    nn::softplus(&x)?;
    nn::leaky_relu(&x, 0.2)?;
    Ok(g)
}

/// An LSTM over a run-time number of steps with its training ops: a loop, its gradient as two
/// loops, a run-time slice's gradient.
fn looped() -> tensorgraph::Result<Graph> {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, None, Some(2)]).named("x")?;
    let begin = g.placeholder(DType::I32, [Some(3)]).named("begin")?;
    let (outputs, state) = tensorgraph::rnn::dynamic_rnn(&tensorgraph::rnn::BasicLSTMCell::new(3), &x, None, None)?;
    let part = array::slice_dynamic(&outputs, &begin, &g.constant(ndarray::array![-1i32, -1, -1])?)?;
    let loss = math::add(&math::reduce_mean(&math::square(&state[1])?, None)?, &math::reduce_mean(&part, None)?)?;
    let loss = loss.named("loss")?;
    GradientDescent::new(0.1).minimize(&loss)?;
    Ok(g)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus/meta_graph".into()));
    std::fs::create_dir_all(&out)?;
    for (name, g) in [("mlp", mlp()?), ("cnn", cnn()?), ("array", array_ops()?), ("looped", looped()?)] {
        tensorgraph::io::export_meta_graph(&g, out.join(name))?;
    }
    Ok(())
}
