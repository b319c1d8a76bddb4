//! MNIST from the four standard IDX gz files, as TF1's
//! `tensorflow.examples.tutorials.mnist.input_data.read_data_sets`.

use crate::{Error, Result};
use flate2::read::GzDecoder;
use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::io::Read;
use std::path::Path;

/// The four file names of the classic distribution.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// Image side length and pixel count.
pub const SIDE: usize = 28;
pub const PIXELS: usize = SIDE * SIDE;

/// How to split and shuffle.
#[derive(Clone, Debug)]
pub struct Options {
    /// Training images held out as the validation set (TF's default: 5000).
    pub validation_size: usize,
    /// Seed for the per-epoch shuffles (`None`: from the OS).
    pub seed: Option<u64>,
}

impl Default for Options {
    fn default() -> Options {
        Options { validation_size: 5000, seed: None }
    }
}

/// Images (`[n, 784]` f32 in [0, 1]) and labels (`[n]` i64) with a shuffling batch cursor.
#[derive(Clone, Debug)]
pub struct DataSet {
    pub images: Array2<f32>,
    pub labels: Array1<i64>,
    order: Vec<usize>,
    index_in_epoch: usize,
    epochs_completed: usize,
    rng: ChaCha8Rng,
}

impl DataSet {
    /// A data set over `images` and `labels` (equal lengths), shuffled with `seed`.
    pub fn new(images: Array2<f32>, labels: Array1<i64>, seed: Option<u64>) -> DataSet {
        let rng = match seed {
            Some(s) => ChaCha8Rng::seed_from_u64(s),
            None => ChaCha8Rng::from_os_rng(),
        };
        let order = (0..images.nrows()).collect();
        DataSet { images, labels, order, index_in_epoch: 0, epochs_completed: 0, rng }
    }

    /// Number of examples.
    pub fn num_examples(&self) -> usize {
        self.labels.len()
    }

    /// Completed passes over the data.
    pub fn epochs_completed(&self) -> usize {
        self.epochs_completed
    }

    /// The next `n` examples, reshuffling at each epoch's start; a batch crossing an epoch
    /// boundary takes the old epoch's rest and the new epoch's start, as TF's `next_batch`.
    pub fn next_batch(&mut self, n: usize) -> (Array2<f32>, Array1<i64>) {
        let total = self.num_examples();
        if total == 0 || n == 0 {
            return (Array2::zeros((0, self.images.ncols())), Array1::zeros(0));
        }
        let mut picked = Vec::with_capacity(n);
        while picked.len() < n {
            if self.index_in_epoch == 0 {
                self.order.shuffle(&mut self.rng);
            }
            let take = (n - picked.len()).min(total - self.index_in_epoch);
            picked.extend_from_slice(&self.order[self.index_in_epoch..self.index_in_epoch + take]);
            self.index_in_epoch += take;
            if self.index_in_epoch == total {
                self.index_in_epoch = 0;
                self.epochs_completed += 1;
            }
        }
        let images = match self.images.as_slice() {
            // Row copies: ndarray's `select` concatenates one-row views (perf: 5% of the MLP
            // example's samples, most of it in ndarray's generic append).
            Some(all) => {
                let cols = self.images.ncols();
                prefetch_rows(all, cols, &picked);
                let mut x = Vec::with_capacity(n * cols);
                for &i in &picked {
                    x.extend_from_slice(&all[i * cols..(i + 1) * cols]);
                }
                Array2::from_shape_vec((n, cols), x).expect("n rows of `cols`")
            }
            None => self.images.select(Axis(0), &picked),
        };
        (images, self.labels.select(Axis(0), &picked))
    }

