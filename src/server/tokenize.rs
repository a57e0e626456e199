//! Prompt preparation (template rendering + tokenization) off the async
//! workers, with its cost bounded.
//!
//! Tokenizing a multi-megabyte message takes hundreds of megabytes and
//! seconds of CPU, so the work is bounded three ways: prompts that cannot
//! fit the context are refused from their size before any work
//! ([`check_size`]) or while counting ([`crate::chat::RenderedPrompt::encode`]);
//! large inputs (over [`LARGE_INPUT_BYTES`]: their JSON parse, rendering
//! and tokenization) run on `max_concurrent_tokenizations` low-priority
//! threads in FIFO order, while small prompts never wait behind them; and
//! after large requests the
//! allocator's free memory is handed back to the OS (see
//! [`release_after_large_bodies`]), since the serving allocator tuning
//! otherwise keeps it mapped.

use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use super::prep_pool::Job;
use super::state::AppState;
use crate::chat::PromptError;
use crate::tokenizer::Tokenizer;

/// Inputs above this many bytes take a tokenization slot.
pub const LARGE_INPUT_BYTES: usize = 64 << 10;

/// Requests with a body above this many bytes trim the heap afterwards.
pub const TRIM_AFTER_BYTES: usize = 1 << 20;

/// Runs `f` (parsing / rendering / tokenizing an input of `input_bytes`
/// bytes) off the async workers: small inputs on the blocking pool, large
/// ones on the preparation threads, in FIFO order.
pub async fn prepare<T, F>(state: &AppState, input_bytes: usize, f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let metrics = &state.metrics;
    if input_bytes <= LARGE_INPUT_BYTES {
        metrics.tokenize_running.inc();
        let result = tokio::task::spawn_blocking(f).await;
        metrics.tokenize_running.dec();
        return result
            .map_err(|e| ApiError::Internal(format!("prompt preparation failed: {e}")))?;
    }
    let limiter = &state.tokenize;
    if metrics.tokenize_waiting.get() as usize >= limiter.queue_cap {
        return Err(ApiError::RateLimited {
            message: format!(
                "too many large prompts waiting to be prepared (limit {}); retry later",
                limiter.queue_cap
            ),
            retry_after_secs: state.config.retry_after_secs,
        });
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let st = state.clone();
    let job: Job = Box::new(move || {
        st.metrics.tokenize_waiting.dec();
        // The client left while the job waited: skip the work.
        if tx.is_closed() {
            return;
        }
        st.metrics.tokenize_running.inc();
        let out = f();
        st.metrics.tokenize_running.dec();
        let _ = tx.send(out);
    });
    metrics.tokenize_waiting.inc();
    if limiter.jobs.send(job).is_err() {
        metrics.tokenize_waiting.dec();
        return Err(ApiError::Unavailable("the server is shutting down".into()));
    }
    rx.await
        .map_err(|_| ApiError::Internal("prompt preparation failed".into()))?
}

/// Runs `f` on the blocking pool (small work: tokenizing a reward-model
/// pair, a prompt known to be short): a long tokenization must not stall
/// the async workers that serve other connections.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("prompt preparation failed: {e}")))?
}

/// 400 `context_length_exceeded` for a prompt of at least `at_least` tokens.
pub fn too_long(context: usize, at_least: usize) -> ApiError {
    ApiError::ContextLength(format!(
        "This model's maximum context length is {context} tokens. However, your prompt has at least {at_least} tokens. Please reduce the length of the messages or the prompt."
    ))
}

/// Refuses an input of `bytes` bytes that cannot fit `context` tokens,
/// before any rendering or tokenizing.
pub fn check_size(tok: &Tokenizer, bytes: usize, context: usize) -> Result<(), ApiError> {
    let at_least = tok
        .min_tokens_for_bytes(bytes)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if at_least > context {
        return Err(too_long(context, at_least));
    }
    Ok(())
}

/// A prompt-building failure as the client sees it.
pub fn prompt_error(e: PromptError, context: usize) -> ApiError {
    use crate::chat::ChatTemplateError;
    match e {
        PromptError::TooLong { at_least, .. } => too_long(context, at_least),
        PromptError::Unlocated { index } => {
            ApiError::invalid(format!("messages[{index}].content"), e.to_string())
        }
        PromptError::Template(ChatTemplateError::Raised(m)) => ApiError::invalid("messages", m),
        PromptError::Template(ChatTemplateError::Render(m)) => ApiError::invalid(
            "messages",
            format!("the chat template could not render these messages: {m}"),
        ),
        PromptError::Template(ChatTemplateError::Compile(m)) => ApiError::Internal(m),
        PromptError::Tokenizer(e) => ApiError::Internal(e.to_string()),
    }
}

/// Middleware: after a request whose body was over [`TRIM_AFTER_BYTES`],
/// hand the allocator's free pages back to the OS (on a blocking thread;
/// one trim at a time, repeated if more large requests ended meanwhile).
pub async fn release_after_large_bodies(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let large = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > TRIM_AFTER_BYTES);
    let res = next.run(req).await;
    if large {
        schedule_trim(&state);
    }
    res
}

fn schedule_trim(state: &AppState) {
    state.tokenize.trim_again.store(true, Ordering::Release);
    if state.tokenize.trim_running.swap(true, Ordering::AcqRel) {
        return;
    }
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let t = &state.tokenize;
        loop {
            while t.trim_again.swap(false, Ordering::AcqRel) {
                crate::alloc::release_free_memory();
            }
            t.trim_running.store(false, Ordering::Release);
            // A request that ended between the last trim and the store above
            // found `trim_running` set and left its flag for us.
            if !t.trim_again.load(Ordering::Acquire) || t.trim_running.swap(true, Ordering::AcqRel)
            {
                break;
            }
        }
    });
}
