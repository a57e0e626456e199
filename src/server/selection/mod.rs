//! Answer selection on the serving side (vendor fields `rollouts` and
//! `selection`): draw `rollouts` samples, rank them with a
//! [`quorum_scoring::Selector`], return the best `n` as `choices` and report
//! every rollout in a top-level `quorum` object.
//!
//! The request path stays the plain one (validate → template → engine); this
//! module sits between the engine's event stream and the response writers:
//! [`run::start`] consumes the engine events (stopping rollouts early through
//! a [`CancelSet`] when the vote is decided), scores with the reward model
//! when the strategy needs it (one score job on the same engine, see
//! [`super::reward`]), selects, and then *replays* the chosen
//! rollouts' token events, re-indexed in ranking order, on a fresh stream.
//! Both response paths (JSON and SSE) read that stream exactly as they read
//! the engine's, so the chat writers need no selection logic of their own.
//!
//! Layout: [`options`] (the `selection` field and per-model defaults),
//! [`run`] (the driver), [`early`] (adaptive stopping), [`report`] (the
//! `quorum` object and where it rides), [`metrics`].

pub mod early;
pub mod metrics;
pub mod options;
pub mod report;
pub mod run;

use std::sync::Arc;

use quorum_scoring::{SelectionConfig, Selector, WeightSource};

use super::error::ApiError;
use super::reward::RewardClient;
use super::state::{AppState, ModelEntry};
use super::validate::ValidRequest;
use crate::chat::ChatMessage;
use crate::engine::CancelSet;

pub use metrics::SelectionMetrics;
pub use options::{ModelDefaults, SelectionOptions};
pub use report::{QuorumSlot, QuorumWriter};

/// Everything the driver needs for one request with selection on.
pub struct Plan {
    pub options: SelectionOptions,
    pub selector: Box<dyn Selector>,
    /// Per-rollout cancellation shared with the engine (early stop).
    pub cancel: Arc<CancelSet>,
    /// The reward model and the conversation it scores completions against.
    pub reward: Option<(RewardClient, Vec<ChatMessage>)>,
    pub rollouts: usize,
    pub n: usize,
    pub state: AppState,
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

/// The selection plan of a validated chat request, or `None` for plain
/// sampling. Selection is on when `selection` is given (by the request or
/// the model's configured default) or when more rollouts are drawn than
/// choices returned; without it the `n` rollouts stream token by token.
pub fn plan(
    state: &AppState,
    entry: &ModelEntry,
    req: &ValidRequest,
    conversation: &[ChatMessage],
) -> Result<Option<Plan>, ApiError> {
    if req.selection.is_none() && req.rollouts <= req.n {
        return Ok(None);
    }
    let options = match &req.selection {
        Some(v) => SelectionOptions::parse(v).map_err(|e| ApiError::invalid(e.param, e.message))?,
        None => SelectionOptions::default(),
    };
    if options.config == SelectionConfig::First && req.rollouts <= req.n {
        // Nothing to rank: keep true token streaming.
        return Ok(None);
    }
    let selector = options
        .config
        .build()
        .map_err(|e| ApiError::invalid("selection", e.to_string()))?;
    let reward = if needs_reward(&options.config) {
        let Some(rm) = RewardClient::of(entry) else {
            return Err(ApiError::invalid(
                "selection.strategy",
                format!(
                    "selection strategy `{}` needs a reward model, and model `{}` has none (start the server with --reward-model DIR)",
                    options.strategy_name(),
                    entry.id
                ),
            ));
        };
        Some((rm, conversation.to_vec()))
    } else {
        None
    };
    Ok(Some(Plan {
        options,
        selector,
        cancel: Arc::new(CancelSet::new(req.rollouts)),
        reward,
        rollouts: req.rollouts,
        n: req.n,
        state: state.clone(),
    }))
}
