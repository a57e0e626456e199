//! The top-level `quorum` object of a response with answer selection:
//! every rollout (answer, cluster, vote, score, confidence, tokens, finish
//! reason), the strategy, the winner, its vote share and what early
//! stopping saved. It rides on the `chat.completion` / `text_completion`
//! body next to `choices`, and in a stream on the chunk that carries the
//! last choice's `finish_reason` (before the optional usage chunk and
//! `[DONE]`). Built by `server::selection::report`.

use quorum_scoring::ClusterSummary;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct QuorumReport {
    pub strategy: &'static str,
    /// Winning rollout (its original index; it is `choices[0]`).
    pub winner: Option<usize>,
    /// The winner's extracted answer.
    pub answer: Option<String>,
    /// The winning answer cluster's share of all votes cast.
    pub vote_share: f64,
    /// All rollout indices, best first (`choices[i]` is `ranking[i]`).
    pub ranking: Vec<usize>,
    pub rollouts: Vec<RolloutReport>,
    pub clusters: Vec<ClusterSummary>,
    pub early_stop: bool,
    /// Early stopping cancelled at least one rollout.
    pub decided_early: bool,
    /// `max_tokens` budget not decoded by the rollouts stopped early.
    pub tokens_saved: usize,
    /// The DeepConf threshold (`confidence` early stop), once set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence_threshold: Option<f64>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RolloutReport {
    pub index: usize,
    pub answer: Option<String>,
    pub cluster: Option<usize>,
    /// Vote weight this rollout gave its cluster (0 when not voting).
    pub votes: f64,
    pub kept: bool,
    pub abstained: bool,
    /// Reward-model score (strategies that use one).
    pub score: Option<f64>,
    /// The strategy's confidence measure, if it has one.
    pub confidence: Option<f64>,
    pub mean_logprob: Option<f64>,
    pub tokens: usize,
    /// Reasoning tokens of this rollout (think mode; 0 otherwise).
    pub reasoning_tokens: usize,
    /// Whether the thinking budget (or the answer reserve) ended its thinking.
    pub thinking_budget_cut: bool,
    pub finish_reason: &'static str,
    pub stopped_early: bool,
}
