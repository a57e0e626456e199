//! Reading a run's `metrics.jsonl`: one JSON object per line, `{"kind": "step", ...}` or
//! `{"kind": "eval", ...}`. Unknown kinds and keys are ignored and missing numbers are
//! absent points, so later trainers (GRPO, reward models) can add fields and kinds without
//! breaking the plots; a line that is not a JSON object is an error naming file:line.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::PlotError;

/// One `{"kind": "step"}` record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepRecord {
    pub step: u64,
    pub loss: Option<f64>,
    pub lr: Option<f64>,
    pub grad_norm: Option<f64>,
    pub tokens_per_s: Option<f64>,
    pub elapsed_s: Option<f64>,
    /// GRPO: mean reward of the step's rollouts.
    pub reward: Option<f64>,
}

/// One `{"kind": "eval"}` record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalRecord {
    pub step: u64,
    pub eval_loss: Option<f64>,
    /// Accuracy series by name (`{"accuracy": {"think": 0.4, "no_think": 0.1}}`); a bare
    /// number is the series `accuracy`.
    pub accuracy: BTreeMap<String, f64>,
}

/// Everything plottable in a metrics file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub path: PathBuf,
    pub steps: Vec<StepRecord>,
    pub evals: Vec<EvalRecord>,
    /// Records not plotted, by kind (`<none>` for records without a kind or a step).
    pub ignored: BTreeMap<String, u64>,
}

impl Metrics {
    /// Reads `path` (see the module docs). A missing file, or one without a single step or
    /// eval record, is an error.
    pub fn read(path: &Path) -> Result<Self, PlotError> {
        let file = std::fs::File::open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                PlotError::NoMetrics {
                    path: path.to_path_buf(),
                    why: "not found (a run directory holds the metrics.jsonl its trainer writes)"
                        .into(),
                }
            } else {
                PlotError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let mut out = Self {
            path: path.to_path_buf(),
            ..Self::default()
        };
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line_no = i as u64 + 1;
            let line = line.map_err(|e| PlotError::Malformed {
                path: path.to_path_buf(),
                line: line_no,
                message: e.to_string(),
            })?;
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            let malformed = |message: String| PlotError::Malformed {
                path: path.to_path_buf(),
                line: line_no,
                message,
            };
            let v: Value =
                serde_json::from_str(text).map_err(|e| malformed(format!("not JSON: {e}")))?;
            let obj = v
                .as_object()
                .ok_or_else(|| malformed("not a JSON object".into()))?;
            out.push(obj);
        }
        if out.steps.is_empty() && out.evals.is_empty() {
            let why = if out.ignored.is_empty() {
                "is empty".to_string()
            } else {
                format!(
                    "has no step or eval records (only {})",
                    out.ignored.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            };
            return Err(PlotError::NoMetrics {
                path: path.to_path_buf(),
                why,
            });
        }
        Ok(out)
    }

    fn push(&mut self, obj: &serde_json::Map<String, Value>) {
        let kind = obj.get("kind").and_then(Value::as_str);
        let step = obj.get("step").and_then(as_step);
        let num = |k: &str| obj.get(k).and_then(Value::as_f64).filter(|v| v.is_finite());
        match (kind, step) {
            (Some("step"), Some(step)) => self.steps.push(StepRecord {
                step,
                loss: num("loss"),
                lr: num("lr"),
                grad_norm: num("grad_norm"),
                tokens_per_s: num("tokens_per_s"),
                elapsed_s: num("elapsed_s"),
                reward: num("reward_mean"),
            }),
            (Some("eval"), Some(step)) => {
                let accuracy = match obj.get("accuracy") {
                    Some(Value::Object(m)) => m
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                        .filter(|(_, v)| v.is_finite())
                        .collect(),
                    Some(v) => v
                        .as_f64()
                        .filter(|v| v.is_finite())
                        .map(|v| BTreeMap::from([("accuracy".to_string(), v)]))
                        .unwrap_or_default(),
                    None => BTreeMap::new(),
                };
                self.evals.push(EvalRecord {
                    step,
                    eval_loss: num("eval_loss"),
                    accuracy,
                });
            }
            (kind, _) => {
                let kind = match (kind, step) {
                    (Some(k @ ("step" | "eval")), None) => format!("{k} without a step"),
                    (Some(k), _) => k.to_string(),
                    (None, _) => "<none>".to_string(),
                };
                *self.ignored.entry(kind).or_default() += 1;
            }
        }
    }

