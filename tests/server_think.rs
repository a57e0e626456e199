//! Think mode end to end over HTTP, on a random-weight Qwen3-shaped model
//! with the Qwen3 tokenizer: budgets are exact, the minimum suppresses an
//! early `</think>`, the answer reserve holds, streamed and whole outputs
//! agree, usage adds up, and contradictions or budgets on a model without
//! think mode are 400s. (Prompt rendering per toggle: `tests/think_prompt.rs`.)

mod server_common;

use std::path::Path;
use std::sync::OnceLock;

use quorum::engine::think::{ThinkConfig, ThinkTokens};
use quorum::server::config::ModelSpec;
use quorum::server::config::ReasoningField;
use quorum::server::ServerConfig;
use quorum::tokenizer::Tokenizer;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const END_THINK: u32 = 151668;
const BUDGET_MESSAGE: &str = "Considering the limited time by the user, I have to give the solution based on the thinking directly now.";

fn qwen3() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3-tokenizer");
        Tokenizer::from_dir(dir).expect("fixture tokenizer")
    })
}

/// Tokens the engine forces at the budget with the default message.
fn forced_len() -> usize {
    ThinkTokens::encode(qwen3(), "</think>", BUDGET_MESSAGE, "Wait")
        .expect("encode")
        .budget_forced
        .len()
}

/// Two models on the same weights: `tiny` (think tags, defaults) and
/// `nothink` (think support turned off in the config).
fn config(field: ReasoningField) -> ServerConfig {
    let mut cfg = server_common::config();
    cfg.models.push(ModelSpec {
        id: "nothink".into(),
        dir: server_common::tiny_model_dir(),
    });
    cfg.think.insert(
        "nothink".into(),
        ThinkConfig {
            supported: Some(false),
            ..ThinkConfig::default()
        },
    );
    cfg.reasoning_field = field;
    cfg
}

fn chat(extra: Value) -> Value {
    let mut b = json!({
        "model": "tiny",
        "messages": [{"role": "user", "content": "What is 2+2?"}],
        "temperature": 1.0,
        "seed": 5,
        "ignore_eos": true,
        // No natural end of thinking: budgets decide.
        "logit_bias": {END_THINK.to_string(): -100},
    });
    if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    b
}

