//! The IDX reader on the committed fixture, and its error cases on damaged copies.

mod common;

use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::path::Path;
use tensorgraph::data::mnist::{self, read_data_sets_with, Options, FILES};
use tensorgraph::Error;

const FIXTURE: &str = "tests/fixtures/mnist-small";

fn opts(validation_size: usize) -> Options {
    Options { validation_size, seed: Some(3) }
}

#[test]
fn reads_the_fixture_with_tf_splits() {
    let d = read_data_sets_with(FIXTURE, &opts(500)).unwrap();
    assert_eq!((d.train.num_examples(), d.validation.num_examples(), d.test.num_examples()), (1500, 500, 500));
    assert_eq!(d.train.images.shape(), &[1500, 784]);
    // The first training labels of MNIST are 5,0,4,1,9,2,1,3,1,4 (they start the validation split).
    assert_eq!(d.validation.labels.as_slice().unwrap()[..10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert!(d.train.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
    assert!(d.train.images.iter().any(|&p| p == 1.0));
}

#[test]
fn next_batch_covers_each_epoch_once_and_reshuffles() {
    let mut d = read_data_sets_with(FIXTURE, &opts(0)).unwrap().test;
    let mut first_epoch = Vec::new();
    for _ in 0..5 {
        let (x, y) = d.next_batch(100);
        assert_eq!((x.nrows(), y.len()), (100, 100));
        first_epoch.extend(y.iter().copied());
    }
    assert_eq!(d.epochs_completed(), 1);
    let mut all: Vec<i64> = d.labels.to_vec();
    all.sort_unstable();
    first_epoch.sort_unstable();
    assert_eq!(first_epoch, all, "one epoch visits every example exactly once");
    // A batch across the boundary takes the rest of one epoch and the start of the next.
    let (_, y) = d.next_batch(450);
    let (_, y2) = d.next_batch(100);
    assert_eq!((y.len(), y2.len(), d.epochs_completed()), (450, 100, 2));
}

fn damaged(name: &str, edit: impl Fn(&mut Vec<u8>)) -> common::Scratch {
    let dir = common::scratch(&format!("mnist-{name}"));
    for f in FILES {
        std::fs::copy(Path::new(FIXTURE).join(f), dir.join(f)).unwrap();
    }
    let path = dir.join(FILES[1]);
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap()), &mut raw)
        .unwrap();
    edit(&mut raw);
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(&raw).unwrap();
    std::fs::write(&path, enc.finish().unwrap()).unwrap();
    dir
}

fn err_of(dir: &Path) -> String {
    let e = read_data_sets_with(dir, &opts(0)).unwrap_err();
    assert!(matches!(e, Error::BadFile { .. }), "{e:?}");
    e.to_string()
}

#[test]
fn truncated_file_names_the_file() {
    let e = err_of(&damaged("trunc", |raw| raw.truncate(raw.len() - 10)));
    assert!(e.contains("train-labels-idx1-ubyte.gz") && e.contains("header says [2000]"), "{e}");
    let e = err_of(&damaged("tiny", |raw| raw.truncate(5)));
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn wrong_magic_is_an_error() {
    let e = err_of(&damaged("magic", |raw| raw[3] = 3));
    assert!(e.contains("bad magic number 2051 (expected 2049)") || e.contains("bad magic number"), "{e}");
}

#[test]
fn count_mismatch_between_images_and_labels() {
    let e = err_of(&damaged("count", |raw| {
        raw[7] = 0xC8; // 2000 -> 1992 labels claimed ...
        raw[6] = 0x07;
        raw.truncate(8 + 1992);
    }));
    assert!(e.contains("2000 images but train-labels-idx1-ubyte.gz has 1992 labels"), "{e}");
}

#[test]
fn bad_label_and_not_gzip() {
    let e = err_of(&damaged("label", |raw| raw[8] = 42));
    assert!(e.contains("label 42 at index 0 is not a digit"), "{e}");
    let dir = damaged("gzip", |_| {});
    std::fs::write(dir.join(FILES[1]), b"definitely not gzip").unwrap();
    let e = err_of(&dir);
    assert!(e.contains("not a readable gzip file"), "{e}");
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let e = mnist::read_data_sets("/nonexistent/mnist").unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("/nonexistent/mnist/train-images-idx3-ubyte.gz"),
        "{e}"
    );
}

#[test]
fn next_batch_keeps_each_image_with_its_label_in_any_layout() {
    // Row i is all i, label i: every batch row must match its label, whether the images are
    // row-major (row copies) or not (ndarray's select).
    let rows = ndarray::Array2::from_shape_fn((37, 5), |(i, _)| i as f32);
    let column_major = rows.t().as_standard_layout().reversed_axes().to_owned();
    assert!(column_major.as_slice().is_none());
    for images in [rows.clone(), column_major] {
        let mut d = tensorgraph::data::mnist::DataSet::new(images, ndarray::Array1::from_iter(0..37), Some(3));
        for _ in 0..9 {
            let (x, y) = d.next_batch(10);
            for (row, &label) in x.rows().into_iter().zip(&y) {
                assert!(row.iter().all(|&p| p == label as f32), "{row} for label {label}");
            }
        }
    }
}
