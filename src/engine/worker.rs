//! The engine thread: owns the model, takes requests from a bounded queue and
//! streams events back. Started with a ready handshake, so a model that fails
//! to load is a clean error at start-up, not a dead engine later.
//!
//! Requests are batched continuously (see [`super::scheduler`] for the
//! policy): between two forwards the thread takes new requests off the queue
//! as long as nothing is waiting for KV budget, so a request that does not
//! fit yet keeps its place in the bounded queue and a full queue still
//! rejects at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::api::{EngineEvent, GenerateOutput, GenerateRequest, SubmitError};
use super::batch::{BatchConfig, Batcher, Completion};
use super::bundle::ModelBundle;
use super::cancel::CancelSet;
use super::group::GroupSink;
use super::rollout::TokenEvent;
use super::scheduler::{GroupId, SchedulerConfig};
use super::sequence::FinishReason;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Requests that may wait for the engine; more are rejected at once.
    pub queue_capacity: usize,
    /// KV tokens all running requests may reserve; `None` derives it from
    /// `MemAvailable` and the model's KV bytes per token.
    pub kv_budget_tokens: Option<usize>,
    /// Most prompt tokens prefilled per step, so long prompts do not stall
    /// running decodes. 128 on CPU: a 512-token chunk of a 0.6B model holds
    /// every running decode for seconds, while 128 rows still run the
    /// compute-bound GEMM path at full speed.
    pub prefill_chunk: usize,
    /// Most sequences decoded per step.
    pub max_decode_seqs: usize,
    /// Prefix-cache byte budget; `None` derives it from `MemAvailable`,
    /// `Some(0)` turns the cache off.
    pub prefix_cache_bytes: Option<usize>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 64,
            kv_budget_tokens: None,
            prefill_chunk: 128,
            max_decode_seqs: 256,
            prefix_cache_bytes: None,
        }
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
    /// Requests submitted and still in the queue channel.
    pub queue_depth: AtomicUsize,
    /// Requests taken off the queue but waiting for KV budget (0 or 1: the
    /// rest wait in the channel). Waiting in all = `queue_depth + waiting`.
    pub waiting: AtomicUsize,
    /// Requests admitted and running (prefilling or decoding).
    pub running: AtomicUsize,
    /// Unfinished rollouts of running requests.
    pub running_sequences: AtomicUsize,
    /// The KV budget in tokens.
    pub kv_budget_tokens: AtomicUsize,
    /// KV tokens reserved by running requests (admission accounting).
    pub kv_reserved_tokens: AtomicUsize,
    /// Bytes the running requests' KV caches actually hold.
    pub kv_reserved_bytes: AtomicUsize,
    /// Bytes held by the prefix cache.
    pub prefix_cache_bytes: AtomicUsize,
    /// Prompt tokens served from the prefix cache.
    pub prefix_cache_hit_tokens: AtomicU64,
    /// Prompt tokens that had to be prefilled.
    pub prefix_cache_miss_tokens: AtomicU64,
    /// Batched forwards run.
    pub decode_steps_total: AtomicU64,
}

struct Job {
    req: GenerateRequest,
    events: UnboundedSender<EngineEvent>,
    cancel: Option<Arc<CancelSet>>,
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
    /// KV tokens the engine may reserve for running requests.
    pub kv_budget_tokens: usize,
    /// KV bytes one token of one sequence takes.
    pub kv_bytes_per_token: usize,
}

