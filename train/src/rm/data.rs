//! Reward-model records: each loaded task record (prompt/messages, maybe an
//! answer) is, by the fields it has, a **task** to sample rollouts for, a
//! **labelled completion** (`completion` + `label`; a completion without a
//! label is labelled by the task's verifier when the record has an answer),
//! or a **preference pair** (`chosen` + `rejected`, each a string or a
//! message list whose last assistant turn is used, as TRL writes them).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::data::{DataError, Location, Task};

/// The extra column names of reward-model data (`[data.rm_fields]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RmFields {
    pub completion: String,
    /// `true`/`false` or `1`/`0`: whether the completion is correct.
    pub label: String,
    pub chosen: String,
    pub rejected: String,
}

impl Default for RmFields {
    fn default() -> Self {
        Self {
            completion: "completion".into(),
            label: "label".into(),
            chosen: "chosen".into(),
            rejected: "rejected".into(),
        }
    }
}

/// What one record contributes.
#[derive(Debug, Clone, PartialEq)]
pub enum RmRecord {
    /// Sample rollouts and label them with the verifier.
    Task(Task),
    Labelled {
        task: Task,
        completion: String,
        label: bool,
    },
    Pair {
        task: Task,
        chosen: String,
        rejected: String,
    },
}

impl RmRecord {
    pub fn task(&self) -> &Task {
        match self {
            RmRecord::Task(t)
            | RmRecord::Labelled { task: t, .. }
            | RmRecord::Pair { task: t, .. } => t,
        }
    }
}

fn bad(loc: &Location, field: &str, message: impl Into<String>) -> DataError {
    DataError::BadField {
        loc: loc.clone(),
        field: field.to_string(),
        message: message.into(),
    }
}

/// A completion: a string, or a message list whose last assistant turn is it.
fn completion_text(v: &Value, loc: &Location, field: &str) -> Result<String, DataError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(msgs) => msgs
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
            .and_then(|m| m.get("content").and_then(Value::as_str))
            .map(str::to_string)
            .ok_or_else(|| {
                bad(
                    loc,
                    field,
                    "a message list needs an assistant turn with content",
                )
            }),
        other => Err(bad(
            loc,
            field,
            format!("expected a string or a message list, found {other}"),
        )),
    }
}

fn label(v: &Value, loc: &Location, field: &str) -> Result<bool, DataError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_f64() == Some(1.0) => Ok(true),
        Value::Number(n) if n.as_f64() == Some(0.0) => Ok(false),
        other => Err(bad(
            loc,
            field,
            format!("expected true/false or 1/0, found {other}"),
        )),
    }
}

