//! Reward-model scoring from the HTTP layer. The reward model runs on the
//! policy's engine thread ([`crate::engine::score_queue`]); this side only
//! renders and tokenizes (conversation, completion) pairs with the reward
//! model's chat template (on the blocking pool, like prompts), checks them
//! against its context, and submits the job to the engine's queue.

use std::sync::Arc;
use std::time::Duration;

use super::error::ApiError;
use super::state::ModelEntry;
use super::tokenize::blocking;
use crate::chat::ChatMessage;
use crate::engine::{
    EngineHandle, RewardCodec, ScoreError, ScoreFailure, ScoreOutput, ScoreRequest,
};

/// How long answer selection waits for room in a full engine queue before
/// giving up on scoring: its rollouts are already decoded, so a short wait
/// is better than throwing them away with a 429.
const SELECTION_PATIENCE: Duration = Duration::from_secs(30);

/// Scores completions with one model's reward model.
#[derive(Clone)]
pub struct RewardClient {
    engine: EngineHandle,
    codec: Arc<RewardCodec>,
    context: usize,
    /// The `Retry-After` hint of a 429 (`--retry-after-secs`).
    retry_after_secs: u64,
}

impl RewardClient {
    /// The reward model of `entry`, if it has one; a full engine queue is
    /// a 429 with `retry_after_secs` as its hint.
    pub fn of(entry: &ModelEntry, retry_after_secs: u64) -> Option<Self> {
        let codec = entry.reward.clone()?;
        let info = entry.engine.info().reward.as_ref()?;
        Some(Self {
            engine: entry.engine.clone(),
            codec,
            context: info.context_length,
            retry_after_secs,
        })
    }

    /// Renders and tokenizes each completion as the assistant's answer to
    /// `conversation`; a pair over the reward model's context is a 400
    /// naming `completions`.
    pub async fn encode(
        &self,
        id: &str,
        conversation: Vec<ChatMessage>,
        completions: Vec<String>,
    ) -> Result<ScoreRequest, ApiError> {
        let (codec, context) = (self.codec.clone(), self.context);
        let sequences = blocking(move || {
            completions
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let ids = codec.encode_pair(&conversation, c, Some(context)).map_err(|e| {
                        ApiError::invalid("completions", format!("completions[{i}]: {e}"))
                    })?;
                    if ids.len() > context {
                        return Err(ApiError::invalid(
                            "completions",
                            format!(
                                "completions[{i}]: {} tokens with the conversation exceed the reward model's context of {context}",
                                ids.len()
                            ),
                        ));
                    }
                    Ok(ids)
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        Ok(ScoreRequest {
            id: id.to_string(),
            sequences,
        })
    }

    /// Scores on the engine; a full queue is a 429 with Retry-After.
    pub async fn score(&self, req: ScoreRequest) -> Result<ScoreOutput, ApiError> {
        self.engine
            .score(req)
            .await
            .map_err(|e| api_error(e, self.retry_after_secs))
    }

    /// [`Self::score`] for answer selection: while the engine queue is full
    /// it waits for room for a while instead of failing at once.
    pub async fn score_patiently(&self, req: ScoreRequest) -> Result<ScoreOutput, ApiError> {
        let rx = self
            .engine
            .submit_score_waiting(req, SELECTION_PATIENCE)
            .await
            .map_err(|e| api_error(e.into(), self.retry_after_secs))?;
        rx.await
            .map_err(|e| api_error(e.into(), self.retry_after_secs))
    }
}

fn api_error(e: ScoreFailure, retry_after_secs: u64) -> ApiError {
    match e {
        ScoreFailure::Submit(e) => ApiError::from_submit(e, retry_after_secs),
        ScoreFailure::Score(ScoreError::Invalid(m)) => ApiError::invalid("completions", m),
        ScoreFailure::Score(e @ ScoreError::Failed(_)) => ApiError::Internal(e.to_string()),
        ScoreFailure::Score(e @ ScoreError::Stopped) => ApiError::Unavailable(e.to_string()),
    }
}
