//! Builds the `quorum` object ([`QuorumReport`], a wire type) of one
//! selection from the rollouts, the selector's verdict and early stopping.

use quorum_scoring::{RolloutSummary, Selection};

use super::early::EarlyStop;
use crate::engine::RolloutOutput;
use crate::server::openai::{QuorumReport, RolloutReport};

/// Builds the report; `outs` and `summaries` are in rollout-index order.
pub fn build(
    strategy: &'static str,
    sel: &Selection,
    outs: &[RolloutOutput],
    summaries: &[RolloutSummary],
    early: &EarlyStop,
    tokens_saved: usize,
) -> QuorumReport {
    let rollouts = outs
        .iter()
        .zip(summaries)
        .map(|(o, s)| {
            let v = sel.rollouts.iter().find(|v| v.index == o.index);
            RolloutReport {
                index: o.index,
                answer: v.and_then(|v| v.answer.clone()),
                cluster: v.and_then(|v| v.cluster),
                votes: v.map_or(0.0, |v| v.vote),
                kept: v.is_some_and(|v| v.kept),
                abstained: v.is_none_or(|v| v.abstained),
                score: s.score,
                confidence: v.and_then(|v| v.confidence),
                mean_logprob: o.mean_logprob,
                tokens: o.token_ids.len(),
                reasoning_tokens: o.reasoning_tokens,
                thinking_budget_cut: o.thinking_budget_cut,
                finish_reason: o.finish_reason.as_str(),
                stopped_early: early.stopped.contains(&o.index),
            }
        })
        .collect();
    QuorumReport {
        strategy,
        winner: sel.winner,
        answer: sel.answer.clone(),
        vote_share: sel.vote_share,
        ranking: sel.ranking.clone(),
        rollouts,
        clusters: sel.clusters.clone(),
        early_stop: early.enabled(),
        decided_early: !early.stopped.is_empty(),
        tokens_saved,
        confidence_threshold: early.threshold(),
        note: sel.note.clone(),
    }
}
