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

/// A message names a Rust type: a CamelCase word, or serde's type words.
fn rust_type_named(message: &str) -> Option<String> {
    const RUST_WORDS: [&str; 14] = [
        "struct", "enum", "untagged", "usize", "isize", "u8", "u16", "u32", "u64", "i32", "i64",
        "f32", "f64", "sequence",
    ];
    message
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| {
            RUST_WORDS.contains(w)
                || w.as_bytes()
                    .windows(2)
                    .any(|p| p[0].is_ascii_lowercase() && p[1].is_ascii_uppercase())
        })
        .map(str::to_string)
}

#[test]
fn rust_type_names_are_spotted() {
    assert_eq!(
        rust_type_named("expected struct WireMessage").as_deref(),
        Some("struct")
    );
    assert_eq!(
        rust_type_named("x: expected ConfidenceMetric").as_deref(),
        Some("ConfidenceMetric")
    );
    assert_eq!(rust_type_named("expected usize").as_deref(), Some("usize"));
    assert_eq!(
        rust_type_named("messages[0].content must be a string"),
        None
    );
}

/// Every field of a valid body replaced by every wrong shape: the answer is
/// a 4xx in the OpenAI shape whose message never names a Rust type.
#[tokio::test]
async fn malformed_bodies_never_name_rust_types() {
    use serde_json::{json, Value};
    let state = AppState::new(ServerConfig::default());
    state.set_models(Vec::new());
    let wrong = [
        json!("hi"),
        json!(-1),
        json!(1.5),
        json!(true),
        json!(null),
        json!([]),
        json!([1, "a"]),
        json!({}),
        json!({"a": 1}),
        json!(1e300),
        json!(5_000_000_000u64),
        json!(-5_000_000_000i64),
    ];
    let sampling = [
        "/n",
        "/temperature",
        "/top_p",
        "/top_k",
        "/min_p",
        "/repetition_penalty",
        "/presence_penalty",
        "/frequency_penalty",
        "/logit_bias",
        "/logit_bias/5",
        "/stop",
        "/stop/0",
        "/stop_token_ids",
        "/stop_token_ids/0",
        "/ignore_eos",
        "/seed",
        "/user",
        "/stream",
        "/stream_options",
        "/stream_options/include_usage",
        "/rollouts",
        "/chat_template_kwargs",
        "/selection",
        "/thinking",
        "/thinking_budget",
        "/model",
    ];
    let base_sampling = json!({
        "model": "m", "logit_bias": {"5": 1}, "stop": ["x"], "stop_token_ids": [1],
        "stream_options": {"include_usage": true}, "chat_template_kwargs": {"enable_thinking": true},
    });
    let with = |extra: Value| {
        let mut v = base_sampling.clone();
        for (k, x) in extra.as_object().into_iter().flatten() {
            v[k] = x.clone();
        }
        v
    };
    let chat = with(json!({
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}], "name": "u"}],
        "response_format": {"type": "text"},
    }));
    let chat_fields = [
        "/messages",
        "/messages/0",
        "/messages/0/role",
        "/messages/0/content",
        "/messages/0/content/0",
        "/messages/0/content/0/type",
        "/messages/0/content/0/text",
        "/messages/0/name",
        "/messages/0/tool_call_id",
        "/messages/0/reasoning_content",
        "/max_tokens",
        "/max_completion_tokens",
        "/logprobs",
        "/top_logprobs",
        "/response_format",
        "/response_format/type",
        "/reasoning_effort",
        "/min_thinking_tokens",
        "/thinking_budget_message",
        "/max_thinking_tokens",
    ];
    let completion = with(json!({"prompt": "hi", "echo": false, "suffix": ""}));
    let completion_fields = [
        "/prompt",
        "/echo",
        "/logprobs",
        "/best_of",
        "/suffix",
        "/max_tokens",
    ];
    let score =
        json!({"model": "m", "messages": [{"role": "user", "content": "q"}], "completions": ["a"]});
    let score_fields = [
        "/model",
        "/prompt",
        "/messages",
        "/messages/0",
        "/completions",
        "/completions/0",
    ];

    let mut bodies: Vec<(&str, Vec<u8>)> = Vec::new();
    for (uri, base, fields) in [
        (
            "/v1/chat/completions",
            &chat,
            [&sampling[..], &chat_fields[..]].concat(),
        ),
        (
            "/v1/completions",
            &completion,
            [&sampling[..], &completion_fields[..]].concat(),
        ),
        ("/v1/score", &score, score_fields.to_vec()),
    ] {
        for field in fields {
            for w in &wrong {
                let mut v = base.clone();
                let (parent, key) = field.rsplit_once('/').unwrap();
                match v.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.insert(key.to_string(), w.clone());
                    }
                    Some(Value::Array(a)) => {
                        if let Some(slot) = key.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                            *slot = w.clone();
                        }
                    }
                    _ => continue,
                }
                bodies.push((uri, v.to_string().into_bytes()));
            }
        }
        for raw in [
            &b""[..],
            b"[]",
            b"null",
            b"1",
            b"\"x\"",
            b"{",
            b"{\"model\": }",
            b"{} {}",
            b"{\"model\": \"m\"} x",
            b"{\"model\": \"\xff\"}",
            b"{\"a\" 1}",
            b"[{}]",
        ] {
            bodies.push((uri, raw.to_vec()));
        }
    }
    assert!(bodies.len() > 1000, "{}", bodies.len());
    for (uri, body) in bodies {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let req = Request::builder()
            .method("POST")
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let (status, text, ctype) = send(&state, req).await;
        assert!(status.is_client_error(), "{uri} {shown}: {status} {text}");
        assert_eq!(ctype, "application/json", "{uri} {shown}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{uri} {shown}: {text}");
        if let Some(w) = rust_type_named(message) {
            panic!("{uri} {shown}: `{w}` in {message:?}");
        }
    }

    // `selection` is parsed once the model is known; check it directly.
    use crate::server::openai::SelectionOptions;
    let mut selections = wrong.to_vec();
    for strategy in [
        "first",
        "majority",
        "best_of_n",
        "weighted_majority",
        "confidence",
    ] {
        for key in [
            "strategy",
            "extract",
            "early_stop",
            "warmup",
            "keep_fraction",
            "metric",
            "group_size",
            "weighted",
            "on_missing",
            "weight",
            "stratgy",
        ] {
            for w in &wrong {
                selections.push(json!({"strategy": strategy, key: w}));
            }
        }
        for key in ["extractors", "after_think", "regex", "extractor"] {
            for w in &wrong {
                selections.push(json!({"strategy": strategy, "extract": {key: w}}));
            }
        }
    }
    for sel in selections {
        if let Err(e) = SelectionOptions::parse(&sel) {
            assert!(e.param.starts_with("selection"), "{sel}: {e:?}");
            if let Some(w) = rust_type_named(&e.message) {
                panic!("{sel}: `{w}` in {:?}", e.message);
            }
        }
    }
}
