//! The one-line-per-request rule, read back from a JSON log capture.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use axum::{middleware, Router};
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::server::config::ServerConfig;
use crate::server::error::ApiError;
use crate::server::generate::RequestRecord;
use crate::server::validate::ValidRequest;

/// Log output of this thread, as JSON lines.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Installs the capture for this thread (`#[tokio::test]` runs the
    /// router on the test's own thread).
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let w = self.clone();
        let sub = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || w.clone())
            .finish();
        tracing::subscriber::set_default(sub)
    }

    /// The fields of every `quorum::request` line.
    fn request_lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().map(|v| v.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "quorum::request")
            .map(|v| v["fields"].clone())
            .collect()
    }
}

async fn send(router: Router, method: &str, uri: &str, body: &str) -> StatusCode {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    router.oneshot(req).await.unwrap().status()
}

#[tokio::test]
async fn requests_rejected_before_a_record_get_one_line_with_status_and_error() {
    let cap = Capture::default();
    let _guard = cap.install();
    let state = AppState::new(ServerConfig::default());
    let app = crate::server::app(state);
    assert_eq!(
        send(app.clone(), "GET", "/nope", "").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(app.clone(), "POST", "/v1/chat/completions", "{").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(app, "GET", "/health", "").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let lines = cap.request_lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let (a, b, c) = (&lines[0], &lines[1], &lines[2]);
    assert_eq!(
        (&a["method"], &a["path"], &a["status"]),
        (&"GET".into(), &"/nope".into(), &404.into())
    );
    assert_eq!(
        (&a["error_type"], &a["error_code"]),
        (&"invalid_request_error".into(), &"not_found".into())
    );
    assert!(a["latency_ms"].is_u64(), "{a}");
    assert_eq!(
        (&b["method"], &b["path"], &b["status"]),
        (&"POST".into(), &"/v1/chat/completions".into(), &400.into())
    );
    assert_eq!(b["error_type"], "invalid_request_error");
    assert!(b.get("error_code").is_none(), "{b}");
    // Not an API error: status only.
    assert_eq!(c["status"], 503);
    assert!(c.get("error_type").is_none(), "{c}");
}

fn valid(stream: bool) -> ValidRequest {
    ValidRequest {
        model: "m".into(),
        n: 1,
        rollouts: 2,
        max_tokens: None,
        params: Default::default(),
        stream,
        include_usage: false,
        user: None,
        think: None,
        selection: None,
    }
}

/// Fails after its record exists, like a prompt over the context window.
async fn fails_with_a_record(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<StatusCode, ApiError> {
    let permit = state.admit()?;
    let mut record = RequestRecord::new(&state, permit, "cmpl-1".into(), "test", &valid(false));
    record.check(Err(ApiError::ContextLength("too long".into())))
}

/// A stream whose engine fails after the 200 went out.
async fn fails_mid_stream(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<StatusCode, ApiError> {
    let permit = state.admit()?;
    let mut record = RequestRecord::new(&state, permit, "cmpl-2".into(), "test", &valid(true));
    record.stream_started();
    record.fail(&ApiError::Internal("boom".into()));
    Ok(StatusCode::OK)
}

async fn never_answers() -> StatusCode {
    std::future::pending().await
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/record", post(fails_with_a_record))
        .route("/stream", post(fails_mid_stream))
        .route("/slow", post(never_answers))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

#[tokio::test]
async fn a_generation_record_writes_the_only_line_with_the_status_it_sent() {
    let cap = Capture::default();
    let _guard = cap.install();
    let state = AppState::new(ServerConfig::default());
    assert_eq!(
        send(router(state.clone()), "POST", "/record", "").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(router(state), "POST", "/stream", "").await,
        StatusCode::OK
    );
    let lines = cap.request_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (a, b) = (&lines[0], &lines[1]);
    assert_eq!(
        (&a["id"], &a["method"], &a["path"], &a["status"]),
        (
            &"cmpl-1".into(),
            &"POST".into(),
            &"/record".into(),
            &400.into()
        )
    );
    assert_eq!(
        (&a["error_type"], &a["error_code"], &a["outcome"]),
        (
            &"invalid_request_error".into(),
            &"context_length_exceeded".into(),
            &"error".into()
        )
    );
    assert_eq!(a["rollouts"], 2);
    // The SSE head (200) was out before the engine failed.
    assert_eq!(
        (&b["id"], &b["status"], &b["error_type"], &b["outcome"]),
        (
            &"cmpl-2".into(),
            &200.into(),
            &"server_error".into(),
            &"error".into()
        )
    );
}

#[tokio::test]
async fn a_request_whose_client_left_before_the_response_is_logged_as_499() {
    let cap = Capture::default();
    let _guard = cap.install();
    let state = AppState::new(ServerConfig::default());
    let call = send(router(state), "POST", "/slow", "");
    assert!(tokio::time::timeout(Duration::from_millis(20), call)
        .await
        .is_err());
    let lines = cap.request_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        (&lines[0]["path"], &lines[0]["status"]),
        (&"/slow".into(), &499.into())
    );
    assert!(lines[0].get("error_type").is_none());
}

#[test]
fn long_paths_are_cut_at_a_char_boundary() {
    assert_eq!(truncate("abc", 2), "ab");
    assert_eq!(truncate("aé", 2), "a");
    assert_eq!(truncate("abc", 10), "abc");
}
