//! Files in the ecosystem's formats: TF checkpoints (`tf.train.Saver`'s V2 format), TF
//! GraphDefs and MetaGraphDefs, numpy's `.npy`; and the two file primitives every reader and
//! writer here goes through.

pub mod bundle;
pub mod checkpoint;
pub mod graph_def;
pub mod meta_graph;
pub mod npy;
pub mod onnx;
mod sstable;

pub use bundle::TensorInfo;
pub use checkpoint::{latest_checkpoint, list_variables, Saver};
pub use meta_graph::{export_meta_graph, export_meta_graph_with, import_meta_graph, read_meta_graph, Signature};

use crate::{Error, Result};
use std::io::{Read, Write};
use std::path::Path;

/// Largest file any reader here accepts: 16 GiB, far above any model or data set it reads.
const MAX_FILE: u64 = 16 << 30;

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

/// The bytes of the regular file at `path`. A FIFO, a device (`/dev/zero`) or a directory is an
/// error before it is opened (opening a FIFO would block; a device may never end), and so is a
/// file larger than 16 GiB; a file that grows while read is cut at its size when opened.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let bad = |detail: String| Error::BadFile { path: path.display().to_string(), detail };
    let meta = std::fs::metadata(path).map_err(io_error(path))?;
    if !meta.is_file() {
        return Err(bad("not a regular file (a directory, FIFO or device cannot be read as data)".into()));
    }
    if meta.len() > MAX_FILE {
        return Err(bad(format!("{} bytes, larger than the {MAX_FILE}-byte limit", meta.len())));
    }
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(meta.len()).read_to_end(&mut bytes).map_err(io_error(path))?;
    Ok(bytes)
}

/// Writes `bytes` to `path` so that a crash, a kill or a full disk leaves either the old file
/// or the new one, never a mix: a temporary file `.NAME.tmpPID` in the same directory, fsync,
/// rename over `path`, fsync of the directory (which makes the rename itself durable). On an
/// error the temporary file is removed; one left by a killed process is removed by the next
/// checkpoint save into that directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io_error(&tmp))?;
        f.write_all(bytes).map_err(io_error(&tmp))?;
        f.sync_all().map_err(io_error(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_error(path))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The directory a file path lies in (`.` for a bare name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Makes the directory's entries (a rename, a new file) durable.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Removes the temporary files that [`write_atomic`] calls for `targets` (file names in `dir`)
/// left behind in processes that no longer run (a save killed between write and rename).
/// Temporaries of a live process (a concurrent save) and every other file are left alone.
pub(crate) fn remove_stale_temporaries(dir: &Path, is_target: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((target, pid)) = name.strip_prefix('.').and_then(|n| n.rsplit_once(".tmp")) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if is_target(target) && pid != std::process::id() && !process_alive(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` runs (on Linux, by its `/proc` entry; elsewhere every other process is
/// taken as running, so nothing of a concurrent save is ever removed).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}
