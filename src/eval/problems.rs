//! The problems of an evaluation: a task file read through the `train`
//! crate's loaders (JSONL or Parquet, the field-mapping flags, a bad line is
//! an error naming `file:line`), every reference checked against its
//! verifier before anything is sampled, and the verdicts on samples (the
//! task's `scoring` verifier on the answer part, as `quorum train filter`
//! judges).

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

use quorum_scoring::verifier::{verifier_by_name, Verifier};
use quorum_train::data::{ensure_references, load_tasks, LoadOptions, Task};

use crate::chat::ChatMessage;

/// One problem: the prompt side, its kwargs, how to judge.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The record's id (or `file:line`).
    pub id: String,
    pub messages: Vec<ChatMessage>,
    pub kwargs: Map<String, Value>,
    pub answer: String,
    pub verifier: String,
    /// The original task (for writing records back).
    pub task: Task,
}

impl Problem {
    pub fn of(task: Task) -> Self {
        Problem {
            id: task.id.clone(),
            messages: task
                .prompt_messages()
                .into_iter()
                .map(|m| ChatMessage::new(m.role, m.content))
                .collect(),
            kwargs: task.chat_template_kwargs.clone().unwrap_or_default(),
            answer: task.answer.clone().unwrap_or_default(),
            verifier: task.verifier.clone(),
            task,
        }
    }
}

/// The problems of `path` (first `limit` only) and a hash of the whole
/// file's problems (prompts, answers, verifiers).
pub fn load_problems(
    path: &Path,
    opts: &LoadOptions,
    limit: Option<usize>,
) -> anyhow::Result<(Vec<Problem>, u64)> {
    let opts = LoadOptions {
        require_answer: true,
        ..opts.clone()
    };
    let loaded = load_tasks(&[path], &opts)?;
    if loaded.report.skipped > 0 {
        eprintln!(
            "{}: skipped {} malformed records (--skip-malformed); first: {}",
            path.display(),
            loaded.report.skipped,
            loaded.report.first_errors.join("; ")
        );
    }
    let hash = problems_hash(&loaded.tasks);
    let mut tasks = loaded.tasks;
    if let Some(n) = limit {
        tasks.truncate(n);
    }
    anyhow::ensure!(!tasks.is_empty(), "{}: no problems", path.display());
    ensure_references(&tasks)?;
    Ok((tasks.into_iter().map(Problem::of).collect(), hash))
}

/// FNV-1a over every task's prompt, answer and verifier.
fn problems_hash(tasks: &[Task]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for t in tasks {
        let text = format!(
            "{}\u{1}{}\u{1}{}\u{1}{}\u{2}",
            serde_json::to_string(&t.prompt).unwrap_or_default(),
            t.answer.as_deref().unwrap_or(""),
            t.verifier,
            serde_json::to_string(&t.chat_template_kwargs).unwrap_or_default(),
        );
        for b in text.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Verifiers by name, built once.
#[derive(Default)]
pub struct Judge(HashMap<String, Box<dyn Verifier>>);

impl Judge {
    /// The verdict of `problem`'s verifier on an answer part.
    pub fn correct(&mut self, problem: &Problem, content: &str) -> anyhow::Result<bool> {
        if !self.0.contains_key(&problem.verifier) {
            self.0.insert(
                problem.verifier.clone(),
                verifier_by_name(&problem.verifier)?,
            );
        }
        let v = self
            .0
            .get(&problem.verifier)
            .ok_or_else(|| anyhow::anyhow!("verifier {}", problem.verifier))?;
        Ok(v.verify(content, &problem.answer).correct)
    }
}

/// The sampling seed of problem `index`: the same problem gets the same
/// samples whatever the batching.
pub fn problem_seed(seed: u64, index: usize) -> u64 {
    let mut z = seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
