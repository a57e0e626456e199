//! `best_of` on `/v1/completions` through the HTTP server: the best `n`
//! rollouts by mean token log-probability, best first, usage over every
//! rollout; OpenAI's request errors; an explicit `selection` wins.

mod server_common;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

fn body(extra: Value) -> Value {
    let mut b = json!({
        "model": "tiny",
        "prompt": "Once upon a time",
        "max_tokens": 6,
        "temperature": 1.0,
        "seed": 7,
        "logprobs": 0,
        "ignore_eos": true,
    });
    if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    b
}

async fn post(c: &Client, base: &str, body: &Value) -> (StatusCode, Value) {
    let res = c
        .post(format!("{base}/v1/completions"))
        .json(body)
        .send()
        .await
        .expect("send");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// `(index, text, mean token logprob)` of every choice, in response order.
fn choices(v: &Value) -> Vec<(u64, String, f64)> {
    v["choices"]
        .as_array()
        .expect("choices")
        .iter()
        .map(|c| {
            let lps: Vec<f64> = c["logprobs"]["token_logprobs"]
                .as_array()
                .expect("token_logprobs")
                .iter()
                .map(|x| x.as_f64().expect("logprob"))
                .collect();
            let mean = lps.iter().sum::<f64>() / lps.len() as f64;
            let text = c["text"].as_str().expect("text").to_string();
            (c["index"].as_u64().expect("index"), text, mean)
        })
        .collect()
}

fn completion_tokens(v: &Value) -> u64 {
    v["usage"]["completion_tokens"].as_u64().expect("usage")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_of_returns_the_highest_mean_logprob_rollouts_best_first() {
    let srv = server_common::start(server_common::config()).await;
    let c = Client::new();
    // The same seeded rollouts, unranked: rollout i is choice i.
    let (st, plain) = post(&c, &srv.base, &body(json!({"n": 4}))).await;
    assert_eq!(st, StatusCode::OK, "{plain}");
    let plain = (choices(&plain), completion_tokens(&plain));
    assert_eq!(plain.1, 24);
    let mut by_mean: Vec<&(u64, String, f64)> = plain.0.iter().collect();
    by_mean.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    let order: Vec<u64> = by_mean.iter().map(|c| c.0).collect();
    assert_ne!(order, [0, 1, 2, 3], "the seed should give an unsorted draw");

    // best_of = n = 4: all of them, best first.
    let (st, all) = post(&c, &srv.base, &body(json!({"n": 4, "best_of": 4}))).await;
    assert_eq!(st, StatusCode::OK, "{all}");
    let ranked = choices(&all);
    for (k, (got, want)) in ranked.iter().zip(&by_mean).enumerate() {
        assert_eq!(got.0, k as u64);
        assert_eq!(got.1, want.1, "choice {k}");
        assert!((got.2 - want.2).abs() < 1e-4, "choice {k}");
    }

    // best_of = 4, n = 2: the top two; usage still counts all four.
    let (st, two) = post(&c, &srv.base, &body(json!({"n": 2, "best_of": 4}))).await;
    assert_eq!(st, StatusCode::OK, "{two}");
    let top: Vec<(u64, String)> = choices(&two).into_iter().map(|c| (c.0, c.1)).collect();
    assert_eq!(top, [(0, by_mean[0].1.clone()), (1, by_mean[1].1.clone())]);
    assert_eq!(completion_tokens(&two), 24);

    // best_of = 4 alone (n = 1): the single best.
    let (st, one) = post(&c, &srv.base, &body(json!({"best_of": 4}))).await;
    assert_eq!(st, StatusCode::OK, "{one}");
    let best = choices(&one);
    assert_eq!(best.len(), 1);
    assert_eq!(best[0].1, by_mean[0].1);
    let max_mean = plain.0.iter().map(|c| c.2).fold(f64::MIN, f64::max);
    assert!((best[0].2 - max_mean).abs() < 1e-4);
    assert_eq!(completion_tokens(&one), 24);
    assert!(
        one.get("quorum").is_none(),
        "best_of is not a selection strategy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_of_request_errors_name_best_of() {
    let srv = server_common::start(server_common::config()).await;
    let c = Client::new();
    let cases = [
        (json!({"n": 3, "best_of": 2}), "greater than or equal to n"),
        (json!({"best_of": 3, "stream": true}), "stream"),
        (json!({"n": 2, "best_of": 3, "stream": true}), "stream"),
        (json!({"best_of": 3, "rollouts": 2}), "rollouts"),
        (json!({"best_of": 1000}), "best_of"),
    ];
    for (extra, words) in cases {
        let (st, v) = post(&c, &srv.base, &body(extra.clone())).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{extra} -> {v}");
        assert_eq!(v["error"]["param"], "best_of", "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        let msg = v["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains(words), "{extra}: {msg}");
    }
    // Streaming with best_of == n is plain streaming.
    let res = c
        .post(format!("{}/v1/completions", srv.base))
        .json(&body(json!({"n": 2, "best_of": 2, "stream": true})))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.expect("stream");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_selection_wins_over_best_of() {
    let srv = server_common::start(server_common::config()).await;
    let c = Client::new();
    let (_, plain) = post(&c, &srv.base, &body(json!({"n": 3}))).await;
    let plain = choices(&plain);
    // `first` keeps rollout order, whatever the log-probabilities say.
    let req = body(json!({"best_of": 3, "selection": {"strategy": "first"}}));
    let (st, v) = post(&c, &srv.base, &req).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(choices(&v)[0].1, plain[0].1);
    assert_eq!(v["quorum"]["strategy"], "first", "{v}");
    assert_eq!(v["quorum"]["rollouts"].as_array().map(Vec::len), Some(3));
    assert_eq!(completion_tokens(&v), 18);
}
