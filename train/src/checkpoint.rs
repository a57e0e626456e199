//! Checkpoint directories of a run: `RUN/checkpoint-000100/` holds a complete
//! model directory (written by the caller) plus the trainer's state beside
//! the weights — `optimizer.safetensors` (AdamW moments) and
//! `trainer_state.json` (step, schedule position, data cursor, RNG).
//!
//! A checkpoint is built under `RUN/.tmp-checkpoint-000100/` and renamed into
//! place only when complete, so a crash never leaves a checkpoint that
//! resume would trust; stale temporaries are removed on the next start. The
//! last `keep` checkpoints are kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "trainer_state.json";
const PREFIX: &str = "checkpoint-";
const TMP_PREFIX: &str = ".tmp-checkpoint-";

/// Where a run is, so that a resumed run continues exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub step: u64,
    /// Epoch of the next micro-batch.
    pub epoch: u64,
    /// Index of the next micro-batch within the epoch's batch plan.
    pub cursor: usize,
    /// The run's seed (data order, sampling).
    pub seed: u64,
    /// Position of the run's sampling RNG stream (ChaCha word position).
    pub rng_word_pos: u128,
    /// Tokens the forwards ran so far.
    pub tokens_seen: u64,
    /// Training seconds so far (excluding time before a resume).
    pub elapsed_s: f64,
}

/// The checkpoint directories of `run_dir`, oldest first.
pub fn list(run_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let rd = match std::fs::read_dir(run_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TrainError::io(run_dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| TrainError::io(run_dir, e))?;
        let name = entry.file_name();
        let Some(step) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if entry.path().join(STATE_FILE).is_file() {
            out.push((step, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The newest complete checkpoint of `run_dir`.
pub fn latest(run_dir: &Path) -> Result<Option<(u64, PathBuf)>> {
    Ok(list(run_dir)?.pop())
}

/// Remove temporaries a crashed writer left behind.
pub fn remove_stale_temps(run_dir: &Path) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(run_dir) else {
        return Ok(());
    };
    for entry in rd.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TMP_PREFIX))
        {
            std::fs::remove_dir_all(entry.path()).map_err(|e| TrainError::io(entry.path(), e))?;
        }
    }
    Ok(())
}

/// A checkpoint being written: the caller writes the model directory at
/// [`Pending::model_dir`] (that path does not exist yet), then
/// [`Pending::commit`] adds the trainer state and renames it into place.
pub struct Pending {
    run_dir: PathBuf,
    step: u64,
    tmp: PathBuf,
}

pub fn begin(run_dir: &Path, step: u64) -> Result<Pending> {
    std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
    let tmp = run_dir.join(format!("{TMP_PREFIX}{step:06}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    Ok(Pending {
        run_dir: run_dir.to_path_buf(),
        step,
        tmp,
    })
}

impl Pending {
    pub fn model_dir(&self) -> &Path {
        &self.tmp
    }

    /// Write the optimizer state and `state`, rename the checkpoint into
    /// place (replacing one of the same step), and delete all but the
    /// newest `keep` checkpoints. Returns the checkpoint's path.
    pub fn commit(
        self,
        optimizer: &HashMap<String, Tensor>,
        state: &TrainerState,
        keep: usize,
    ) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.tmp).map_err(|e| TrainError::io(&self.tmp, e))?;
        let opt_path = self.tmp.join(OPTIMIZER_FILE);
        candle_core::safetensors::save(optimizer, &opt_path).map_err(|e| {
            TrainError::Checkpoint {
                path: opt_path.clone(),
                message: e.to_string(),
            }
        })?;
        let state_path = self.tmp.join(STATE_FILE);
        let json = serde_json::to_vec_pretty(state).map_err(|e| TrainError::Checkpoint {
            path: state_path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&state_path, json).map_err(|e| TrainError::io(&state_path, e))?;
        let dst = self.run_dir.join(format!("{PREFIX}{:06}", self.step));
        if dst.exists() {
            std::fs::remove_dir_all(&dst).map_err(|e| TrainError::io(&dst, e))?;
        }
        std::fs::rename(&self.tmp, &dst).map_err(|e| TrainError::io(&dst, e))?;
        let all = list(&self.run_dir)?;
        if all.len() > keep.max(1) {
            for (_, old) in &all[..all.len() - keep.max(1)] {
                std::fs::remove_dir_all(old).map_err(|e| TrainError::io(old, e))?;
            }
        }
        Ok(dst)
    }
}

/// Read a checkpoint's trainer state and optimizer moments.
pub fn load_state(dir: &Path) -> Result<(TrainerState, HashMap<String, Tensor>)> {
    let state_path = dir.join(STATE_FILE);
    let bytes = std::fs::read(&state_path).map_err(|e| TrainError::io(&state_path, e))?;
    let state: TrainerState =
        serde_json::from_slice(&bytes).map_err(|e| TrainError::Checkpoint {
            path: state_path.clone(),
            message: e.to_string(),
        })?;
    let opt_path = dir.join(OPTIMIZER_FILE);
    let tensors = candle_core::safetensors::load(&opt_path, &Device::Cpu).map_err(|e| {
        TrainError::Checkpoint {
            path: opt_path.clone(),
            message: e.to_string(),
        }
    })?;
    Ok((state, tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(step: u64) -> TrainerState {
        TrainerState {
            step,
            epoch: 1,
            cursor: 3,
            seed: 7,
            rng_word_pos: 1 << 70,
            tokens_seen: 1000,
            elapsed_s: 1.5,
        }
    }

    #[test]
    fn commit_round_trips_and_keeps_the_newest() {
        let dir = tempdir();
        let opt: HashMap<String, Tensor> = [(
            "m.w".to_string(),
            Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap(),
        )]
        .into();
        for step in [10, 20, 30] {
            let p = begin(&dir, step).unwrap();
            std::fs::create_dir_all(p.model_dir()).unwrap();
            std::fs::write(p.model_dir().join("config.json"), "{}").unwrap();
            p.commit(&opt, &state(step), 2).unwrap();
        }
        let all = list(&dir).unwrap();
        assert_eq!(
            all.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![20, 30]
        );
        let (s, t) = load_state(&all[1].1).unwrap();
        assert_eq!(s, state(30));
        assert_eq!(t["m.w"].to_vec1::<f32>().unwrap(), vec![1.0, 2.0]);
        assert!(all[1].1.join("config.json").is_file());
    }

    #[test]
    fn temporaries_are_not_checkpoints_and_are_cleaned() {
        let dir = tempdir();
        let p = begin(&dir, 5).unwrap();
        std::fs::create_dir_all(p.model_dir()).unwrap();
        std::fs::write(p.model_dir().join(STATE_FILE), "{}").unwrap();
        drop(p); // a crash before commit
        assert!(latest(&dir).unwrap().is_none());
        remove_stale_temps(&dir).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "quorum-ckpt-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
