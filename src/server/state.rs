//! Shared server state: configuration, the loaded models, the lifecycle
//! phase (for `/health` and 503s), the end-of-grace signal and the
//! concurrency limiter.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::config::ServerConfig;
use super::error::ApiError;
use super::metrics::ServerMetrics;
use crate::chat::ChatTemplate;
use crate::engine::EngineHandle;
use crate::tokenizer::Tokenizer;

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Loading = 0,
    Ready = 1,
    ShuttingDown = 2,
}

/// One served model: its engine plus the tokenizer and chat template the
/// HTTP layer needs to build prompts (the engine only sees token ids).
pub struct ModelEntry {
    pub id: String,
    pub engine: EngineHandle,
    pub tokenizer: Arc<Tokenizer>,
    pub template: Arc<ChatTemplate>,
    /// Unix seconds the model was loaded (`created` in `/v1/models`).
    pub created: u64,
    /// The tokenizer and chat template of this model's reward model, which
    /// runs on the same engine (selection strategies `best_of_n` /
    /// `weighted_majority`, `/v1/score`; see [`super::reward`]).
    pub reward: Option<Arc<crate::engine::RewardCodec>>,
}

/// Cheap to clone: everything lives behind one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: ServerConfig,
    pub metrics: ServerMetrics,
    models: OnceLock<BTreeMap<String, Arc<ModelEntry>>>,
    phase: AtomicU8,
    /// Turns `true` when the shutdown grace period is over: requests still
    /// in flight answer 503 (streams: an error event and `[DONE]`) at once.
    grace_over: watch::Sender<bool>,
    limiter: Arc<Semaphore>,
    /// Slots for tokenizing large prompts (see [`super::tokenize`]).
    pub tokenize: super::prep_pool::TokenizeLimiter,
}

/// What in-flight requests answer when the shutdown grace period runs out.
pub const GRACE_OVER: &str =
    "the server is shutting down and the grace period for in-flight requests is over; retry the request";

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(config: ServerConfig) -> Self {
        let limiter = Arc::new(Semaphore::new(config.max_concurrent_requests));
        let tokenize = super::prep_pool::TokenizeLimiter::new(config.max_concurrent_tokenizations);
        Self(Arc::new(Shared {
            tokenize,
            config,
            metrics: ServerMetrics::default(),
            models: OnceLock::new(),
            phase: AtomicU8::new(Phase::Loading as u8),
            grace_over: watch::Sender::new(false),
            limiter,
        }))
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Loading,
            1 => Phase::Ready,
            _ => Phase::ShuttingDown,
        }
    }

    /// Installs the loaded models and turns ready (once).
    pub fn set_models(&self, models: Vec<ModelEntry>) {
        let map = models
            .into_iter()
            .map(|m| (m.id.clone(), Arc::new(m)))
            .collect();
        if self.models.set(map).is_ok() {
            let _ = self.phase.compare_exchange(
                Phase::Loading as u8,
                Phase::Ready as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    /// From now on health is 503 and new work is refused.
    pub fn begin_shutdown(&self) {
        self.phase
            .store(Phase::ShuttingDown as u8, Ordering::Release);
    }

    /// The shutdown grace period is over: in-flight work ends with
    /// [`GRACE_OVER`].
    pub fn end_grace(&self) {
        self.grace_over.send_replace(true);
    }

    /// A receiver whose `wait_for(|over| *over)` resolves when the grace
    /// period is over (see [`AppState::grace_over`]).
    pub fn grace_watch(&self) -> watch::Receiver<bool> {
        self.grace_over.subscribe()
    }

    /// Resolves when the grace period is over; never before.
    pub async fn grace_over(&self) {
        let mut rx = self.grace_watch();
        if rx.wait_for(|over| *over).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Ready check shared by every model-using route.
    pub fn ensure_ready(&self) -> Result<(), ApiError> {
        match self.phase() {
            Phase::Ready => Ok(()),
            Phase::Loading => Err(ApiError::Unavailable(
                "the server is still loading its models; retry shortly".into(),
            )),
            Phase::ShuttingDown => Err(ApiError::Unavailable("the server is shutting down".into())),
        }
    }

    /// The model with this id, or 404 `model_not_found`.
    pub fn model(&self, id: &str) -> Result<Arc<ModelEntry>, ApiError> {
        self.ensure_ready()?;
        self.models()
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::ModelNotFound(id.to_string()))
    }

    /// Every loaded model (empty while loading).
    pub fn models(&self) -> &BTreeMap<String, Arc<ModelEntry>> {
        static EMPTY: BTreeMap<String, Arc<ModelEntry>> = BTreeMap::new();
        self.models.get().unwrap_or(&EMPTY)
    }

    /// A slot for one generation request, or 429 at once: queueing in the
    /// HTTP layer would only hide overload from the client.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.limiter.clone().try_acquire_owned().map_err(|_| {
            self.metrics.rejected_concurrency.inc();
            ApiError::RateLimited {
                message: format!(
                    "too many concurrent requests (limit {}); retry later",
                    self.config.max_concurrent_requests
                ),
                retry_after_secs: self.config.retry_after_secs,
            }
        })
    }
}
