//! `first` and `majority` (self-consistency) selection.

use super::vote::{vote, Ballot};
use super::{RolloutSummary, Selection, Selector};

/// Always picks the first rollout (input position 0). Clusters and votes
/// are still reported for inspection; `ranking` is the input order.
#[derive(Debug, Clone, Copy, Default)]
pub struct First;

impl Selector for First {
    fn select(&self, rollouts: &[RolloutSummary]) -> Selection {
        let mut s = vote(Ballot::uniform("first", rollouts));
        let Some(r0) = rollouts.first() else { return s };
        let total: f64 = s.rollouts.iter().map(|r| r.vote).sum();
        let share = match s.rollouts[0].cluster {
            Some(c) if total > 0.0 => s.clusters[c].votes / total,
            _ => 0.0,
        };
        s.winner = Some(r0.index);
        s.answer = s.rollouts[0].answer.clone();
        s.vote_share = share;
        s.ranking = rollouts.iter().map(|r| r.index).collect();
        s.note = None;
        s
    }
}

/// Self-consistency: one vote per rollout with an answer, clustered by
/// math equivalence; rollouts without an answer abstain. Ties are broken
/// by the higher mean token log-prob of the cluster, then by the cluster
/// seen first. If nobody answered, the first rollout is returned with
/// `answer: None` and a note.
#[derive(Debug, Clone, Copy, Default)]
pub struct Majority;

impl Selector for Majority {
    fn select(&self, rollouts: &[RolloutSummary]) -> Selection {
        vote(Ballot::uniform("majority", rollouts))
    }
}