    /// `(step, value)` of every step record that has the value.
    pub fn step_series(&self, field: impl Fn(&StepRecord) -> Option<f64>) -> Vec<(f64, f64)> {
        self.steps
            .iter()
            .filter_map(|r| Some((r.step as f64, field(r)?)))
            .collect()
    }

    /// `(step, eval_loss)` of every eval record that has it.
    pub fn eval_loss(&self) -> Vec<(f64, f64)> {
        self.evals
            .iter()
            .filter_map(|r| Some((r.step as f64, r.eval_loss?)))
            .collect()
    }

    /// Every accuracy series by name, each as `(step, value)` in file order.
    pub fn accuracy(&self) -> BTreeMap<String, Vec<(f64, f64)>> {
        let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for r in &self.evals {
            for (name, v) in &r.accuracy {
                out.entry(name.clone())
                    .or_default()
                    .push((r.step as f64, *v));
            }
        }
        out
    }
}

/// A step is a non-negative integer (`100` or `100.0`).
fn as_step(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1e15)
            .map(|f| f as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Metrics, PlotError> {
        let dir = tempfile::tempdir().map_err(|source| PlotError::Io {
            path: "tempdir".into(),
            source,
        })?;
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, text).map_err(|source| PlotError::Io {
            path: path.clone(),
            source,
        })?;
        Metrics::read(&path)
    }

    #[test]
    fn parses_steps_and_evals_ignoring_unknown_kinds_and_keys() -> Result<(), PlotError> {
        let m = read(concat!(
            r#"{"kind":"step","step":1,"loss":2.5,"lr":0.001,"grad_norm":1.5,"tokens_per_s":900.0,"elapsed_s":0.5,"new_key":[1]}"#,
            "\n\n",
            r#"{"kind":"step","step":2,"lr":0.002}"#,
            "\n",
            r#"{"kind":"rollout","step":2,"reward":0.3}"#,
            "\n",
            r#"{"kind":"eval","step":2,"eval_loss":2.0,"accuracy":{"think":0.5,"no_think":0.25,"bad":"x"}}"#,
            "\n",
            r#"{"kind":"eval","step":4.0,"accuracy":0.75}"#,
            "\n",
            r#"{"step":5}"#,
            "\n",
        ))?;
        assert_eq!(m.steps.len(), 2);
        assert_eq!(m.steps[0].grad_norm, Some(1.5));
        assert_eq!(m.steps[1].loss, None);
        assert_eq!(m.step_series(|r| r.loss), vec![(1.0, 2.5)]);
        assert_eq!(m.step_series(|r| r.lr), vec![(1.0, 0.001), (2.0, 0.002)]);
        assert_eq!(m.eval_loss(), vec![(2.0, 2.0)]);
        let acc = m.accuracy();
        assert_eq!(
            acc.keys().collect::<Vec<_>>(),
            ["accuracy", "no_think", "think"]
        );
        assert_eq!(acc["think"], vec![(2.0, 0.5)]);
        assert_eq!(acc["accuracy"], vec![(4.0, 0.75)]);
        assert_eq!(m.ignored.get("rollout"), Some(&1));
        assert_eq!(m.ignored.get("<none>"), Some(&1));
        Ok(())
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let err = read("{\"kind\":\"step\",\"step\":1,\"loss\":1}\n\n{\"kind\": oops}\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("metrics.jsonl:3: not JSON"), "{err}");
        let err = read("[1, 2]\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("metrics.jsonl:1: not a JSON object"), "{err}");
    }

    #[test]
    fn missing_or_empty_files_are_clear_errors() {
        let err = read("\n\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("metrics.jsonl: is empty"), "{err}");
        let err = read("{\"kind\":\"rollout\",\"step\":1}\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("no step or eval records (only rollout)"),
            "{err}"
        );
        let err = Metrics::read(Path::new("/nonexistent/run/metrics.jsonl"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("metrics.jsonl: not found"), "{err}");
    }
}
