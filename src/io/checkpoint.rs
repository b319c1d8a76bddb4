//! Checkpoints of variable values, as TF1's `tf.train.Saver`, in TF's own V2 format (see
//! [`super::bundle`]) with TF's `checkpoint` state file, so TensorFlow reads what tensorgraph
//! saves and the other way round.

use super::bundle;
use crate::{Error, Graph, Result, Session, Variable};
use std::path::{Path, PathBuf};

/// The state file naming the kept checkpoints, newest last (TF's `CheckpointState`, as text).
const STATE: &str = "checkpoint";

/// Saves and restores variables by name: every global variable, optimizer slots included, as
/// `tf.compat.v1.train.Saver` does and in its files (`PREFIX.index`, `PREFIX.data-00000-of-00001`,
/// the `checkpoint` state file), so `tf.train.load_checkpoint` and TF's `Saver.restore` read
/// them, and this restores checkpoints TF wrote.
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::io::Saver;
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let w = g.variable(&g.scalar(2.5, DType::F32)?, "w", true)?;
/// let mut sess = Session::new(&g)?;
/// sess.run(&g.global_variables_initializer()?, &[])?;
/// let dir = std::env::temp_dir().join(format!("tg-saver-doc-{}", std::process::id()));
/// let prefix = Saver::new(&g).save(&sess, dir.join("model.ckpt"), Some(7))?;
/// assert!(prefix.ends_with("model.ckpt-7"));
/// assert!(dir.join("model.ckpt-7.index").exists() && dir.join("model.ckpt-7.data-00000-of-00001").exists());
/// let fresh = Session::new(&g)?;
/// Saver::new(&g).restore(&fresh, &prefix)?;
/// let w_val: f32 = fresh.run(&w, &[])?.try_into()?;
/// assert_eq!(w_val, 2.5);
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

    /// Writes the variables as checkpoint `<prefix>-<step>` (or `<prefix>`), records it in the
    /// directory's `checkpoint` state file and deletes this prefix's checkpoints beyond
    /// `max_to_keep`. Returns the checkpoint's prefix, as TF's `Saver.save`.
    ///
    /// What can be lost to a crash, a kill or a full disk at any point: nothing the state file
    /// names. The order is: the data file, then the index (each written, synced and renamed
    /// into place); the state file the same way; only then old checkpoints deleted. Only this
    /// saver's own files (`<prefix>-N.index`, `<prefix>-N.data-*`, in the prefix's directory) are
    /// ever deleted, whatever else the state file names; temporary files of killed saves are
    /// removed by the next save.
    pub fn save(&self, sess: &Session, prefix: impl AsRef<Path>, global_step: Option<u64>) -> Result<PathBuf> {
        let prefix = prefix.as_ref();
        let mut tensors = Vec::with_capacity(self.vars.len());
        for v in &self.vars {
            let value = sess
                .variable_value(v)?
                .ok_or_else(|| Error::UninitializedVariable { node: v.var_ref().op().info() })?;
            tensors.push((v.name(), value));
        }
        // A prefix ending in a separator names a directory (checkpoints `-N` inside, as TF).
        let (dir, base) = match prefix.file_name() {
            Some(b) if !prefix.as_os_str().to_string_lossy().ends_with(std::path::MAIN_SEPARATOR) => {
                (super::parent_dir(prefix), b.to_string_lossy().into_owned())
            }
            _ => (prefix, String::new()),
        };
        let name = match global_step {
            Some(s) => format!("{base}-{s}"),
            None => base.clone(),
        };
        let ours = |name: &str| is_checkpoint_of(&base, name);
        super::remove_stale_temporaries(dir, |target| target == STATE || checkpoint_of_file(target).is_some_and(ours));
        let path = dir.join(&name);
        bundle::write(&path, &tensors)?;

        let mut state: Vec<String> = read_state(dir)?.into_iter().filter(|n| *n != name).collect();
        state.push(name);
        let mine: Vec<usize> = (0..state.len()).filter(|&i| ours(&state[i])).collect();
        let pruned: Vec<String> = match self.max_to_keep {
            0 => vec![],
            keep => mine.iter().take(mine.len().saturating_sub(keep)).map(|&i| state[i].clone()).collect(),
        };
        state.retain(|n| !pruned.contains(n));
        super::write_atomic(&dir.join(STATE), state_text(&state).as_bytes())?;
        for old in pruned {
            let old = dir.join(old);
            let _ = std::fs::remove_file(bundle::index_path(&old));
            let _ = std::fs::remove_file(bundle::data_path(&old, 0, 1));
        }
        Ok(path)
    }

    /// Loads every variable of this saver from checkpoint `path` (a prefix such as
    /// `model.ckpt-7`, written by this or by TF). Returns the global step its name ends in. Missing variables and shape or dtype
    /// mismatches are reported all at once, naming each; nothing is changed then.
    pub fn restore(&self, sess: &Session, path: impl AsRef<Path>) -> Result<Option<u64>> {
        let path = path.as_ref();
        if let Some(v) = self.vars.iter().find(|v| !v.var_ref().graph().same(sess.graph())) {
            return Err(Error::ForeignTensor { name: v.name() });
        }
        if path.extension().is_some_and(|e| e == "tgckpt") {
            return Err(Error::BadFile {
                path: path.display().to_string(),
                detail: "a checkpoint of tensorgraph's former format (.tgckpt, before checkpoints were \
                         TF's); restore it with tensorgraph 0.1 and save it again"
                    .into(),
            });
        }
        let names: Vec<String> = self.vars.iter().map(Variable::name).collect();
        let tensors = bundle::read(path, |n| names.iter().any(|m| m == n))?;
        let global_step = path.file_name().and_then(|n| n.to_str()?.rsplit_once('-')?.1.parse().ok());
        let mut problems = Vec::new();
        let mut found = Vec::with_capacity(self.vars.len());
        for v in &self.vars {
            let name = v.name();
            match tensors.iter().find(|(n, _)| *n == name) {
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
        Ok(global_step)
    }
}

/// Names, dtypes and shapes of the tensors in checkpoint `prefix`, as `tf.train.list_variables`.
pub fn list_variables(prefix: impl AsRef<Path>) -> Result<Vec<bundle::TensorInfo>> {
    bundle::list(prefix.as_ref())
}

/// Whether `name` is a checkpoint that a saver with prefix file name `base` writes: `base` or
/// `base-<digits>` (a plain name: never a path).
fn is_checkpoint_of(base: &str, name: &str) -> bool {
    match name.strip_prefix(base) {
        Some("") => true,
        Some(r) => r.strip_prefix('-').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

/// The checkpoint a file of one belongs to: `model-7` for `model-7.index` or
/// `model-7.data-00000-of-00001`.
fn checkpoint_of_file(file: &str) -> Option<&str> {
    file.strip_suffix(".index").or_else(|| Some(file.rsplit_once(".data-")?.0))
}

/// The state file's text: TF's `CheckpointState` in protobuf text format.
fn state_text(checkpoints: &[String]) -> String {
    let mut text = String::new();
    if let Some(last) = checkpoints.last() {
        text += &format!("model_checkpoint_path: {}\n", quote(last));
    }
    for c in checkpoints {
        text += &format!("all_model_checkpoint_paths: {}\n", quote(c));
    }
    text
}

/// A protobuf text-format string literal.
fn quote(s: &str) -> String {
    let mut q = String::from('"');
    for b in s.bytes() {
        match b {
            b'"' => q += "\\\"",
            b'\\' => q += "\\\\",
            b'\n' => q += "\\n",
            0x20..=0x7e => q.push(b as char),
            _ => q += &format!("\\{b:03o}"),
        }
    }
    q.push('"');
    q
}

/// The text of a protobuf text-format string literal (`None` if it is not one).
fn unquote(s: &str) -> Option<String> {
    let b = s.strip_prefix('"')?.strip_suffix('"')?.as_bytes();
    let octal = |d: &&u8| (b'0'..=b'7').contains(*d);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let n = b[i..].iter().take(3).take_while(octal).count();
        if n > 0 {
            let v = b[i..i + n].iter().fold(0u32, |a, d| a * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(v).ok()?);
            i += n;
            continue;
        }
        let esc = *b.get(i)?;
        i += 1;
        out.push(match esc {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            other => other,
        });
    }
    String::from_utf8(out).ok()
}

/// The checkpoints the state file of `dir` lists, oldest first, newest (`model_checkpoint_path`)
/// last; none if there is no state file yet.
fn read_state(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join(STATE);
    if !path.exists() {
        return Ok(vec![]);
    }
    // A damaged state file must not stop the save that replaces it: lines that do not parse
    // are skipped (they name no file of ours, so nothing is deleted for them).
    let text = String::from_utf8_lossy(&super::read_file(&path)?).into_owned();
    let (mut all, mut newest) = (Vec::new(), None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let Some(value) = unquote(value.trim()) else { continue };
        match key.trim() {
            "model_checkpoint_path" => newest = Some(value),
            "all_model_checkpoint_paths" => all.push(value),
            _ => {}
        }
    }
    if let Some(n) = newest {
        all.retain(|a| *a != n);
        all.push(n);
    }
    Ok(all)
}

/// The newest checkpoint recorded in `dir`'s state file, as `tf.train.latest_checkpoint`.
pub fn latest_checkpoint(dir: impl AsRef<Path>) -> Option<PathBuf> {
    let dir = dir.as_ref();
    read_state(dir).ok()?.pop().map(|n| dir.join(n))
}
