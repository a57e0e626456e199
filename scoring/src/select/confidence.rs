//! `confidence`: DeepConf-style filtering, then a majority vote.

use super::vote::{cmp_lp_desc, vote, Ballot};
use super::{RolloutSummary, Selection, Selector};
use crate::error::ScoringError;
use serde::{Deserialize, Serialize};

/// How a rollout's confidence is measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfidenceMetric {
    /// Mean token log-prob over the whole completion.
    Mean,
    /// Lowest mean log-prob over any `group_size`-token sliding window
    /// (DeepConf "lowest group confidence"; default). Falls back to
    /// `Mean` for rollouts without `token_logprobs`.
    #[default]
    LowestGroup,
}

/// Keeps the most confident `keep_fraction` of rollouts and runs a
/// majority vote over them (optionally weighted by `exp(confidence)`).
///
/// Defaults: `keep_fraction = 0.9` (drop the least confident 10%,
/// DeepConf's conservative setting), `metric = lowest_group`,
/// `group_size = 2048` (windows longer than a completion shrink to its
/// length), `weighted = false`. The number kept is
/// `ceil(keep_fraction * n_with_confidence)`, at least 1; ties keep the
/// earlier rollout. Rollouts with no confidence signal are dropped unless
/// no rollout has one, in which case all are kept (see `note`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfidenceSelector {
    pub keep_fraction: f64,
    pub metric: ConfidenceMetric,
    pub group_size: usize,
    pub weighted: bool,
}

impl Default for ConfidenceSelector {
    fn default() -> Self {
        ConfidenceSelector {
            keep_fraction: 0.9,
            metric: ConfidenceMetric::LowestGroup,
            group_size: 2048,
            weighted: false,
        }
    }
}

/// Lowest mean over sliding windows of `group_size` token log-probs
/// (window clamped to the sequence length). `None` for an empty slice.
pub fn lowest_group_confidence(token_logprobs: &[f32], group_size: usize) -> Option<f64> {
    let n = token_logprobs.len();
    if n == 0 {
        return None;
    }
    let w = group_size.clamp(1, n);
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0.0f64);
    for &x in token_logprobs {
        let x = if x.is_finite() {
            f64::from(x)
        } else {
            f64::from(f32::MIN)
        };
        prefix.push(prefix[prefix.len() - 1] + x);
    }
    (w..=n)
        .map(|end| (prefix[end] - prefix[end - w]) / w as f64)
        .reduce(f64::min)
}

impl ConfidenceSelector {
    pub fn validate(&self) -> Result<(), ScoringError> {
        if !(self.keep_fraction > 0.0 && self.keep_fraction <= 1.0) {
            return Err(ScoringError::InvalidConfig(format!(
                "keep_fraction must be in (0, 1], got {}",
                self.keep_fraction
            )));
        }
        if self.group_size == 0 {
            return Err(ScoringError::InvalidConfig(
                "group_size must be >= 1".into(),
            ));
        }
        Ok(())
    }

    /// The confidence of one rollout under this selector's metric.
    pub fn confidence(&self, r: &RolloutSummary) -> Option<f64> {
        match self.metric {
            ConfidenceMetric::Mean => r.mean_lp(),
            ConfidenceMetric::LowestGroup => {
                lowest_group_confidence(&r.token_logprobs, self.group_size).or_else(|| r.mean_lp())
            }
        }
    }
}

impl Selector for ConfidenceSelector {
    fn select(&self, rollouts: &[RolloutSummary]) -> Selection {
        let mut ballot = Ballot::uniform("confidence", rollouts);
        let conf: Vec<Option<f64>> = rollouts.iter().map(|r| self.confidence(r)).collect();
        let with_conf = conf.iter().filter(|c| c.is_some()).count();
        if with_conf == 0 {
            ballot.note = Some("no confidence signal; kept all rollouts".into());
            return vote(ballot);
        }
        let kf = self.keep_fraction.clamp(f64::MIN_POSITIVE, 1.0);
        let keep = ((kf * with_conf as f64 - 1e-9).ceil() as usize).clamp(1, with_conf);
        let mut order: Vec<usize> = (0..rollouts.len()).filter(|&i| conf[i].is_some()).collect();
        order.sort_by(|&a, &b| cmp_lp_desc(conf[a], conf[b]).then(a.cmp(&b)));
        ballot.kept = vec![false; rollouts.len()];
        for &i in order.iter().take(keep) {
            ballot.kept[i] = true;
        }
        if self.weighted {
            ballot.weights = conf.iter().map(|c| c.map_or(0.0, f64::exp)).collect();
        }
        ballot.confidence = conf;
        let dropped = rollouts.len() - keep;
        ballot.note = Some(format!(
            "kept {keep} of {} rollouts by {:?} confidence",
            rollouts.len(),
            self.metric
        ))
        .filter(|_| dropped > 0);
        vote(ballot)
    }
}