    /// The examples in their stored order, `n` at a time (the last batch may be shorter), as
    /// views: for evaluating a data set in chunks without copying it.
    ///
    /// ```
    /// use tensorgraph::data::mnist::DataSet;
    /// let set = DataSet::new(ndarray::Array2::zeros((5, 784)), ndarray::Array1::zeros(5), Some(0));
    /// let sizes: Vec<usize> = set.batches(2).map(|(images, labels)| labels.len().min(images.nrows())).collect();
    /// assert_eq!(sizes, [2, 2, 1]);
    /// ```
    pub fn batches(&self, n: usize) -> impl Iterator<Item = (ArrayView2<'_, f32>, ArrayView1<'_, i64>)> {
        (0..self.num_examples()).step_by(n.max(1)).map(move |start| {
            let end = (start + n).min(self.num_examples());
            (self.images.slice(s![start..end, ..]), self.labels.slice(s![start..end]))
        })
    }
}

/// Asks for every picked row at once, so the rows' memory latencies (random rows of a 170 MB
/// array) overlap instead of adding up: next_batch(50) 22 -> 16 µs.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn prefetch_rows(all: &[f32], cols: usize, picked: &[usize]) {
    #[cfg(target_arch = "x86_64")]
    for &i in picked {
        for line in (i * cols..(i + 1) * cols).step_by(16) {
            // SAFETY: a prefetch never faults; `line` indexes `all` (rows of `picked` exist).
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
                _mm_prefetch::<_MM_HINT_T1>(all.as_ptr().add(line).cast());
            }
        }
    }
}

/// Train, validation and test splits.
#[derive(Clone, Debug)]
pub struct Datasets {
    pub train: DataSet,
    pub validation: DataSet,
    pub test: DataSet,
}

/// Reads MNIST from `dir` with TF's defaults (5000 validation images).
pub fn read_data_sets(dir: impl AsRef<Path>) -> Result<Datasets> {
    read_data_sets_with(dir, &Options::default())
}

/// Reads MNIST from `dir`, checking magic numbers, counts and dimensions of every file.
pub fn read_data_sets_with(dir: impl AsRef<Path>, opts: &Options) -> Result<Datasets> {
    let dir = dir.as_ref();
    let train_x = read_images(&dir.join(FILES[0]))?;
    let train_y = read_labels(&dir.join(FILES[1]))?;
    let test_x = read_images(&dir.join(FILES[2]))?;
    let test_y = read_labels(&dir.join(FILES[3]))?;
    for (x, y, files) in [(&train_x, &train_y, (FILES[0], FILES[1])), (&test_x, &test_y, (FILES[2], FILES[3]))] {
        if x.nrows() != y.len() {
            return Err(Error::BadFile {
                path: dir.join(files.0).display().to_string(),
                detail: format!("{} images but {} has {} labels", x.nrows(), files.1, y.len()),
            });
        }
    }
    let v = opts.validation_size;
    if v > train_x.nrows() {
        return Err(Error::BadFile {
            path: dir.join(FILES[0]).display().to_string(),
            detail: format!("validation_size {v} exceeds the {} training images", train_x.nrows()),
        });
    }
    let seed = |k: u64| opts.seed.map(|s| s.wrapping_add(k));
    // The validation rows are copied; the training rows keep the decoded buffer (no copy of the
    // 188 MB of training images).
    let validation = DataSet::new(train_x.slice(s![..v, ..]).to_owned(), train_y.slice(s![..v]).to_owned(), seed(1));
    let train = DataSet::new(train_x.slice_move(s![v.., ..]), train_y.slice_move(s![v..]), seed(0));
    Ok(Datasets { validation, train, test: DataSet::new(test_x, test_y, seed(2)) })
}

fn bad(path: &Path, detail: impl Into<String>) -> Error {
    Error::BadFile { path: path.display().to_string(), detail: detail.into() }
}

/// Decompressed IDX files larger than this are refused (MNIST's largest is 47 MB), so a small
/// gzip bomb cannot exhaust memory.
const MAX_IDX_BYTES: u64 = 1 << 30;

