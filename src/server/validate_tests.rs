use super::*;
use crate::server::openai::decode::JsonBody;

fn chat_req(body: &str) -> Result<ValidChatRequest, ApiError> {
    chat(
        ChatCompletionRequest::from_json(body.as_bytes())?,
        &ServerConfig::default(),
    )
}

fn param(e: ApiError) -> String {
    match e {
        ApiError::InvalidRequest { param, .. } => param.unwrap_or_default(),
        other => panic!("expected invalid request, got {other:?}"),
    }
}

#[test]
fn developer_becomes_system_and_text_parts_are_joined() {
    let r = chat_req(
        r#"{"model": "m", "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": null, "reasoning_content": "hmm"}]}"#,
    )
    .unwrap();
    assert_eq!(r.messages[0].role, "system");
    assert_eq!(r.messages[1].content, "ab");
    assert_eq!(r.messages[2].reasoning_content.as_deref(), Some("hmm"));
    assert_eq!((r.common.n, r.common.rollouts), (1, 1));
}

#[test]
fn bad_fields_are_named() {
    let m = r#""messages": [{"role": "user", "content": "hi"}]"#;
    let cases = [
        (r#"{"model": "m", "messages": []}"#.to_string(), "messages"),
        (format!(r#"{{"model": "m", {m}, "n": 1000}}"#), "n"),
        (
            format!(r#"{{"model": "m", {m}, "n": 2, "rollouts": 1}}"#),
            "rollouts",
        ),
        (
            format!(r#"{{"model": "m", {m}, "max_tokens": 0}}"#),
            "max_tokens",
        ),
        (
            format!(r#"{{"model": "m", {m}, "max_completion_tokens": 99999999}}"#),
            "max_completion_tokens",
        ),
        (
            format!(r#"{{"model": "m", {m}, "response_format": {{"type": "json_object"}}}}"#),
            "response_format",
        ),
        (
            format!(r#"{{"model": "m", {m}, "logit_bias": {{"x": 1}}}}"#),
            "logit_bias",
        ),
        (
            r#"{"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}"#
                .into(),
            "messages[0].content[0].type",
        ),
        (
            r#"{"model": "m", "messages": [{"role": "robot", "content": "x"}]}"#.into(),
            "messages[0].role",
        ),
    ];
    for (body, field) in cases {
        assert_eq!(param(chat_req(&body).unwrap_err()), field, "{body}");
    }
}

#[test]
fn sampling_errors_name_the_field() {
    let p = SamplingParams {
        temperature: 9.0,
        ..SamplingParams::default()
    };
    assert_eq!(param(check_sampling(&p, 10).unwrap_err()), "temperature");
}

#[test]
fn prompt_shapes() {
    let ok = |v: serde_json::Value| prompt(&v).unwrap();
    assert_eq!(ok(serde_json::json!("hi")), PromptInput::Text("hi".into()));
    assert_eq!(
        ok(serde_json::json!(["hi"])),
        PromptInput::Text("hi".into())
    );
    assert_eq!(
        ok(serde_json::json!([1, 2])),
        PromptInput::Tokens(vec![1, 2])
    );
    assert_eq!(ok(serde_json::json!([[3]])), PromptInput::Tokens(vec![3]));
    for bad in [
        serde_json::json!(["a", "b"]),
        serde_json::json!(""),
        serde_json::json!([-1]),
        serde_json::json!(3),
    ] {
        assert!(prompt(&bad).is_err(), "{bad}");
    }
}

#[test]
fn budget_fills_from_context_and_rejects_overflow() {
    assert_eq!(completion_budget(10, None, 100, 50).unwrap(), 50);
    assert_eq!(completion_budget(80, None, 100, 50).unwrap(), 20);
    assert!(matches!(
        completion_budget(90, Some(20), 100, 50),
        Err(ApiError::ContextLength(_))
    ));
    assert!(completion_budget(100, None, 100, 50).is_err());
}

fn message_of(e: ApiError) -> (String, String) {
    let text = e.to_string();
    (param(e), text)
}

#[test]
fn stop_strings_are_capped_in_count_and_bytes_on_both_endpoints() {
    let cfg = ServerConfig::default();
    let chat_with = |stop: serde_json::Value, cfg: &ServerConfig| {
        let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stop": stop});
        chat(
            ChatCompletionRequest::from_json(body.to_string().as_bytes()).unwrap(),
            cfg,
        )
        .map(|r| r.common.params.stop)
    };
    let completion_with = |stop: serde_json::Value, cfg: &ServerConfig| {
        let body = serde_json::json!({"model": "m", "prompt": "hi", "stop": stop});
        completion(
            CompletionRequest::from_json(body.to_string().as_bytes()).unwrap(),
            cfg,
        )
        .map(|r| r.common.params.stop)
    };
    // At the defaults' limits: accepted as given.
    let full = vec![
        "x".repeat(crate::server::config::defaults::MAX_STOP_BYTES);
        crate::server::config::defaults::MAX_STOP_STRINGS
    ];
    assert_eq!(chat_with(serde_json::json!(full), &cfg).unwrap(), full);
    assert_eq!(
        completion_with(serde_json::json!(full), &cfg).unwrap(),
        full
    );

    let too_many = vec!["x"; 17];
    let (p, msg) = message_of(chat_with(serde_json::json!(too_many), &cfg).unwrap_err());
    assert_eq!(
        (p.as_str(), msg.as_str()),
        ("stop", "stop may contain at most 16 strings, got 17")
    );
    let (p, msg) = message_of(completion_with(serde_json::json!(too_many), &cfg).unwrap_err());
    assert_eq!(
        (p.as_str(), msg.as_str()),
        ("stop", "stop may contain at most 16 strings, got 17")
    );

    let long = "é".repeat(513); // 1026 bytes, 513 chars: bytes are what count
    let (p, msg) = message_of(completion_with(serde_json::json!(long), &cfg).unwrap_err());
    assert_eq!(
        (p.as_str(), msg.as_str()),
        (
            "stop",
            "each stop string must be at most 1024 bytes, got 1026 bytes in stop"
        )
    );
    let (p, msg) = message_of(chat_with(serde_json::json!(["a", long]), &cfg).unwrap_err());
    assert_eq!(
        (p.as_str(), msg.as_str()),
        (
            "stop",
            "each stop string must be at most 1024 bytes, got 1026 bytes in stop[1]"
        )
    );

    // The limits are the configured ones.
    let tight = ServerConfig {
        max_stop_strings: 2,
        max_stop_bytes: 3,
        ..ServerConfig::default()
    };
    assert!(chat_with(serde_json::json!(["a", "b", "c"]), &tight).is_err());
    assert!(completion_with(serde_json::json!("abcd"), &tight).is_err());
    assert_eq!(
        completion_with(serde_json::json!(["abc", "d"]), &tight).unwrap(),
        ["abc", "d"]
    );
}
