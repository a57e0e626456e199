//! Answer selection on the serving side (vendor fields `rollouts` and
//! `selection`): draw `rollouts` samples, rank them with a
//! [`quorum_scoring::Selector`], return the best `n` as `choices` and report
//! every rollout in the top-level `quorum` object.
//!
//! The request path stays the plain one (validate → template → engine); with
//! selection on, [`plan`] turns the validated request into a [`Plan`] (an
//! explicit value: selector, per-rollout cancel flags, reward model), the
//! route submits with the plan's cancel set, and [`run::run`] consumes the
//! engine's events (stopping rollouts early through the [`CancelSet`] when
//! the vote is decided), scores with the reward model when the strategy
//! needs it (one score job on the same engine, see [`super::reward`]),
//! selects, and returns a [`run::Selected`]: the chosen rollouts in ranking
//! order, their streamed pieces, and the `quorum` report. The response
//! writers turn that value into the JSON body or the SSE chunks.
//!
//! Layout: [`run`] (consume, score, select), [`early`] (adaptive stopping
//! and the rollout summaries), [`report`] (the `quorum` object). The
//! `selection` field itself is parsed with the wire types
//! ([`crate::server::openai::selection`]).

pub mod early;
pub mod report;
pub mod run;

use std::sync::Arc;

use quorum_scoring::{SelectionConfig, Selector, WeightSource};

use super::config::ServerConfig;
use super::error::ApiError;
use super::reward::RewardClient;
use super::state::ModelEntry;
use super::validate::ValidRequest;
use crate::chat::ChatMessage;
use crate::engine::CancelSet;
use crate::server::openai::SelectionOptions;

pub use run::Selected;

/// Everything selection needs for one request.
pub struct Plan {
    pub options: SelectionOptions,
    pub selector: Box<dyn Selector>,
    /// Per-rollout cancellation shared with the engine (early stop).
    pub cancel: Arc<CancelSet>,
    /// The reward model, for strategies that read scores.
    pub reward: Option<RewardClient>,
    /// The conversation the reward model scores completions against (a
    /// completions prompt: one user message, set once it is tokenized).
    pub conversation: Vec<ChatMessage>,
    pub rollouts: usize,
    pub n: usize,
}

/// Whether `cfg` reads reward-model scores.
pub fn needs_reward(cfg: &SelectionConfig) -> bool {
    matches!(
        cfg,
        SelectionConfig::BestOfN { .. }
            | SelectionConfig::WeightedMajority {
                weight: WeightSource::Score
            }
    )
}

/// The selection plan of a validated request, or `None` for plain sampling.
/// Selection is on when `selection` is given (by the request or the model's
/// configured default) or when more rollouts are drawn than choices
/// returned; without it the `n` rollouts stream token by token.
pub fn plan(
    entry: &ModelEntry,
    req: &ValidRequest,
    conversation: &[ChatMessage],
    config: &ServerConfig,
) -> Result<Option<Plan>, ApiError> {
    if req.selection.is_none() && req.rollouts <= req.n {
        return Ok(None);
    }
    let options = req.selection.clone().unwrap_or_default();
    if options.config == SelectionConfig::First && req.rollouts <= req.n {
        // Nothing to rank: keep true token streaming.
        return Ok(None);
    }
    let selector = options
        .config
        .build()
        .map_err(|e| ApiError::invalid("selection", e.to_string()))?;
    let reward = if needs_reward(&options.config) {
        let Some(rm) = RewardClient::of(entry, config.retry_after_secs) else {
            return Err(ApiError::invalid(
                "selection.strategy",
                format!(
                    "selection strategy `{}` needs a reward model, and model `{}` has none (start the server with --reward-model DIR)",
                    options.strategy_name(),
                    entry.id
                ),
            ));
        };
        Some(rm)
    } else {
        None
    };
    Ok(Some(Plan {
        options,
        selector,
        cancel: Arc::new(CancelSet::new(req.rollouts)),
        reward,
        conversation: conversation.to_vec(),
        rollouts: req.rollouts,
        n: req.n,
    }))
}
