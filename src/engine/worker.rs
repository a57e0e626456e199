//! The engine thread: owns the policy model and its reward model (if the
//! bundle has one), takes requests from a bounded queue and answers them.
//! Started with a ready handshake, so a model that fails to load is a clean
//! error at start-up, not a dead engine later.
//!
//! Generation requests are batched continuously (see [`super::scheduler`]
//! for the policy): between two forwards the thread takes new requests off
//! the queue as long as nothing is waiting for KV budget, so a request that
//! does not fit yet keeps its place in the bounded queue and a full queue
//! still rejects at once. Score jobs come through the same queue (the same
//! capacity, the same [`SubmitError::QueueFull`], the same cancellation by
//! dropping the receiver) and run between policy steps as ragged batches of
//! the reward model, at most `score_chunk` tokens per step (see
//! [`super::score_queue`]). The queue is FIFO: a score job queued behind a
//! generation that waits for KV budget waits with it.
//!
//! A submitter that would rather wait for room than be refused
//! ([`EngineHandle::submit_score_waiting`]) waits on a [`Notify`] that the
//! engine thread signals whenever it takes a job off the queue, and once
//! more when it stops; nothing polls.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::{oneshot, Notify};

use super::api::{
    EngineEvent, GenerateOutput, GenerateRequest, ScoreFailure, ScoreOutput, ScoreReceiver,
    ScoreRequest, SubmitError,
};
use super::batch::{BatchConfig, Batcher, Completion};
use super::bundle::ModelBundle;
use super::cancel::CancelSet;
pub use super::metrics::EngineMetrics;
use super::scheduler::{GroupId, SchedulerConfig};
use super::score_queue::{ScoreJob, ScoreQueue};
use super::sink::ChannelSink;

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
    /// Most reward-model tokens scored per step (see
    /// [`super::score_queue`]); 128 like `prefill_chunk`, for the same reason.
    pub score_chunk: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 64,
            kv_budget_tokens: None,
            prefill_chunk: 128,
            max_decode_seqs: 256,
            prefix_cache_bytes: None,
            score_chunk: 128,
        }
    }
}

/// A generation request as it travels the queue.
struct GenerateJob {
    req: GenerateRequest,
    events: UnboundedSender<EngineEvent>,
    cancel: Option<Arc<CancelSet>>,
}

/// What the engine queue carries.
enum Job {
    /// Boxed: a generation request is much larger than a score job.
    Generate(Box<GenerateJob>),
    Score(ScoreJob),
}

/// Why [`EngineHandle::spawn`] gave no engine.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The load closure failed (for the server, a
    /// [`super::BundleError`]); its error is kept as the source.
    #[error(transparent)]
    Load(Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot start engine thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The engine thread ended (panicked) before reporting its model.
    #[error("engine thread died while loading")]
    Died,
}

/// Cloneable handle to the engine thread.
#[derive(Clone)]
pub struct EngineHandle {
    tx: SyncSender<Job>,
    /// Signalled when the engine thread takes a job off the queue (there is
    /// room again) and when it stops (see [`QueueRx`]).
    room: Arc<Notify>,
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
    /// The reward model this engine scores with, if any.
    pub reward: Option<RewardInfo>,
}

/// What the HTTP layer needs to know about the reward model.
#[derive(Debug, Clone)]
pub struct RewardInfo {
    pub context_length: usize,
    pub vocab_size: usize,
}

impl EngineHandle {
    /// Start the engine thread; `load` runs on it and builds the model. A
    /// load that fails is [`SpawnError::Load`] with its error kept.
    pub fn spawn<F, E>(load: F, cfg: EngineConfig) -> Result<Self, SpawnError>
    where
        F: FnOnce() -> Result<ModelBundle, E> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (tx, rx) = sync_channel::<Job>(cfg.queue_capacity);
        let room = Arc::new(Notify::new());
        let rx = QueueRx {
            rx: Some(rx),
            room: room.clone(),
        };
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
                    let chunk = cfg.score_chunk;
                    super::in_engine_pool(move || run(bundle, batch_cfg, chunk, rx, m));
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(SpawnError::Load(e.into())));
                }
            })
            .map_err(SpawnError::Thread)?;
        let info = ready_rx.recv().map_err(|_| SpawnError::Died)??;
        Ok(Self {
            tx,
            room,
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
        self.enqueue(Job::Generate(Box::new(GenerateJob {
            req,
            events,
            cancel,
        })))?;
        Ok(rx)
    }

    /// Queue a reward-model score job on the same queue as generation (a
    /// full queue is an immediate [`SubmitError::QueueFull`]). The reply
    /// comes once; dropping the receiver cancels the job.
    pub fn submit_score(&self, req: ScoreRequest) -> Result<ScoreReceiver, SubmitError> {
        if self.info.reward.is_none() {
            return Err(SubmitError::NoRewardModel);
        }
        let (reply, rx) = oneshot::channel();
        self.enqueue(Job::Score(ScoreJob { req, reply }))?;
        Ok(ScoreReceiver::new(rx))
    }

    /// [`Self::submit_score`], but while the queue is full it waits for room
    /// (woken when the engine takes a job off the queue, never polling) for
    /// up to `patience`: [`SubmitError::QueueFull`] only once `patience` has
    /// passed without room, [`SubmitError::ShuttingDown`] as soon as the
    /// engine stops. For callers whose work is already spent (answer
    /// selection's decoded rollouts) and who would rather wait than fail.
    pub async fn submit_score_waiting(
        &self,
        req: ScoreRequest,
        patience: Duration,
    ) -> Result<ScoreReceiver, SubmitError> {
        if self.info.reward.is_none() {
            return Err(SubmitError::NoRewardModel);
        }
        let deadline = tokio::time::Instant::now() + patience;
        let (reply, rx) = oneshot::channel();
        let mut job = Job::Score(ScoreJob { req, reply });
        loop {
            // Registered before the attempt, so room made between a full
            // queue and the wait below is not missed.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_enqueue(job) {
                Ok(()) => return Ok(ScoreReceiver::new(rx)),
                Err(TrySendError::Full(j)) => job = j,
                Err(TrySendError::Disconnected(_)) => return Err(SubmitError::ShuttingDown),
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return Err(self.queue_full());
            }
        }
    }

    /// [`Self::submit_score`], then wait for the scores.
    pub async fn score(&self, req: ScoreRequest) -> Result<ScoreOutput, ScoreFailure> {
        let rx = self.submit_score(req)?;
        Ok(rx.await?)
    }

    fn enqueue(&self, job: Job) -> Result<(), SubmitError> {
        match self.try_enqueue(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(self.queue_full()),
            Err(TrySendError::Disconnected(_)) => Err(SubmitError::ShuttingDown),
        }
    }

    /// Queue `job` if there is room; a refused job comes back.
    fn try_enqueue(&self, job: Job) -> Result<(), TrySendError<Job>> {
        self.tx.try_send(job)?;
        self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A refusal for a full queue, counted.
    fn queue_full(&self) -> SubmitError {
        self.metrics
            .requests_rejected
            .fetch_add(1, Ordering::Relaxed);
        SubmitError::QueueFull {
            capacity: self.capacity,
        }
    }
}

