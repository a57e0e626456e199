//! `quorum serve` with no `--model` serves the bundled models: the tiny
//! reasoning policy (`models/tiny-reasoner-rl`) as `tiny-reasoner`, with the
//! bundled reward model (`models/tiny-reasoner-rm`) as its scorer, so a
//! newcomer's first request reasons and best-of-N works out of the box.

mod server_common;

use quorum::server::ServerConfig;
use reqwest::Client;
use serde_json::{json, Value};

async fn bundled() -> server_common::TestServer {
    let cfg = ServerConfig {
        models: vec![],
        ..server_common::config()
    };
    server_common::start(cfg).await
}

async fn chat(s: &server_common::TestServer, body: Value) -> Value {
    let r = Client::new()
        .post(format!("{}/v1/chat/completions", s.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundled_policy_reasons_and_its_reward_model_picks_answers() {
    let s = bundled().await;
    let models: Value = Client::new()
        .get(format!("{}/v1/models", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "tiny-reasoner", "{models}");

    // greedy, thinking on (the template's default): a column trace, then the answer
    let v = chat(
        &s,
        json!({
            "model": "tiny-reasoner",
            "messages": [{"role": "user", "content": "Compute 345+678."}],
            "temperature": 0,
            "max_tokens": 400,
        }),
    )
    .await;
    let msg = &v["choices"][0]["message"];
    assert!(
        msg["reasoning_content"]
            .as_str()
            .unwrap_or("")
            .contains("5+8"),
        "{v}"
    );
    assert!(
        msg["content"].as_str().unwrap().contains("\\boxed{1023}"),
        "{v}"
    );

    // best-of-N needs the reward model: every finished rollout is scored
    let v = chat(
        &s,
        json!({
            "model": "tiny-reasoner",
            "messages": [{"role": "user", "content": "Compute 47*36."}],
            "temperature": 1.0,
            "seed": 3,
            "max_tokens": 400,
            "rollouts": 4,
            "selection": {"strategy": "best_of_n"},
        }),
    )
    .await;
    let q = &v["quorum"];
    assert_eq!(q["strategy"], "best_of_n", "{v}");
    let rollouts = q["rollouts"].as_array().unwrap();
    assert_eq!(rollouts.len(), 4);
    assert!(rollouts.iter().all(|r| r["score"].is_f64()), "{q}");
    s.running.shutdown().await.unwrap();
}
