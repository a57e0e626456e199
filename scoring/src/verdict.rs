//! The [`Verifier`] trait and its [`Verdict`]: what every verifier
//! ([`crate::verifier`], [`crate::countdown`]) implements and returns.

use serde::Serialize;

/// A verifier's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub correct: bool,
    /// The answer extracted from the completion, if any.
    pub extracted: Option<String>,
    pub reason: String,
}

impl Verdict {
    /// No answer could be extracted from the completion.
    pub(crate) fn missing() -> Self {
        Verdict {
            correct: false,
            extracted: None,
            reason: "no answer extracted".into(),
        }
    }
}

/// Checks a completion against a reference answer.
pub trait Verifier: Send + Sync {
    fn verify(&self, completion: &str, reference: &str) -> Verdict;

    /// Checks that a reference answer is usable by this verifier (before
    /// training or evaluation starts), with the reason when it is not.
    /// Default: non-empty, and a completion answering `\boxed{reference}`
    /// is judged correct.
    fn check_reference(&self, reference: &str) -> Result<(), String> {
        let r = reference.trim();
        if r.is_empty() {
            return Err("empty reference".into());
        }
        let v = self.verify(&format!("\\boxed{{{r}}}"), reference);
        if v.correct {
            Ok(())
        } else {
            Err(format!(
                "`\\boxed{{{r}}}` is not judged correct: {}",
                v.reason
            ))
        }
    }
}
