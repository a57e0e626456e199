//! Answer selection through the HTTP server, on a tiny random policy model
//! and a tiny random reward model: ranked choices and the `quorum` object,
//! streaming = non-streaming, best-of-N by reward score = `/v1/score`,
//! request errors, and early stopping that cancels rollouts.

mod server_common;

use quorum::server::config::ModelDefaults;
use quorum::server::config::ModelSpec;
use quorum::server::ServerConfig;
use quorum::tokenizer::Tokenizer;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

/// `tiny` has a reward model (per-model default), `plain` has none.
fn config() -> ServerConfig {
    let mut cfg = server_common::config();
    cfg.models.push(ModelSpec {
        id: "plain".into(),
        dir: server_common::tiny_model_dir(),
    });
    cfg.defaults.insert(
        "tiny".into(),
        ModelDefaults {
            reward_model: Some(server_common::reward_model_dir()),
            ..ModelDefaults::default()
        },
    );
    cfg
}

fn tokenizer() -> Tokenizer {
    Tokenizer::from_dir(server_common::tiny_model_dir()).expect("tokenizer")
}

fn token(text: &str) -> u32 {
    let ids = tokenizer().encode(text, false).expect("encode");
    assert_eq!(ids.len(), 1, "{text:?} is one token");
    ids[0]
}

fn chat_body(extra: Value) -> Value {
    let body = json!({
        "model": "tiny",
        "messages": [{"role": "user", "content": "What is 2+2?"}],
        "max_tokens": 2,
        "temperature": 1.0,
        "seed": 11,
        "chat_template_kwargs": {"enable_thinking": false},
    });
    merge(body, extra)
}

