//! Selection over one request's engine events: buffer every rollout's
//! tokens while they run (stopping rollouts early as the policy says), and
//! when the engine reports the request finished, score with the reward
//! model (strategies that need it), select, and return the chosen rollouts
//! in ranking order with the `quorum` report. Failures keep their kind: a
//! reward-model 400 or 429 reaches the client as that status.

use tokio::sync::mpsc::UnboundedReceiver;

use super::early::{summaries, Watch};
use super::{report, Plan};
use crate::engine::sequence::TokenLogprob;
use crate::engine::{EngineEvent, FinishReason, GenerateOutput};
use crate::server::error::ApiError;
use crate::server::openai::{new_id, QuorumReport};

/// The outcome of selection, ready for the response writers.
#[derive(Debug)]
pub struct Selected {
    /// The best `n` rollouts, renumbered `0..n` in ranking order; token
    /// counts (usage) are those of every rollout decoded.
    pub output: GenerateOutput,
    /// Per chosen rollout, in the same order: its streamed text pieces with
    /// their log-probs (what a stream sends as deltas).
    pub pieces: Vec<Vec<(String, TokenLogprob)>>,
    /// The `quorum` object.
    pub report: QuorumReport,
}

impl Selected {
    /// Rollouts early stopping cancelled.
    pub fn stopped_early(&self) -> usize {
        self.report
            .rollouts
            .iter()
            .filter(|r| r.stopped_early)
            .count()
    }
}

/// Waits until the engine admits the request: its prompt tokens, or the
/// failure that came instead. Other events never come before `Started`.
pub async fn admitted(events: &mut UnboundedReceiver<EngineEvent>) -> Result<usize, ApiError> {
    while let Some(ev) = events.recv().await {
        match ev {
            EngineEvent::Started { prompt_tokens, .. } => return Ok(prompt_tokens),
            EngineEvent::Error(e) => return Err(ApiError::from(e)),
            _ => {}
        }
    }
    Err(ApiError::engine_gone())
}

/// Consumes `events` to the end of the request and selects. `max_tokens`
/// is the request's final completion budget (early stopping's window cap
/// and the tokens-saved measure). Dropping the future drops nothing of the
/// engine's: the caller owns `events`, whose drop cancels the request.
pub async fn run(
    plan: Plan,
    events: &mut UnboundedReceiver<EngineEvent>,
    max_tokens: usize,
) -> Result<Selected, ApiError> {
    let mut watch = Watch::new(&plan.options, plan.rollouts, max_tokens);
    while let Some(ev) = events.recv().await {
        match watch.observe(ev, &plan.cancel) {
            Some(EngineEvent::Finished(out)) => return select(plan, watch, out, max_tokens).await,
            Some(EngineEvent::Error(e)) => return Err(ApiError::from(e)),
            // `Started` (the caller may have taken it already) and events
            // the watch consumed.
            _ => {}
        }
    }
    Err(ApiError::engine_gone())
}

/// Scores, selects, and builds the chosen rollouts and the report.
async fn select(
    plan: Plan,
    mut watch: Watch,
    out: GenerateOutput,
    max_tokens: usize,
) -> Result<Selected, ApiError> {
    let mut outs = out.rollouts.clone();
    outs.sort_by_key(|o| o.index);
    watch.settle(&outs);
    let mut summaries = summaries(&outs, &watch.traces, plan.options.extract.as_ref());
    if let Some(rm) = &plan.reward {
        let scored: Vec<usize> = (0..outs.len())
            .filter(|&k| outs[k].finish_reason != FinishReason::Cancelled)
            .collect();
        // The whole completion, reasoning included: the reward model's
        // template renders it as the assistant turn (its think block as the
        // turn's reasoning), exactly as `quorum train rm` trains on it.
        let completions = scored.iter().map(|&k| outs[k].text.clone()).collect();
        let scoring = |e: ApiError| e.context("reward model scoring failed");
        let job = rm
            .encode(&new_id("score"), plan.conversation.clone(), completions)
            .await
            .map_err(scoring)?;
        let res = rm.score_patiently(job).await.map_err(scoring)?;
        for (&k, s) in scored.iter().zip(res.scores) {
            summaries[k].score = Some(s);
        }
    }
    let sel = plan.selector.select(&summaries);
    let early = &watch.early;
    let tokens_saved: usize = outs
        .iter()
        .filter(|o| early.stopped.contains(&o.index))
        .map(|o| max_tokens.saturating_sub(o.token_ids.len()))
        .sum();
    let strategy = plan.options.strategy_name();
    let report = report::build(strategy, &sel, &outs, &summaries, early, tokens_saved);
    let mut chosen = Vec::with_capacity(plan.n);
    let mut pieces = Vec::with_capacity(plan.n);
    for (k, &idx) in sel.ranking.iter().take(plan.n).enumerate() {
        let Some(o) = outs.iter().find(|o| o.index == idx) else {
            continue;
        };
        let mut r = o.clone();
        r.index = k;
        chosen.push(r);
        pieces.push(
            watch
                .traces
                .get_mut(idx)
                .map(|t| std::mem::take(&mut t.pieces))
                .unwrap_or_default(),
        );
    }
    Ok(Selected {
        output: GenerateOutput {
            rollouts: chosen,
            ..out
        },
        pieces,
        report,
    })
}