impl EngineHandle {
    /// Start the engine thread; `load` runs on it and builds the model.
    pub fn spawn<F>(load: F, cfg: EngineConfig) -> Result<Self, String>
    where
        F: FnOnce() -> Result<ModelBundle, String> + Send + 'static,
    {
        let (tx, rx) = sync_channel::<Job>(cfg.queue_capacity);
        let capacity = cfg.queue_capacity;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let metrics = Arc::new(EngineMetrics::default());
        let m = metrics.clone();
        std::thread::Builder::new()
            .name("quorum-engine".into())
            .spawn(move || match load() {
                Ok(bundle) => {
                    let (info, batch_cfg) = plan_memory(&bundle, &cfg);
                    let _ = ready_tx.send(Ok(info));
                    super::in_engine_pool(move || run(bundle, batch_cfg, rx, m));
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
            capacity,
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
        self.submit_cancellable(req, None)
    }

    /// [`Self::submit`] plus per-rollout cancellation (early stop of answer
    /// selection): a flagged rollout ends `Cancelled` and frees its KV.
    pub fn submit_cancellable(
        &self,
        req: GenerateRequest,
        cancel: Option<Arc<CancelSet>>,
    ) -> Result<UnboundedReceiver<EngineEvent>, SubmitError> {
        let needed = kv_tokens_needed(&req, self.info.context_length);
        if needed > self.info.kv_budget_tokens {
            self.metrics
                .requests_rejected
                .fetch_add(1, Ordering::Relaxed);
            return Err(SubmitError::TooLarge {
                needed,
                budget: self.info.kv_budget_tokens,
            });
        }
        let (events, rx) = unbounded_channel();
        match self.tx.try_send(Job {
            req,
            events,
            cancel,
        }) {
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

/// KV tokens a request reserves (see [`super::scheduler`]); a prompt over
/// the context is left to the engine, which reports it precisely.
fn kv_tokens_needed(req: &GenerateRequest, context: usize) -> usize {
    let prompt = req.prompt_ids.len();
    let max_new = req
        .params
        .max_tokens
        .unwrap_or(usize::MAX)
        .min(context.saturating_sub(prompt));
    req.n.saturating_mul(prompt.saturating_add(max_new))
}

/// Resolve the memory budgets once the weights are in memory.
fn plan_memory(bundle: &ModelBundle, cfg: &EngineConfig) -> (ModelInfo, BatchConfig) {
    let model = &bundle.loaded.model;
    let context = model.max_positions();
    let kv_bytes_per_token = bundle
        .loaded
        .config
        .kv_bytes_per_token(model.activation_dtype().size_in_bytes());
    let kv_budget_tokens = cfg
        .kv_budget_tokens
        .unwrap_or_else(|| super::memory::default_kv_budget_tokens(kv_bytes_per_token, context));
    let info = ModelInfo {
        vocab_size: bundle.loaded.config.vocab_size,
        context_length: context,
        kv_budget_tokens,
        kv_bytes_per_token,
    };
    let batch = BatchConfig {
        scheduler: SchedulerConfig {
            kv_budget_tokens,
            prefill_chunk: cfg.prefill_chunk,
            max_decode_seqs: cfg.max_decode_seqs,
        },
        prefix_cache_bytes: cfg
            .prefix_cache_bytes
            .unwrap_or_else(super::memory::default_prefix_cache_bytes),
    };
    (info, batch)
}

/// Streams a group's events to its request's channel.
struct ChannelSink {
    events: UnboundedSender<EngineEvent>,
    cancel: Option<Arc<CancelSet>>,
}

impl GroupSink for ChannelSink {
    fn started(&mut self, prompt_tokens: usize, cached_tokens: usize) -> bool {
        self.events
            .send(EngineEvent::Started {
                prompt_tokens,
                cached_tokens,
            })
            .is_ok()
    }

    fn token(&mut self, ev: TokenEvent<'_>) -> bool {
        let logprob = super::sequence::TokenLogprob {
            token: ev.token,
            logprob: ev.logprob,
            top_logprobs: ev.top_logprobs.to_vec(),
        };
        let mut alive = self
            .events
            .send(EngineEvent::Token {
                rollout: ev.rollout,
                token: ev.token,
                text: ev.text.to_string(),
                logprob,
            })
            .is_ok();
        if let Some(finish_reason) = ev.finish {
            alive &= self
                .events
                .send(EngineEvent::RolloutFinished {
                    rollout: ev.rollout,
                    finish_reason,
                })
                .is_ok();
        }
        alive
    }

    fn is_closed(&self) -> bool {
        self.events.is_closed()
    }

    fn cancel_set(&self) -> Option<&CancelSet> {
        self.cancel.as_deref()
    }

    fn rollout_finished(&mut self, rollout: usize, finish_reason: FinishReason) -> bool {
        let ev = EngineEvent::RolloutFinished {
            rollout,
            finish_reason,
        };
        self.events.send(ev).is_ok()
    }
}

fn run(bundle: ModelBundle, cfg: BatchConfig, rx: Receiver<Job>, metrics: Arc<EngineMetrics>) {
    let eos: Arc<[u32]> = bundle.eos_token_ids.clone().into();
    let mut batcher = Batcher::new(
        &bundle.loaded.model,
        &bundle.tokenizer,
        cfg,
        metrics.clone(),
    );
    let mut senders: HashMap<GroupId, UnboundedSender<EngineEvent>> = HashMap::new();
    let mut open = true;
    while open || !batcher.is_idle() {
        // Take requests while nothing waits for KV budget; block only when idle.
        while open && batcher.accepting() {
            let job = if batcher.is_idle() {
                rx.recv().map_err(|_| TryRecvError::Disconnected)
            } else {
                rx.try_recv()
            };
            match job {
                Ok(job) => {
                    metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
                    if job.events.is_closed() {
                        // Cancelled while queued: never admitted.
                        metrics.requests_cancelled.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    accept(&mut batcher, &mut senders, job, &eos);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        for done in batcher.step() {
            finish(&mut senders, done);
        }
    }
}

fn accept(
    batcher: &mut Batcher<'_>,
    senders: &mut HashMap<GroupId, UnboundedSender<EngineEvent>>,
    job: Job,
    eos: &Arc<[u32]>,
) {
    let sink = ChannelSink {
        events: job.events.clone(),
        cancel: job.cancel,
    };
    let req = job.req;
    match batcher.submit_think(
        req.prompt_ids,
        req.n,
        req.params,
        eos.clone(),
        req.think,
        Box::new(sink),
    ) {
        Ok(id) => {
            senders.insert(id, job.events);
        }
        Err(e) => {
            let _ = job.events.send(EngineEvent::Error(e.to_string()));
        }
    }
}

fn finish(senders: &mut HashMap<GroupId, UnboundedSender<EngineEvent>>, done: Completion) {
    let Some(events) = senders.remove(&done.id) else {
        return;
    };
    let event = match done.result {
        Ok(out) => EngineEvent::Finished(GenerateOutput {
            completion_tokens: out.completion_tokens,
            prompt_tokens: out.prompt_tokens,
            cached_tokens: out.cached_tokens,
            reasoning_tokens: out.rollouts.iter().map(|r| r.reasoning_tokens).sum(),
            rollouts: out.rollouts,
            timings: out.timings,
        }),
        Err(e) => EngineEvent::Error(e.to_string()),
    };
    let _ = events.send(event);
}