fn merge(mut body: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

async fn post(c: &Client, url: &str, body: &Value) -> (StatusCode, Value) {
    let res = c.post(url).json(body).send().await.expect("send");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Two-digit answers over the tokens "4" and "5", extracted as last numbers.
fn digits_request(extra: Value) -> Value {
    let bias = json!({ token("4").to_string(): 100, token("5").to_string(): 100 });
    merge(chat_body(json!({"rollouts": 5, "logit_bias": bias})), extra)
}

fn contents(v: &Value) -> Vec<String> {
    v["choices"]
        .as_array()
        .expect("choices")
        .iter()
        .map(|c| c["message"]["content"].as_str().unwrap_or("").to_string())
        .collect()
}

fn usize_at(v: &Value) -> usize {
    v.as_u64().expect("integer") as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn majority_ranks_choices_and_reports_a_consistent_quorum() {
    let srv = server_common::start(config()).await;
    let c = Client::new();
    let url = format!("{}/v1/chat/completions", srv.base);
    let extract = json!({"extractors": ["last_number"]});
    let majority = json!({"strategy": "majority", "extract": extract});
    let (st, maj) = post(
        &c,
        &url,
        &digits_request(json!({"n": 3, "selection": majority})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{maj}");
    // The same rollouts in index order (same seed, same per-rollout streams).
    let first = json!({"strategy": "first", "extract": extract});
    let (st, by_index) = post(
        &c,
        &url,
        &digits_request(json!({"n": 5, "selection": first})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{by_index}");

    let q = &maj["quorum"];
    assert_eq!(q["strategy"], "majority");
    let ranking: Vec<usize> = q["ranking"]
        .as_array()
        .unwrap()
        .iter()
        .map(usize_at)
        .collect();
    assert_eq!(ranking.len(), 5);
    assert_eq!(usize_at(&q["winner"]), ranking[0]);
    let (maj_texts, index_texts) = (contents(&maj), contents(&by_index));
    assert_eq!(maj_texts.len(), 3);
    for (i, choice) in maj["choices"].as_array().unwrap().iter().enumerate() {
        assert_eq!(usize_at(&choice["index"]), i);
        assert_eq!(maj_texts[i], index_texts[ranking[i]], "choice {i}");
    }
    let rollouts = q["rollouts"].as_array().unwrap();
    assert_eq!(rollouts.len(), 5);
    let voting = rollouts.iter().filter(|r| r["abstained"] == false).count();
    let votes: f64 = rollouts.iter().map(|r| r["votes"].as_f64().unwrap()).sum();
    assert_eq!(votes, voting as f64, "{q}");
    assert!(voting > 0, "digit answers always extract: {q}");
    let win = &rollouts[ranking[0]];
    let cluster = &q["clusters"][usize_at(&win["cluster"])];
    let share = cluster["votes"].as_f64().unwrap() / votes;
    assert!(
        (q["vote_share"].as_f64().unwrap() - share).abs() < 1e-9,
        "{q}"
    );
    let best = q["clusters"].as_array().unwrap().iter();
    assert!(best
        .map(|c| c["votes"].as_f64().unwrap())
        .all(|v| v <= cluster["votes"].as_f64().unwrap()));
    assert_eq!(win["answer"], q["answer"]);
    let tokens: usize = rollouts.iter().map(|r| usize_at(&r["tokens"])).sum();
    assert_eq!(usize_at(&maj["usage"]["completion_tokens"]), tokens);
    assert_eq!(q["decided_early"], false);
}

/// `content` deltas by choice index, and the chunk that carries `quorum`.
fn read_stream(body: &str) -> (Vec<String>, Value) {
    let mut texts = vec![String::new(); 8];
    let mut quorum = Value::Null;
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let v: Value = serde_json::from_str(data).expect("chunk json");
        assert!(v.get("error").is_none(), "{v}");
        if v.get("quorum").is_some() {
            quorum = v["quorum"].clone();
        }
        for ch in v["choices"].as_array().into_iter().flatten() {
            if let Some(t) = ch["delta"]["content"].as_str() {
                texts[usize_at(&ch["index"])].push_str(t);
            }
        }
    }
    (texts, quorum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_delivers_the_selected_text() {
    let srv = server_common::start(config()).await;
    let c = Client::new();
    let url = format!("{}/v1/chat/completions", srv.base);
    let req =
        digits_request(json!({"n": 2, "max_tokens": 4, "selection": {"strategy": "majority"}}));
    let (st, whole) = post(&c, &url, &req).await;
    assert_eq!(st, StatusCode::OK, "{whole}");
    let mut sreq = req.clone();
    sreq["stream"] = json!(true);
    sreq["stream_options"] = json!({"include_usage": true});
    let res = c.post(&url).json(&sreq).send().await.expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.text().await.expect("body");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    let (texts, quorum) = read_stream(&body);
    assert_eq!(&texts[..2], &contents(&whole)[..], "{body}");
    assert_eq!(quorum["winner"], whole["quorum"]["winner"]);
    assert_eq!(quorum["ranking"], whole["quorum"]["ranking"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_of_n_picks_the_top_reward_score_and_matches_v1_score() {
    let srv = server_common::start(config()).await;
    let c = Client::new();
    let url = format!("{}/v1/chat/completions", srv.base);
    let req = chat_body(
        json!({"n": 4, "rollouts": 4, "max_tokens": 5, "selection": {"strategy": "best_of_n"}}),
    );
    let (st, v) = post(&c, &url, &req).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let q = &v["quorum"];
    let rollouts = q["rollouts"].as_array().unwrap();
    let scores: Vec<f64> = rollouts
        .iter()
        .map(|r| r["score"].as_f64().expect("score"))
        .collect();
    let argmax = (0..scores.len())
        .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
        .unwrap();
    assert_eq!(
        usize_at(&q["winner"]),
        usize_at(&rollouts[argmax]["index"]),
        "{q}"
    );
    let ranking: Vec<usize> = q["ranking"]
        .as_array()
        .unwrap()
        .iter()
        .map(usize_at)
        .collect();

    // The same completions through /v1/score give the same scores.
    let texts = contents(&v);
    let (st, s) = post(
        &c,
        &format!("{}/v1/score", srv.base),
        &json!({"model": "tiny", "messages": req["messages"], "completions": texts}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{s}");
    assert_eq!(s["object"], "list");
    assert!(usize_at(&s["usage"]["prompt_tokens"]) > 0);
    for (i, item) in s["data"].as_array().unwrap().iter().enumerate() {
        assert_eq!(usize_at(&item["index"]), i);
        let got = item["score"].as_f64().unwrap();
        let want = scores[ranking[i]];
        assert!((got - want).abs() < 1e-4, "choice {i}: {got} vs {want}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selection_errors_are_400s_naming_the_field() {
    let srv = server_common::start(config()).await;
    let c = Client::new();
    let url = format!("{}/v1/chat/completions", srv.base);
    let score_url = format!("{}/v1/score", srv.base);
    let sel = |s: Value| chat_body(json!({"rollouts": 2, "selection": s}));
    let plain_bon = json!({"model": "plain", "rollouts": 2, "selection": "best_of_n"});
    let cases = [
        (&url, chat_body(json!({"n": 3, "rollouts": 2})), "rollouts"),
        (
            &url,
            sel(json!({"strategy": "vibes"})),
            "selection.strategy",
        ),
        (
            &url,
            sel(json!({"strategy": "majority", "early_stop": 1})),
            "selection.early_stop",
        ),
        (
            &url,
            sel(json!({"stratgy": "majority"})),
            "selection.stratgy",
        ),
        (
            &url,
            sel(json!({"strategy": "majority", "keep_fraction": 0.5})),
            "selection.keep_fraction",
        ),
        (&url, chat_body(plain_bon), "selection.strategy"),
        (
            &url,
            sel(json!({"strategy": "majority", "extract": {"regex": "(unclosed"}})),
            "selection.extract.regex",
        ),
        (
            &score_url,
            json!({"model": "plain", "prompt": "hi", "completions": ["a"]}),
            "model",
        ),
        (
            &score_url,
            json!({"model": "tiny", "completions": ["a"]}),
            "prompt",
        ),
        (
            &score_url,
            json!({"model": "tiny", "prompt": "hi", "completions": []}),
            "completions",
        ),
    ];
    for (u, body, param) in cases {
        let (st, v) = post(&c, u, &body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body} -> {v}");
        assert_eq!(v["error"]["param"], param, "{v}");
        if param == "selection.extract.regex" {
            let msg = v["error"]["message"].as_str().unwrap_or_default();
            assert!(msg.contains("unclosed group"), "{v}");
        }
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_stop_cancels_rollouts_once_the_vote_is_decided() {
    let srv = server_common::start(config()).await;
    let c = Client::new();
    let url = format!("{}/v1/chat/completions", srv.base);
    // Rollouts write spaces with a rare "4" until a rarer EOS: most answers
    // (last numbers) are "4", lengths differ, so the vote is decided before
    // every rollout has finished.
    let mut bias = json!({ token(" ").to_string(): 100, token("4").to_string(): 98 });
    for id in tokenizer().eos_token_ids() {
        bias[id.to_string()] = json!(97);
    }
    let max_tokens = 200;
    let mut decided = 0;
    for seed in 0..6 {
        let req = chat_body(json!({
            "rollouts": 10, "max_tokens": max_tokens, "seed": seed, "logit_bias": bias,
            "selection": {"strategy": "majority", "early_stop": true, "extract": {"extractors": ["last_number"]}},
        }));
        let (st, v) = post(&c, &url, &req).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let q = &v["quorum"];
        assert_eq!(q["early_stop"], true);
        let rollouts = q["rollouts"].as_array().unwrap();
        let stopped: Vec<&Value> = rollouts
            .iter()
            .filter(|r| r["stopped_early"] == true)
            .collect();
        let saved: usize = stopped
            .iter()
            .map(|r| max_tokens - usize_at(&r["tokens"]))
            .sum();
        assert_eq!(usize_at(&q["tokens_saved"]), saved, "{q}");
        assert_eq!(q["decided_early"], !stopped.is_empty());
        for r in &stopped {
            assert_eq!(r["finish_reason"], "cancelled");
            assert_eq!(r["abstained"], true);
        }
        let tokens: usize = rollouts.iter().map(|r| usize_at(&r["tokens"])).sum();
        assert_eq!(usize_at(&v["usage"]["completion_tokens"]), tokens);
        if !stopped.is_empty() {
            decided += 1;
            assert!(saved > 0);
            // Decided means the stopped rollouts could not have changed the
            // outcome: the winner leads every other answer by more than them.
            let clusters = q["clusters"].as_array().unwrap();
            let win = &rollouts[usize_at(&q["winner"])];
            let lead = clusters[usize_at(&win["cluster"])]["votes"]
                .as_f64()
                .unwrap();
            for cl in clusters {
                if cl["id"] != win["cluster"] {
                    let other = cl["votes"].as_f64().unwrap();
                    assert!(lead > other + stopped.len() as f64, "{q}");
                }
            }
        }
    }
    eprintln!("decided early: {decided} of 6 requests");
    assert!(decided > 0, "no request was decided early in 6 tries");
    let metrics = c
        .get(format!("{}/metrics", srv.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let get = |s: &str| server_common::metric(&metrics, s).unwrap_or(0.0);
    assert!(
        get("quorum_selection_tokens_saved_total") > 0.0,
        "{metrics}"
    );
    assert_eq!(get("quorum_selection_decided_early_total"), decided as f64);
    assert!(get("quorum_selections_total{strategy=\"majority\"}") >= 6.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reward_model_refusal_during_selection_keeps_its_status() {
    // A reward model whose context cannot hold any (conversation, completion)
    // pair: scoring refuses the job as the client's fault, and selection
    // passes that 400 on (naming `completions`) instead of a 500.
    let short_rm = server_common::common::shared_model_dir("server-tiny-rm-ctx8-v1", "tiny", |o| {
        o.seed = 5;
        o.reward_head = true;
        o.config.max_position_embeddings = 8;
    });
    let mut cfg = server_common::config();
    cfg.defaults.insert(
        "tiny".into(),
        ModelDefaults {
            reward_model: Some(short_rm),
            ..ModelDefaults::default()
        },
    );
    let srv = server_common::start(cfg).await;
    let c = Client::new();
    let url = format!("{}/v1/chat/completions", srv.base);
    for stream in [false, true] {
        let body = chat_body(json!({
            "rollouts": 2, "max_tokens": 4, "stream": stream,
            "selection": {"strategy": "best_of_n"},
        }));
        let res = c.post(&url).json(&body).send().await.unwrap();
        if !stream {
            assert_eq!(res.status(), StatusCode::BAD_REQUEST);
            let v: Value = res.json().await.unwrap();
            assert_eq!(v["error"]["param"], "completions", "{v}");
            assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
            let msg = v["error"]["message"].as_str().unwrap_or_default();
            assert!(msg.starts_with("reward model scoring failed: "), "{v}");
            continue;
        }
        // Streaming: the head is already out; the error event carries the kind.
        assert_eq!(res.status(), StatusCode::OK);
        let text = res.text().await.unwrap();
        let err = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|v| v.get("error").is_some())
            .unwrap_or_else(|| panic!("no error event: {text}"));
        assert_eq!(err["error"]["type"], "invalid_request_error", "{err}");
        assert_eq!(err["error"]["param"], "completions", "{err}");
        assert!(!text.contains("[DONE]"), "{text}");
    }
}
