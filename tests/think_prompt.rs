//! Think-mode toggles on the Qwen3 tokenizer fixture and its chat template:
//! every toggle (soft switches, `chat_template_kwargs`, `reasoning_effort`,
//! top-level `thinking`) renders the prompt exactly as the template defines,
//! with the think block open when thinking is on, and incoming
//! `reasoning_content` reaches the template.

use std::path::Path;
use std::sync::OnceLock;

use quorum::chat::{ChatTemplate, SpecialTokenPolicy};
use quorum::engine::think::prompt::render_prompt;
use quorum::server::openai::decode::JsonBody;
use quorum::server::openai::ChatCompletionRequest;
use quorum::server::think::prepare;
use quorum::server::{validate, ServerConfig};
use quorum::tokenizer::Tokenizer;
use serde_json::{json, Value};

const END_THINK: u32 = 151668;

fn qwen3() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3-tokenizer");
        Tokenizer::from_dir(dir).expect("fixture tokenizer")
    })
}

/// The rendered prompt of a chat body, as the chat route builds it.
fn render(body: Value) -> Result<(String, Vec<u32>), String> {
    let tok = qwen3();
    let tmpl = ChatTemplate::from_tokenizer(tok).map_err(|e| e.to_string())?;
    let req =
        ChatCompletionRequest::from_json(body.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let mut req = validate::chat(req, &ServerConfig::default()).map_err(|e| e.to_string())?;
    let cfg = ServerConfig::default();
    let think = prepare(&req.think, &mut req.kwargs, &req.messages, &cfg, "m", tok)
        .map_err(|e| e.to_string())?;
    render_prompt(
        &tmpl,
        tok,
        &req.messages,
        &req.kwargs,
        &think.prompt_think(),
        SpecialTokenPolicy::default(),
        None,
    )
    .map_err(|e| e.to_string())
}

fn body(messages: Value, extra: Value) -> Value {
    let mut b = json!({"model": "m", "messages": messages});
    if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    b
}

#[test]
fn each_toggle_renders_the_prompt_as_the_template_defines() {
    const ON: &str = "<|im_start|>assistant\n<think>\n";
    const OFF: &str = "<|im_start|>assistant\n<think>\n\n</think>\n\n";
    let user = json!([{"role": "user", "content": "Hi"}]);
    let sys =
        |s: &str| json!([{"role": "system", "content": s}, {"role": "user", "content": "Hi"}]);
    let cases = [
        (user.clone(), json!({}), ON),
        (
            user.clone(),
            json!({"chat_template_kwargs": {"enable_thinking": false}}),
            OFF,
        ),
        (
            user.clone(),
            json!({"chat_template_kwargs": {"enable_thinking": true}}),
            ON,
        ),
        (
            user.clone(),
            json!({"chat_template_kwargs": {"thinking": false}}),
            OFF,
        ),
        (user.clone(), json!({"thinking": false}), OFF),
        (user.clone(), json!({"reasoning_effort": "none"}), OFF),
        (user.clone(), json!({"reasoning_effort": "low"}), ON),
        (sys("Be brief. /no_think"), json!({}), OFF),
        (sys("detailed thinking off"), json!({}), OFF),
        (sys("detailed thinking on"), json!({}), ON),
        (
            json!([{"role": "system", "content": "/no_think"}, {"role": "user", "content": "Hi /think"}]),
            json!({}),
            ON,
        ),
        // An explicit field beats the soft switch.
        (
            sys("/no_think"),
            json!({"chat_template_kwargs": {"enable_thinking": true}}),
            ON,
        ),
    ];
    for (messages, extra, tail) in cases {
        let (text, ids) = render(body(messages.clone(), extra.clone())).expect("render");
        assert!(text.ends_with(tail), "{messages} {extra}: {text:?}");
        assert_eq!(text.matches("<think>").count(), 1, "{text:?}");
        let want: &[u32] = if tail == ON {
            &[77091, 198, 151667, 198]
        } else {
            &[77091, 198, 151667, 271, END_THINK, 271]
        };
        assert!(ids.ends_with(want), "{extra}: {ids:?}");
    }
}

#[test]
fn incoming_reasoning_content_reaches_the_template() {
    let messages = json!([
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4", "reasoning_content": "Add them."},
    ]);
    let (text, _) = render(body(messages, json!({}))).expect("render");
    assert!(
        text.contains("<|im_start|>assistant\n<think>\nAdd them.\n</think>\n\n4<|im_end|>"),
        "{text:?}"
    );
}
