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

/// Sends `req` through a fresh router: status, body and content type.
async fn send(state: &AppState, req: Request<Body>) -> (StatusCode, String, String) {
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned(), ctype)
}

fn request(method: &str, uri: &str, auth: Option<&str>, body: &str) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

fn keyed(metrics_require_key: bool) -> AppState {
    let state = AppState::new(ServerConfig {
        api_keys: vec!["sk-a".into()],
        metrics_require_key,
        ..ServerConfig::default()
    });
    state.set_models(Vec::new());
    state
}

fn assert_openai_error(body: &str, code: &str) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["error"]["code"], code, "{body}");
    assert!(v["error"]["message"].is_string(), "{body}");
    assert!(v["error"]["type"].is_string(), "{body}");
}

#[tokio::test]
async fn with_keys_unknown_routes_and_wrong_methods_are_401_before_404_and_405() {
    let state = keyed(false);
    for (method, uri, after_auth) in [
        ("GET", "/nope", StatusCode::NOT_FOUND),
        ("GET", "/v1/nope", StatusCode::NOT_FOUND),
        ("GET", "/health/", StatusCode::NOT_FOUND),
        (
            "DELETE",
            "/v1/chat/completions",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        ("POST", "/v1/models", StatusCode::METHOD_NOT_ALLOWED),
        ("GET", "/v1/models", StatusCode::OK),
    ] {
        for bad in [None, Some("Bearer sk-b"), Some("sk-a"), Some("Basic sk-a")] {
            let (status, body, _) = send(&state, request(method, uri, bad, "")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri} {bad:?}");
            assert_openai_error(&body, "invalid_api_key");
        }
        for good in ["Bearer sk-a", "bearer sk-a", "BEARER    sk-a"] {
            let (status, _, _) = send(&state, request(method, uri, Some(good), "")).await;
            assert_eq!(status, after_auth, "{method} {uri} {good:?}");
        }
    }
    // Wrong methods on the open routes are not behind the key.
    let (status, _, _) = send(&state, request("POST", "/health", None, "")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn with_keys_health_shows_models_only_to_a_valid_key() {
    let state = keyed(false);
    for auth in [None, Some("Bearer sk-wrong")] {
        let (status, body, _) = send(&state, request("GET", "/health", auth, "")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, r#"{"status":"ok"}"#, "{auth:?}");
    }
    let (_, body, _) = send(&state, request("GET", "/health", Some("Bearer sk-a"), "")).await;
    assert_eq!(body, r#"{"status":"ok","models":[]}"#);
    // Without keys, as before: everyone sees the ids.
    let open = AppState::new(ServerConfig::default());
    open.set_models(Vec::new());
    let (_, body, _) = send(&open, request("GET", "/health", None, "")).await;
    assert_eq!(body, r#"{"status":"ok","models":[]}"#);
    // While loading, the status still shows without a key.
    let loading = AppState::new(ServerConfig {
        api_keys: vec!["sk-a".into()],
        ..ServerConfig::default()
    });
    let (status, body, _) = send(&loading, request("GET", "/health", None, "")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, r#"{"status":"loading"}"#);
}

#[tokio::test]
async fn metrics_needs_the_key_only_with_metrics_require_key() {
    let (status, _, _) = send(&keyed(false), request("GET", "/metrics", None, "")).await;
    assert_eq!(status, StatusCode::OK);
    let strict = keyed(true);
    let (status, body, _) = send(&strict, request("GET", "/metrics", None, "")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_openai_error(&body, "invalid_api_key");
    let (status, body, _) =
        send(&strict, request("GET", "/metrics", Some("Bearer sk-a"), "")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("quorum_"), "{body}");
}

#[tokio::test]
async fn http_layer_rejections_are_openai_shaped() {
    let state = AppState::new(ServerConfig {
        max_body_bytes: 64,
        ..ServerConfig::default()
    });
    state.set_models(Vec::new());
    let big = format!(r#"{{"model": "m", "prompt": "{}"}}"#, "x".repeat(200));
    for (method, uri, body, status, code) in [
        ("GET", "/v1/models/%FF", "", StatusCode::BAD_REQUEST, None),
        (
            "GET",
            "/v1/models/nope",
            "",
            StatusCode::NOT_FOUND,
            Some("model_not_found"),
        ),
        (
            "GET",
            "/v1/models/a/b",
            "",
            StatusCode::NOT_FOUND,
            Some("not_found"),
        ),
        ("GET", "/v1/", "", StatusCode::NOT_FOUND, Some("not_found")),
        (
            "OPTIONS",
            "/health",
            "",
            StatusCode::METHOD_NOT_ALLOWED,
            Some("method_not_allowed"),
        ),
        (
            "PUT",
            "/v1/score",
            "",
            StatusCode::METHOD_NOT_ALLOWED,
            Some("method_not_allowed"),
        ),
        (
            "POST",
            "/v1/completions",
            big.as_str(),
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("payload_too_large"),
        ),
        (
            "POST",
            "/v1/score",
            big.as_str(),
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("payload_too_large"),
        ),
    ] {
        let (got, text, ctype) = send(&state, request(method, uri, None, body)).await;
        assert_eq!(got, status, "{method} {uri}: {text}");
        assert_eq!(ctype, "application/json", "{method} {uri}");
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {uri}: {e}: {text}"));
        assert!(v["error"]["message"].is_string(), "{text}");
        if let Some(code) = code {
            assert_eq!(v["error"]["code"], code, "{text}");
        }
    }
}

#[tokio::test]
async fn request_limits_the_body_cannot_use_are_400s() {
    let state = AppState::new(ServerConfig::default());
    state.set_models(Vec::new());
    let chat = |extra: &str| {
        format!(r#"{{"model": "m", "messages": [{{"role": "user", "content": "hi"}}]{extra}}}"#)
    };
    for (body, param, words) in [
        (format!("{CHAT} x"), None, "exactly one JSON value"),
        (format!("{CHAT}{CHAT}"), None, "exactly one JSON value"),
        (
            chat(r#", "max_tokens": 10, "thinking_budget": 11"#),
            Some("thinking_budget"),
            "exceeds max_tokens = 10",
        ),
        (
            chat(r#", "thinking_budget": 5000"#),
            Some("thinking_budget"),
            "max_tokens cap = 4096",
        ),
        (
            chat(r#", "max_completion_tokens": 5, "min_thinking_tokens": 6"#),
            Some("min_thinking_tokens"),
            "max_completion_tokens = 5",
        ),
        (
            chat(
                r#", "rollouts": 4, "selection": {"strategy": "confidence", "early_stop": true, "warmup": 4}"#,
            ),
            Some("selection.warmup"),
            "below rollouts (4)",
        ),
    ] {
        let (status, text, _) =
            send(&state, request("POST", "/v1/chat/completions", None, &body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            v["error"]["message"].as_str().unwrap().contains(words),
            "{text}"
        );
        match param {
            Some(p) => assert_eq!(v["error"]["param"], p, "{text}"),
            None => assert!(v["error"]["param"].is_null(), "{text}"),
        }
    }
    // Trailing whitespace is still one JSON value.
    let (status, text, _) = send(
        &state,
        request("POST", "/v1/chat/completions", None, &format!("{CHAT} \n")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
}
