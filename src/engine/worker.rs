//! The engine thread: owns the model, takes requests from a bounded queue and
//! streams events back. Started with a ready handshake, so a model that fails
//! to load is a clean error at start-up, not a dead engine later.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::api::{EngineEvent, GenerateOutput, GenerateRequest, SubmitError};
use super::bundle::ModelBundle;
use super::rollout::{generate_group, GroupRequest};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Requests that may wait for the engine; more are rejected at once.
    pub queue_capacity: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self { queue_capacity: 64 }
    }
}

/// Counters the engine keeps for `/metrics`.
#[derive(Debug, Default)]
pub struct EngineMetrics {
    pub requests_total: AtomicU64,
    pub requests_rejected: AtomicU64,
    pub requests_cancelled: AtomicU64,
    pub rollouts_total: AtomicU64,
    pub prompt_tokens_total: AtomicU64,
    pub completion_tokens_total: AtomicU64,
    pub queue_depth: AtomicUsize,
    pub running: AtomicUsize,
}

struct Job {
    req: GenerateRequest,
    events: UnboundedSender<EngineEvent>,
}

/// Cloneable handle to the engine thread.
#[derive(Clone)]
pub struct EngineHandle {
    tx: SyncSender<Job>,
    capacity: usize,
    metrics: Arc<EngineMetrics>,
    info: Arc<ModelInfo>,
}

/// What the HTTP layer needs to know about the served model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub vocab_size: usize,
    pub context_length: usize,
}

impl EngineHandle {
    /// Start the engine thread; `load` runs on it and builds the model.
    pub fn spawn<F>(load: F, cfg: EngineConfig) -> Result<Self, String>
    where
        F: FnOnce() -> Result<ModelBundle, String> + Send + 'static,
    {
        let (tx, rx) = sync_channel::<Job>(cfg.queue_capacity);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let metrics = Arc::new(EngineMetrics::default());
        let m = metrics.clone();
        std::thread::Builder::new()
            .name("quorum-engine".into())
            .spawn(move || match load() {
                Ok(bundle) => {
                    let info = ModelInfo {
                        vocab_size: bundle.loaded.config.vocab_size,
                        context_length: bundle.loaded.model.max_positions(),
                    };
                    let _ = ready_tx.send(Ok(info));
                    run(bundle, rx, m);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| format!("cannot start engine thread: {e}"))?;
        let info = ready_rx
            .recv()
            .map_err(|_| "engine thread died while loading".to_string())??;
        Ok(Self {
            tx,
            capacity: cfg.queue_capacity,
            metrics,
            info: Arc::new(info),
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn metrics(&self) -> &EngineMetrics {
        &self.metrics
    }

    /// Queue a request. Never blocks: a full queue is an immediate
    /// [`SubmitError::QueueFull`]. Dropping the returned receiver cancels.
    pub fn submit(
        &self,
        req: GenerateRequest,
    ) -> Result<UnboundedReceiver<EngineEvent>, SubmitError> {
        let (events, rx) = unbounded_channel();
        match self.tx.try_send(Job { req, events }) {
            Ok(()) => {
                self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
                Ok(rx)
            }
            Err(TrySendError::Full(_)) => {
                self.metrics
                    .requests_rejected
                    .fetch_add(1, Ordering::Relaxed);
                Err(SubmitError::QueueFull {
                    capacity: self.capacity,
                })
            }
            Err(TrySendError::Disconnected(_)) => Err(SubmitError::ShuttingDown),
        }
    }
}

fn run(bundle: ModelBundle, rx: Receiver<Job>, metrics: Arc<EngineMetrics>) {
    while let Ok(job) = rx.recv() {
        metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
        if job.events.is_closed() {
            metrics.requests_cancelled.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        metrics.running.fetch_add(1, Ordering::Relaxed);
        metrics.requests_total.fetch_add(1, Ordering::Relaxed);
        metrics
            .rollouts_total
            .fetch_add(job.req.n as u64, Ordering::Relaxed);
        let result = run_job(&bundle, &job);
        metrics.running.fetch_sub(1, Ordering::Relaxed);
        match result {
            Ok(out) => {
                metrics
                    .prompt_tokens_total
                    .fetch_add(out.prompt_tokens as u64, Ordering::Relaxed);
                metrics
                    .completion_tokens_total
                    .fetch_add(out.completion_tokens as u64, Ordering::Relaxed);
                if job.events.is_closed() {
                    metrics.requests_cancelled.fetch_add(1, Ordering::Relaxed);
                }
                let _ = job.events.send(EngineEvent::Finished(out));
            }
            Err(e) => {
                let _ = job.events.send(EngineEvent::Error(e.to_string()));
            }
        }
    }
}

fn run_job(bundle: &ModelBundle, job: &Job) -> Result<GenerateOutput, super::EngineError> {
    let req = GroupRequest {
        prompt_ids: job.req.prompt_ids.clone(),
        n: job.req.n,
        params: job.req.params.clone(),
        eos_token_ids: bundle.eos_token_ids.clone(),
    };
    let _ = job.events.send(EngineEvent::Started {
        prompt_tokens: req.prompt_ids.len(),
        cached_tokens: 0,
    });
    let events = &job.events;
    let out = generate_group(&bundle.loaded.model, &bundle.tokenizer, &req, &mut |ev| {
        let logprob = super::sequence::TokenLogprob {
            token: ev.token,
            logprob: ev.logprob,
            top_logprobs: ev.top_logprobs.to_vec(),
        };
        let mut alive = events
            .send(EngineEvent::Token {
                rollout: ev.rollout,
                token: ev.token,
                text: ev.text.to_string(),
                logprob,
            })
            .is_ok();
        if let Some(finish_reason) = ev.finish {
            alive &= events
                .send(EngineEvent::RolloutFinished {
                    rollout: ev.rollout,
                    finish_reason,
                })
                .is_ok();
        }
        alive
    })?;
    Ok(GenerateOutput {
        completion_tokens: out.completion_tokens,
        prompt_tokens: out.prompt_tokens,
        cached_tokens: 0,
        rollouts: out.rollouts,
        timings: out.timings,
    })
}
