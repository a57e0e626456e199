//! Router-level tests without sockets or models: lifecycle answers and
//! error shapes that do not need an engine.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::{app, AppState, ServerConfig};

async fn call(state: &AppState, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

const CHAT: &str = r#"{"model": "m", "messages": [{"role": "user", "content": "hi"}]}"#;

#[tokio::test]
async fn loading_and_shutting_down_are_503() {
    let state = AppState::new(ServerConfig::default());
    assert_eq!(
        call(&state, "GET", "/health", "").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (status, body) = call(&state, "POST", "/v1/chat/completions", CHAT).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("\"type\":\"server_error\""), "{body}");
    assert_eq!(
        call(&state, "GET", "/v1/models", "").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    state.set_models(Vec::new());
    assert_eq!(call(&state, "GET", "/health", "").await.0, StatusCode::OK);
    let (status, body) = call(&state, "POST", "/v1/chat/completions", CHAT).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("model_not_found"), "{body}");

    state.begin_shutdown();
    assert_eq!(
        call(&state, "GET", "/health", "").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        call(&state, "POST", "/v1/chat/completions", CHAT).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn routing_errors_are_openai_shaped() {
    let state = AppState::new(ServerConfig::default());
    let (status, body) = call(&state, "GET", "/nope", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.starts_with("{\"error\":{"), "{body}");
    let (status, body) = call(&state, "DELETE", "/v1/chat/completions", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body.starts_with("{\"error\":{"), "{body}");
    let (status, _) = call(&state, "GET", "/metrics", "").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_handler_still_running_when_the_grace_period_ends_answers_503() {
    use axum::routing::get;
    let state = AppState::new(ServerConfig::default());
    let router = axum::Router::new()
        .route("/slow", get(std::future::pending::<&'static str>))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::grace_deadline,
        ))
        .with_state(state.clone());
    let req = Request::get("/slow").body(Body::empty()).unwrap();
    let call = tokio::spawn(router.oneshot(req));
    tokio::task::yield_now().await;
    state.end_grace();
    let res = call.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["error"]["code"], "service_unavailable");
    assert_eq!(v["error"]["message"], super::state::GRACE_OVER);
}
