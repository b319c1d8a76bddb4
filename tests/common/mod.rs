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

/// A fresh directory for a test's files, removed with its contents when dropped (the tests
/// used to leave ~80 MB of checkpoints and graphs in the temp directory on every run). Derefs
/// to its path.
pub struct Scratch(tempfile::TempDir);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl AsRef<std::path::Path> for Scratch {
    fn as_ref(&self) -> &std::path::Path {
        self.0.path()
    }
}

/// A [`Scratch`] directory named `tg-<name>-<random>` in the system's temp directory.
pub fn scratch(name: &str) -> Scratch {
    Scratch(tempfile::Builder::new().prefix(&format!("tg-{name}-")).tempdir().expect("a temp directory"))
}
