//! `POST /v1/score` (vendor endpoint): reward-model scores of completions.
//!
//! Body: `{"model", "prompt": "..." | "messages": [...], "completions": ["...", ...]}`
//! — `model` names a served model that has a reward model (`--reward-model`).
//! Each completion is scored as the assistant's answer to the conversation
//! (a `prompt` is one user message), exactly as `best_of_n` and
//! `weighted_majority` score rollouts. Response:
//! `{"object": "list", "data": [{"object": "score", "index", "score"}], "model", "usage"}`,
//! `usage.prompt_tokens` counting every token run through the reward model.
//!
//! The pairs are tokenized here (blocking pool) and scored as one job on the
//! model's engine, through the same bounded queue as generation: a full
//! queue is a 429 with Retry-After, and a client that goes away cancels
//! the job (the engine drops it before its next step).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::chat::ChatMessage;
use crate::server::error::ApiError;
use crate::server::extract::ApiJson;
use crate::server::openai::decode::{parse, DecodeError, JsonBody};
use crate::server::openai::new_id;
use crate::server::openai::request::WireMessage;
use crate::server::openai::Usage;
use crate::server::reward::RewardClient;
use crate::server::state::AppState;
use crate::server::validate;

/// Quorum's own endpoint, so strict: an unknown key is a 400 naming it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    pub model: String,
    pub prompt: Option<String>,
    pub messages: Option<Vec<WireMessage>>,
    pub completions: Vec<String>,
}

impl JsonBody for ScoreRequest {
    fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        parse(bytes)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ScoreItem {
    pub object: &'static str,
    pub index: usize,
    pub score: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScoreList {
    pub object: &'static str,
    pub data: Vec<ScoreItem>,
    pub model: String,
    pub usage: Usage,
}

pub async fn score(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ScoreRequest>,
) -> Result<Json<ScoreList>, ApiError> {
    let conversation = conversation(&req)?;
    if req.completions.is_empty() || req.completions.len() > state.config.max_rollouts {
        return Err(ApiError::invalid(
            "completions",
            format!(
                "completions must hold between 1 and {} strings, got {}",
                state.config.max_rollouts,
                req.completions.len()
            ),
        ));
    }
    let entry = state.model(&req.model)?;
    let Some(rm) = RewardClient::of(&entry, state.config.retry_after_secs) else {
        return Err(ApiError::invalid(
            "model",
            format!(
                "model `{}` has no reward model (start the server with --reward-model DIR)",
                entry.id
            ),
        ));
    };
    let _permit = state.admit()?;
    let job = rm
        .encode(&new_id("score"), conversation, req.completions)
        .await?;
    let out = rm.score(job).await?;
    let data = out
        .scores
        .into_iter()
        .enumerate()
        .map(|(index, score)| ScoreItem {
            object: "score",
            index,
            score,
        })
        .collect();
    Ok(Json(ScoreList {
        object: "list",
        data,
        model: entry.id.clone(),
        usage: Usage::new(out.tokens, 0, 0),
    }))
}

/// The conversation the completions answer: `messages`, or `prompt` as one
/// user message (exactly one of them).
fn conversation(req: &ScoreRequest) -> Result<Vec<ChatMessage>, ApiError> {
    match (&req.prompt, &req.messages) {
        (Some(p), None) => Ok(vec![ChatMessage::user(p)]),
        (None, Some(m)) if !m.is_empty() => m
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, m)| validate::message(i, m))
            .collect(),
        (None, Some(_)) => Err(ApiError::invalid(
            "messages",
            "messages must contain at least one message",
        )),
        _ => Err(ApiError::invalid(
            "prompt",
            "give exactly one of `prompt` (a string) or `messages`",
        )),
    }
}
