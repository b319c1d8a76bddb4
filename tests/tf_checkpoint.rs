//! TF's V2 checkpoint format both ways, on a checkpoint real TensorFlow wrote
//! (tests/fixtures/tf/make_checkpoint_fixture.py): listed and restored with TF's values, and
//! written back byte for byte as TF writes it.

mod common;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use tensorgraph::io::{latest_checkpoint, list_variables, Saver};
use tensorgraph::prelude::*;

const FIXTURE: &str = "tests/fixtures/tf/checkpoint";

#[derive(Deserialize)]
struct Expected {
    dtype: String,
    shape: Vec<usize>,
    values: Vec<serde_json::Value>,
}

fn expected() -> BTreeMap<String, Expected> {
    serde_json::from_str(&std::fs::read_to_string("tests/fixtures/tf/checkpoint.json").unwrap()).unwrap()
}

fn dtype(numpy: &str) -> DType {
    match numpy {
        "float32" => DType::F32,
        "float64" => DType::F64,
        "int32" => DType::I32,
        "int64" => DType::I64,
        "bool" => DType::Bool,
        other => panic!("fixture dtype {other}"),
    }
}

/// The expected tensor as a Value.
fn value(e: &Expected) -> Value {
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or_else(|| f64::from(u8::from(v.as_bool().unwrap())));
    let shape = ndarray::IxDyn(&e.shape);
    match dtype(&e.dtype) {
        DType::F32 => {
            Value::from(ndarray::ArrayD::from_shape_vec(shape, e.values.iter().map(|v| f(v) as f32).collect()).unwrap())
        }
        DType::F64 => Value::from(ndarray::ArrayD::from_shape_vec(shape, e.values.iter().map(f).collect()).unwrap()),
        DType::I32 => Value::from(
            ndarray::ArrayD::from_shape_vec(shape, e.values.iter().map(|v| v.as_i64().unwrap() as i32).collect())
                .unwrap(),
        ),
        DType::I64 => Value::from(
            ndarray::ArrayD::from_shape_vec(shape, e.values.iter().map(|v| v.as_i64().unwrap()).collect()).unwrap(),
        ),
        DType::Bool => Value::from(
            ndarray::ArrayD::from_shape_vec(shape, e.values.iter().map(|v| v.as_bool().unwrap()).collect()).unwrap(),
        ),
        DType::String => panic!("the fixture holds no strings"),
    }
}

/// A graph with one variable per expected tensor (zeros), and a session with them initialized.
fn graph_of(exp: &BTreeMap<String, Expected>) -> (Graph, Session, Vec<Variable>) {
    let g = Graph::new();
    let vars: Vec<Variable> = exp
        .iter()
        .map(|(name, e)| {
            let zeros = Value::filled(dtype(&e.dtype), &e.shape, 0.0);
            g.variable(&g.constant(zeros).unwrap(), name, true).unwrap()
        })
        .collect();
    let sess = Session::new(&g).unwrap();
    sess.run(&g.global_variables_initializer().unwrap(), &[]).unwrap();
    (g, sess, vars)
}

fn tmp(name: &str) -> common::Scratch {
    common::scratch(&format!("tfckpt-{name}"))
}

#[test]
fn a_tensorflow_checkpoint_lists_and_restores_with_its_values() {
    let exp = expected();
    let prefix = latest_checkpoint(FIXTURE).unwrap();
    assert_eq!(prefix, Path::new(FIXTURE).join("model.ckpt-3"));
    let listed = list_variables(&prefix).unwrap();
    assert_eq!(listed.len(), exp.len());
    for info in &listed {
        let e = &exp[&info.name];
        assert_eq!((info.dtype.clone(), info.shape.clone()), (Ok(dtype(&e.dtype)), e.shape.clone()), "{}", info.name);
    }
    let (_g, sess, vars) = graph_of(&exp);
    assert_eq!(Saver::with_vars(&vars).restore(&sess, &prefix).unwrap(), Some(3));
    for v in &vars {
        let got = sess.variable_value(v).unwrap().unwrap();
        assert_eq!(got, value(&exp[&v.name()]), "{}", v.name());
    }
}

#[test]
fn tensorgraph_writes_the_checkpoint_tensorflow_wrote_byte_for_byte() {
    let exp = expected();
    let (g, sess, vars) = graph_of(&exp);
    for v in &vars {
        sess.set_variable_value(v, value(&exp[&v.name()])).unwrap();
    }
    let dir = tmp("bytes");
    let prefix = Saver::new(&g).save(&sess, dir.join("model.ckpt"), Some(3)).unwrap();
    for suffix in [".index", ".data-00000-of-00001"] {
        let ours = std::fs::read(format!("{}{suffix}", prefix.display())).unwrap();
        let theirs = std::fs::read(format!("{FIXTURE}/model.ckpt-3{suffix}")).unwrap();
        assert!(ours == theirs, "{suffix} differs from TF's ({} vs {} bytes)", ours.len(), theirs.len());
    }
    let state = std::fs::read_to_string(dir.join("checkpoint")).unwrap();
    assert_eq!(state, std::fs::read_to_string(format!("{FIXTURE}/checkpoint")).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damaged_checkpoints_name_the_file_and_the_tensor() {
    let exp = expected();
    let (_g, sess, vars) = graph_of(&exp);
    let dir = tmp("damaged");
    std::fs::create_dir_all(&dir).unwrap();
    for suffix in [".index", ".data-00000-of-00001"] {
        std::fs::copy(format!("{FIXTURE}/model.ckpt-3{suffix}"), dir.join(format!("m{suffix}"))).unwrap();
    }
    let prefix = dir.join("m");
    // A flipped bit in a tensor's bytes: its CRC names it; nothing is restored.
    let data = dir.join("m.data-00000-of-00001");
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&data, &bytes).unwrap();
    let e = Saver::with_vars(&vars).restore(&sess, &prefix).unwrap_err().to_string();
    assert!(e.contains("CRC") && e.contains("m.data-00000-of-00001"), "{e}");
    assert!(sess.variable_value(&vars[0]).unwrap().unwrap().to_f64_vec().iter().all(|&x| x == 0.0));
    // A truncated index, a missing data file: errors naming the file.
    let index = dir.join("m.index");
    let full = std::fs::read(&index).unwrap();
    std::fs::write(&index, &full[..full.len() - 10]).unwrap();
    let e = list_variables(&prefix).unwrap_err().to_string();
    assert!(e.contains("m.index") && e.contains("magic"), "{e}");
    std::fs::write(&index, &full).unwrap();
    std::fs::remove_file(&data).unwrap();
    let e = Saver::with_vars(&vars).restore(&sess, &prefix).unwrap_err().to_string();
    assert!(e.contains("m.data-00000-of-00001"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
