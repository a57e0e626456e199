//! Hostile and careless clients: every failure is an OpenAI-shaped error
//! with the right status, overload is 429 (never 5xx), and a client that
//! hangs up mid-stream releases its engine slot.

mod server_common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

fn chat_body(extra: Value) -> Value {
    let mut body = json!({
        "model": "tiny",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 2,
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

/// Sends raw bytes as JSON; returns the status and the parsed error object.
async fn post_raw(c: &Client, url: &str, ctype: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let res = c
        .post(url)
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .expect("send");
    let status = res.status();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    (status, v)
}

fn assert_openai_error(v: &Value) {
    let e = &v["error"];
    assert!(e["message"].is_string(), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_openai_errors() {
    let srv = server_common::start(server_common::config()).await;
    let c = Client::new();
    let chat = format!("{}/v1/chat/completions", srv.base);
    let json_ct = "application/json";
    let post = |v: Value| post_raw(&c, &chat, json_ct, v.to_string().into_bytes());

    let cases: Vec<(Value, &str)> = vec![
        (chat_body(json!({"n": "two"})), "n"),
        (chat_body(json!({"n": 100000})), "n"),
        (
            chat_body(json!({"max_tokens": 1_000_000_000u64})),
            "max_tokens",
        ),
        (chat_body(json!({"messages": []})), "messages"),
        (chat_body(json!({"temperature": -1})), "temperature"),
        (chat_body(json!({"top_logprobs": 3})), "top_logprobs"),
        (chat_body(json!({"rollouts": 1, "n": 2})), "rollouts"),
        (
            chat_body(json!({"response_format": {"type": "json_schema"}})),
            "response_format",
        ),
        (
            chat_body(
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
            ),
            "messages[0].content[0].type",
        ),
        (
            chat_body(json!({"logit_bias": {"999999999": 1}})),
            "logit_bias",
        ),
    ];
    for (body, param) in cases {
        let (status, v) = post(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {v}");
        assert_openai_error(&v);
        assert_eq!(v["error"]["param"], param, "{body} -> {v}");
    }

    // Prompt + budget over the context window.
    let (status, v) = post(chat_body(json!({"max_tokens": 4095}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "context_length_exceeded");

    // Malformed JSON, missing field, invalid UTF-8.
    for raw in [
        b"{\"model\": \"tiny\", ".to_vec(),
        br#"{"messages": []}"#.to_vec(),
        b"{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}"
            .to_vec(),
    ] {
        let (status, v) = post_raw(&c, &chat, json_ct, raw).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert_openai_error(&v);
    }

    // Wrong content type.
    let (status, v) = post_raw(
        &c,
        &chat,
        "text/plain",
        chat_body(json!({})).to_string().into(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_openai_error(&v);

    // 10 MB body.
    let big =
        json!({"model": "tiny", "messages": [{"role": "user", "content": "x".repeat(10 << 20)}]});
    let (status, v) = post_raw(&c, &chat, json_ct, big.to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_openai_error(&v);

    // Unknown model, route, method.
    let (status, v) = post(chat_body(json!({"model": "gpt-9"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "model_not_found");
    let res = c.get(format!("{}/v1/nope", srv.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_openai_error(&res.json().await.unwrap());
    let res = c.get(&chat).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_openai_error(&res.json().await.unwrap());

    // Completions: bad prompt shapes.
    let comp = format!("{}/v1/completions", srv.base);
    let (status, v) = post_raw(
        &c,
        &comp,
        json_ct,
        json!({"model": "tiny", "prompt": ["a", "b"]})
            .to_string()
            .into(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["param"], "prompt");

    // Still healthy, and a good request works.
    let (status, v) = post(chat_body(json!({"logprobs": true, "top_logprobs": 2}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let lp = &v["choices"][0]["logprobs"]["content"][0];
    assert!(lp["token"].is_string() && lp["bytes"].is_array(), "{v}");
    assert_eq!(lp["top_logprobs"].as_array().map(Vec::len), Some(2), "{v}");
    let health = c.get(format!("{}/health", srv.base)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    srv.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_enforced_except_on_health() {
    let mut cfg = server_common::config();
    cfg.api_keys = vec!["sk-right".into()];
    let srv = server_common::start(cfg).await;
    let c = Client::new();
    let url = format!("{}/v1/models", srv.base);
    for auth in [
        None,
        Some("Bearer sk-wrong"),
        Some("Bearer sk-righ"),
        Some("sk-right"),
    ] {
        let mut req = c.get(&url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_api_key");
    }
    let res = c.get(&url).bearer_auth("sk-right").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = c.get(format!("{}/health", srv.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    srv.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_429_never_5xx() {
    let mut cfg = server_common::config();
    cfg.max_concurrent_requests = 8;
    cfg.queue_capacity = 2;
    let srv = server_common::start(cfg).await;
    let c = Client::new();
    let url = format!("{}/v1/chat/completions", srv.base);
    let body = chat_body(json!({"max_tokens": 2})).to_string();
    let reqs = (0..200).map(|_| {
        c.post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    });
    let results = futures::future::join_all(reqs).await;
    let (mut ok, mut limited) = (0, 0);
    for r in results {
        let r = r.expect("transport");
        match r.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(r.headers().contains_key("retry-after"));
                limited += 1;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert!(ok >= 1 && limited >= 1, "ok {ok}, 429 {limited}");
    let res = c.get(format!("{}/health", srv.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = c
        .post(&url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    srv.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_mid_stream_releases_the_engine() {
    let srv = server_common::start(server_common::config()).await;
    let c = Client::new();
    let body = chat_body(json!({"max_tokens": 3000, "ignore_eos": true, "stream": true}));
    let res = c
        .post(format!("{}/v1/chat/completions", srv.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut stream = res.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\"content\":\"") || seen.matches("data:").count() < 3 {
        let chunk = stream.next().await.expect("stream open").expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(stream);

    let text = wait_idle(&c, &srv.base).await;
    assert_eq!(
        server_common::metric(&text, "quorum_client_disconnects_total"),
        Some(1.0),
        "{text}"
    );

    // Non-streaming: the handler future owns the receiver; a client that
    // times out drops it. 8 x 4000 tokens would take far longer than the
    // poll below; the engine must stop early.
    let body = chat_body(json!({"max_tokens": 4000, "ignore_eos": true, "n": 8}));
    let err = c
        .post(format!("{}/v1/chat/completions", srv.base))
        .json(&body)
        .timeout(Duration::from_millis(400))
        .send()
        .await
        .expect_err("client timeout");
    assert!(err.is_timeout(), "{err}");
    let text = wait_idle(&c, &srv.base).await;
    let generated = server_common::metric(&text, "quorum_completion_tokens_total{model=\"tiny\"}");
    assert!(generated.is_some_and(|g| g < 8.0 * 4000.0), "{text}");
    assert_eq!(
        server_common::metric(&text, "quorum_client_disconnects_total"),
        Some(2.0),
        "{text}"
    );
    srv.running.shutdown().await.unwrap();
}

/// Polls `/metrics` until the engine has nothing running or queued; returns the text.
async fn wait_idle(c: &Client, base: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = c
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let running = server_common::metric(&text, "quorum_running{model=\"tiny\"}");
        let queued = server_common::metric(&text, "quorum_queue_depth{model=\"tiny\"}");
        if running == Some(0.0) && queued == Some(0.0) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "engine still busy after disconnect:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
