//! `quorum serve` driven by a real OpenAI client (async-openai) over a real
//! socket: chat, streaming, n > 1, completions, models, and errors surfacing
//! as typed API errors.

mod server_common;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestSystemMessageArgs, ChatCompletionRequestUserMessageArgs,
    ChatCompletionStreamOptions, CreateChatCompletionRequest, CreateChatCompletionRequestArgs,
};
use async_openai::types::completions::CreateCompletionRequestArgs;
use async_openai::Client;
use futures::StreamExt;

fn client(base: &str) -> Client<OpenAIConfig> {
    Client::with_config(
        OpenAIConfig::new()
            .with_api_base(format!("{base}/v1"))
            .with_api_key("unused"),
    )
}

fn chat_request(n: u8, max_tokens: u32) -> CreateChatCompletionRequest {
    CreateChatCompletionRequestArgs::default()
        .model("tiny")
        .messages(vec![
            ChatCompletionRequestSystemMessageArgs::default()
                .content("Be brief.")
                .build()
                .unwrap()
                .into(),
            ChatCompletionRequestUserMessageArgs::default()
                .content("What is 2+2?")
                .build()
                .unwrap()
                .into(),
        ])
        .n(n)
        .max_completion_tokens(max_tokens)
        .temperature(0.8)
        .seed(7)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_client_end_to_end() {
    let srv = server_common::start(server_common::config()).await;
    let c = client(&srv.base);

    // Chat, non-streaming.
    let r = c.chat().create(chat_request(1, 6)).await.expect("chat");
    assert_eq!(r.object, "chat.completion");
    assert_eq!(r.model, "tiny");
    assert_eq!(r.choices.len(), 1);
    let usage = r.usage.expect("usage");
    assert!(usage.prompt_tokens > 5);
    assert!(usage.completion_tokens >= 1 && usage.completion_tokens <= 6);
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
    assert!(r.choices[0].finish_reason.is_some());

    // n > 1: distinct indices, usage over all rollouts.
    let r = c.chat().create(chat_request(3, 4)).await.expect("chat n=3");
    let mut idx: Vec<u32> = r.choices.iter().map(|c| c.index).collect();
    idx.sort_unstable();
    assert_eq!(idx, vec![0, 1, 2]);
    assert!(r.usage.unwrap().completion_tokens >= 3);

    // Streaming: assemble deltas per choice; the client stops at [DONE].
    let mut req = chat_request(2, 5);
    req.stream_options = Some(ChatCompletionStreamOptions {
        include_usage: Some(true),
        ..Default::default()
    });
    let mut stream = c.chat().create_stream(req).await.expect("stream");
    let mut text = [String::new(), String::new()];
    let mut finished = [false, false];
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        assert_eq!(chunk.object, "chat.completion.chunk");
        if let Some(u) = chunk.usage {
            assert!(chunk.choices.is_empty());
            usage = Some(u);
        }
        for ch in chunk.choices {
            let i = ch.index as usize;
            assert!(!finished[i], "delta after finish_reason");
            if let Some(t) = ch.delta.content {
                text[i].push_str(&t);
            }
            finished[i] |= ch.finish_reason.is_some();
        }
    }
    assert_eq!(finished, [true, true]);
    let usage = usage.expect("usage chunk");
    assert!(usage.completion_tokens >= 2 && usage.completion_tokens <= 10);

    // Same seed and params without streaming give the same text.
    let r = c.chat().create(chat_request(2, 5)).await.unwrap();
    for ch in &r.choices {
        assert_eq!(
            ch.message.content.as_deref().unwrap_or(""),
            text[ch.index as usize]
        );
    }

    // Legacy completions.
    let req = CreateCompletionRequestArgs::default()
        .model("tiny")
        .prompt("Once upon a time")
        .max_tokens(4u32)
        .n(2)
        .build()
        .unwrap();
    let r = c.completions().create(req).await.expect("completions");
    assert_eq!(r.choices.len(), 2);
    assert!(r.usage.unwrap().prompt_tokens >= 3);

    // Models.
    let list = c.models().list().await.expect("models");
    assert_eq!(list.data.len(), 1);
    assert_eq!(list.data[0].id, "tiny");
    assert_eq!(c.models().retrieve("tiny").await.unwrap().id, "tiny");

    // Errors surface as typed API errors with OpenAI fields.
    let mut bad = chat_request(1, 4);
    bad.model = "nope".into();
    match c.chat().create(bad).await {
        Err(OpenAIError::ApiError(e)) => {
            assert_eq!(e.status_code.as_u16(), 404);
            assert_eq!(e.api_error.code.as_deref(), Some("model_not_found"));
        }
        other => panic!("expected model_not_found, got {other:?}"),
    }
    let mut bad = chat_request(1, 4);
    bad.temperature = Some(5.0);
    match c.chat().create(bad).await {
        Err(OpenAIError::ApiError(e)) => {
            assert_eq!(e.status_code.as_u16(), 400);
            assert_eq!(e.api_error.param.as_deref(), Some("temperature"));
        }
        other => panic!("expected invalid temperature, got {other:?}"),
    }
    match c.models().retrieve("nope").await {
        Err(OpenAIError::ApiError(e)) => assert_eq!(e.status_code.as_u16(), 404),
        other => panic!("expected 404, got {other:?}"),
    }

    srv.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_models_are_addressed_by_id() {
    let mut cfg = server_common::config();
    let second = quorum::server::config::ModelSpec {
        id: "tiny-b".into(),
        dir: server_common::tiny_model_dir(),
    };
    cfg.models.push(second);
    let srv = server_common::start(cfg).await;
    let c = client(&srv.base);
    let mut ids: Vec<String> = c
        .models()
        .list()
        .await
        .unwrap()
        .data
        .into_iter()
        .map(|m| m.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["tiny", "tiny-b"]);
    for id in ["tiny", "tiny-b"] {
        let mut req = chat_request(1, 2);
        req.model = id.into();
        assert_eq!(c.chat().create(req).await.unwrap().model, id);
    }
    srv.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_stream_and_token_prompts() {
    let srv = server_common::start(server_common::config()).await;
    let c = client(&srv.base);
    let req = CreateCompletionRequestArgs::default()
        .model("tiny")
        .prompt("Hello there")
        .max_tokens(4u32)
        .n(2)
        .echo(true)
        .seed(5)
        .build()
        .unwrap();
    let mut stream = c
        .completions()
        .create_stream(req.clone())
        .await
        .expect("stream");
    let mut text = [String::new(), String::new()];
    let mut finished = [false, false];
    while let Some(chunk) = stream.next().await {
        for ch in chunk.expect("chunk").choices {
            text[ch.index as usize].push_str(&ch.text);
            finished[ch.index as usize] |= ch.finish_reason.is_some();
        }
    }
    assert_eq!(finished, [true, true]);
    let mut whole = req;
    whole.stream = None;
    let r = c.completions().create(whole).await.expect("completions");
    for ch in &r.choices {
        assert!(ch.text.starts_with("Hello there"), "{}", ch.text);
        assert_eq!(ch.text, text[ch.index as usize]);
    }

    // A token-id prompt is used as given.
    let body = serde_json::json!({"model": "tiny", "prompt": [9707, 1879], "max_tokens": 2});
    let v: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/completions", srv.base))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["usage"]["prompt_tokens"], 2, "{v}");
    srv.running.shutdown().await.unwrap();
}
