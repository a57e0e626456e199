//! What an operator sees: `/metrics` exports the engine's KV, scheduling and
//! prefix-cache state and the tokenization queue; `stop` limits answer 400.

mod server_common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use server_common::metric;

const MODEL: &str = "{model=\"tiny\"}";

fn chat_body(extra: Value) -> Value {
    let mut body = json!({
        "model": "tiny",
        "messages": [{"role": "user", "content": "Tell me about the sea, please."}],
        "max_tokens": 3,
        "temperature": 0,
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

async fn metrics(c: &Client, base: &str) -> String {
    c.get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn engine(text: &str, name: &str) -> f64 {
    metric(text, &format!("{name}{MODEL}")).unwrap_or_else(|| panic!("{name} missing:\n{text}"))
}

/// Polls until no request runs or waits; returns the `/metrics` text.
async fn idle(c: &Client, base: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics(c, base).await;
        if engine(&text, "quorum_running") == 0.0 && engine(&text, "quorum_requests_waiting") == 0.0
        {
            return text;
        }
        assert!(Instant::now() < deadline, "engine still busy:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_export_kv_scheduling_prefix_cache_and_tokenize_queue() {
    let srv = server_common::start(server_common::config()).await;
    let c = Client::new();
    let chat = format!("{}/v1/chat/completions", srv.base);

    // While a 2-rollout stream decodes: both rollouts run and hold KV.
    let res = c
        .post(&chat)
        .json(&chat_body(
            json!({"n": 2, "max_tokens": 3000, "ignore_eos": true, "stream": true}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut stream = res.bytes_stream();
    let mut seen = String::new();
    while seen.matches("data:").count() < 4 {
        let chunk = stream.next().await.expect("stream open").expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    // Gauges are published at the end of an engine step; tokens stream
    // during it. Poll until the step that forked the rollouts is done.
    let deadline = Instant::now() + Duration::from_secs(20);
    let busy = loop {
        let text = metrics(&c, &srv.base).await;
        if engine(&text, "quorum_running_sequences") > 0.0 {
            break text;
        }
        assert!(Instant::now() < deadline, "no running rollouts:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let budget = engine(&busy, "quorum_kv_cache_budget_tokens");
    let used = engine(&busy, "quorum_kv_cache_used_tokens");
    assert_eq!(engine(&busy, "quorum_running_sequences"), 2.0, "{busy}");
    assert!(used > 0.0 && used <= budget, "{busy}");
    assert!(engine(&busy, "quorum_kv_cache_used_bytes") > 0.0, "{busy}");
    drop(stream);
    idle(&c, &srv.base).await;

    // The same prompt twice: the second is served from the prefix cache.
    let body = chat_body(json!({}));
    for _ in 0..2 {
        let res = c.post(&chat).json(&body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let text = idle(&c, &srv.base).await;
    assert_eq!(engine(&text, "quorum_kv_cache_budget_tokens"), budget);
    assert_eq!(engine(&text, "quorum_kv_cache_used_tokens"), 0.0, "{text}");
    assert_eq!(engine(&text, "quorum_kv_cache_used_bytes"), 0.0, "{text}");
    assert_eq!(engine(&text, "quorum_running_sequences"), 0.0, "{text}");
    assert!(
        engine(&text, "quorum_prefix_cache_entries") >= 1.0,
        "{text}"
    );
    assert!(engine(&text, "quorum_prefix_cache_bytes") > 0.0, "{text}");
    let hit = engine(&text, "quorum_prefix_cache_hit_tokens_total");
    let miss = engine(&text, "quorum_prefix_cache_miss_tokens_total");
    assert!(hit > 0.0 && miss > 0.0, "{text}");
    let ratio = engine(&text, "quorum_prefix_cache_hit_ratio");
    assert!((ratio - hit / (hit + miss)).abs() < 1e-9, "{text}");
    assert!(engine(&text, "quorum_decode_steps_total") > 0.0, "{text}");
    assert_eq!(
        metric(&text, "quorum_tokenize_waiting"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "quorum_tokenize_running"),
        Some(0.0),
        "{text}"
    );
    for series in [
        "quorum_kv_cache_used_tokens",
        "quorum_prefix_cache_entries",
        "quorum_tokenize_waiting",
    ] {
        assert!(
            text.contains(&format!("# TYPE {series} gauge\n")),
            "{series}:\n{text}"
        );
    }
    srv.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_strings_beyond_the_limits_are_400_naming_stop() {
    let mut cfg = server_common::config();
    cfg.max_stop_strings = 2;
    cfg.max_stop_bytes = 8;
    let srv = server_common::start(cfg).await;
    let c = Client::new();
    let completion =
        |stop: Value| json!({"model": "tiny", "prompt": "Hi", "max_tokens": 2, "stop": stop});
    let cases = [
        (
            "chat/completions",
            chat_body(json!({"stop": ["a", "b", "c"]})),
            "at most 2 strings",
        ),
        (
            "completions",
            completion(json!("123456789")),
            "at most 8 bytes",
        ),
    ];
    for (path, body, says) in cases {
        let res = c
            .post(format!("{}/v1/{path}", srv.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["param"], "stop", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(says),
            "{v}"
        );
    }
    // Within the limits: served.
    let res = c
        .post(format!("{}/v1/completions", srv.base))
        .json(&completion(json!(["12345678", "x"])))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    srv.running.shutdown().await.unwrap();
}
