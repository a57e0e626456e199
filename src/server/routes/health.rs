//! `GET /health`: 200 only when every model is loaded and the server is not
//! shutting down, so load balancers and orchestrators route traffic only to
//! an instance that can serve it. Never behind the API key; with keys
//! configured, only a caller with a valid key also sees the model ids.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use crate::server::auth;
use crate::server::state::{AppState, Phase};

pub async fn health(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    let (status, text) = match state.phase() {
        Phase::Ready => (StatusCode::OK, "ok"),
        Phase::Loading => (StatusCode::SERVICE_UNAVAILABLE, "loading"),
        Phase::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
    };
    if !auth::authorized(&state.config, &headers) {
        return (status, Json(json!({"status": text})));
    }
    let models: Vec<&str> = state.models().keys().map(String::as_str).collect();
    (status, Json(json!({"status": text, "models": models})))
}
