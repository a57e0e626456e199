//! Shared weighted-vote core used by the voting strategies.

use super::cluster::cluster_answers;
use super::{ClusterSummary, RolloutSummary, RolloutVote, Selection};
use crate::math::number::Tolerance;
use std::cmp::Ordering;

/// Inputs to [`vote`], one entry per rollout position.
pub(crate) struct Ballot<'a> {
    pub strategy: &'a str,
    pub rollouts: &'a [RolloutSummary],
    pub answers: Vec<Option<String>>,
    pub kept: Vec<bool>,
    pub weights: Vec<f64>,
    pub confidence: Vec<Option<f64>>,
    pub note: Option<String>,
}

impl<'a> Ballot<'a> {
    /// Every rollout kept with weight 1, answers resolved lazily.
    pub fn uniform(strategy: &'a str, rollouts: &'a [RolloutSummary]) -> Self {
        Ballot {
            strategy,
            rollouts,
            answers: rollouts
                .iter()
                .map(RolloutSummary::resolved_answer)
                .collect(),
            kept: vec![true; rollouts.len()],
            weights: vec![1.0; rollouts.len()],
            confidence: vec![None; rollouts.len()],
            note: None,
        }
    }
}

/// Descending comparison of optional log-probs (`None` ranks last).
pub(crate) fn cmp_lp_desc(a: Option<f64>, b: Option<f64>) -> Ordering {
    let a = a.unwrap_or(f64::NEG_INFINITY);
    let b = b.unwrap_or(f64::NEG_INFINITY);
    b.partial_cmp(&a).unwrap_or(Ordering::Equal)
}

struct Tally {
    id: usize,
    votes: f64,
    lp_sum: f64,
    lp_n: usize,
    first_kept: Option<usize>,
}

impl Tally {
    fn mean_lp(&self) -> Option<f64> {
        (self.lp_n > 0).then(|| self.lp_sum / self.lp_n as f64)
    }
}

/// Clusters the answers and runs a weighted vote among kept rollouts.
/// Cluster order: votes, then mean log-prob of kept members, then the
/// earliest kept member. The winner is the winning cluster's kept member
/// with the highest weight, then highest mean log-prob, then earliest.
pub(crate) fn vote(b: Ballot<'_>) -> Selection {
    let n = b.rollouts.len();
    if n == 0 {
        return Selection::empty(b.strategy);
    }
    let clustering = cluster_answers(&b.answers, &Tolerance::default());
    let lps: Vec<Option<f64>> = b.rollouts.iter().map(RolloutSummary::mean_lp).collect();
    let weight = |i: usize| {
        if b.weights[i].is_finite() {
            b.weights[i]
        } else {
            0.0
        }
    };
    let mut tallies: Vec<Tally> = (0..clustering.len())
        .map(|id| Tally {
            id,
            votes: 0.0,
            lp_sum: 0.0,
            lp_n: 0,
            first_kept: None,
        })
        .collect();
    for (i, lp) in lps.iter().enumerate() {
        let (Some(c), true) = (clustering.cluster_of[i], b.kept[i]) else {
            continue;
        };
        let t = &mut tallies[c];
        t.votes += weight(i);
        if let Some(lp) = *lp {
            t.lp_sum += lp;
            t.lp_n += 1;
        }
        t.first_kept.get_or_insert(i);
    }
    let mut order: Vec<&Tally> = tallies.iter().filter(|t| t.first_kept.is_some()).collect();
    order.sort_by(|x, y| {
        y.votes
            .partial_cmp(&x.votes)
            .unwrap_or(Ordering::Equal)
            .then_with(|| cmp_lp_desc(x.mean_lp(), y.mean_lp()))
            .then_with(|| x.first_kept.cmp(&y.first_kept))
    });
    let total: f64 = order.iter().map(|t| t.votes).sum();

    let mut ranking_pos: Vec<usize> = Vec::with_capacity(n);
    for t in &order {
        let mut members: Vec<usize> = (0..n)
            .filter(|&i| b.kept[i] && clustering.cluster_of[i] == Some(t.id))
            .collect();
        members.sort_by(|&x, &y| {
            cmp_lp_desc(Some(weight(x)), Some(weight(y)))
                .then_with(|| cmp_lp_desc(lps[x], lps[y]))
                .then(x.cmp(&y))
        });
        ranking_pos.extend(members);
    }
    let mut ranked = vec![false; n];
    ranking_pos.iter().for_each(|&i| ranked[i] = true);
    let mut rest: Vec<usize> = (0..n).filter(|&i| !ranked[i]).collect();
    rest.sort_by_key(|&i| (!b.kept[i], i));
    ranking_pos.extend(rest);

    let mut note = b.note;
    let (winner_pos, vote_share) = match order.first() {
        Some(top) => (
            ranking_pos[0],
            if total > 0.0 { top.votes / total } else { 0.0 },
        ),
        None => {
            note.get_or_insert_with(|| {
                "no rollout produced an answer; fell back to the first rollout".into()
            });
            (ranking_pos[0], 0.0)
        }
    };

    let rollouts = (0..n)
        .map(|i| {
            let voting = b.kept[i] && clustering.cluster_of[i].is_some();
            RolloutVote {
                index: b.rollouts[i].index,
                answer: b.answers[i].clone(),
                cluster: clustering.cluster_of[i],
                vote: if voting { weight(i) } else { 0.0 },
                kept: b.kept[i],
                abstained: b.answers[i].is_none(),
                confidence: b.confidence[i],
            }
        })
        .collect();
    let clusters = tallies
        .iter()
        .map(|t| ClusterSummary {
            id: t.id,
            answer: clustering.normalized[t.id].clone(),
            members: (0..n)
                .filter(|&i| clustering.cluster_of[i] == Some(t.id))
                .map(|i| b.rollouts[i].index)
                .collect(),
            votes: t.votes,
            mean_logprob: t.mean_lp(),
        })
        .collect();
    Selection {
        strategy: b.strategy.to_string(),
        winner: Some(b.rollouts[winner_pos].index),
        answer: b.answers[winner_pos].clone(),
        vote_share,
        ranking: ranking_pos.iter().map(|&i| b.rollouts[i].index).collect(),
        rollouts,
        clusters,
        note,
    }
}
