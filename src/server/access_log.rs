//! One log line per HTTP request, and the status-code counter of
//! `/metrics`.
//!
//! Every request ends in exactly one `quorum::request` line (level info)
//! with `method`, `path`, `status`, `error_type` / `error_code` (OpenAI's
//! `type` and `code`, on errors) and `latency_ms`. A generation request
//! writes its line from its [`RequestRecord`] when it *ends* — after the
//! last SSE event for a stream, long after the response head left — adding
//! id, model, token counts and outcome; the record claims the request's
//! [`RequestScope`] when it is created, and this middleware then stays
//! silent. Everything else (rejected before a record exists: 400, 401, 404,
//! 429, `/health`, `/metrics`) is logged here once the response is ready.
//!
//! The scope reaches the handler as a task-local: axum runs the handler
//! inside this middleware's future, so no handler has to pass it along.
//!
//! Status `499` (nginx's "client closed request") marks a request whose
//! client left before any response was sent.
//!
//! [`RequestRecord`]: super::generate::RequestRecord

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use super::error::ErrorInfo;
use super::state::AppState;

/// Status logged when the client left before a response was sent.
pub const CLIENT_CLOSED: u16 = 499;

/// Longest path written to the log (paths are client input).
const MAX_LOGGED_PATH: usize = 256;

tokio::task_local! {
    static CURRENT: Arc<RequestScope>;
}

/// The request being served on this task, as the log line names it.
#[derive(Debug)]
pub struct RequestScope {
    pub method: Method,
    pub path: String,
    /// A [`super::generate::RequestRecord`] writes this request's line.
    claimed: AtomicBool,
}

impl RequestScope {
    fn new(method: Method, path: &str) -> Self {
        Self {
            method,
            path: truncate(path, MAX_LOGGED_PATH).to_owned(),
            claimed: AtomicBool::new(false),
        }
    }

    /// Takes over the log line of the request served on this task; `None`
    /// outside [`observe`] (unit tests that build records directly).
    pub fn claim() -> Option<Arc<RequestScope>> {
        CURRENT
            .try_with(|s| {
                s.claimed.store(true, Ordering::Relaxed);
                s.clone()
            })
            .ok()
    }
}

/// Middleware: runs the request inside its [`RequestScope`], counts the
/// response status and writes the line unless a record claimed it.
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let scope = Arc::new(RequestScope::new(req.method().clone(), req.uri().path()));
    let mut pending = Pending {
        scope: scope.clone(),
        start: Instant::now(),
        response: None,
    };
    let res = CURRENT.scope(scope, next.run(req)).await;
    state.metrics.count_status(res.status().as_u16());
    pending.response = Some((res.status().as_u16(), res.extensions().get().copied()));
    res
}

/// Writes the line when the request is over, including when its future is
/// dropped because the client left (then with [`CLIENT_CLOSED`]).
struct Pending {
    scope: Arc<RequestScope>,
    start: Instant,
    response: Option<(u16, Option<ErrorInfo>)>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.scope.claimed.load(Ordering::Relaxed) {
            return;
        }
        let (status, error) = self.response.unwrap_or((CLIENT_CLOSED, None));
        tracing::info!(
            target: "quorum::request",
            method = %self.scope.method,
            path = %self.scope.path,
            status,
            error_type = error.map(|e| e.kind),
            error_code = error.and_then(|e| e.code),
            latency_ms = self.start.elapsed().as_millis() as u64,
            "request"
        );
    }
}

/// `s` cut to at most `max` bytes at a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
#[path = "access_log_tests.rs"]
mod tests;
