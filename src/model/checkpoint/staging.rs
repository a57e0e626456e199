//! The atomic part of a write: a hidden staging directory beside `out`, renamed into
//! place at the end (a replaced `out` moved aside first and deleted after the swap), and
//! the `fsync` of directories.

use std::path::{Path, PathBuf};

use crate::model::ModelError;

/// What is at `out` before writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OutState {
    Missing,
    Empty,
    NonEmpty,
}

pub(super) fn out_state(out: &Path) -> Result<OutState, ModelError> {
    let io = |source| ModelError::Io {
        path: out.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(OutState::Missing),
        Err(e) => Err(io(e)),
        Ok(m) if !m.is_dir() => Err(io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "exists and is not a directory",
        ))),
        Ok(_) => {
            let mut entries = std::fs::read_dir(out).map_err(io)?;
            Ok(if entries.next().is_some() {
                OutState::NonEmpty
            } else {
                OutState::Empty
            })
        }
    }
}

/// A hidden staging directory beside `out` (same filesystem, so the final rename is
/// atomic); removed on drop unless committed.
pub(super) struct StagingDir {
    pub(super) path: PathBuf,
    /// Where a replaced `out` is parked during the swap.
    old: PathBuf,
    committed: bool,
}

impl StagingDir {
    pub(super) fn create(out: &Path) -> Result<Self, ModelError> {
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|source| ModelError::Io {
            path: parent.clone(),
            source,
        })?;
        let base = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".to_string());
        let pid = std::process::id();
        let path = parent.join(format!(".{base}.partial-{pid}"));
        let old = parent.join(format!(".{base}.old-{pid}"));
        // A leftover from a crashed run of a process with the same pid: ours to discard.
        for stale in [&path, &old] {
            if stale.exists() {
                std::fs::remove_dir_all(stale).map_err(|source| ModelError::Io {
                    path: stale.clone(),
                    source,
                })?;
            }
        }
        std::fs::create_dir(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            path,
            old,
            committed: false,
        })
    }

    /// Move the staged directory to `out`. A non-empty `out` (only reached with `replace`)
    /// is first moved aside and deleted after the swap, so `out` is never half-written.
    pub(super) fn commit(mut self, out: &Path, state: OutState) -> Result<(), ModelError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ModelError::Io { path, source }
        };
        let old = self.old.clone();
        match state {
            OutState::Missing => {}
            OutState::Empty => std::fs::remove_dir(out).map_err(io(out))?,
            OutState::NonEmpty => std::fs::rename(out, &old).map_err(io(out))?,
        }
        if let Err(e) = std::fs::rename(&self.path, out) {
            if state == OutState::NonEmpty {
                // Put the previous model back rather than leave nothing at `out`.
                let _ = std::fs::rename(&old, out);
            }
            return Err(io(out)(e));
        }
        self.committed = true;
        if state == OutState::NonEmpty {
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        Ok(())
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the error that got us here is the one worth reporting.
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), ModelError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|source| ModelError::Io {
            path: dir.to_path_buf(),
            source,
        })
}
