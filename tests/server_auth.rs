//! API keys on a real server (tiny model): every route but `/health` and
//! `/metrics` is behind the key, `/health` shows the model ids only to a
//! valid key, and the `Bearer` scheme is case-insensitive.

mod server_common;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_model_ids_only_to_a_valid_key() {
    let mut cfg = server_common::config();
    cfg.api_keys = vec!["sk-right".into()];
    let srv = server_common::start(cfg).await;
    let c = Client::new();
    let health = format!("{}/health", srv.base);
    for auth in [None, Some("Bearer sk-wrong"), Some("sk-right")] {
        let mut req = c.get(&health);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{auth:?}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v, json!({"status": "ok"}), "{auth:?}");
    }
    for auth in ["Bearer sk-right", "bearer sk-right", "BEARER   sk-right"] {
        let res = c
            .get(&health)
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        let v: Value = res.json().await.unwrap();
        assert_eq!(v, json!({"status": "ok", "models": ["tiny"]}), "{auth}");
    }
    // Unknown routes and wrong methods reveal nothing without a key.
    for (method, path) in [("GET", "/v1/nope"), ("GET", "/v1/chat/completions")] {
        let url = format!("{}{path}", srv.base);
        let res = c
            .request(method.parse().unwrap(), &url)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        let res = c
            .request(method.parse().unwrap(), &url)
            .bearer_auth("sk-right")
            .send()
            .await
            .unwrap();
        assert!(
            matches!(
                res.status(),
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            ),
            "{method} {path}: {}",
            res.status()
        );
    }
    srv.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_vendor_objects_name_unknown_keys_over_http() {
    let srv = server_common::start(server_common::config()).await;
    let c = Client::new();
    let post = |path: &str, body: Value| c.post(format!("{}{path}", srv.base)).json(&body).send();
    let chat = |extra: Value| {
        let mut b = json!({
            "model": "tiny",
            "messages": [{"role": "user", "content": "Hi", "refusal": null}],
            "max_tokens": 2,
        });
        if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        b
    };
    for (path, body, param) in [
        (
            "/v1/chat/completions",
            chat(json!({"rollouts": 2, "selection": {"stratgy": "majority"}})),
            "selection.stratgy",
        ),
        (
            "/v1/chat/completions",
            chat(
                json!({"rollouts": 2, "selection": {"strategy": "majority", "extract": {"after_thinking": true}}}),
            ),
            "selection.extract.after_thinking",
        ),
        (
            "/v1/score",
            json!({"model": "tiny", "prompt": "q", "completions": ["a"], "completion": "b"}),
            "completion",
        ),
    ] {
        let res = post(path, body.clone()).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["param"], param, "{v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(param), "{v}");
    }
    // OpenAI's own objects tolerate keys newer SDKs send.
    let body = chat(json!({
        "stream": true,
        "stream_options": {"include_usage": true, "include_obfuscation": false},
        "response_format": {"type": "text", "extra": 1},
        "some_future_field": 1,
    }));
    let res = post("/v1/chat/completions", body).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let _ = res.text().await;
    srv.running.shutdown().await.unwrap();
}
