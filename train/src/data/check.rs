//! Reference answers checked against their verifiers before a run starts.

use std::collections::HashMap;
use std::fmt;

use quorum_scoring::{verifier_by_name, Verifier};

use super::error::DataError;
use super::location::Location;
use super::task::Task;

/// Reference failures listed in [`DataError::BadReferences`].
pub const FIRST_FAILURES: usize = 10;

/// A task whose reference answer its verifier cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceFailure {
    pub loc: Location,
    pub verifier: String,
    /// `None`: the task has no reference answer.
    pub answer: Option<String>,
    pub reason: String,
}

impl fmt::Display for ReferenceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: verifier `{}`: {}",
            self.loc, self.verifier, self.reason
        )
    }
}

/// Every task's reference answer, checked with its verifier's
/// `check_reference`; a task without an answer is a failure too.
pub fn check_references(tasks: &[Task]) -> Vec<ReferenceFailure> {
    let mut verifiers: HashMap<&str, Result<Box<dyn Verifier>, String>> = HashMap::new();
    let mut failures = Vec::new();
    for t in tasks {
        let v = verifiers
            .entry(t.verifier.as_str())
            .or_insert_with(|| verifier_by_name(&t.verifier).map_err(|e| e.to_string()));
        let outcome = match (&*v, t.answer.as_deref()) {
            (Err(e), _) => Err(e.clone()),
            (Ok(_), None) => Err("no reference answer".to_string()),
            (Ok(v), Some(a)) => v.check_reference(a),
        };
        if let Err(reason) = outcome {
            failures.push(ReferenceFailure {
                loc: t.source.clone(),
                verifier: t.verifier.clone(),
                answer: t.answer.clone(),
                reason,
            });
        }
    }
    failures
}

/// [`check_references`] as one error listing the first failures.
pub fn ensure_references(tasks: &[Task]) -> Result<(), DataError> {
    let failures = check_references(tasks);
    if failures.is_empty() {
        return Ok(());
    }
    Err(DataError::BadReferences {
        count: failures.len(),
        first: failures
            .iter()
            .take(FIRST_FAILURES)
            .map(ToString::to_string)
            .collect(),
    })
}