async fn post(c: &Client, base: &str, body: &Value) -> (StatusCode, Value) {
    let res = c
        .post(format!("{base}/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .expect("send");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn reasoning_tokens(v: &Value) -> u64 {
    v["usage"]["completion_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_forcing_inserts_the_message_at_exactly_the_budget() {
    let srv = server_common::start(config(ReasoningField::ReasoningContent)).await;
    let c = Client::new();
    let f = forced_len();
    let req =
        chat(json!({"n": 2, "max_completion_tokens": 64, "thinking_budget": 7, "logprobs": true}));
    let (status, v) = post(&c, &srv.base, &req).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    for ch in v["choices"].as_array().expect("choices") {
        let lps = ch["logprobs"]["content"].as_array().expect("logprobs");
        assert_eq!(lps.len(), 64);
        let forced: String = lps[7..7 + f]
            .iter()
            .map(|l| l["token"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(forced, format!("{BUDGET_MESSAGE}\n</think>\n\n"));
        assert!(lps[7..7 + f].iter().all(|l| l["logprob"] == 0.0));
        let m = &ch["message"];
        let reasoning = m["reasoning_content"].as_str().expect("reasoning_content");
        assert!(reasoning.ends_with(&format!("{BUDGET_MESSAGE}\n")), "{m}");
        let content = m["content"].as_str().expect("content");
        assert!(
            !content.contains("</think>") && !content.starts_with('\n'),
            "{m}"
        );
        assert_eq!(ch["finish_reason"], "length");
    }
    assert_eq!(reasoning_tokens(&v), 14, "7 per rollout, over both");
    assert_eq!(v["usage"]["completion_tokens"], 128);

    // Every alias of the budget gives the same output.
    let alias = chat(
        json!({"n": 2, "max_completion_tokens": 64, "max_thinking_tokens": 7, "logprobs": true}),
    );
    let (_, w) = post(&c, &srv.base, &alias).await;
    for i in 0..2 {
        assert_eq!(v["choices"][i]["message"], w["choices"][i]["message"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_thinking_tokens_suppresses_an_early_end_tag() {
    let srv = server_common::start(config(ReasoningField::ReasoningContent)).await;
    let c = Client::new();
    // `</think>` is certain: without a minimum the block closes at once.
    let early = |extra: Value| {
        let mut b = chat(extra);
        b["logit_bias"] = json!({END_THINK.to_string(): 100});
        b
    };
    let plain = json!({"max_completion_tokens": 40, "thinking_budget": 20});
    let (_, v) = post(&c, &srv.base, &early(plain)).await;
    assert_eq!(v["choices"][0]["message"]["reasoning_content"], "", "{v}");
    assert_eq!(reasoning_tokens(&v), 0);
    let req = early(
        json!({"max_completion_tokens": 40, "thinking_budget": 20, "min_thinking_tokens": 3}),
    );
    let (status, v) = post(&c, &srv.base, &req).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["reasoning_content"], "WaitWaitWait",
        "{v}"
    );
    assert_eq!(reasoning_tokens(&v), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_reserve_holds_under_a_small_max_completion_tokens() {
    let srv = server_common::start(config(ReasoningField::ReasoningContent)).await;
    let c = Client::new();
    let (max, reserve) = (100, ThinkConfig::default().answer_reserve);
    let (status, v) = post(&c, &srv.base, &chat(json!({"max_completion_tokens": max}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let reasoning = reasoning_tokens(&v) as usize;
    assert_eq!(reasoning, max - reserve - forced_len());
    assert_eq!(v["usage"]["completion_tokens"], max);
    let content = v["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");
    assert!(!content.is_empty());
    assert_eq!(
        v["choices"][0]["finish_reason"], "length",
        "the cap cut the answer"
    );
}

/// Per choice `(reasoning, content, finish_reason)` and the usage of a stream.
async fn stream(c: &Client, base: &str, body: &Value) -> (Vec<(String, String, String)>, Value) {
    let res = c
        .post(format!("{base}/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .expect("send");
    let text = res.text().await.expect("body");
    let mut out = vec![(String::new(), String::new(), String::new()); 2];
    let mut usage = Value::Null;
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            break;
        }
        let v: Value = serde_json::from_str(data).expect("chunk");
        if !v["usage"].is_null() {
            usage = v["usage"].clone();
        }
        for ch in v["choices"].as_array().into_iter().flatten() {
            let i = ch["index"].as_u64().unwrap_or(0) as usize;
            let d = &ch["delta"];
            let o = &mut out[i];
            if let Some(r) = d["reasoning_content"].as_str() {
                assert!(o.1.is_empty(), "reasoning after content");
                o.0.push_str(r);
            }
            o.1.push_str(d["content"].as_str().unwrap_or_default());
            if let Some(f) = ch["finish_reason"].as_str() {
                o.2 = f.to_string();
            }
        }
    }
    (out, usage)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_and_whole_outputs_agree() {
    let srv = server_common::start(config(ReasoningField::ReasoningContent)).await;
    let c = Client::new();
    let req = chat(json!({"n": 2, "max_completion_tokens": 48, "thinking_budget": 5}));
    let (_, whole) = post(&c, &srv.base, &req).await;
    let mut sreq = req.clone();
    sreq["stream"] = json!(true);
    sreq["stream_options"] = json!({"include_usage": true});
    let (streamed, usage) = stream(&c, &srv.base, &sreq).await;
    for (i, (r, content, finish)) in streamed.iter().enumerate() {
        let ch = &whole["choices"][i];
        assert_eq!(ch["message"]["reasoning_content"], r.as_str());
        assert_eq!(ch["message"]["content"], content.as_str());
        assert_eq!(ch["finish_reason"], finish.as_str());
        assert!(!r.contains("think>") && !content.contains("think>"));
    }
    // Same counts (the cached prompt prefix differs: the first request filled it).
    for k in [
        "prompt_tokens",
        "completion_tokens",
        "completion_tokens_details",
    ] {
        assert_eq!(usage[k], whole["usage"][k], "{k}");
    }
    assert_eq!(reasoning_tokens(&whole), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contradictions_and_budgets_without_think_support_are_400() {
    let srv = server_common::start(config(ReasoningField::ReasoningContent)).await;
    let c = Client::new();
    let bad = [
        (
            chat(
                json!({"chat_template_kwargs": {"enable_thinking": false}, "reasoning_effort": "high"}),
            ),
            "reasoning_effort",
            vec!["enable_thinking", "reasoning_effort"],
        ),
        (
            chat(json!({"chat_template_kwargs": {"enable_thinking": true, "thinking": false}})),
            "chat_template_kwargs.thinking",
            vec!["enable_thinking", "thinking"],
        ),
        (
            chat(json!({"thinking_budget": 5, "thinking_token_budget": 6})),
            "thinking_token_budget",
            vec!["thinking_budget", "thinking_token_budget"],
        ),
        (
            chat(json!({"model": "nothink", "thinking_budget": 5})),
            "thinking_budget",
            vec!["no think mode"],
        ),
        (
            chat(json!({"model": "nothink", "reasoning_budget_tokens": 5})),
            "reasoning_budget_tokens",
            vec!["no think mode"],
        ),
        (
            chat(json!({"reasoning_effort": "max"})),
            "reasoning_effort",
            vec!["max"],
        ),
    ];
    for (req, param, words) in bad {
        let (status, v) = post(&c, &srv.base, &req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{req}: {v}");
        assert_eq!(v["error"]["param"], param, "{v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(words.iter().all(|w| msg.contains(w)), "{msg}");
    }
    // Toggles on a model without think mode are accepted and change nothing.
    for extra in [
        json!({"chat_template_kwargs": {"enable_thinking": true}}),
        json!({"reasoning_effort": "high"}),
    ] {
        let mut req = chat(extra);
        req["model"] = json!("nothink");
        req["max_completion_tokens"] = json!(6);
        let (status, v) = post(&c, &srv.base, &req).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert!(v["choices"][0]["message"]
            .get("reasoning_content")
            .is_none());
        assert_eq!(reasoning_tokens(&v), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thinking_off_puts_everything_in_content_and_field_names_follow_the_config() {
    let srv = server_common::start(config(ReasoningField::Both)).await;
    let c = Client::new();
    let off = chat(
        json!({"max_completion_tokens": 6, "chat_template_kwargs": {"enable_thinking": false}}),
    );
    let (_, v) = post(&c, &srv.base, &off).await;
    let m = &v["choices"][0]["message"];
    assert!(
        m.get("reasoning_content").is_none() && m.get("reasoning").is_none(),
        "{m}"
    );
    assert!(!m["content"].as_str().unwrap_or_default().is_empty());
    assert_eq!(reasoning_tokens(&v), 0);

    let on = chat(json!({"max_completion_tokens": 40, "thinking_budget": 3}));
    let (_, v) = post(&c, &srv.base, &on).await;
    let m = &v["choices"][0]["message"];
    assert_eq!(m["reasoning"], m["reasoning_content"], "{m}");
    assert!(m["reasoning"]
        .as_str()
        .unwrap_or_default()
        .ends_with(&format!("{BUDGET_MESSAGE}\n")));
}

#[tokio::test]
async fn quorum_object_records_each_rollouts_reasoning_and_budget_cut() {
    let srv = server_common::start(config(ReasoningField::ReasoningContent)).await;
    let c = Client::new();
    let req = chat(json!({
        "rollouts": 3,
        "selection": {"strategy": "first"},
        "max_completion_tokens": 48,
        "thinking_budget": 5
    }));
    let (status, v) = post(&c, &srv.base, &req).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let rollouts = v["quorum"]["rollouts"].as_array().expect("quorum.rollouts");
    assert_eq!(rollouts.len(), 3);
    for r in rollouts {
        assert_eq!(r["reasoning_tokens"], 5, "{r}");
        assert_eq!(r["thinking_budget_cut"], true, "{r}");
    }
    assert_eq!(reasoning_tokens(&v), 15);
}