/// The engine thread's end of the queue. Taking a job wakes the submitters
/// waiting for room; dropping it (the engine stopped, or its thread
/// panicked) disconnects the queue first and then wakes them, so they see
/// [`SubmitError::ShuttingDown`] instead of waiting out their patience.
struct QueueRx {
    /// `Some` until dropped.
    rx: Option<Receiver<Job>>,
    room: Arc<Notify>,
}

impl QueueRx {
    /// The next job: waits for one when `block`, else
    /// [`TryRecvError::Empty`] when there is none.
    fn next(&self, block: bool) -> Result<Job, TryRecvError> {
        let Some(rx) = &self.rx else {
            return Err(TryRecvError::Disconnected);
        };
        let job = if block {
            rx.recv().map_err(|_| TryRecvError::Disconnected)
        } else {
            rx.try_recv()
        }?;
        self.room.notify_waiters();
        Ok(job)
    }
}

impl Drop for QueueRx {
    fn drop(&mut self) {
        drop(self.rx.take());
        self.room.notify_waiters();
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
    super::scheduler::GroupShape {
        prompt_tokens: prompt,
        n: req.n,
        max_new_tokens: max_new,
    }
    .reservation()
}

/// Resolve the memory budgets once the weights are in memory.
fn plan_memory(bundle: &ModelBundle, cfg: &EngineConfig) -> (ModelInfo, BatchConfig) {
    let model = &bundle.loaded.model;
    let context = model.max_positions();
    let kv_bytes_per_token = bundle
        .loaded
        .config
        .kv_bytes_per_token(model.kv_dtype().size_in_bytes());
    let kv_budget_tokens = cfg
        .kv_budget_tokens
        .unwrap_or_else(|| super::memory::default_kv_budget_tokens(kv_bytes_per_token, context));
    let info = ModelInfo {
        vocab_size: bundle.loaded.config.vocab_size,
        context_length: context,
        kv_budget_tokens,
        kv_bytes_per_token,
        reward: bundle.reward.as_ref().map(|rm| RewardInfo {
            context_length: rm.model().max_positions(),
            vocab_size: rm.loaded.config.vocab_size,
        }),
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

fn run(
    bundle: ModelBundle,
    cfg: BatchConfig,
    score_chunk: usize,
    rx: QueueRx,
    metrics: Arc<EngineMetrics>,
) {
    let eos: Arc<[u32]> = bundle.eos_token_ids.clone().into();
    let mut batcher = Batcher::new(
        &bundle.loaded.model,
        &bundle.tokenizer,
        cfg,
        metrics.clone(),
    );
    let reward = bundle.reward.as_ref().map(|rm| rm.model());
    let mut scores = ScoreQueue::new(reward, score_chunk, metrics.clone());
    let mut senders: HashMap<GroupId, UnboundedSender<EngineEvent>> = HashMap::new();
    let mut open = true;
    while open || !batcher.is_idle() || !scores.is_idle() {
        // Take requests while nothing waits for KV budget; block only when idle.
        while open && batcher.accepting() {
            match rx.next(batcher.is_idle() && scores.is_idle()) {
                Ok(Job::Generate(job)) => {
                    metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
                    if job.events.is_closed() {
                        // Cancelled while queued: never admitted.
                        metrics.requests_cancelled.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    accept(&mut batcher, &mut senders, *job, &eos);
                }
                Ok(Job::Score(job)) => {
                    metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
                    scores.push(job);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        // One reward-model forward (at most `score_chunk` tokens), then one
        // policy step: running decodes wait for at most one score chunk.
        scores.step();
        for done in batcher.step() {
            finish(&mut senders, done);
        }
    }
}

fn accept(
    batcher: &mut Batcher<'_>,
    senders: &mut HashMap<GroupId, UnboundedSender<EngineEvent>>,
    job: GenerateJob,
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
            let _ = job.events.send(EngineEvent::Error(e.into()));
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
        Err(e) => EngineEvent::Error(e.into()),
    };
    let _ = events.send(event);
}
