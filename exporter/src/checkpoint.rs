//! The agent's checkpoint (`--bpf.checkpoint-file`): with pinned maps
//! ([`crate::dataplane::pins`]), what a restarted or upgraded agent needs to resume the
//! exported counters exactly — each label set's totals and each flow's kernel totals
//! already counted ([`Saved`]). Written after every read cycle (to a temporary file, then
//! renamed, so a reader sees the old or the new one whole); valid only for the flow map it
//! was taken from (its kernel id and the boot), because only that map's totals continue it.
//!
//! A SIGKILL between two writes loses nothing: the next agent measures every flow from the
//! older checkpoint's totals, so it counts the bytes of the cycles after it (which the
//! killed agent exported but did not save) once, as if those cycles had not happened. The
//! one window left is a flow removed from the kernel map in a cycle whose checkpoint was
//! not written: it was idle, so only bytes racing its removal can be lost.
//!
//! Format: postcard (serde), preceded by [`FORMAT`]; a file of another format, boot or map
//! is ignored with a warning and counting continues from the map's current totals.

use std::{
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::{accounting::Saved, attribution::PersistedLabels};

/// Version of the file format; bump on any change to [`Checkpoint`] or what it holds.
pub const FORMAT: u32 = 1;

/// The file's content. `S` is the accounting state: a [`Saved`] read back, or the
/// [`crate::accounting::SavedView`] an agent writes (the same bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint<S = Saved<PersistedLabels>> {
    /// [`FORMAT`] of the writer.
    pub format: u32,
    /// The pinned layout version ([`egressor_common::PIN_LAYOUT_VERSION`]).
    pub layout: u32,
    /// `/proc/sys/kernel/random/boot_id` when written.
    pub boot_id: String,
    /// Kernel id of the flow map the totals were read from.
    pub flow_map_id: u32,
    /// The accounting state.
    pub saved: S,
}

/// A checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading, writing or locking the file failed.
    #[error("--bpf.checkpoint-file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        #[source]
        /// The cause.
        source: io::Error,
    },
    /// Another agent holds the lock.
    #[error(
        "--bpf.checkpoint-file {}: another egressor agent is running with this checkpoint \
         (and so with the same pinned maps); stop it first",
        path.display()
    )]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// The file does not decode.
    #[error("--bpf.checkpoint-file {}: {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
}

/// Writes checkpoints for one agent, holding the lock that keeps a second agent off the same
/// file (and pins) while this one runs.
#[derive(Debug)]
pub struct CheckpointFile {
    path: PathBuf,
    tmp: PathBuf,
    _lock: Flock<File>,
    buffer: Vec<u8>,
    boot_id: String,
}

impl CheckpointFile {
    /// Creates the file's directory and takes the lock (`<file>.lock`, released when the
    /// process exits, however it exits).
    ///
    /// # Errors
    /// [`CheckpointError::Locked`] when another agent holds it; [`CheckpointError::Io`].
    pub fn lock(path: &Path) -> Result<Self, CheckpointError> {
        let io = |source| CheckpointError::Io { path: path.to_owned(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let lock_path = with_suffix(path, ".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io)?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(CheckpointError::Locked { path: path.to_owned() });
            }
            Err((_, errno)) => return Err(io(errno.into())),
        };
        Ok(Self {
            path: path.to_owned(),
            tmp: with_suffix(path, ".tmp"),
            _lock: lock,
            buffer: Vec::new(),
            boot_id: boot_id(),
        })
    }

    /// This boot's id, as checkpoints record it.
    pub fn boot_id(&self) -> &str {
        &self.boot_id
    }

    /// Whether `checkpoint` continues the flow map `flow_map_id` of this boot, and if not,
    /// why.
    pub fn continues(&self, checkpoint: &Checkpoint, flow_map_id: u32) -> Result<(), String> {
        if checkpoint.layout != egressor_common::PIN_LAYOUT_VERSION {
            return Err(format!("it is of pinned layout {}", checkpoint.layout));
        }
        if checkpoint.boot_id != self.boot_id {
            return Err("it was written before the last reboot".into());
        }
        if checkpoint.flow_map_id != flow_map_id {
            return Err(format!(
                "it counts flow map {}, the pinned one is {flow_map_id}",
                checkpoint.flow_map_id
            ));
        }
        Ok(())
    }

    /// Replaces the file with `checkpoint`.
    ///
    /// # Errors
    /// [`CheckpointError::Io`]; the previous file stays as it was.
    pub fn write<S: Serialize>(
        &mut self,
        checkpoint: &Checkpoint<S>,
    ) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io { path: self.path.clone(), source };
        self.buffer.clear();
        let buffer = std::mem::take(&mut self.buffer);
        self.buffer = postcard::to_extend(checkpoint, buffer).map_err(|e| {
            CheckpointError::Invalid { path: self.path.clone(), problem: format!("encoding: {e}") }
        })?;
        let mut file = File::create(&self.tmp).map_err(io)?;
        file.write_all(&self.buffer).map_err(io)?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(io)
    }

