//! Shared by the graph targets: runs an imported graph the way a user would, with feeds made from
//! the fuzz input, so the kernels behind a graph file are reached too. Every run must be `Ok` or
//! `Err`; a panic or abort is a finding.

use tensorgraph::{DType, Graph, Op, Session, Tensor, Value};

/// Elements any tensor of the graph may have for the run to be attempted: the harness bounds
/// what it asks of the machine (the library's own limits are what the allocator allows).
const MAX_ELEMENTS: usize = 1 << 16;

/// Whether running `g` stays small: every known output shape, and the sizes attributes add to
/// unknown ones.
fn small(g: &Graph) -> bool {
    g.read(|d| {
        d.dag.node_weights().all(|n| {
            let shapes_small = n.outputs.iter().all(|o| {
                o.shape
                    .dims()
                    .iter()
                    .flatten()
                    .try_fold(1usize, |acc, &x| acc.checked_mul(x))
                    .is_some_and(|e| e <= MAX_ELEMENTS)
            });
            let attrs_small = match &n.op {
                Op::Pad { paddings } => paddings.iter().all(|&(a, b)| a <= 64 && b <= 64),
                Op::OneHot { depth, .. } => *depth <= 256,
                _ => true,
            };
            shapes_small && attrs_small
        })
    })
}

/// A value of `dtype` and `shape` whose elements come from `bytes` (NaN, infinities and zero
/// among them).
fn value(dtype: DType, shape: &[usize], bytes: &[u8]) -> Value {
    let n: usize = shape.iter().product();
    let byte = |i: usize| bytes.get(i % bytes.len().max(1)).copied().unwrap_or(0);
    let f = |i: usize| match byte(i) {
        0 => f64::NAN,
        1 => f64::INFINITY,
        2 => f64::NEG_INFINITY,
        b => (b as f64 - 128.0) / 16.0,
    };
    let v = Value::filled(dtype, shape, 0.0);
    let dims = ndarray::IxDyn(shape);
    match v {
        Value::F32(_) => Value::from(ndarray::ArrayD::from_shape_fn(dims, |i| f(ndarray::Dimension::slice(&i).iter().sum::<usize>()) as f32)),
        Value::F64(_) => Value::from(ndarray::ArrayD::from_shape_fn(dims, |i| f(ndarray::Dimension::slice(&i).iter().sum::<usize>()))),
        Value::I32(_) => {
            Value::from(ndarray::ArrayD::from_shape_vec(dims, (0..n).map(|i| byte(i) as i32 - 3).collect()).unwrap())
        }
        Value::I64(_) => {
            Value::from(ndarray::ArrayD::from_shape_vec(dims, (0..n).map(|i| byte(i) as i64 - 3).collect()).unwrap())
        }
        Value::Bool(_) => {
            Value::from(ndarray::ArrayD::from_shape_vec(dims, (0..n).map(|i| byte(i) & 1 == 1).collect()).unwrap())
        }
        Value::String(_) => {
            Value::from(ndarray::ArrayD::from_shape_vec(dims, (0..n).map(|i| vec![byte(i)]).collect()).unwrap())
        }
    }
}

/// Initialises the variables, then runs every op (fetching its outputs, or as a target) with
/// every placeholder fed; unknown dimensions take sizes 0 to 3 from `bytes`.
pub fn run_all(g: &Graph, bytes: &[u8]) {
    if !small(g) {
        return;
    }
    let Ok(sess) = Session::new(g) else { return };
    if let Ok(init) = g.global_variables_initializer() {
        let _ = sess.run(&init, &[]);
    }
    let mut feeds: Vec<(Tensor, Value)> = Vec::new();
    for (k, op) in g.operations().into_iter().enumerate() {
        if let Op::Placeholder { dtype, shape } = op.op() {
            let dims: Vec<usize> = shape
                .dims()
                .iter()
                .enumerate()
                .map(|(i, d)| d.unwrap_or(bytes.get(k + i).map_or(1, |b| (b % 4) as usize)))
                .collect();
            if let Ok(t) = op.output(0) {
                feeds.push((t, value(dtype, &dims, bytes)));
            }
        }
    }
    let feed_refs: Vec<(&Tensor, tensorgraph::Feed)> = feeds.iter().map(|(t, v)| (t, v.into())).collect();
    for op in g.operations().into_iter().take(256) {
        let outputs: Vec<Tensor> = (0..op.num_outputs()).filter_map(|i| op.output(i).ok()).collect();
        let fetches: Vec<&Tensor> = outputs.iter().collect();
        let _ = sess.run_with(&fetches, &[&op], &feed_refs);
    }
}
