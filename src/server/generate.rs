//! The path every generation request takes, whatever the endpoint:
//! model-dependent checks and submission to the engine ([`submit`] →
//! [`Generation`]), waiting for the result ([`collect`], or
//! [`collect_selected`] with answer selection), and the per-request record
//! (one log line, latency histogram) that is written when the request ends
//! — including when the client goes away, because the record is dropped
//! with the handler future or stream.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::OwnedSemaphorePermit;

use super::access_log::{RequestScope, CLIENT_CLOSED};
use super::error::{ApiError, ErrorInfo};
use super::openai::{QuorumReport, Usage};
use super::selection::{self, Plan, Selected};
use super::state::{AppState, ModelEntry};
use super::validate::{check_sampling, completion_budget, ValidRequest};
use crate::engine::{CancelSet, EngineEvent, GenerateOutput, GenerateRequest, SamplingParams};

/// How a request ended, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Ok,
    Error,
}

/// Per-request record: holds the concurrency permit, and on drop writes the
/// request's one log line (see [`super::access_log`]) and the latency
/// sample. Dropped before [`Outcome::Ok`] means the client disconnected (or
/// the request failed: record failures with [`RequestRecord::fail`] so the
/// line carries the status and error type).
pub struct RequestRecord {
    state: AppState,
    pub id: String,
    pub model: String,
    endpoint: &'static str,
    n: usize,
    rollouts: usize,
    stream: bool,
    start: Instant,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub outcome: Outcome,
    /// The HTTP request, when served through the access-log middleware.
    scope: Option<Arc<RequestScope>>,
    /// Status sent; `None` while no response has gone out.
    status: Option<u16>,
    error: Option<ErrorInfo>,
    /// The SSE response head is out: later failures keep status 200.
    streaming: bool,
    _permit: OwnedSemaphorePermit,
}

impl RequestRecord {
    pub fn new(
        state: &AppState,
        permit: OwnedSemaphorePermit,
        id: String,
        endpoint: &'static str,
        req: &ValidRequest,
    ) -> Self {
        Self {
            state: state.clone(),
            id,
            model: req.model.clone(),
            endpoint,
            n: req.n,
            rollouts: req.rollouts,
            stream: req.stream,
            start: Instant::now(),
            prompt_tokens: 0,
            completion_tokens: 0,
            outcome: Outcome::Pending,
            scope: RequestScope::claim(),
            status: None,
            error: None,
            streaming: false,
            _permit: permit,
        }
    }

    /// Passes `r` through, marking the request failed if it is an error.
    pub fn check<T>(&mut self, r: Result<T, ApiError>) -> Result<T, ApiError> {
        if let Err(e) = &r {
            self.fail(e);
        }
        r
    }

    /// The server state (the SSE stream watches its shutdown deadline).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Marks the request failed with `e` (sent as the response, or as an
    /// SSE error event once streaming).
    pub fn fail(&mut self, e: &ApiError) {
        self.outcome = Outcome::Error;
        self.error = Some(e.info());
        if !self.streaming {
            self.status = Some(e.status().as_u16());
        }
    }

    /// The SSE response (status 200) is being sent.
    pub fn stream_started(&mut self) {
        self.streaming = true;
        self.status = Some(200);
    }

    /// Records a finished generation's token counts and marks success.
    pub fn finished(&mut self, out: &GenerateOutput) {
        self.prompt_tokens = out.prompt_tokens;
        self.completion_tokens = out.completion_tokens;
        self.outcome = Outcome::Ok;
        self.status.get_or_insert(200);
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        let latency = self.start.elapsed();
        self.state.metrics.request_latency.observe(latency);
        let outcome = match self.outcome {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Pending => {
                self.state.metrics.client_disconnects.inc();
                "cancelled"
            }
        };
        let scope = self.scope.as_deref();
        tracing::info!(
            target: "quorum::request",
            method = scope.map(|s| tracing::field::display(&s.method)),
            path = scope.map(|s| tracing::field::display(&s.path)),
            status = self.status.unwrap_or(CLIENT_CLOSED),
            error_type = self.error.map(|e| e.kind),
            error_code = self.error.and_then(|e| e.code),
            id = %self.id,
            endpoint = self.endpoint,
            model = %self.model,
            n = self.n,
            rollouts = self.rollouts,
            stream = self.stream,
            prompt_tokens = self.prompt_tokens,
            completion_tokens = self.completion_tokens,
            latency_ms = latency.as_millis() as u64,
            outcome,
            "request"
        );
    }
}

/// A request the engine accepted: its event stream (dropping it cancels
/// the request) and the completion budget it runs under.
pub struct Generation {
    pub events: UnboundedReceiver<EngineEvent>,
    /// The final `max_tokens` of every rollout: the request's, or what the
    /// context and the server cap leave after the prompt.
    pub max_tokens: usize,
}