/// Classify loaded `tasks` by the fields of their raw records (`raw`, keyed
/// by location as [`crate::data::read_raw_records`] returns them).
/// `judge(task, completion)` labels unlabelled completions.
pub fn classify(
    tasks: Vec<Task>,
    raw: &HashMap<Location, Map<String, Value>>,
    fields: &RmFields,
    judge: &dyn Fn(&Task, &str) -> bool,
) -> Result<Vec<RmRecord>, DataError> {
    let get = |obj: &Map<String, Value>, k: &str| obj.get(k).filter(|v| !v.is_null()).cloned();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        let loc = task.source.clone();
        let empty = Map::new();
        let obj = raw.get(&loc).unwrap_or(&empty);
        let (c, l) = (get(obj, &fields.completion), get(obj, &fields.label));
        let (ch, rj) = (get(obj, &fields.chosen), get(obj, &fields.rejected));
        let rec = match (c, l, ch, rj) {
            (None, None, Some(ch), Some(rj)) => RmRecord::Pair {
                chosen: completion_text(&ch, &loc, &fields.chosen)?,
                rejected: completion_text(&rj, &loc, &fields.rejected)?,
                task,
            },
            (None, None, Some(_), None) => {
                return Err(bad(
                    &loc,
                    &fields.rejected,
                    "a pair needs both `chosen` and `rejected`",
                ))
            }
            (None, None, None, Some(_)) => {
                return Err(bad(
                    &loc,
                    &fields.chosen,
                    "a pair needs both `chosen` and `rejected`",
                ))
            }
            (Some(c), l, None, None) => {
                let completion = completion_text(&c, &loc, &fields.completion)?;
                let label = match l {
                    Some(l) => label(&l, &loc, &fields.label)?,
                    None if task.answer.is_some() => judge(&task, &completion),
                    None => {
                        return Err(DataError::MissingField {
                            loc,
                            field: format!(
                                "{} (or an answer to verify the completion)",
                                fields.label
                            ),
                        })
                    }
                };
                RmRecord::Labelled {
                    task,
                    completion,
                    label,
                }
            }
            (None, Some(_), None, None) => {
                return Err(DataError::MissingField {
                    loc,
                    field: fields.completion.clone(),
                })
            }
            (None, None, None, None) if task.answer.is_some() => RmRecord::Task(task),
            (None, None, None, None) => {
                return Err(DataError::MissingField {
                    loc,
                    field: format!(
                        "answer (a task), {} + {} (a labelled completion) or {} + {} (a pair)",
                        fields.completion, fields.label, fields.chosen, fields.rejected
                    ),
                })
            }
            _ => {
                return Err(bad(
                    &loc,
                    &fields.completion,
                    "a record is a labelled completion or a pair, not both",
                ))
            }
        };
        out.push(rec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{load_tasks, read_raw_records, LoadOptions};

    fn load(text: &str) -> Result<Vec<RmRecord>, DataError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rm.jsonl");
        std::fs::write(&p, text).unwrap();
        let tasks = load_tasks(&[&p], &LoadOptions::default())?.tasks;
        let raw = read_raw_records(&[&p])?;
        classify(tasks, &raw, &RmFields::default(), &|t, c| {
            c.contains(t.answer.as_deref().unwrap_or("?"))
        })
    }

    #[test]
    fn records_are_told_apart_by_their_fields() {
        let recs = load(concat!(
            "{\"prompt\":\"1+1?\",\"answer\":\"2\"}\n",
            "{\"prompt\":\"2+2?\",\"completion\":\"\\\\boxed{5}\",\"label\":0}\n",
            "{\"prompt\":\"3+3?\",\"answer\":\"6\",\"completion\":\"it is 6\"}\n",
            "{\"prompt\":\"4+4?\",\"chosen\":[{\"role\":\"assistant\",\"content\":\"8\"}],\"rejected\":\"9\"}\n",
        ))
        .unwrap();
        assert!(matches!(&recs[0], RmRecord::Task(t) if t.answer.as_deref() == Some("2")));
        assert!(matches!(&recs[1], RmRecord::Labelled { label: false, .. }));
        assert!(
            matches!(&recs[2], RmRecord::Labelled { label: true, completion, .. } if completion == "it is 6")
        );
        assert!(
            matches!(&recs[3], RmRecord::Pair { chosen, rejected, .. } if chosen == "8" && rejected == "9")
        );
    }

    #[test]
    fn unusable_records_name_file_line_and_field() {
        let e = load("{\"prompt\":\"x\",\"answer\":\"1\"}\n{\"prompt\":\"y\",\"chosen\":\"a\"}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rm.jsonl:2") && e.contains("rejected"), "{e}");
        let e = load("{\"prompt\":\"y\",\"completion\":\"a\",\"label\":\"yes\"}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rm.jsonl:1") && e.contains("label"), "{e}");
        let e = load("{\"prompt\":\"y\",\"completion\":\"a\"}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rm.jsonl:1") && e.contains("label"), "{e}");
        let e = load("{\"prompt\":\"y\"}\n").unwrap_err().to_string();
        assert!(e.contains("rm.jsonl:1") && e.contains("chosen"), "{e}");
    }
}
