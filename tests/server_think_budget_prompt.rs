//! `budget_in_prompt` end to end over HTTP: with the switch on (set in a
//! server TOML file, as an operator would), a chat request with a thinking
//! budget is served on a prompt that states the budget ("Think for about N
//! tokens.") as well as having it enforced; off, or without a budget, or
//! with thinking off, the prompt is the conversation as sent.
//!
//! What the server exposes about the prompt is `usage.prompt_tokens`, so
//! the test checks it against the Qwen3 tokenization of the exact prompt
//! text expected, and checks that a greedy answer with the switch on is the
//! same, token for token, as one with the switch off whose client wrote the
//! phrase itself (same prompt ids, same weights).

mod server_common;

use std::path::Path;
use std::sync::OnceLock;

use quorum::server::config::{ModelSpec, ServeSettings};
use quorum::server::ServerConfig;
use quorum::tokenizer::Tokenizer;
use reqwest::Client;
use serde_json::{json, Value};

fn qwen3() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3-tokenizer");
        Tokenizer::from_dir(dir).expect("fixture tokenizer")
    })
}

/// Tokens of a rendered Qwen3 prompt text.
fn tokens(text: &str) -> u64 {
    qwen3().encode(text, false).expect("encode").len() as u64
}

/// `tiny` with the switch off (the default) and `stated`, the same weights
/// with `[server.think.stated] budget_in_prompt = true` from a TOML file.
fn config() -> ServerConfig {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("server.toml");
    std::fs::write(&path, "[server.think.stated]\nbudget_in_prompt = true\n")
        .expect("write config");
    let file = ServeSettings::from_file(&path)
        .and_then(ServeSettings::resolve)
        .expect("config parses");
    assert!(file.think["stated"].budget_in_prompt);
    let mut cfg = server_common::config();
    cfg.think = file.think;
    cfg.models.push(ModelSpec {
        id: "stated".into(),
        dir: server_common::tiny_model_dir(),
    });
    cfg
}

async fn chat(c: &Client, base: &str, model: &str, messages: Value, extra: Value) -> Value {
    let mut body = json!({
        "model": model,
        "messages": messages,
        "temperature": 0.0,
        "max_completion_tokens": 48,
        "ignore_eos": true,
        "logprobs": true,
        // No natural end of thinking: the budget decides.
        "logit_bias": {END_THINK.to_string(): -100},
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let res = c
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200, "{model} {body}");
    res.json().await.expect("json")
}

fn prompt_tokens(v: &Value) -> u64 {
    v["usage"]["prompt_tokens"].as_u64().unwrap_or(u64::MAX)
}

/// The generated tokens of the first choice, with their log-probs.
fn generated(v: &Value) -> Vec<(String, f64)> {
    v["choices"][0]["logprobs"]["content"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| {
                    let t = l["token"].as_str().unwrap_or_default().to_string();
                    (t, l["logprob"].as_f64().unwrap_or(f64::NAN))
                })
                .collect()
        })
        .unwrap_or_default()
}

const END_THINK: u32 = 151668;
const OPEN: &str = "<|im_start|>assistant\n<think>\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thinking_budget_is_stated_in_the_prompt_only_with_the_switch() {
    let srv = server_common::start(config()).await;
    let c = Client::new();
    let user = json!([{"role": "user", "content": "What is 2+2?"}]);
    let budget = json!({"thinking_budget": 7});

    let plain = format!("<|im_start|>user\nWhat is 2+2?<|im_end|>\n{OPEN}");
    let stated =
        format!("<|im_start|>user\nWhat is 2+2?\n\nThink for about 7 tokens.<|im_end|>\n{OPEN}");
    assert!(tokens(&stated) > tokens(&plain));

    // Off (the default): the conversation as sent, the budget enforced.
    let off = chat(&c, &srv.base, "tiny", user.clone(), budget.clone()).await;
    assert_eq!(prompt_tokens(&off), tokens(&plain), "{off}");
    // On: the phrase is in the prompt, and the budget still enforced.
    let on = chat(&c, &srv.base, "stated", user.clone(), budget.clone()).await;
    assert_eq!(prompt_tokens(&on), tokens(&stated), "{on}");
    assert_eq!(
        on["usage"]["completion_tokens_details"]["reasoning_tokens"], 7,
        "{on}"
    );
    // The same ids as a client writing the phrase itself: the same greedy answer.
    let by_hand = json!([{"role": "user", "content": "What is 2+2?\n\nThink for about 7 tokens."}]);
    let hand = chat(&c, &srv.base, "tiny", by_hand, budget.clone()).await;
    assert_eq!(prompt_tokens(&hand), prompt_tokens(&on));
    assert_eq!(generated(&on).len(), 48);
    assert_eq!(generated(&on), generated(&hand));
    assert_eq!(
        on["choices"][0]["message"]["reasoning_content"],
        hand["choices"][0]["message"]["reasoning_content"]
    );

    // A budget from `reasoning_effort` is stated too (minimal = 128).
    let effort = chat(
        &c,
        &srv.base,
        "stated",
        user.clone(),
        json!({"reasoning_effort": "minimal"}),
    )
    .await;
    let minimal =
        format!("<|im_start|>user\nWhat is 2+2?\n\nThink for about 128 tokens.<|im_end|>\n{OPEN}");
    assert_eq!(prompt_tokens(&effort), tokens(&minimal), "{effort}");

    // With a system prompt the phrase joins it.
    let with_system = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"}
    ]);
    let sys = chat(&c, &srv.base, "stated", with_system, budget.clone()).await;
    let expected = format!(
        "<|im_start|>system\nBe brief.\n\nThink for about 7 tokens.<|im_end|>\n\
         <|im_start|>user\nWhat is 2+2?<|im_end|>\n{OPEN}"
    );
    assert_eq!(prompt_tokens(&sys), tokens(&expected), "{sys}");

    // No budget, or thinking off: nothing is added.
    let none = chat(&c, &srv.base, "stated", user.clone(), json!({})).await;
    assert_eq!(prompt_tokens(&none), tokens(&plain), "{none}");
    let think_off = chat(
        &c,
        &srv.base,
        "stated",
        user,
        json!({"chat_template_kwargs": {"enable_thinking": false}}),
    )
    .await;
    let closed = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n\
                  <|im_start|>assistant\n<think>\n\n</think>\n\n";
    assert_eq!(prompt_tokens(&think_off), tokens(closed), "{think_off}");
}
