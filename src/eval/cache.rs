//! The resumable record of a `quorum bench eval` run: `DIR/cache.jsonl`, a
//! header line with the [`Fingerprint`] of the data and the settings that
//! decide what is sampled, then one line per finished (configuration,
//! problem) with its judged samples, appended and flushed as each finishes.
//! An interrupted run continues where it stopped (a torn last line is
//! dropped); a run with another fingerprint is refused with what changed,
//! unless `--force` starts afresh. Results are always recomputed from it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::at_n::Judged;

/// What decides the samples; a cache is reused only when all of it matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// FNV-1a of the task file's problems (hex).
    pub dataset: String,
    /// The model directory or the URL and served model.
    pub source: String,
    /// Samples per problem (the largest N).
    pub samples: usize,
    /// The f32 temperature, as its shortest decimal (`1.3`, not `1.2999…`).
    pub temperature: f64,
    pub max_tokens: usize,
    pub seed: u64,
    /// Where reward scores come from (`none` without one).
    pub reward: String,
}

impl Fingerprint {
    /// `field: old → new` for every field that differs.
    pub fn changes(&self, new: &Fingerprint) -> Vec<String> {
        let (a, b) = (
            serde_json::to_value(self).unwrap_or_default(),
            serde_json::to_value(new).unwrap_or_default(),
        );
        let (Value::Object(a), Value::Object(b)) = (a, b) else {
            return vec!["(unreadable)".into()];
        };
        a.iter()
            .filter_map(|(k, v)| {
                let w = b.get(k).unwrap_or(&Value::Null);
                (v != w).then(|| format!("{k}: {v} → {w}"))
            })
            .collect()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    fingerprint: Fingerprint,
}

/// One finished (configuration, problem).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedProblem {
    /// The configuration's label (`think=on budget=32`).
    pub config: String,
    pub problem: usize,
    pub id: String,
    pub samples: Vec<Judged>,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Malformed {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path} was written with other settings ({}); pass --force to start afresh, or use another --out", .changes.join(", "))]
    Mismatch { path: PathBuf, changes: Vec<String> },
}

/// An open cache: what it holds and where new lines go.
pub struct Cache {
    path: PathBuf,
    file: File,
    done: HashMap<(String, usize), CachedProblem>,
}

impl Cache {
    /// Opens (or, with `force` or when missing, creates) `path` for `fp`.
    pub fn open(path: &Path, fp: &Fingerprint, force: bool) -> Result<Self, CacheError> {
        let io = |source| CacheError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        if !force && path.exists() {
            let (header, lines, valid_len) = read(path)?;
            // No header: an empty file, or one torn while it was created.
            if let Some(h) = header {
                if h.fingerprint != *fp {
                    return Err(CacheError::Mismatch {
                        path: path.to_path_buf(),
                        changes: h.fingerprint.changes(fp),
                    });
                }
                let done = lines
                    .into_iter()
                    .map(|p| ((p.config.clone(), p.problem), p))
                    .collect();
                // Drop a torn last line before appending.
                let f = OpenOptions::new().write(true).open(path).map_err(io)?;
                f.set_len(valid_len).map_err(io)?;
                let file = OpenOptions::new().append(true).open(path).map_err(io)?;
                return Ok(Self {
                    path: path.to_path_buf(),
                    file,
                    done,
                });
            }
        }
        Self::create(path, fp)
    }

    fn create(path: &Path, fp: &Fingerprint) -> Result<Self, CacheError> {
        let io = |source| CacheError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::create(path).map_err(io)?;
        let header = serde_json::to_string(&Header {
            fingerprint: fp.clone(),
        })
        .map_err(|e| CacheError::Malformed {
            path: path.to_path_buf(),
            line: 1,
            message: e.to_string(),
        })?;
        writeln!(file, "{header}").map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            done: HashMap::new(),
        })
    }

    pub fn get(&self, config: &str, problem: usize) -> Option<&CachedProblem> {
        self.done.get(&(config.to_string(), problem))
    }

    pub fn len(&self) -> usize {
        self.done.len()
    }

    pub fn is_empty(&self) -> bool {
        self.done.is_empty()
    }

    /// Appends a finished problem (flushed: an interruption keeps it).
    pub fn append(&mut self, p: CachedProblem) -> Result<(), CacheError> {
        let io = |source| CacheError::Io {
            path: self.path.clone(),
            source,
        };
        let line = serde_json::to_string(&p).map_err(|e| CacheError::Malformed {
            path: self.path.clone(),
            line: 0,
            message: e.to_string(),
        })?;
        writeln!(self.file, "{line}").map_err(io)?;
        self.file.flush().map_err(io)?;
        self.done.insert((p.config.clone(), p.problem), p);
        Ok(())
    }
}

