//! Checkpoints of variable values, as TF1's `tf.train.Saver`.

use super::container;
use crate::{Error, Graph, Result, Session, Value, Variable};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const FORMAT: container::Format = container::Format { magic: b"TGCKPT\0\x01", version: 1, what: "checkpoint" };
/// The index file naming the kept checkpoints, newest last (TF's `checkpoint` file).
const INDEX: &str = "checkpoint";

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    global_step: Option<u64>,
    tensors: Vec<(String, Value)>,
}

/// Saves and restores variables by name: every global variable, optimizer slots included.
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::io::Saver;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let w = g.variable(&g.scalar(2.5, DType::F32)?, "w", true)?;
/// let mut sess = Session::new(&g)?;
/// sess.run_targets(&[&g.global_variables_initializer()?], &[])?;
/// let dir = std::env::temp_dir().join(format!("tg-saver-doc-{}", std::process::id()));
/// let path = Saver::new(&g).save(&sess, dir.join("model"), Some(7))?;
/// assert!(path.ends_with("model-7.tgckpt"));
/// let fresh = Session::new(&g)?;
/// Saver::new(&g).restore(&fresh, &path)?;
/// assert_eq!(fresh.run(&[&w], &[])?[0].scalar_f64(), Some(2.5));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Saver {
    vars: Vec<Variable>,
    max_to_keep: usize,
}

impl Saver {
    /// A saver of every global variable of `g` (as they are now), keeping the last 5 files.
    pub fn new(g: &Graph) -> Saver {
        Saver { vars: g.global_variables(), max_to_keep: 5 }
    }

    /// A saver of `vars` only.
    pub fn with_vars(vars: &[Variable]) -> Saver {
        Saver { vars: vars.to_vec(), max_to_keep: 5 }
    }

    /// How many checkpoints [`Saver::save`] keeps in a directory (older ones are deleted); 0 keeps all.
    pub fn max_to_keep(mut self, n: usize) -> Saver {
        self.max_to_keep = n;
        self
    }

    /// Writes the variables to `<prefix>-<step>.tgckpt` (or `<prefix>.tgckpt`) atomically, records
    /// it in the directory's `checkpoint` index and prunes this prefix's old checkpoints beyond
    /// `max_to_keep`. Returns the path.
    ///
    /// What can be lost to a crash, a kill or a full disk at any point: nothing the index names.
    /// The order is: the new file written, synced and renamed into place; the index rewritten the
    /// same way; only then old files deleted. Only files this saver writes (`<prefix>-N.tgckpt`,
    /// `<prefix>.tgckpt`, in the prefix's directory) are ever deleted, whatever else the index
    /// names; temporary files of killed saves are removed by the next save.
    pub fn save(&self, sess: &Session, prefix: impl AsRef<Path>, global_step: Option<u64>) -> Result<PathBuf> {
        let prefix = prefix.as_ref();
        let mut tensors = Vec::with_capacity(self.vars.len());
        for v in &self.vars {
            let value = sess
                .variable_value(v)?
                .ok_or_else(|| Error::UninitializedVariable { node: v.var_ref().op().info() })?;
            tensors.push((v.name(), value));
        }
        // A prefix ending in a separator names a directory (files `-N.tgckpt` inside, as TF).
        let (dir, base) = match prefix.file_name() {
            Some(b) if !prefix.as_os_str().to_string_lossy().ends_with(std::path::MAIN_SEPARATOR) => {
                (super::parent_dir(prefix), b.to_string_lossy().into_owned())
            }
            _ => (prefix, String::new()),
        };
        let file = match global_step {
            Some(s) => format!("{base}-{s}.tgckpt"),
            None => format!("{base}.tgckpt"),
        };
        let ours = |name: &str| is_checkpoint_of(&base, name);
        super::remove_stale_temporaries(dir, |target| target == INDEX || ours(target));
        let path = dir.join(&file);
        container::write(&path, &FORMAT, &Checkpoint { global_step, tensors })?;

        let mut index: Vec<String> = read_index(dir)?.into_iter().filter(|n| *n != file).collect();
        index.push(file);
        let mine: Vec<usize> = (0..index.len()).filter(|&i| ours(&index[i])).collect();
        let pruned: Vec<String> = match self.max_to_keep {
            0 => vec![],
            keep => mine.iter().take(mine.len().saturating_sub(keep)).map(|&i| index[i].clone()).collect(),
        };
        index.retain(|n| !pruned.contains(n));
        let text: String = index.iter().map(|n| format!("{n}\n")).collect();
        super::write_atomic(&dir.join(INDEX), text.as_bytes())?;
        for old in pruned {
            let _ = std::fs::remove_file(dir.join(old));
        }
        Ok(path)
    }

