//! Helpers shared by the integration tests.
#![allow(dead_code)]

use tensorgraph::prelude::*;

/// The op types of every graph a test ran through [`run1`] or [`record`] (for the op table's
/// forward-coverage test).
pub static RAN: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Notes every op type of `g` as run by a forward test.
pub fn record(g: &Graph) {
    RAN.lock().unwrap().extend(g.operations().iter().map(|o| o.op_type()));
}

/// Runs one fetch.
pub fn run1(g: &Graph, t: &Tensor, feeds: &[(&Tensor, Feed)]) -> Value {
    record(g);
    let sess = Session::new(g).expect("session");
    sess.run(&[t], feeds).expect("run").remove(0)
}

/// The elements of a value as f64, with its shape.
pub fn flat(v: &Value) -> (Vec<usize>, Vec<f64>) {
    (v.shape().to_vec(), v.to_f64_vec())
}

/// Asserts shape and values (within 1e-6 relative).
pub fn assert_close(v: &Value, shape: &[usize], want: &[f64]) {
    let (s, got) = flat(v);
    assert_eq!(s, shape, "shape");
    assert_eq!(got.len(), want.len(), "length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let tol = 1e-6 * b.abs().max(1.0);
        assert!((a - b).abs() <= tol || (a.is_nan() && b.is_nan()), "element {i}: got {a}, want {b} (all: {got:?})");
    }
}