    /// The checkpoint in the file, if there is one.
    ///
    /// # Errors
    /// [`CheckpointError::Io`] when it exists but cannot be read, [`CheckpointError::Invalid`]
    /// when it does not decode (another format, a truncated file).
    pub fn read(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        read(&self.path)
    }

    /// Deletes the file (the maps it describes are gone).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// Deletes the lock file too (uninstalling; the lock itself is released on drop).
    pub fn remove_lock(&self) {
        let _ = std::fs::remove_file(with_suffix(&self.path, ".lock"));
    }
}

/// The checkpoint at `path`, if there is one.
///
/// # Errors
/// As [`CheckpointFile::read`].
pub fn read(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CheckpointError::Io { path: path.to_owned(), source }),
    };
    let invalid = |problem: String| CheckpointError::Invalid { path: path.to_owned(), problem };
    let (format, _) = postcard::take_from_bytes::<u32>(&bytes)
        .map_err(|e| invalid(format!("no format version: {e}")))?;
    if format != FORMAT {
        return Err(invalid(format!("format {format}, this agent reads format {FORMAT}")));
    }
    postcard::from_bytes(&bytes).map(Some).map_err(|e| invalid(format!("does not decode: {e}")))
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), empty when unreadable.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use egressor_common::{FlowCounters, FlowKey};

    use super::*;
    use crate::accounting::{SavedFlow, SavedSeries};

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            format: FORMAT,
            layout: 1,
            boot_id: "b".into(),
            flow_map_id: 7,
            saved: Saved {
                series: Vec::<SavedSeries<PersistedLabels>>::new(),
                flows: vec![SavedFlow {
                    key: FlowKey { port: 443, ..FlowKey::zeroed() },
                    last: FlowCounters { bytes: 1500, packets: 1 },
                    series: 0,
                }],
            },
        }
    }

    #[test]
    fn round_trips_and_locks_out_a_second_writer() {
        let dir = std::env::temp_dir().join(format!("egressor-ckpt-{}", std::process::id()));
        let path = dir.join("sub/checkpoint");
        let mut file = CheckpointFile::lock(&path).unwrap();
        assert!(file.read().unwrap().is_none());
        file.write(&checkpoint()).unwrap();
        assert_eq!(file.read().unwrap(), Some(checkpoint()));
        let second = CheckpointFile::lock(&path).unwrap_err();
        assert!(second.to_string().contains("another egressor agent"), "{second}");
        drop(file);
        CheckpointFile::lock(&path).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn other_formats_and_garbage_are_named_errors() {
        let dir = std::env::temp_dir().join(format!("egressor-ckpt-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoint");
        std::fs::write(&path, postcard::to_stdvec(&(FORMAT + 1, 0u8)).unwrap()).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("format 2, this agent reads format 1"), "{e}");
        let mut bytes = postcard::to_stdvec(&checkpoint()).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, bytes).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("does not decode"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
