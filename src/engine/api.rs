//! The seam between the HTTP layer and the engine thread: requests go in over
//! a bounded channel, each request gets its own event stream back, and
//! dropping that stream cancels the request. The server never touches
//! tensors; the engine never sees HTTP.

use serde::Serialize;

use super::rollout::{GroupTimings, RolloutOutput};
use super::sampler::SamplingParams;
use super::sequence::{FinishReason, TokenLogprob};

/// One generation request: `n` rollouts of one tokenized prompt.
#[derive(Debug, Clone, Default)]
pub struct GenerateRequest {
    /// Request id, for logs.
    pub id: String,
    pub prompt_ids: Vec<u32>,
    /// Rollouts to decode (each with RNG stream = its index).
    pub n: usize,
    /// Validated sampling parameters; `max_tokens` is set by the caller.
    pub params: SamplingParams,
    /// Think mode (budgets, minimum); `None`: plain generation.
    pub think: Option<super::think::ThinkSpec>,
}

/// Events of one request, in order: `Started`, any number of `Token` and
/// `RolloutFinished` (interleaved across rollouts), then exactly one of
/// `Finished` or `Error`.
#[derive(Debug, Clone)]
pub enum EngineEvent {
    /// The prompt was admitted and prefilled.
    Started {
        prompt_tokens: usize,
        /// Prompt tokens whose KV came from the prefix cache.
        cached_tokens: usize,
    },
    /// A rollout produced a token; `text` is its newly emitted text (may be
    /// empty while a multi-byte char or a possible stop string is pending).
    Token {
        rollout: usize,
        token: u32,
        text: String,
        logprob: TokenLogprob,
    },
    RolloutFinished {
        rollout: usize,
        finish_reason: FinishReason,
    },
    /// All rollouts are done.
    Finished(GenerateOutput),
    Error(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct GenerateOutput {
    pub rollouts: Vec<RolloutOutput>,
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    /// Tokens actually decoded over all rollouts.
    pub completion_tokens: usize,
    /// Reasoning tokens over all rollouts (think mode), kept here because
    /// selection may return fewer rollouts than were decoded.
    pub reasoning_tokens: usize,
    pub timings: GroupTimings,
}

/// Why a request was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The waiting queue is full: retry later (HTTP 429 with Retry-After).
    #[error("the engine queue is full ({capacity} requests waiting); retry later")]
    QueueFull { capacity: usize },
    /// The engine is stopping or has stopped (HTTP 503).
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// The request can never fit the KV budget (HTTP 400).
    #[error("request needs {needed} KV tokens but the engine budget is {budget}")]
    TooLarge { needed: usize, budget: usize },
}
