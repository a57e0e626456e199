//! The selection driver: a task between the engine's event stream and the
//! response writer.
//!
//! While rollouts run it forwards `Started` (so a stream opens at once and
//! keep-alive comments flow), buffers every token, and applies early
//! stopping. When the engine reports the request finished it scores with
//! the reward model (strategies that need it), selects, fills the `quorum`
//! slot, and replays the best `n` rollouts' tokens as rollouts `0..n` in
//! ranking order, then `Finished` with those rollouts (usage still counts
//! every rollout decoded). If the consumer goes away, the task ends and
//! drops the engine stream, which cancels the request.

use quorum_scoring::{after_think, RolloutSummary};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::early::{answer, Watch};
use super::report::{self, QuorumSlot};
use super::Plan;
use crate::engine::{EngineEvent, FinishReason, GenerateOutput, RequestFailure};
use crate::server::generate::new_id;

/// Starts the driver when `plan` is set; otherwise hands `rx` back as is.
/// `max_tokens` is the request's final completion budget.
pub fn start(
    plan: Option<Plan>,
    rx: UnboundedReceiver<EngineEvent>,
    max_tokens: usize,
) -> (UnboundedReceiver<EngineEvent>, QuorumSlot) {
    let slot = QuorumSlot::default();
    let Some(plan) = plan else {
        return (rx, slot);
    };
    let (tx, out) = unbounded_channel();
    let s = slot.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tx.closed() => {}
            _ = drive(plan, rx, &tx, max_tokens, &s) => {}
        }
    });
    (out, slot)
}

async fn drive(
    plan: Plan,
    mut rx: UnboundedReceiver<EngineEvent>,
    tx: &UnboundedSender<EngineEvent>,
    max_tokens: usize,
    slot: &QuorumSlot,
) {
    let mut watch = Watch::new(&plan.options, plan.rollouts, max_tokens);
    while let Some(ev) = rx.recv().await {
        let Some(ev) = watch.observe(ev, &plan.cancel) else {
            continue;
        };
        match ev {
            EngineEvent::Finished(out) => {
                let events = match select(&plan, &mut watch, out, max_tokens).await {
                    Ok((events, quorum)) => {
                        if let Ok(mut g) = slot.lock() {
                            *g = Some(quorum);
                        }
                        events
                    }
                    Err(msg) => vec![EngineEvent::Error(RequestFailure::internal(msg))],
                };
                for e in events {
                    let _ = tx.send(e);
                }
                return;
            }
            EngineEvent::Error(_) => {
                let _ = tx.send(ev);
                return;
            }
            // Started (and anything the watch passes on) goes to the client.
            other => {
                let _ = tx.send(other);
            }
        }
    }
    // The engine went away: dropping `tx` tells the consumer.
}

/// Scores, selects, and builds the replay events and the `quorum` object.
async fn select(
    plan: &Plan,
    watch: &mut Watch,
    out: GenerateOutput,
    max_tokens: usize,
) -> Result<(Vec<EngineEvent>, serde_json::Value), String> {
    let mut outs = out.rollouts.clone();
    outs.sort_by_key(|o| o.index);
    watch.settle(&outs);
    let (traces, early) = (&watch.traces, &watch.early);
    let extract = plan.options.extract.as_ref();
    let mut summaries: Vec<RolloutSummary> = outs
        .iter()
        .map(|o| RolloutSummary {
            index: o.index,
            text: after_think(&o.text).to_string(),
            // Empty = abstain: a stopped rollout has no answer.
            answer: Some(match o.finish_reason {
                FinishReason::Cancelled => String::new(),
                r => answer(&o.text, r, extract).unwrap_or_default(),
            }),
            mean_logprob: o.mean_logprob,
            token_logprobs: traces
                .get(o.index)
                .map(|t| t.logprobs.clone())
                .unwrap_or_default(),
            score: None,
            finish_reason: o.finish_reason.as_str().to_string(),
            tokens: o.token_ids.len(),
        })
        .collect();
    if let Some((rm, conversation)) = &plan.reward {
        let scored: Vec<usize> = (0..outs.len())
            .filter(|&k| outs[k].finish_reason != FinishReason::Cancelled)
            .collect();
        // The whole completion, reasoning included: the reward model's
        // template renders it as the assistant turn (its think block as the
        // turn's reasoning), exactly as `quorum train rm` trains on it.
        let completions = scored.iter().map(|&k| outs[k].text.clone()).collect();
        let failed = |e: crate::server::ApiError| format!("reward model scoring failed: {e}");
        let job = rm
            .encode(&new_id("score"), conversation.clone(), completions)
            .await
            .map_err(failed)?;
        let res = rm.score_patiently(job).await.map_err(failed)?;
        for (&k, s) in scored.iter().zip(res.scores) {
            summaries[k].score = Some(s);
        }
    }
    let sel = plan.selector.select(&summaries);
    let tokens_saved: usize = outs
        .iter()
        .filter(|o| early.stopped.contains(&o.index))
        .map(|o| max_tokens.saturating_sub(o.token_ids.len()))
        .sum();
    let strategy = plan.options.strategy_name();
    plan.state
        .metrics
        .selection
        .record(strategy, early.stopped.len(), tokens_saved);
    let quorum = report::build(strategy, &sel, &outs, &summaries, early, tokens_saved);
    let quorum = serde_json::to_value(&quorum).map_err(|e| e.to_string())?;

    let mut events = Vec::new();
    let mut chosen = Vec::with_capacity(plan.n);
    for (k, &idx) in sel.ranking.iter().take(plan.n).enumerate() {
        let Some(o) = outs.iter().find(|o| o.index == idx) else {
            continue;
        };
        for (text, lp) in traces.get(idx).map_or(&[][..], |t| &t.pieces[..]) {
            events.push(EngineEvent::Token {
                rollout: k,
                token: lp.token,
                text: text.clone(),
                logprob: lp.clone(),
            });
        }
        events.push(EngineEvent::RolloutFinished {
            rollout: k,
            finish_reason: o.finish_reason,
        });
        let mut r = o.clone();
        r.index = k;
        chosen.push(r);
    }
    events.push(EngineEvent::Finished(GenerateOutput {
        rollouts: chosen,
        ..out
    }));
    Ok((events, quorum))
}