/// Model-dependent checks (sampling against the vocabulary, prompt ids,
/// the completion budget), then the engine request, with per-rollout
/// cancellation flags when `cancel` is set (answer selection's early stop).
pub fn submit(
    state: &AppState,
    entry: &Arc<ModelEntry>,
    id: &str,
    prompt_ids: Vec<u32>,
    req: &ValidRequest,
    cancel: Option<Arc<CancelSet>>,
) -> Result<Generation, ApiError> {
    let info = entry.engine.info();
    check_sampling(&req.params, info.vocab_size)?;
    if let Some(&bad) = prompt_ids.iter().find(|&&t| t as usize >= info.vocab_size) {
        return Err(ApiError::invalid(
            "prompt",
            format!(
                "prompt contains token id {bad}, but the vocabulary has {} tokens",
                info.vocab_size
            ),
        ));
    }
    let max_tokens = completion_budget(
        prompt_ids.len(),
        req.max_tokens,
        info.context_length,
        state.config.max_tokens,
    )?;
    let gen = GenerateRequest {
        id: id.to_string(),
        prompt_ids,
        n: req.rollouts,
        params: SamplingParams {
            max_tokens: Some(max_tokens),
            ..req.params.clone()
        },
        think: req.think.clone(),
    };
    let events = entry
        .engine
        .submit_cancellable(gen, cancel)
        .map_err(|e| ApiError::from_submit(e, state.config.retry_after_secs))?;
    Ok(Generation { events, max_tokens })
}

/// The whole result of a submitted request (non-streaming): the returned
/// rollouts and, with a selection plan, the `quorum` report.
pub async fn respond_whole(
    plan: Option<Plan>,
    gen: Generation,
    record: &mut RequestRecord,
) -> Result<(GenerateOutput, Option<QuorumReport>), ApiError> {
    match plan {
        Some(plan) => {
            let sel = collect_selected(plan, gen, record).await?;
            Ok((sel.output, Some(sel.report)))
        }
        None => Ok((collect(gen.events, record).await?, None)),
    }
}

/// Answer selection over a submitted request, waited for whole (the
/// non-streaming path; see [`collect`] for the cancel and deadline rules).
pub async fn collect_selected(
    plan: Plan,
    mut gen: Generation,
    record: &mut RequestRecord,
) -> Result<Selected, ApiError> {
    let state = record.state.clone();
    let run = async {
        // The prompt's tokens go in the log line even if the client leaves.
        record.prompt_tokens = selection::run::admitted(&mut gen.events).await?;
        selection::run::run(plan, &mut gen.events, gen.max_tokens).await
    };
    let result = tokio::select! {
        biased;
        () = state.grace_over() => Err(ApiError::Unavailable(super::state::GRACE_OVER.into())),
        r = run => r,
    };
    match &result {
        Ok(sel) => {
            record.finished(&sel.output);
            state.metrics.selection.record(
                sel.report.strategy,
                sel.stopped_early(),
                sel.report.tokens_saved,
            );
        }
        Err(e) => record.fail(e),
    }
    result
}

/// Waits for the whole result (non-streaming). The receiver lives in the
/// handler's future: if the client disconnects, axum drops the future, the
/// receiver goes with it and the engine cancels the rollouts. When the
/// shutdown grace period runs out first, the answer is 503.
pub async fn collect(
    mut rx: UnboundedReceiver<EngineEvent>,
    record: &mut RequestRecord,
) -> Result<GenerateOutput, ApiError> {
    let state = record.state.clone();
    let grace_over = state.grace_over();
    tokio::pin!(grace_over);
    while let Some(ev) = tokio::select! {
        biased;
        () = &mut grace_over => {
            let e = ApiError::Unavailable(super::state::GRACE_OVER.into());
            record.fail(&e);
            return Err(e);
        }
        ev = rx.recv() => ev,
    } {
        match ev {
            EngineEvent::Finished(out) => {
                record.finished(&out);
                return Ok(out);
            }
            EngineEvent::Error(failure) => {
                let e = ApiError::from(failure);
                record.fail(&e);
                return Err(e);
            }
            EngineEvent::Started { prompt_tokens, .. } => record.prompt_tokens = prompt_tokens,
            EngineEvent::Token { .. } | EngineEvent::RolloutFinished { .. } => {}
        }
    }
    let e = ApiError::engine_gone();
    record.fail(&e);
    Err(e)
}

/// `usage` of a finished request, reasoning tokens summed over every rollout.
pub fn usage(out: &GenerateOutput) -> Usage {
    let mut u = Usage::new(out.prompt_tokens, out.completion_tokens, out.cached_tokens);
    u.completion_tokens_details.reasoning_tokens = out.reasoning_tokens;
    u
}

/// OpenAI `finish_reason` of an engine finish reason. `cancelled` never
/// reaches a client that is still listening, but must still map to a value
/// SDKs accept.
pub fn finish_reason(r: crate::engine::FinishReason) -> &'static str {
    match r {
        crate::engine::FinishReason::Length => "length",
        crate::engine::FinishReason::Stop | crate::engine::FinishReason::Cancelled => "stop",
    }
}
