//! `weighted_majority`: votes weighted by reward score or confidence.

use super::vote::{vote, Ballot};
use super::{RolloutSummary, Selection, Selector};
use serde::{Deserialize, Serialize};

/// Where the vote weights come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightSource {
    /// Reward-model scores (default). Scores are expected to be
    /// non-negative (e.g. PRM probabilities); if any is negative, all are
    /// shifted so the minimum becomes 0. Missing scores weigh 0.
    #[default]
    Score,
    /// `exp(mean token logprob)` — the geometric-mean token probability,
    /// in (0, 1]. Missing log-probs weigh 0.
    Confidence,
}

/// Sums weights per answer cluster; the heaviest cluster wins (ties as in
/// majority). When no rollout has the requested weight, this is plain
/// majority voting and `note` says so.
#[derive(Debug, Clone, Copy, Default)]
pub struct WeightedMajority {
    pub weight: WeightSource,
}

impl Selector for WeightedMajority {
    fn select(&self, rollouts: &[RolloutSummary]) -> Selection {
        let mut ballot = Ballot::uniform("weighted_majority", rollouts);
        let raw: Vec<Option<f64>> = match self.weight {
            WeightSource::Score => rollouts.iter().map(RolloutSummary::finite_score).collect(),
            WeightSource::Confidence => {
                rollouts.iter().map(|r| r.mean_lp().map(f64::exp)).collect()
            }
        };
        let present = raw.iter().filter(|w| w.is_some()).count();
        if present == 0 {
            ballot.note =
                Some(format!("no {:?} weights; plain majority vote", self.weight).to_lowercase());
            return vote(ballot);
        }
        let min = raw.iter().flatten().copied().fold(f64::INFINITY, f64::min);
        let shift = if min < 0.0 { -min } else { 0.0 };
        ballot.weights = raw.iter().map(|w| w.map_or(0.0, |w| w + shift)).collect();
        if self.weight == WeightSource::Confidence {
            ballot.confidence = raw;
        }
        let mut notes = Vec::new();
        if shift > 0.0 {
            notes.push(format!("negative scores shifted by {shift}"));
        }
        if present < rollouts.len() {
            notes.push(format!(
                "{} rollout(s) without weight counted as 0",
                rollouts.len() - present
            ));
        }
        ballot.note = (!notes.is_empty()).then(|| notes.join("; "));
        vote(ballot)
    }
}