/// Deflate never expands more than this, so a file's decompressed size is at most this many
/// times its compressed size: the bound on what a forged header can make us reserve.
const MAX_DEFLATE_RATIO: usize = 1032;

/// Decompresses gzip `bytes`, checks the IDX header (`magic`, then one big-endian u32 per
/// dimension) and converts the body byte by byte as it streams in, so no decompressed copy of
/// the file is ever held (47 MB for the training images); `path` only names the file in errors.
fn parse_idx<T>(
    bytes: &[u8],
    path: &Path,
    magic: u32,
    ndim: usize,
    convert: impl Fn(u8) -> T,
) -> Result<(Vec<usize>, Vec<T>)> {
    let unreadable = |e: std::io::Error| bad(path, format!("not a readable gzip file: {e}"));
    let mut gz = GzDecoder::new(bytes);
    let header_len = 4 + 4 * ndim;
    let mut header = vec![0u8; header_len];
    let mut got = 0;
    while got < header_len {
        match gz.read(&mut header[got..]).map_err(unreadable)? {
            0 => return Err(bad(path, format!("truncated: {got} bytes, the IDX header alone is {header_len}"))),
            n => got += n,
        }
    }
    let word = |i: usize| u32::from_be_bytes([header[4 * i], header[4 * i + 1], header[4 * i + 2], header[4 * i + 3]]);
    if word(0) != magic {
        return Err(bad(path, format!("bad magic number {} (expected {magic})", word(0))));
    }
    let dims: Vec<usize> = (1..=ndim).map(|i| word(i) as usize).collect();
    let expected = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| n as u64 <= MAX_IDX_BYTES);
    let Some(expected) = expected else {
        return Err(bad(path, format!("header says {dims:?}: decompresses to more than {MAX_IDX_BYTES} bytes")));
    };
    let mut out = Vec::with_capacity(expected.min(bytes.len().saturating_mul(MAX_DEFLATE_RATIO)));
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = gz.read(&mut chunk).map_err(unreadable)?;
        if n == 0 {
            break;
        }
        if out.len() + n > expected {
            return Err(bad(path, format!("header says {dims:?} ({expected} bytes) but the file holds more")));
        }
        out.extend(chunk[..n].iter().map(|&b| convert(b)));
    }
    if out.len() != expected {
        return Err(bad(
            path,
            format!("header says {dims:?} ({expected} bytes) but the file holds {} bytes", out.len()),
        ));
    }
    Ok((dims, out))
}

/// Images as `[n, 784]` f32 scaled to [0, 1].
pub fn read_images(path: &Path) -> Result<Array2<f32>> {
    parse_images(&crate::io::read_file(path)?, path)
}

/// [`read_images`] from the gzip bytes of a file (`path` only names it in errors).
pub fn parse_images(gz: &[u8], path: &Path) -> Result<Array2<f32>> {
    let (dims, pixels) = parse_idx(gz, path, 2051, 3, |b| f32::from(b) / 255.0)?;
    if dims[1] != SIDE || dims[2] != SIDE {
        return Err(bad(path, format!("images are {}x{}, expected {SIDE}x{SIDE}", dims[1], dims[2])));
    }
    Ok(Array2::from_shape_vec((dims[0], PIXELS), pixels).expect("size checked"))
}

/// Labels as i64 digits 0..=9.
pub fn read_labels(path: &Path) -> Result<Array1<i64>> {
    parse_labels(&crate::io::read_file(path)?, path)
}

/// [`read_labels`] from the gzip bytes of a file (`path` only names it in errors).
pub fn parse_labels(gz: &[u8], path: &Path) -> Result<Array1<i64>> {
    let (_, labels) = parse_idx(gz, path, 2049, 1, i64::from)?;
    if let Some(i) = labels.iter().position(|&l| l > 9) {
        return Err(bad(path, format!("label {} at index {i} is not a digit", labels[i])));
    }
    Ok(Array1::from(labels))
}
