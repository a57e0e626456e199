//! Reward-model scoring interface (implemented by the engine).

use crate::error::ScoringError;

/// Scores completions for a prompt with a reward model. Implemented later
/// by the inference engine; selection strategies only read the resulting
/// `RolloutSummary::score` values.
pub trait RewardScorer: Send + Sync {
    /// Returns one score per completion, in order (higher is better).
    /// Implementations must return exactly `completions.len()` scores.
    fn score(&self, prompt: &str, completions: &[String]) -> Result<Vec<f64>, ScoringError>;
}

/// Runs `scorer` and checks that it returned one score per completion.
pub fn score_checked(
    scorer: &dyn RewardScorer,
    prompt: &str,
    completions: &[String],
) -> Result<Vec<f64>, ScoringError> {
    let scores = scorer.score(prompt, completions)?;
    if scores.len() != completions.len() {
        return Err(ScoringError::Scorer(format!(
            "expected {} scores, got {}",
            completions.len(),
            scores.len()
        )));
    }
    Ok(scores)
}
