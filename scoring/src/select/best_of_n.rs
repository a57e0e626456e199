//! `best_of_n`: highest reward-model score.

use super::vote::{cmp_lp_desc, vote, Ballot};
use super::{Majority, RolloutSummary, Selection, Selector};
use serde::{Deserialize, Serialize};

/// What `best_of_n` does when *no* rollout has a (finite) score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingScores {
    /// Fall back to plain majority vote (default).
    #[default]
    Majority,
    /// Fall back to the first rollout.
    First,
}

/// Picks the rollout with the highest finite `score` (earliest on ties).
///
/// Rollouts whose score is missing or non-finite rank after all scored
/// ones (in input order) and can only win if none is scored; in that case
/// the [`MissingScores`] fallback applies and `Selection::note` says so.
/// `vote` per rollout is its score; `vote_share` is the fraction of
/// answering rollouts in the winner's answer cluster.
#[derive(Debug, Clone, Copy, Default)]
pub struct BestOfN {
    pub on_missing: MissingScores,
}

impl Selector for BestOfN {
    fn select(&self, rollouts: &[RolloutSummary]) -> Selection {
        let scores: Vec<Option<f64>> = rollouts.iter().map(RolloutSummary::finite_score).collect();
        let scored = scores.iter().filter(|s| s.is_some()).count();
        if scored == 0 && !rollouts.is_empty() {
            let mut s = match self.on_missing {
                MissingScores::Majority => Majority.select(rollouts),
                MissingScores::First => super::First.select(rollouts),
            };
            s.strategy = "best_of_n".into();
            s.note = Some(
                format!("no reward-model scores; fell back to {:?}", self.on_missing)
                    .to_lowercase(),
            );
            return s;
        }
        let mut s = vote(Ballot::uniform("best_of_n", rollouts));
        let mut order: Vec<usize> = (0..rollouts.len()).collect();
        order.sort_by(|&a, &b| cmp_lp_desc(scores[a], scores[b]).then(a.cmp(&b)));
        let Some(&w) = order.first() else { return s };
        let answered = s.rollouts.iter().filter(|r| r.cluster.is_some()).count();
        s.vote_share = match s.rollouts[w].cluster {
            Some(c) if answered > 0 => s.clusters[c].members.len() as f64 / answered as f64,
            _ => 0.0,
        };
        for (r, sc) in s.rollouts.iter_mut().zip(&scores) {
            r.vote = sc.unwrap_or(0.0);
        }
        s.winner = Some(rollouts[w].index);
        s.answer = s.rollouts[w].answer.clone();
        s.ranking = order.iter().map(|&i| rollouts[i].index).collect();
        s.note = (scored < rollouts.len()).then(|| {
            format!(
                "{} rollout(s) had no reward score and rank last",
                rollouts.len() - scored
            )
        });
        s
    }
}