    /// Loads every variable of this saver from `path`. Missing variables and shape or dtype
    /// mismatches are reported all at once, naming each; nothing is changed then.
    pub fn restore(&self, sess: &Session, path: impl AsRef<Path>) -> Result<Option<u64>> {
        let path = path.as_ref();
        if let Some(v) = self.vars.iter().find(|v| !v.var_ref().graph().same(sess.graph())) {
            return Err(Error::ForeignTensor { name: v.name() });
        }
        let ckpt: Checkpoint = container::read(path, &FORMAT)?;
        let mut problems = Vec::new();
        let mut found = Vec::with_capacity(self.vars.len());
        for v in &self.vars {
            let name = v.name();
            match ckpt.tensors.iter().find(|(n, _)| *n == name) {
                None => problems.push(format!("{name} is missing")),
                Some((_, value)) => {
                    let spec = v.var_ref().spec();
                    if value.dtype() != spec.dtype || !spec.shape.is_compatible_with(value.shape()) {
                        problems.push(format!(
                            "{name} is {} {} in the file but {} {} in the graph",
                            value.dtype(),
                            crate::fmt_dims(value.shape()),
                            spec.dtype,
                            spec.shape
                        ));
                    } else {
                        found.push((v, value));
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(Error::BadFile { path: path.display().to_string(), detail: problems.join("; ") });
        }
        for (v, value) in found {
            sess.set_variable_value(v, value.clone())?;
        }
        Ok(ckpt.global_step)
    }
}

/// Names, dtypes and shapes of the tensors in a checkpoint's bytes, as `tf.train.list_variables`
/// (`path` only names the file in errors).
pub fn list_variables(bytes: &[u8], path: &Path) -> Result<Vec<(String, crate::DType, Vec<usize>)>> {
    let ckpt: Checkpoint = container::decode(bytes, &FORMAT, path)?;
    Ok(ckpt.tensors.iter().map(|(n, v)| (n.clone(), v.dtype(), v.shape().to_vec())).collect())
}

/// Whether `name` is a file that a saver with prefix file name `base` writes: `base.tgckpt` or
/// `base-<digits>.tgckpt` (a plain name: never a path).
fn is_checkpoint_of(base: &str, name: &str) -> bool {
    match name.strip_prefix(base).and_then(|r| r.strip_suffix(".tgckpt")) {
        Some("") => true,
        Some(r) => r.strip_prefix('-').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

/// The entries of `dir`'s index, oldest first (none if there is no index yet).
fn read_index(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join(INDEX);
    if !path.exists() {
        return Ok(vec![]);
    }
    // A damaged index must not stop the save that replaces it: its lines are kept as read (a
    // garbled one names no file of ours, so nothing is deleted for it).
    let text = String::from_utf8_lossy(&super::read_file(&path)?).into_owned();
    Ok(text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect())
}

/// The newest checkpoint recorded in `dir`'s index, as `tf.train.latest_checkpoint`.
pub fn latest_checkpoint(dir: impl AsRef<Path>) -> Option<PathBuf> {
    let dir = dir.as_ref();
    read_index(dir).ok()?.pop().map(|n| dir.join(n))
}
