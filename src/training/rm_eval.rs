//! Held-out report of a reward model: AUC of its scores against the
//! verifier's labels (pair accuracy for preference data), and, on held-out
//! problems with several sampled answers, the accuracy of best-of-N and
//! weighted-majority selection by its scores against majority vote at each
//! N — with the scoring crate's selectors, as the server selects.

use std::collections::BTreeMap;

use serde::Serialize;

use quorum_scoring::select::at_k::{pass_at_k, subsets};
use quorum_scoring::{BestOfN, Majority, RolloutSummary, Selector, WeightSource, WeightedMajority};
use quorum_train::rm::metrics::{auc, pair_accuracy, within_group_auc};

use super::rm_samples::{LabelledSample, PairSample};

/// Selection accuracy at one N (means over problems of means over subsets).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AtN {
    pub n: usize,
    pub majority: f64,
    pub best_of_n: f64,
    pub weighted_majority: f64,
    /// Unbiased pass@N: the oracle bound of any selection.
    pub pass_at_n: f64,
    /// Problems with at least N samples.
    pub problems: usize,
}

/// AUC plus selection at each N.
#[derive(Debug, Clone, Serialize)]
pub struct LabelledReport {
    pub auc: Option<f64>,
    /// Mean AUC within the problems that have both labels.
    pub auc_within: Option<f64>,
    /// Share of samples the verifier accepts (pass@1).
    pub pass_at_1: f64,
    pub samples: usize,
    pub selection: Vec<AtN>,
}

fn summary(s: &LabelledSample, index: usize, score: f64) -> RolloutSummary {
    RolloutSummary {
        index,
        text: s.answer_text.clone(),
        finish_reason: if s.truncated { "length" } else { "stop" }.into(),
        score: Some(score),
        ..RolloutSummary::default()
    }
}

/// The report of `samples` with their `scores`; `ns` are the N of the
/// selection table, `count` subsets per (problem, N), seeded by `seed`.
pub fn labelled_report(
    samples: &[LabelledSample],
    scores: &[f64],
    ns: &[usize],
    count: usize,
    seed: u64,
) -> LabelledReport {
    let labels: Vec<bool> = samples.iter().map(|s| s.label).collect();
    let mut by_problem: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, s) in samples.iter().enumerate() {
        by_problem.entry(s.problem).or_default().push(i);
    }
    let selectors: [(&str, Box<dyn Selector>); 3] = [
        ("majority", Box::new(Majority)),
        ("best_of_n", Box::new(BestOfN::default())),
        (
            "weighted_majority",
            Box::new(WeightedMajority {
                weight: WeightSource::Score,
            }),
        ),
    ];
    let mut selection = Vec::new();
    for &n in ns {
        let mut sums = [0f64; 3];
        let (mut pass, mut problems) = (0f64, 0usize);
        for (&p, members) in &by_problem {
            if members.len() < n {
                continue;
            }
            problems += 1;
            let c = members.iter().filter(|&&i| labels[i]).count();
            pass += pass_at_k(members.len(), c, n);
            let subs = subsets(
                members.len(),
                n,
                count,
                seed ^ (p as u64).wrapping_mul(0x9E37_79B9),
            );
            for (k, (_, sel)) in selectors.iter().enumerate() {
                let mut hit = 0f64;
                for sub in &subs {
                    let rollouts: Vec<RolloutSummary> = sub
                        .iter()
                        .enumerate()
                        .map(|(j, &m)| summary(&samples[members[m]], j, scores[members[m]]))
                        .collect();
                    let won = sel.select(&rollouts).winner;
                    hit += f64::from(u8::from(won.is_some_and(|w| labels[members[sub[w]]])));
                }
                sums[k] += hit / subs.len() as f64;
            }
        }
        let d = problems.max(1) as f64;
        selection.push(AtN {
            n,
            majority: sums[0] / d,
            best_of_n: sums[1] / d,
            weighted_majority: sums[2] / d,
            pass_at_n: pass / d,
            problems,
        });
    }
    LabelledReport {
        auc: auc(scores, &labels),
        auc_within: within_group_auc(
            scores,
            &labels,
            &samples.iter().map(|s| s.problem).collect::<Vec<_>>(),
        ),
        pass_at_1: labels.iter().filter(|&&y| y).count() as f64 / labels.len().max(1) as f64,
        samples: samples.len(),
        selection,
    }
}

/// Pair accuracy of preference data (`scores` = chosen, rejected, …).
pub fn pairs_report(pairs: &[PairSample], scores: &[f64]) -> Option<f64> {
    let chosen: Vec<f64> = scores.iter().step_by(2).copied().collect();
    let rejected: Vec<f64> = scores.iter().skip(1).step_by(2).copied().collect();
    debug_assert_eq!(chosen.len(), pairs.len());
    pair_accuracy(&chosen, &rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(problem: usize, answer: &str, label: bool) -> LabelledSample {
        LabelledSample {
            problem,
            ids: vec![1],
            label,
            answer_text: format!("\\boxed{{{answer}}}"),
            truncated: false,
        }
    }

    #[test]
    fn a_good_scorer_beats_majority_when_the_majority_is_wrong() {
        // One problem, 4 samples: three say 5 (wrong), one says 7 (right);
        // the scorer ranks the right one first.
        let samples = vec![
            s(0, "5", false),
            s(0, "5", false),
            s(0, "7", true),
            s(0, "5", false),
        ];
        let scores = vec![0.1, 0.2, 0.9, 0.0];
        let r = labelled_report(&samples, &scores, &[4], 8, 0);
        let at4 = &r.selection[0];
        assert_eq!(at4.majority, 0.0);
        assert_eq!(at4.best_of_n, 1.0);
        // weighted: 5 gets 0.1+0.2+0.0 (shift 0) = 0.3 < 0.9 for 7
        assert_eq!(at4.weighted_majority, 1.0);
        assert_eq!(at4.pass_at_n, 1.0);
        assert_eq!(r.auc, Some(1.0));
        assert_eq!(r.pass_at_1, 0.25);
    }

    #[test]
    fn problems_with_too_few_samples_are_left_out() {
        let samples = vec![s(0, "1", true), s(0, "1", true), s(1, "2", false)];
        let r = labelled_report(&samples, &[0.0, 0.0, 0.0], &[2], 4, 0);
        assert_eq!(r.selection[0].problems, 1);
        assert_eq!(r.selection[0].majority, 1.0);
        assert_eq!(r.auc, Some(0.5));
    }
}
