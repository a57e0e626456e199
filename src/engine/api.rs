//! The seam between the HTTP layer and the engine thread: requests go in over
//! a bounded channel, each request gets its own event stream back, and
//! dropping that stream cancels the request. The server never touches
//! tensors; the engine never sees HTTP.
//!
//! Two kinds of work share the one queue: generation ([`GenerateRequest`],
//! answered by a stream of [`EngineEvent`]s) and reward-model scoring
//! ([`ScoreRequest`], answered once with a [`ScoreOutput`]).
//!
//! A generation request that fails ends its stream with
//! [`EngineEvent::Error`], a [`RequestFailure`] that keeps the failure's
//! [`FailureKind`] (the client's fault, the engine's, or a stopped engine)
//! next to its message; the HTTP layer picks the status from the kind.

use serde::Serialize;
use tokio::sync::oneshot;

use super::output::{GroupTimings, RolloutOutput};
use super::sampler::SamplingParams;
use super::sequence::{FinishReason, TokenLogprob};
use super::EngineError;

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
    /// The request failed; nothing follows.
    Error(RequestFailure),
}

/// Whose fault a failed generation request is, as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The request itself is invalid (an empty prompt, `n = 0`, sampling
    /// parameters or stop strings the engine refuses): the client's fault.
    InvalidRequest,
    /// Prompt plus completion budget exceed the model's context: the
    /// client's fault.
    ContextLength,
    /// The request can never fit the engine's KV budget: the client's fault.
    KvBudget,
    /// A model forward or another failure inside the engine.
    Internal,
    /// The engine stopped before finishing the request: its event stream
    /// ended without `Finished` or `Error` (see [`RequestFailure::stopped`]).
    Stopped,
}

impl FailureKind {
    /// Whether the request, not the engine, is at fault.
    pub fn is_client_error(self) -> bool {
        matches!(
            self,
            Self::InvalidRequest | Self::ContextLength | Self::KvBudget
        )
    }
}

/// Why a generation request failed: its kind and a message safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl RequestFailure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A failure inside the engine.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Internal, message)
    }

    /// The engine stopped before finishing the request: what a consumer
    /// reports when the event stream ends without `Finished` or `Error`.
    pub fn stopped() -> Self {
        Self::new(
            FailureKind::Stopped,
            "the engine stopped before finishing the request",
        )
    }
}

impl From<EngineError> for RequestFailure {
    fn from(e: EngineError) -> Self {
        use super::sampler::SamplingError;
        let kind = match &e {
            EngineError::EmptyPrompt | EngineError::Invalid(_) | EngineError::StopStrings(_) => {
                FailureKind::InvalidRequest
            }
            EngineError::ContextLength { .. } => FailureKind::ContextLength,
            EngineError::KvBudget { .. } => FailureKind::KvBudget,
            // A logits buffer of the wrong shape is the engine's bug; every
            // other sampling error comes from the request's parameters
            // (a logit bias outside the vocabulary, every token banned).
            EngineError::Sampling(SamplingError::LogitsShape { .. }) => FailureKind::Internal,
            EngineError::Sampling(_) => FailureKind::InvalidRequest,
            EngineError::Tokenizer(_)
            | EngineError::Model(_)
            | EngineError::Forward(_)
            | EngineError::Internal(_) => FailureKind::Internal,
        };
        Self::new(kind, e.to_string())
    }
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

#[cfg(test)]
mod tests {
    use super::super::sampler::SamplingError;
    use super::*;

    fn kind(e: EngineError) -> FailureKind {
        RequestFailure::from(e).kind
    }

    #[test]
    fn engine_errors_keep_their_kind_and_message() {
        let f = RequestFailure::from(EngineError::KvBudget {
            needed: 10,
            budget: 4,
        });
        assert_eq!(
            f,
            RequestFailure::new(
                FailureKind::KvBudget,
                "request needs 10 KV tokens but the engine budget is 4"
            )
        );
        assert_eq!(kind(EngineError::EmptyPrompt), FailureKind::InvalidRequest);
        assert_eq!(
            kind(EngineError::ContextLength {
                prompt: 5,
                max_tokens: 4,
                context: 8
            }),
            FailureKind::ContextLength
        );
        assert_eq!(
            kind(EngineError::Sampling(SamplingError::NoViableToken)),
            FailureKind::InvalidRequest
        );
        assert_eq!(
            kind(EngineError::Sampling(SamplingError::LogitsShape {
                len: 1,
                rows: 1,
                vocab: 2
            })),
            FailureKind::Internal
        );
        let forward = RequestFailure::from(EngineError::Forward("oom".into()));
        assert_eq!(
            forward,
            RequestFailure::new(FailureKind::Internal, "forward failed: oom")
        );
        assert!(!forward.kind.is_client_error());
        assert_eq!(RequestFailure::stopped().kind, FailureKind::Stopped);
        assert!(!FailureKind::Stopped.is_client_error());
    }
}
