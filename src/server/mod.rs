//! The OpenAI-compatible HTTP server (`quorum serve`).
//!
//! Layers, bottom up; each module imports only those below it:
//! 1. [`openai`]: wire types (requests, responses, the `quorum` report, the
//!    typed `selection` field) and their decoding;
//! 2. [`config`]: settings (flags, env, TOML) and per-model lookups;
//! 3. [`error`] (the one error type and its OpenAI body), [`metrics`],
//!    [`prep_pool`], [`state`], [`access_log`], [`auth`], [`tokenize`]
//!    (prompt preparation off the async workers);
//! 4. [`validate`] (wire → checked requests), [`think`] (think mode),
//!    [`best_of`], [`reward`] (reward-model scoring on the engine),
//!    [`tokens`], [`selection`] (plan → run → selected rollouts + report);
//! 5. [`generate`] (submit, collect, the per-request record) and [`sse`];
//! 6. [`extract`] (the JSON extractor), [`routes`] (handlers), [`loader`],
//!    [`listener`] (connections: header, idle, send timeouts, cap).
//!
//! The engine is reached only through [`crate::engine::EngineHandle`].
//! A non-streaming chat request reads top-down in
//! [`routes::chat::chat_completions`].
//!
//! [`start`] binds first and loads models in the background, so `/health`
//! can answer 503 while loading, and returns a [`RunningServer`] used by the
//! CLI and by tests alike.

pub mod access_log;
pub mod auth;
pub mod best_of;
pub mod config;
pub mod error;
pub mod extract;
pub mod generate;
pub mod listener;
pub mod loader;
pub mod metrics;
pub mod openai;
pub mod prep_pool;
pub mod reward;
pub mod routes;
pub mod selection;
pub mod sse;
pub mod state;
pub mod think;
pub mod tokenize;
pub mod tokens;
pub mod validate;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::Uri;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

pub use config::{ServeSettings, ServerConfig};
pub use error::ApiError;
pub use state::AppState;

use routes::{chat, completions, health, metrics as metrics_route, models, score};

/// The router with every route and layer.
pub fn app(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/chat/completions", post(chat::chat_completions))
        .route("/completions", post(completions::completions))
        .route("/models", get(models::list))
        .route("/models/{id}", get(models::get))
        .route("/score", post(score::score));
    Router::new()
        .nest("/v1", v1)
        .route("/health", get(health::health))
        .route("/metrics", get(metrics_route::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        // Around routes and fallbacks alike: with keys configured, unknown
        // paths and wrong methods are 401 before 404/405.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ))
        .layer(middleware::from_fn(error::openai_shaped))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            tokenize::release_after_large_bodies,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            grace_deadline,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            access_log::observe,
        ))
        // Request spans at debug level; 5xx are already in the per-request
        // log line, and a 503 while loading is expected, not an error.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG)))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// A handler still running when the shutdown grace period is over answers
/// 503 (the generation paths do so themselves, see
/// [`generate::collect`]; this covers the rest, e.g. `/v1/score`). Dropping
/// the handler drops its engine receiver, which cancels the work.
async fn grace_deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    tokio::select! {
        biased;
        res = next.run(req) => res,
        () = state.grace_over() => ApiError::Unavailable(state::GRACE_OVER.into()).into_response(),
    }
}

/// After the grace period: how long the 503s and SSE error events of the
/// requests still in flight get to reach their clients before the
/// connections are dropped.
const GRACE_FLUSH: Duration = Duration::from_secs(2);

/// Start-up and shutdown failures.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Load(#[from] loader::LoadError),
    #[error("model loading did not finish: {0}")]
    LoadAborted(String),
    #[error("server: {0}")]
    Serve(String),
}

/// A bound, serving instance.
pub struct RunningServer {
    addr: SocketAddr,
    state: AppState,
    serving: listener::Serving,
    loaded: watch::Receiver<Option<Result<(), String>>>,
}

/// Binds `host:port`, starts serving (503 until loaded) and loads the models
/// in the background; await [`RunningServer::ready`] for the outcome.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    let bind = format!("{}:{}", config.host, config.port);
    let listener = TcpListener::bind(&bind)
        .await
        .map_err(|source| ServerError::Bind {
            addr: bind.clone(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr: bind, source })?;
    let limits = listener::Limits::of(&config);
    let state = AppState::new(config);
    auth::log_startup(&state.config);
    let serving = listener::Serving::start(listener, app(state.clone()), limits);
    let (load_tx, loaded) = watch::channel(None);
    let st = state.clone();
    tokio::spawn(async move {
        let result = match loader::load_all(&st.config).await {
            Ok(models) => {
                st.set_models(models);
                tracing::info!(models = st.models().len(), "ready");
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        };
        let _ = load_tx.send(Some(result));
    });
    Ok(RunningServer {
        addr,
        state,
        serving,
        loaded,
    })
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Waits until every model is loaded (or one failed).
    pub async fn ready(&mut self) -> Result<(), ServerError> {
        let r = self
            .loaded
            .wait_for(Option::is_some)
            .await
            .map_err(|e| ServerError::LoadAborted(e.to_string()))?;
        match r.as_ref() {
            Some(Err(e)) => Err(ServerError::LoadAborted(e.clone())),
            _ => Ok(()),
        }
    }

    /// Graceful shutdown: `/health` turns 503, new work is refused, the
    /// listener closes, idle and mid-header connections close at once, and
    /// in-flight requests get the grace period. Whatever is still running
    /// then answers 503 (streams: an error event and `[DONE]`), gets
    /// [`GRACE_FLUSH`] to reach its client, and is dropped.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        self.state.begin_shutdown();
        self.serving.drain();
        let grace = self.state.config.shutdown_grace;
        if let Ok(r) = tokio::time::timeout(grace, self.serving.finished()).await {
            return r.map_err(|e| ServerError::Serve(e.to_string()));
        }
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "grace period over; in-flight requests answer 503"
        );
        self.state.end_grace();
        if let Ok(r) = tokio::time::timeout(GRACE_FLUSH, self.serving.finished()).await {
            return r.map_err(|e| ServerError::Serve(e.to_string()));
        }
        tracing::warn!("dropping connections that did not close");
        self.serving.abort();
        self.serving
            .finished()
            .await
            .map_err(|e| ServerError::Serve(e.to_string()))
    }
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod app_tests;
