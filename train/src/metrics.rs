//! The run's `metrics.jsonl`: one JSON object per line, `{"kind": "step" |
//! "eval" | …, "step": N, …}`, flushed per line so a killed run keeps every
//! finished step. A resumed run first drops the lines after its checkpoint,
//! so the file reads as one uninterrupted run.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{Result, TrainError};

pub const METRICS_FILE: &str = "metrics.jsonl";

pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Open `run_dir/metrics.jsonl` for appending. `resume_step`: keep only
    /// the lines with `step` ≤ it (a fresh run passes `None` and starts an
    /// empty file).
    pub fn open(run_dir: &Path, resume_step: Option<u64>) -> Result<Self> {
        let path = run_dir.join(METRICS_FILE);
        std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
        let kept = match resume_step {
            Some(step) if path.exists() => {
                let f = std::fs::File::open(&path).map_err(|e| TrainError::io(&path, e))?;
                let mut kept = String::new();
                for line in std::io::BufReader::new(f).lines() {
                    let line = line.map_err(|e| TrainError::io(&path, e))?;
                    let s = serde_json::from_str::<serde_json::Value>(&line)
                        .ok()
                        .and_then(|v| v.get("step").and_then(|s| s.as_u64()));
                    if s.is_some_and(|s| s <= step) {
                        kept.push_str(&line);
                        kept.push('\n');
                    }
                }
                kept
            }
            _ => String::new(),
        };
        std::fs::write(&path, kept).map_err(|e| TrainError::io(&path, e))?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(Self { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&mut self, record: &impl Serialize) -> Result<()> {
        let mut line = serde_json::to_vec(record).map_err(|e| TrainError::Checkpoint {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|_| self.file.flush())
            .map_err(|e| TrainError::io(&self.path, e))
    }
}

/// One optimizer step.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub kind: &'static str,
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens: usize,
    pub trained_tokens: f64,
    pub tokens_per_s: f64,
    pub elapsed_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resume_drops_lines_after_the_checkpoint() {
        let dir = std::env::temp_dir().join(format!("quorum-metrics-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut m = MetricsLog::open(&dir, None).unwrap();
        for s in 1..=5 {
            m.write(&json!({"kind": "step", "step": s})).unwrap();
        }
        m.write(&json!({"kind": "eval", "step": 4})).unwrap();
        drop(m);
        let mut m = MetricsLog::open(&dir, Some(3)).unwrap();
        m.write(&json!({"kind": "step", "step": 4})).unwrap();
        let text = std::fs::read_to_string(dir.join(METRICS_FILE)).unwrap();
        let steps: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(steps, vec![1, 2, 3, 4]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
