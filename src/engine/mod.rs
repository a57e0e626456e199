//! The inference engine: sampling, stop handling, sequences and rollout
//! groups over the shared [`crate::model::Transformer`], and the engine
//! thread ([`worker`]) that runs them together with the reward model's
//! score jobs ([`score_queue`]).
//!
//! [`api`] is the seam with the HTTP layer: requests in, an event stream
//! out, and a failed request's [`RequestFailure`] keeping its
//! [`FailureKind`]. [`output`] holds what the decode loop ([`group`],
//! [`batch`]) hands back to its drivers ([`rollout`], [`worker`]).

pub mod api;
pub mod batch;
pub mod bundle;
pub mod cancel;
pub mod group;
pub mod memory;
pub mod metrics;
pub mod output;
pub mod prefix_cache;
pub mod reward;
pub mod rollout;
pub mod sampler;
pub mod scheduler;
pub mod score_queue;
pub mod sequence;
pub mod serving;
mod sink;
pub mod stop;
pub mod think;
pub mod weights_view;
pub mod worker;

#[cfg(test)]
mod batching_tests;
#[cfg(test)]
mod cancel_tests;
#[cfg(test)]
mod engine_handle_tests;
#[cfg(test)]
mod rollout_tests;
#[cfg(test)]
mod think_tests;

pub use api::{
    EngineEvent, FailureKind, GenerateOutput, GenerateRequest, RequestFailure, ScoreError,
    ScoreFailure, ScoreOutput, ScoreReceiver, ScoreRequest, SubmitError,
};
pub use batch::{BatchConfig, Batcher};
pub use bundle::{BundleError, ModelBundle};
pub use cancel::CancelSet;
pub use metrics::EngineMetrics;
pub use output::{GroupOutput, RolloutOutput};
pub use reward::{RewardCodec, RewardModel};
pub use rollout::{
    generate_group, generate_groups, GroupRequest, RolloutConfig, RolloutError, RolloutProgress,
};
pub use sampler::{Sampler, SamplingParams};
pub use scheduler::{Scheduler, SchedulerConfig};
pub use sequence::{FinishReason, Sequence};
pub use worker::{EngineConfig, EngineHandle, ModelInfo, RewardInfo, SpawnError};

/// Failures of a generation request.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("prompt is empty")]
    EmptyPrompt,
    #[error(
        "this model's maximum context length is {context} tokens; the prompt has {prompt} tokens and max_tokens is {max_tokens}"
    )]
    ContextLength {
        prompt: usize,
        max_tokens: usize,
        context: usize,
    },
    /// The request is invalid (e.g. `n = 0`).
    #[error("{0}")]
    Invalid(String),
    /// The group's KV reservation exceeds the engine's whole budget.
    #[error("request needs {needed} KV tokens but the engine budget is {budget}")]
    KvBudget { needed: usize, budget: usize },
    #[error(transparent)]
    Sampling(#[from] sampler::SamplingError),
    #[error(transparent)]
    StopStrings(#[from] stop::StopStringsError),
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
    /// A batched forward failed; every group in it fails with this.
    #[error("forward failed: {0}")]
    Forward(String),
    /// The engine lost track of a request (a bug).
    #[error("{0}")]
    Internal(String),
}

/// Run `f` as a worker of a rayon pool sized to the machine, so the thread
/// driving the model takes part in the kernels' parallel splits instead of
/// sleeping while two pool threads are woken for every matmul: ~8% faster
/// decode at N=1 and N=8, measured with `quorum bench throughput`.
pub fn in_engine_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match rayon::ThreadPoolBuilder::new().build() {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}
