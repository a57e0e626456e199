//! Adaptive stopping for majority voting.

use super::cluster::cluster_answers;
use crate::math::number::Tolerance;

/// True once the leading answer cluster can no longer be overtaken or
/// tied by the `still_running` rollouts, i.e. `leader > runner_up +
/// still_running` (ties count as *not* decided, since a tie would be
/// broken by log-probs not yet known). Answers are clustered with math
/// equivalence; `None` answers abstain. Always true when nothing is
/// still running.
pub fn majority_decided(finished_answers: &[Option<String>], still_running: usize) -> bool {
    if still_running == 0 {
        return true;
    }
    let clustering = cluster_answers(finished_answers, &Tolerance::default());
    let mut counts = vec![0usize; clustering.len()];
    for c in clustering.cluster_of.iter().flatten() {
        counts[*c] += 1;
    }
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let leader = counts.first().copied().unwrap_or(0);
    let runner_up = counts.get(1).copied().unwrap_or(0);
    leader > runner_up.saturating_add(still_running)
}

#[cfg(test)]
mod tests {
    use super::majority_decided;

    fn a(v: &[&str]) -> Vec<Option<String>> {
        v.iter()
            .map(|s| (!s.is_empty()).then(|| s.to_string()))
            .collect()
    }

    #[test]
    fn decided_only_when_lead_exceeds_remaining() {
        assert!(!majority_decided(&a(&["4", "4", "5"]), 1)); // 2 vs 1+1 could tie
        assert!(majority_decided(&a(&["4", "4", "4", "5"]), 1)); // 3 > 1+1
        assert!(majority_decided(&a(&["4", "4.0", "8/2"]), 2)); // 3 > 0+2
        assert!(!majority_decided(&a(&["4", "", ""]), 1)); // abstentions count for nobody
        assert!(majority_decided(&a(&["4", "5"]), 0));
        assert!(!majority_decided(&a(&[]), 3));
    }
}
