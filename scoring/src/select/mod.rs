//! Answer selection over N rollouts: first, majority (self-consistency),
//! best-of-N by reward score, weighted majority, and DeepConf-style
//! confidence filtering followed by a vote.
//!
//! All strategies cluster answers with the math equivalence of
//! [`crate::equivalence`], not string equality.

pub mod at_k;
mod best_of_n;
mod cluster;
mod confidence;
mod majority;
mod stopping;
mod vote;
mod weighted;

pub use best_of_n::{BestOfN, MissingScores};
pub use cluster::{cluster_answers, Clustering};
pub use confidence::{lowest_group_confidence, ConfidenceMetric, ConfidenceSelector};
pub use majority::{First, Majority};
pub use stopping::majority_decided;
pub use weighted::{WeightSource, WeightedMajority};

use crate::error::ScoringError;
use crate::extract::{extract, ExtractConfig};
use serde::{Deserialize, Serialize};

/// What the engine knows about one finished rollout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RolloutSummary {
    /// The rollout's id (returned in `Selection::winner` / `ranking`).
    pub index: usize,
    /// Completion text after the think section.
    pub text: String,
    /// Extracted answer; when `None` it is extracted lazily from `text`.
    pub answer: Option<String>,
    /// Mean token log-probability; computed from `token_logprobs` if `None`.
    pub mean_logprob: Option<f64>,
    /// Per-token log-probabilities of the sampled tokens (may be empty).
    pub token_logprobs: Vec<f32>,
    /// Reward-model score (higher is better).
    pub score: Option<f64>,
    /// `stop`, `length`, ...
    pub finish_reason: String,
    /// Generated tokens.
    pub tokens: usize,
}

impl RolloutSummary {
    /// The answer: `answer` if set, otherwise extracted from `text` with
    /// [`ExtractConfig::math`] — or, for truncated rollouts
    /// (`finish_reason == "length"`), with explicit markers only, since the
    /// last number of a cut-off reasoning trace is not an answer.
    pub fn resolved_answer(&self) -> Option<String> {
        if let Some(a) = &self.answer {
            let a = a.trim();
            return (!a.is_empty()).then(|| a.to_string());
        }
        let cfg = if self.finish_reason == "length" {
            ExtractConfig::explicit()
        } else {
            ExtractConfig::math()
        };
        extract(&self.text, &cfg).map(|e| e.answer)
    }

    /// Mean token log-probability (`mean_logprob`, else the mean of
    /// `token_logprobs`); `None` when unknown or not finite.
    pub fn mean_lp(&self) -> Option<f64> {
        let m = match self.mean_logprob {
            Some(m) => m,
            None if !self.token_logprobs.is_empty() => {
                self.token_logprobs
                    .iter()
                    .map(|&x| f64::from(x))
                    .sum::<f64>()
                    / self.token_logprobs.len() as f64
            }
            None => return None,
        };
        m.is_finite().then_some(m)
    }

    /// The reward score if present and finite.
    pub fn finite_score(&self) -> Option<f64> {
        self.score.filter(|s| s.is_finite())
    }
}

/// Per-rollout outcome of a selection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutVote {
    pub index: usize,
    pub answer: Option<String>,
    /// Answer cluster id (into `Selection::clusters`), `None` if no answer.
    pub cluster: Option<usize>,
    /// Weight this rollout contributed to its cluster (0 if not voting).
    pub vote: f64,
    /// False when dropped by a filter (e.g. low confidence).
    pub kept: bool,
    /// True when the rollout had no extractable answer.
    pub abstained: bool,
    /// Confidence used by the strategy, if any.
    pub confidence: Option<f64>,
}

/// One answer cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterSummary {
    pub id: usize,
    /// Normalized representative answer.
    pub answer: String,
    /// Rollout indices in the cluster (kept or not).
    pub members: Vec<usize>,
    /// Total vote weight from kept members.
    pub votes: f64,
    /// Mean of kept members' mean token log-probabilities.
    pub mean_logprob: Option<f64>,
}

/// Output of a [`Selector`]. Rollouts are identified by
/// `RolloutSummary::index`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selection {
    pub strategy: String,
    /// Winning rollout (`None` only when there were no rollouts).
    pub winner: Option<usize>,
    /// The winner's answer as extracted.
    pub answer: Option<String>,
    /// Winning cluster's share of all votes cast (0 when none were cast).
    pub vote_share: f64,
    /// All rollout indices, best first (use the first `n` for `n` choices).
    pub ranking: Vec<usize>,
    /// Per-rollout details, in input order.
    pub rollouts: Vec<RolloutVote>,
    pub clusters: Vec<ClusterSummary>,
    /// Fallbacks or caveats (e.g. "no reward scores; fell back to majority").
    pub note: Option<String>,
}

impl Selection {
    /// The selection for an empty rollout slice.
    pub fn empty(strategy: &str) -> Self {
        Selection {
            strategy: strategy.to_string(),
            winner: None,
            answer: None,
            vote_share: 0.0,
            ranking: Vec::new(),
            rollouts: Vec::new(),
            clusters: Vec::new(),
            note: Some("no rollouts".into()),
        }
    }
}

/// A selection strategy.
pub trait Selector: Send + Sync {
    fn select(&self, rollouts: &[RolloutSummary]) -> Selection;
}

/// Serde config: `{"strategy": "majority", ...params}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case")]
pub enum SelectionConfig {
    First,
    #[default]
    Majority,
    BestOfN {
        #[serde(default)]
        on_missing: MissingScores,
    },
    WeightedMajority {
        #[serde(default)]
        weight: WeightSource,
    },
    Confidence(ConfidenceSelector),
}

impl SelectionConfig {
    /// Validates the parameters and builds the selector.
    pub fn build(&self) -> Result<Box<dyn Selector>, ScoringError> {
        Ok(match self {
            SelectionConfig::First => Box::new(First),
            SelectionConfig::Majority => Box::new(Majority),
            SelectionConfig::BestOfN { on_missing } => Box::new(BestOfN {
                on_missing: *on_missing,
            }),
            SelectionConfig::WeightedMajority { weight } => {
                Box::new(WeightedMajority { weight: *weight })
            }
            SelectionConfig::Confidence(c) => {
                c.validate()?;
                Box::new(c.clone())
            }
        })
    }

    /// Parses a JSON config and builds the selector.
    pub fn from_json(json: &str) -> Result<Box<dyn Selector>, ScoringError> {
        let cfg: SelectionConfig =
            serde_json::from_str(json).map_err(|e| ScoringError::InvalidConfig(e.to_string()))?;
        cfg.build()
    }
}
