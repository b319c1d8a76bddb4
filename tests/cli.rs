//! The `tensorgraph` command line: inspect, convert (freeze) and run, on files a program here
//! wrote, with `.npy` feeds and results.

mod common;

use std::path::Path;
use std::process::Command;
use tensorgraph::io::{export_meta_graph, npy, Saver};
use tensorgraph::prelude::*;

fn tmp(name: &str) -> common::Scratch {
    common::scratch(&format!("cli-{name}"))
}

/// Runs the binary; returns (success, stdout, stderr).
fn cli(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tensorgraph")).args(args.iter().map(|a| a.as_ref())).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// A dense layer over a named input, trained nowhere: its variables get set values.
fn model(dir: &Path) -> (Graph, Session, Tensor, Tensor) {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(3)]).named("X").unwrap();
    let logits = g.name_scope("dnn", || layers::dense(&x, 2, Some(nn::relu), "out")).unwrap();
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    export_meta_graph(&g, dir.join("model.meta")).unwrap();
    Saver::new(&g).save(&sess, dir.join("model"), Some(4)).unwrap();
    (g, sess, x, logits)
}

#[test]
fn convert_then_run_gives_the_sessions_values() {
    let dir = tmp("run");
    let (_g, sess, x, logits) = model(&dir);
    let xv = Value::from(ndarray::Array2::from_shape_fn((5, 3), |(i, j)| (i as f32 - j as f32) * 0.5).into_dyn());
    let want = sess.run(&[&logits], &[(&x, (&xv).into())]).unwrap().remove(0);
    npy::write_npy(dir.join("x.npy"), &xv).unwrap();

    let (ok, out, err) = cli(&[
        &"convert",
        &dir.join("model.meta"),
        &dir.join("m.pb"),
        &"--checkpoint",
        &dir.join("model-4"),
        &"--outputs",
        &logits.op_name(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("wrote"), "{out}");
    let feed = format!("X={}", dir.join("x.npy").display());
    let (ok, out, err) =
        cli(&[&"run", &dir.join("m.pb"), &"--feed", &feed, &"--fetch", &logits.name(), &"--out", &dir.as_os_str()]);
    assert!(ok, "{err}");
    let file = dir.join(format!("{}.npy", logits.name().replace(['/', ':'], "_")));
    assert!(out.contains(&file.display().to_string()), "{out}");
    assert_eq!(npy::read_npy(&file).unwrap(), want);
    // A frozen GraphDef back to a .meta, and run from there.
    let (ok, _, err) = cli(&[&"convert", &dir.join("m.pb"), &dir.join("m2.meta")]);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&[
        &"run",
        &dir.join("m2.meta"),
        &"--feed",
        &feed,
        &"--fetch",
        &logits.name(),
        &"--out",
        &dir.join("via_meta"),
    ]);
    assert!(ok, "{err}");
    assert_eq!(npy::read_npy(dir.join("via_meta").join(file.file_name().unwrap())).unwrap(), want);
    // The same through the graph file and the checkpoint, unfrozen.
    let (ok, _, err) = cli(&[
        &"run",
        &dir.join("model.meta"),
        &"--checkpoint",
        &dir.join("model-4"),
        &"--feed",
        &feed,
        &"--fetch",
        &logits.name(),
        &"--out",
        &dir.join("unfrozen"),
    ]);
    assert!(ok, "{err}");
    assert_eq!(npy::read_npy(dir.join("unfrozen").join(file.file_name().unwrap())).unwrap(), want);
}

#[test]
fn inspect_lists_checkpoints_and_graphs() {
    let dir = tmp("inspect");
    model(&dir);
    let (ok, out, err) = cli(&[&"inspect", &dir.join("model-4")]);
    assert!(ok, "{err}");
    assert!(out.contains("out/kernel") && out.contains("[3,2]") && out.contains("8 values in all"), "{out}");
    let (ok, out, err) = cli(&[&"inspect", &dir.join("model-4.index")]);
    assert!(ok && out.contains("out/bias"), "{err}");
    let (ok, out, err) = cli(&[&"inspect", &dir.join("model.meta")]);
    assert!(ok, "{err}");
    assert!(out.contains("X:0") && out.contains("MatMul") && out.contains("8 parameters"), "{out}");
}

#[test]
fn mistakes_are_errors_that_say_what_is_wrong() {
    let dir = tmp("errors");
    model(&dir);
    let (ok, _, err) = cli(&[&"run", &dir.join("model.meta"), &"--feed", &"X", &"--fetch", &"X"]);
    assert!(!ok && err.contains("NAME=FILE.npy"), "{err}");
    let (ok, _, err) = cli(&[&"convert", &dir.join("model.meta"), &dir.join("m.onnx")]);
    assert!(!ok && err.contains("--outputs"), "{err}");
    let (ok, _, err) = cli(&[&"convert", &dir.join("model.meta"), &dir.join("m.txt")]);
    assert!(!ok && err.contains(".onnx"), "{err}");
    let (ok, _, err) = cli(&[&"inspect", &dir.join("nothing.pb")]);
    assert!(!ok && err.contains("nothing.pb"), "{err}");
    std::fs::write(dir.join("bad.npy"), b"not numpy").unwrap();
    let feed = format!("X={}", dir.join("bad.npy").display());
    let (ok, _, err) = cli(&[&"run", &dir.join("model.meta"), &"--feed", &feed, &"--fetch", &"X"]);
    assert!(!ok && err.contains("bad.npy") && err.contains(".npy"), "{err}");
    let (ok, _, err) = cli(&[&"run", &dir.join("model.meta"), &"--fetch", &"nope:0"]);
    assert!(!ok && err.contains("nope"), "{err}");
}

/// `.npy` files numpy wrote (every dtype here, Fortran order too) read as numpy reads them;
/// a forged header (found by the fuzzer: it declared a 3.6 GB header) is an error, not an
/// allocation; values round-trip.
#[test]
fn npy_files_read_as_numpy_wrote_them() {
    let read = |f: &str| npy::read_npy(format!("tests/fixtures/tf/{f}")).unwrap();
    assert_eq!(read("npy_f64_fortran.npy"), Value::from(ndarray::array![[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]].into_dyn()));
    assert_eq!(read("npy_i32.npy"), Value::from(ndarray::array![[1i32, -2], [3, 4]].into_dyn()));
    assert_eq!(read("npy_bool.npy"), Value::from(ndarray::array![true, false, true].into_dyn()));
    let forged = std::fs::read("tests/fixtures/fuzz/npy-oom-1").unwrap();
    let e = npy::read_npy_bytes(&forged, Path::new("forged.npy")).unwrap_err().to_string();
    assert!(e.contains("forged.npy") && e.contains("header"), "{e}");
    // A shape larger than the data that follows.
    let mut big = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 1000), }";
    big.extend_from_slice(&(header.len() as u16).to_le_bytes());
    big.extend_from_slice(header.as_bytes());
    let e = npy::read_npy_bytes(&big, Path::new("big.npy")).unwrap_err().to_string();
    assert!(e.contains("holds more than"), "{e}");
    let dir = tmp("npy");
    let v = Value::from(ndarray::array![[1.5f32, -2.0]].into_dyn());
    npy::write_npy(dir.join("v.npy"), &v).unwrap();
    assert_eq!(npy::read_npy(dir.join("v.npy")).unwrap(), v);
}