/// The header, the finished problems, and the byte length of the valid
/// part (everything but a torn last line).
fn read(path: &Path) -> Result<(Option<Header>, Vec<CachedProblem>, u64), CacheError> {
    let io = |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut reader = BufReader::new(file);
    let mut header = None;
    let mut lines = Vec::new();
    let mut valid = 0u64;
    let mut buf = String::new();
    let mut no = 0usize;
    loop {
        buf.clear();
        let read = reader.read_line(&mut buf).map_err(io)?;
        if read == 0 {
            break;
        }
        no += 1;
        // Every line is written with its newline: one without is the torn
        // end of an interrupted write.
        if !buf.ends_with('\n') {
            break;
        }
        let text = buf.trim();
        let parsed = if text.is_empty() {
            Ok(())
        } else if no == 1 {
            serde_json::from_str::<Header>(text).map(|h| header = Some(h))
        } else {
            serde_json::from_str::<CachedProblem>(text).map(|p| lines.push(p))
        };
        parsed.map_err(|e| CacheError::Malformed {
            path: path.to_path_buf(),
            line: no,
            message: e.to_string(),
        })?;
        valid += read as u64;
    }
    Ok((header, lines, valid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp() -> Fingerprint {
        Fingerprint {
            dataset: "ab".into(),
            source: "models/x".into(),
            samples: 4,
            temperature: 1.0,
            max_tokens: 64,
            seed: 0,
            reward: "none".into(),
        }
    }

    fn problem(i: usize) -> CachedProblem {
        CachedProblem {
            config: "think=off".into(),
            problem: i,
            id: format!("p{i}"),
            samples: vec![Judged {
                content: "\\boxed{1}".into(),
                correct: true,
                tokens: 3,
                finish_reason: "stop".into(),
                logprobs: vec![-0.1],
                score: None,
                latency_ms: 2.0,
            }],
        }
    }

    #[test]
    fn a_reopened_cache_keeps_what_was_appended_and_drops_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.jsonl");
        let mut c = Cache::open(&path, &fp(), false).unwrap();
        c.append(problem(0)).unwrap();
        c.append(problem(1)).unwrap();
        drop(c);
        // An interrupted write.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        write!(f, "{{\"config\": \"think=off\", \"prob").unwrap();
        drop(f);
        let mut c = Cache::open(&path, &fp(), false).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("think=off", 1), Some(&problem(1)));
        c.append(problem(2)).unwrap();
        drop(c);
        let c = Cache::open(&path, &fp(), false).unwrap();
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn other_settings_are_refused_naming_what_changed_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.jsonl");
        let mut c = Cache::open(&path, &fp(), false).unwrap();
        c.append(problem(0)).unwrap();
        drop(c);
        let other = Fingerprint {
            temperature: 0.5,
            samples: 8,
            ..fp()
        };
        let e = Cache::open(&path, &other, false).err().unwrap().to_string();
        assert!(
            e.contains("samples: 4 → 8") && e.contains("temperature: 1.0 → 0.5"),
            "{e}"
        );
        assert!(e.contains("--force"), "{e}");
        let c = Cache::open(&path, &other, true).unwrap();
        assert!(c.is_empty());
        drop(c);
        assert!(Cache::open(&path, &other, false).unwrap().is_empty());
    }

    #[test]
    fn a_corrupt_middle_line_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.jsonl");
        let mut c = Cache::open(&path, &fp(), false).unwrap();
        c.append(problem(0)).unwrap();
        drop(c);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        writeln!(f, "not json").unwrap();
        writeln!(f, "{}", serde_json::to_string(&problem(1)).unwrap()).unwrap();
        drop(f);
        let e = Cache::open(&path, &fp(), false).err().unwrap().to_string();
        assert!(e.contains("cache.jsonl:3:"), "{e}");
    }
}
