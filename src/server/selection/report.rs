//! The top-level `quorum` object: every rollout (answer, cluster, vote,
//! score, confidence, tokens, finish reason), the strategy, the winner, its
//! vote share and what early stopping saved.
//!
//! Where it rides: on the `chat.completion` body next to `choices`; in a
//! stream, on the chunk that carries the last choice's `finish_reason`
//! (before the optional usage chunk and `[DONE]`). Both are added to the
//! serialized JSON by this module, so the OpenAI response types stay as
//! they are.

use std::sync::{Arc, Mutex};

use axum::response::{IntoResponse, Response};
use axum::Json;
use quorum_scoring::{ClusterSummary, RolloutSummary, Selection};
use serde::Serialize;
use serde_json::Value;

use super::early::EarlyStop;
use crate::engine::sequence::TokenLogprob;
use crate::engine::{FinishReason, RolloutOutput};
use crate::server::openai::Usage;
use crate::server::sse::ChunkWriter;

/// The finished `quorum` object of a request, filled by the driver before
/// it sends the selected choices; empty when selection is off.
pub type QuorumSlot = Arc<Mutex<Option<Value>>>;

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

fn filled(slot: &QuorumSlot) -> Option<Value> {
    slot.lock().ok().and_then(|g| g.clone())
}

/// A JSON response of `body`, with `quorum` added when the slot is filled.
pub fn json_with_quorum<T: Serialize>(body: &T, slot: &QuorumSlot) -> Response {
    let Some(q) = filled(slot) else {
        return Json(body).into_response();
    };
    match serde_json::to_value(body) {
        Ok(Value::Object(mut m)) => {
            m.insert("quorum".into(), q);
            Json(Value::Object(m)).into_response()
        }
        _ => Json(body).into_response(),
    }
}

/// Adds `quorum` to one serialized chunk.
fn attach(chunk: String, q: Value) -> String {
    match serde_json::from_str::<Value>(&chunk) {
        Ok(Value::Object(mut m)) => {
            m.insert("quorum".into(), q);
            serde_json::to_string(&m).unwrap_or(chunk)
        }
        _ => chunk,
    }
}

/// Wraps a chunk writer: the chunk of the `n`-th finish carries the
/// `quorum` object (a pass-through while the slot is empty).
pub struct QuorumWriter<W> {
    inner: W,
    slot: QuorumSlot,
    n: usize,
    finished: usize,
}

impl<W> QuorumWriter<W> {
    pub fn new(inner: W, slot: QuorumSlot, n: usize) -> Self {
        Self {
            inner,
            slot,
            n,
            finished: 0,
        }
    }
}

impl<W: ChunkWriter> ChunkWriter for QuorumWriter<W> {
    fn start(&mut self) -> Vec<String> {
        self.inner.start()
    }

    fn token(&mut self, rollout: usize, text: &str, logprob: &TokenLogprob) -> Option<String> {
        self.inner.token(rollout, text, logprob)
    }

    fn finish(&mut self, rollout: usize, reason: FinishReason) -> Option<String> {
        let chunk = self.inner.finish(rollout, reason)?;
        self.finished += 1;
        match (self.finished == self.n)
            .then(|| filled(&self.slot))
            .flatten()
        {
            Some(q) => Some(attach(chunk, q)),
            None => Some(chunk),
        }
    }

    fn usage(&mut self, usage: Usage) -> String {
        self.inner.usage(usage)
    }
}
