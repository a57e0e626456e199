//! The seam between the HTTP layer and the engine thread: requests go in over
//! a bounded channel, each request gets its own event stream back, and
//! dropping that stream cancels the request. The server never touches
//! tensors; the engine never sees HTTP.
//!
//! Two kinds of work share the one queue: generation ([`GenerateRequest`],
//! answered by a stream of [`EngineEvent`]s) and reward-model scoring
//! ([`ScoreRequest`], answered once with a [`ScoreOutput`]).

use serde::Serialize;
use tokio::sync::oneshot;

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

/// One reward-model scoring job: already tokenized sequences (each a
/// rendered (conversation, completion) pair, see
/// [`super::reward::RewardCodec`]), each scored at its last token.
#[derive(Debug, Clone, Default)]
pub struct ScoreRequest {
    /// Request id, for logs.
    pub id: String,
    pub sequences: Vec<Vec<u32>>,
}

/// Scores of one job.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreOutput {
    /// One score per sequence, in order (higher is better).
    pub scores: Vec<f64>,
    /// Tokens run through the reward model (every sequence, prompt included).
    pub tokens: usize,
}

/// Why an accepted scoring job failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScoreError {
    /// Bad input (an empty sequence, one over the reward model's context, a
    /// token outside its vocabulary): the client's fault.
    #[error("{0}")]
    Invalid(String),
    /// The forward failed.
    #[error("reward model: {0}")]
    Failed(String),
    /// The engine stopped before answering.
    #[error("the engine stopped before scoring")]
    Stopped,
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
    /// A score job for an engine without a reward model (HTTP 400).
    #[error("this model has no reward model")]
    NoRewardModel,
}

/// The answer of one score job; dropping it cancels the job.
pub struct ScoreReceiver(oneshot::Receiver<Result<ScoreOutput, ScoreError>>);

impl ScoreReceiver {
    pub(super) fn new(rx: oneshot::Receiver<Result<ScoreOutput, ScoreError>>) -> Self {
        Self(rx)
    }
}

impl std::future::Future for ScoreReceiver {
    type Output = Result<ScoreOutput, ScoreError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ScoreError::Stopped)))
    }
}

impl ScoreReceiver {
    /// Waits for the answer on a thread outside the async runtime.
    pub fn blocking_recv(self) -> Result<ScoreOutput, ScoreError> {
        self.0.blocking_recv().unwrap_or(Err(ScoreError::Stopped))
    }

    /// The answer if it is there, without waiting.
    pub fn try_recv(&mut self) -> Option<Result<ScoreOutput, ScoreError>> {
        match self.0.try_recv() {
            Ok(r) => Some(r),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(ScoreError::Stopped)),
        }
    }
}

/// Why [`super::EngineHandle::score`] gave no scores.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScoreFailure {
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(transparent)]
    Score(#[from] ScoreError),
}
