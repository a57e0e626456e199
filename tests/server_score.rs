//! `POST /v1/score` through the HTTP server: the reward model runs on the
//! policy's engine, so scores equal the reward model's own, and a score
//! request is answered between the decode steps of a running generation
//! instead of after it.

mod server_common;

use std::time::{Duration, Instant};

use candle_core::Device;
use quorum::chat::ChatMessage;
use quorum::engine::RewardModel;
use quorum::server::config::ModelDefaults;
use quorum::server::ServerConfig;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

/// `tiny` with the tiny reward model.
fn config() -> ServerConfig {
    let mut cfg = server_common::config();
    cfg.defaults.insert(
        "tiny".into(),
        ModelDefaults {
            reward_model: Some(server_common::reward_model_dir()),
            ..ModelDefaults::default()
        },
    );
    cfg
}

fn completions() -> Vec<String> {
    ["The answer is 4.", "5", "\\boxed{4}", "four"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

async fn score(c: &Client, base: &str) -> (StatusCode, Value) {
    let body = json!({"model": "tiny", "prompt": "What is 2+2?", "completions": completions()});
    let res = c
        .post(format!("{base}/v1/score"))
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn scores(v: &Value) -> Vec<f64> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| d["score"].as_f64().expect("score"))
        .collect()
}

async fn metrics(c: &Client, base: &str) -> String {
    let res = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics");
    res.text().await.expect("metrics text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_score_equals_the_reward_model_scored_alone() {
    let srv = server_common::start(config()).await;
    let c = Client::new();
    let (st, a) = score(&c, &srv.base).await;
    assert_eq!(st, StatusCode::OK, "{a}");
    let (_, b) = score(&c, &srv.base).await;
    assert_eq!(scores(&a), scores(&b), "deterministic");
    let rm = RewardModel::load(&server_common::reward_model_dir(), None, &Device::Cpu).unwrap();
    let want = rm
        .score(&[ChatMessage::user("What is 2+2?")], &completions())
        .unwrap();
    let got = scores(&a);
    assert_eq!(got.len(), want.len());
    for (i, (x, y)) in got.iter().zip(&want).enumerate() {
        assert!(
            (x - y).abs() < 1e-5,
            "completion {i}: served {x} vs alone {y}"
        );
    }
    let m = metrics(&c, &srv.base).await;
    let series = |name: &str| server_common::metric(&m, &format!("{name}{{model=\"tiny\"}}"));
    assert_eq!(series("quorum_score_requests_total"), Some(2.0));
    let tokens = a["usage"]["prompt_tokens"].as_f64().expect("usage");
    assert_eq!(series("quorum_score_tokens_total"), Some(2.0 * tokens));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_score_is_answered_while_a_long_generation_runs() {
    let srv = server_common::start(config()).await;
    let c = Client::new();
    let body = json!({
        "model": "tiny",
        "messages": [{"role": "user", "content": "Count."}],
        "max_tokens": 3000,
        "ignore_eos": true,
        "stream": true,
        "chat_template_kwargs": {"enable_thinking": false},
    });
    let generation = c
        .post(format!("{}/v1/chat/completions", srv.base))
        .json(&body)
        .send()
        .await
        .expect("stream opens");
    assert_eq!(generation.status(), StatusCode::OK);
    let running = |m: &str| server_common::metric(m, "quorum_running{model=\"tiny\"}");
    let t = Instant::now();
    while running(&metrics(&c, &srv.base).await) != Some(1.0) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "generation never ran"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (st, v) = score(&c, &srv.base).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(scores(&v).len(), 4);
    // The generation is still decoding: the score job did not wait for it.
    assert_eq!(running(&metrics(&c, &srv.base).await), Some(1.0));
    drop(generation);
}
