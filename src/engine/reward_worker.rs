//! The reward model's own thread: the same seam as the policy engine
//! ([`super::EngineHandle`]) — a bounded queue in, one reply per job out —
//! so the HTTP layer never runs a forward on an async worker.
//!
//! Why a separate thread rather than the policy engine's: the reward model
//! has different weights (its own backbone and `score` head), its work is
//! one ragged forward per batch of finished completions (no KV cache, no
//! sampling, no continuous batching), and keeping it apart leaves the policy
//! engine's scheduler and KV accounting untouched. Jobs run one at a time in
//! arrival order; a full queue is refused at once (HTTP 429), like the engine.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

use candle_core::Device;
use tokio::sync::oneshot;

use super::reward::{RewardError, RewardModel};
use crate::chat::ChatMessage;
use crate::model::WeightDType;

/// Scores of one job.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreOutput {
    /// One score per completion, in order (higher is better).
    pub scores: Vec<f64>,
    /// Tokens run through the reward model (every pair, prompt included).
    pub tokens: usize,
}

/// Why a scoring job failed.
#[derive(Debug, thiserror::Error)]
pub enum RewardJobError {
    #[error("the reward model queue is full ({capacity} jobs waiting); retry later")]
    QueueFull { capacity: usize },
    #[error("the reward model thread has stopped")]
    Stopped,
    /// Bad input (a completion over the context): the client's fault.
    #[error("{0}")]
    Invalid(String),
    #[error("reward model: {0}")]
    Failed(String),
}

struct Job {
    conversation: Vec<ChatMessage>,
    completions: Vec<String>,
    reply: oneshot::Sender<Result<ScoreOutput, RewardJobError>>,
}

/// Cloneable handle to a reward-model thread.
#[derive(Clone)]
pub struct RewardHandle {
    tx: SyncSender<Job>,
    capacity: usize,
    /// The model directory (for logs and errors).
    pub dir: PathBuf,
}

impl RewardHandle {
    /// Loads the reward model on a new thread; returns once it is ready (or
    /// failed to load, e.g. the directory has no `score` head).
    pub fn spawn(
        dir: PathBuf,
        dtype: Option<WeightDType>,
        queue_capacity: usize,
    ) -> Result<Self, String> {
        let capacity = queue_capacity.max(1);
        let (tx, rx) = sync_channel::<Job>(capacity);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let load_dir = dir.clone();
        std::thread::Builder::new()
            .name("quorum-reward".into())
            .spawn(
                move || match RewardModel::load(&load_dir, dtype, &Device::Cpu) {
                    Ok(rm) => {
                        let _ = ready_tx.send(Ok(()));
                        run(&rm, rx);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                    }
                },
            )
            .map_err(|e| format!("cannot start the reward model thread: {e}"))?;
        ready_rx
            .recv()
            .map_err(|_| "the reward model thread died while loading".to_string())??;
        Ok(Self { tx, capacity, dir })
    }

    /// Scores `completions` as assistant answers to `conversation`.
    pub async fn score(
        &self,
        conversation: Vec<ChatMessage>,
        completions: Vec<String>,
    ) -> Result<ScoreOutput, RewardJobError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            conversation,
            completions,
            reply,
        };
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => RewardJobError::QueueFull {
                capacity: self.capacity,
            },
            TrySendError::Disconnected(_) => RewardJobError::Stopped,
        })?;
        rx.await.map_err(|_| RewardJobError::Stopped)?
    }
}

fn run(rm: &RewardModel, rx: Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        if job.reply.is_closed() {
            continue; // the requester left while queued
        }
        let out = score(rm, &job.conversation, &job.completions);
        let _ = job.reply.send(out);
    }
}

fn score(
    rm: &RewardModel,
    conversation: &[ChatMessage],
    completions: &[String],
) -> Result<ScoreOutput, RewardJobError> {
    let context = rm.bundle().loaded.model.max_positions();
    let mut encoded = Vec::with_capacity(completions.len());
    for (index, c) in completions.iter().enumerate() {
        let ids = rm
            .encode_pair(conversation, c)
            .map_err(|e| RewardJobError::Invalid(format!("completions[{index}]: {e}")))?;
        if ids.len() > context {
            return Err(RewardJobError::Invalid(
                RewardError::TooLong {
                    index,
                    tokens: ids.len(),
                    context,
                }
                .to_string(),
            ));
        }
        encoded.push(ids);
    }
    let tokens = encoded.iter().map(Vec::len).sum();
    let scores = rm
        .score_tokens(&encoded)
        .map_err(|e| RewardJobError::Failed(e.to_string()))?;
    Ok(ScoreOutput { scores, tokens })
}
