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
/// let mut fresh = Session::new(&g)?;
/// Saver::new(&g).restore(&mut fresh, &path)?;
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
    /// it in the directory's `checkpoint` index and prunes old ones. Returns the path.
    pub fn save(&self, sess: &Session, prefix: impl AsRef<Path>, global_step: Option<u64>) -> Result<PathBuf> {
        let prefix = prefix.as_ref();
        let mut tensors = Vec::with_capacity(self.vars.len());
        for v in &self.vars {
            let value =
                sess.variable_value(v).ok_or_else(|| Error::UninitializedVariable { node: v.var_ref().op().info() })?;
            tensors.push((v.name(), value));
        }
        let file = match global_step {
            Some(s) => format!("{}-{s}.tgckpt", prefix.display()),
            None => format!("{}.tgckpt", prefix.display()),
        };
        let path = PathBuf::from(file);
        container::write(&path, &FORMAT, &Checkpoint { global_step, tensors })?;
        self.update_index(&path)?;
        Ok(path)
    }

    fn update_index(&self, path: &Path) -> Result<()> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut kept: Vec<String> = read_index(dir).into_iter().filter(|n| *n != name).collect();
        kept.push(name);
        if self.max_to_keep > 0 && kept.len() > self.max_to_keep {
            for old in kept.drain(..kept.len() - self.max_to_keep) {
                let _ = std::fs::remove_file(dir.join(old));
            }
        }
        let text: String = kept.iter().map(|n| format!("{n}\n")).collect();
        let index = dir.join(INDEX);
        let tmp = dir.join(format!(".{INDEX}.tmp{}", std::process::id()));
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &index))
            .map_err(|source| Error::Io { path: index.display().to_string(), source })
    }

    /// Loads every variable of this saver from `path`. Missing variables and shape or dtype
    /// mismatches are reported all at once, naming each; nothing is changed then.
    pub fn restore(&self, sess: &mut Session, path: impl AsRef<Path>) -> Result<Option<u64>> {
        let path = path.as_ref();
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

fn read_index(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(INDEX))
        .map(|t| t.lines().filter(|l| !l.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

/// The newest checkpoint recorded in `dir`'s index, as `tf.train.latest_checkpoint`.
pub fn latest_checkpoint(dir: impl AsRef<Path>) -> Option<PathBuf> {
    let dir = dir.as_ref();
    read_index(dir).pop().map(|n| dir.join(n))
}
