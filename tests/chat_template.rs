//! Chat template rendering against the real Qwen3 tokenizer and template
//! (`tests/fixtures/qwen3-tokenizer/`). Expected strings were derived from the
//! template source and cross-checked with Python Jinja2 configured as HF's
//! `apply_chat_template` configures it; expected ids come from the fixture's
//! `tokenizer.json`.

use std::path::Path;
use std::sync::OnceLock;

use quorum::chat::{ChatMessage, ChatTemplate, ChatTemplateError};
use quorum::tokenizer::Tokenizer;
use serde_json::{json, Map, Value};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const IM_START: u32 = 151644;
const IM_END: u32 = 151645;
const THINK: u32 = 151667;
const END_THINK: u32 = 151668;
/// Plain-vocabulary ids: "\n", "\n\n", "user", "assistant", "system".
const NL: u32 = 198;
const NL2: u32 = 271;
const USER: u32 = 872;
const ASSISTANT: u32 = 77091;
const SYSTEM: u32 = 8948;

/// The fixture tokenizer, loaded once: parsing its 150k-entry vocabulary
/// dominates the run time of these tests.
static QWEN3: OnceLock<Result<Tokenizer, String>> = OnceLock::new();

fn qwen3() -> Result<(Tokenizer, ChatTemplate), Box<dyn std::error::Error>> {
    let tok = QWEN3.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3-tokenizer");
        Tokenizer::from_dir(dir).map_err(|e| e.to_string())
    });
    let tok = tok.clone()?;
    let tmpl = ChatTemplate::from_tokenizer(&tok)?;
    Ok((tok, tmpl))
}

fn kwargs(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[test]
fn special_token_ids_match_tokenizer_json() -> TestResult {
    let (tok, _) = qwen3()?;
    for (text, id) in [
        ("<|im_start|>", IM_START),
        ("<|im_end|>", IM_END),
        ("<think>", THINK),
        ("</think>", END_THINK),
    ] {
        assert_eq!(tok.token_to_id(text), Some(id), "{text:?}");
        assert_eq!(tok.encode(text, false)?, vec![id], "{text:?}");
    }
    // Byte-level vocabulary strings: "\n" is stored as "Ċ".
    assert_eq!(tok.token_to_id("Ċ"), Some(NL));
    assert_eq!(tok.encode("\n", false)?, vec![NL]);
    assert_eq!(tok.encode("\n\n", false)?, vec![NL2]);
    Ok(())
}

#[test]
fn system_and_user_with_generation_prompt_render_chatml() -> TestResult {
    let (tok, tmpl) = qwen3()?;
    let msgs = [
        ChatMessage::system("You are helpful."),
        ChatMessage::user("Hi"),
    ];
    let out = tmpl.render(&msgs, true, &Map::new())?;
    assert_eq!(
        out,
        "<|im_start|>system\nYou are helpful.<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    // "You are helpful." = You | ␣are | ␣helpful | .   and "Hi" = 13048.
    let expected = [
        vec![IM_START, SYSTEM, NL, 2610, 525, 10950, 13, IM_END, NL],
        vec![IM_START, USER, NL, 13048, IM_END, NL],
        vec![IM_START, ASSISTANT, NL],
    ]
    .concat();
    assert_eq!(tok.encode(&out, false)?, expected);
    Ok(())
}

#[test]
fn enable_thinking_false_appends_empty_think_block() -> TestResult {
    let (tok, tmpl) = qwen3()?;
    let extra = kwargs(json!({"enable_thinking": false}));
    let out = tmpl.render(&[ChatMessage::user("Hi")], true, &extra)?;
    assert_eq!(
        out,
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    );
    let expected = vec![
        IM_START, USER, NL, 13048, IM_END, NL, IM_START, ASSISTANT, NL, THINK, NL2, END_THINK, NL2,
    ];
    assert_eq!(tok.encode(&out, false)?, expected);
    Ok(())
}

#[test]
fn enable_thinking_true_or_absent_leaves_generation_prompt_open() -> TestResult {
    let (tok, tmpl) = qwen3()?;
    let want = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
    let msgs = [ChatMessage::user("Hi")];
    let enabled = tmpl.render(&msgs, true, &kwargs(json!({"enable_thinking": true})))?;
    assert_eq!(enabled, want);
    assert_eq!(tmpl.render(&msgs, true, &Map::new())?, want);
    let ids = tok.encode(want, false)?;
    assert_eq!(ids.last(), Some(&NL));
    assert!(!ids.contains(&THINK));
    Ok(())
}

#[test]
fn without_generation_prompt_nothing_follows_last_turn() -> TestResult {
    let (_, tmpl) = qwen3()?;
    let out = tmpl.render(&[ChatMessage::user("Hi")], false, &Map::new())?;
    assert_eq!(out, "<|im_start|>user\nHi<|im_end|>\n");
    Ok(())
}

#[test]
fn reasoning_content_renders_only_after_last_user_query() -> TestResult {
    let (tok, tmpl) = qwen3()?;
    let msgs = [
        ChatMessage::user("What is 2+2?"),
        ChatMessage::assistant("4").with_reasoning("Add them."),
        ChatMessage::user("And 3+3?"),
        ChatMessage::assistant("6").with_reasoning("\nAdd again.\n"),
    ];
    let out = tmpl.render(&msgs, false, &Map::new())?;
    // The first assistant turn precedes the last user query: its reasoning is
    // dropped. The second follows it: reasoning is kept, newlines stripped.
    assert_eq!(
        out,
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n\
         <|im_start|>assistant\n4<|im_end|>\n\
         <|im_start|>user\nAnd 3+3?<|im_end|>\n\
         <|im_start|>assistant\n<think>\nAdd again.\n</think>\n\n6<|im_end|>\n"
    );
    let ids = tok.encode(&out, false)?;
    assert_eq!(ids.iter().filter(|&&i| i == THINK).count(), 1);
    assert_eq!(ids.iter().filter(|&&i| i == END_THINK).count(), 1);
    Ok(())
}

#[test]
fn tool_responses_do_not_count_as_user_queries() -> TestResult {
    let (_, tmpl) = qwen3()?;
    let msgs = [
        ChatMessage::user("Q"),
        ChatMessage::assistant("calling").with_reasoning("need a tool"),
        ChatMessage::new("tool", "ok"),
    ];
    let out = tmpl.render(&msgs, true, &Map::new())?;
    assert_eq!(
        out,
        "<|im_start|>user\nQ<|im_end|>\n\
         <|im_start|>assistant\n<think>\nneed a tool\n</think>\n\ncalling<|im_end|>\n\
         <|im_start|>user\n<tool_response>\nok\n</tool_response><|im_end|>\n\
         <|im_start|>assistant\n"
    );
    Ok(())
}

#[test]
fn inline_think_in_content_is_split_into_reasoning() -> TestResult {
    let (tok, tmpl) = qwen3()?;
    let answer = ChatMessage::assistant("<think>\nLet me see.\n</think>\n\nThe answer.");
    let last = [ChatMessage::user("Q"), answer.clone()];
    let out = tmpl.render(&last, false, &Map::new())?;
    assert_eq!(
        out,
        "<|im_start|>user\nQ<|im_end|>\n\
         <|im_start|>assistant\n<think>\nLet me see.\n</think>\n\nThe answer.<|im_end|>\n"
    );
    // In history (before a later user query) the reasoning part is removed.
    let history = [ChatMessage::user("Q"), answer, ChatMessage::user("Q2")];
    let out = tmpl.render(&history, true, &Map::new())?;
    assert_eq!(
        out,
        "<|im_start|>user\nQ<|im_end|>\n\
         <|im_start|>assistant\nThe answer.<|im_end|>\n\
         <|im_start|>user\nQ2<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    assert!(!tok.encode(&out, false)?.contains(&THINK));
    Ok(())
}

#[test]
fn tools_are_rendered_with_python_json_formatting() -> TestResult {
    let (_, tmpl) = qwen3()?;
    // Keys are alphabetical at every level, so the expected text is the same
    // whether or not serde_json preserves insertion order.
    let tool = json!({
        "function": {
            "description": "Météo d'une ville <b> & \"co\"",
            "name": "get_weather",
            "parameters": {
                "properties": {
                    "city": {"type": "string"},
                    "days": {"default": 1.5e-05, "type": "integer"}
                },
                "required": ["city"],
                "type": "object"
            }
        },
        "type": "function"
    });
    let extra = kwargs(json!({ "tools": [tool] }));
    let msgs = [
        ChatMessage::system("Sys"),
        ChatMessage::user("Weather in Paris?"),
    ];
    let out = tmpl.render(&msgs, true, &extra)?;
    let tool_json = r#"{"function": {"description": "Météo d'une ville <b> & \"co\"", "name": "get_weather", "parameters": {"properties": {"city": {"type": "string"}, "days": {"default": 1.5e-05, "type": "integer"}}, "required": ["city"], "type": "object"}}, "type": "function"}"#;
    let want = format!(
        "<|im_start|>system\nSys\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
         You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{tool_json}\n</tools>\n\n\
         For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n\
         <tool_call>\n{{\"name\": <function-name>, \"arguments\": <args-json-object>}}\n</tool_call><|im_end|>\n\
         <|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(out, want);
    Ok(())
}

#[test]
fn assistant_tool_calls_and_consecutive_tool_results_render() -> TestResult {
    let (_, tmpl) = qwen3()?;
    let call = ChatMessage {
        tool_calls: Some(json!([{"type": "function",
            "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}])),
        ..ChatMessage::assistant("")
    };
    let msgs = [
        ChatMessage::user("Weather?"),
        call,
        ChatMessage::new("tool", "{\"temp\": 20}"),
        ChatMessage::new("tool", "sunny"),
    ];
    let out = tmpl.render(&msgs, true, &Map::new())?;
    assert_eq!(
        out,
        "<|im_start|>user\nWeather?<|im_end|>\n\
         <|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call><|im_end|>\n\
         <|im_start|>user\n<tool_response>\n{\"temp\": 20}\n</tool_response>\n<tool_response>\nsunny\n</tool_response><|im_end|>\n\
         <|im_start|>assistant\n"
    );
    Ok(())
}

#[test]
fn tojson_keeps_template_dict_literal_order_and_supports_indent() -> TestResult {
    let src = r#"{{ {"name": "f", "arguments": {"b": 1, "a": [1.0, none, true]}} | tojson }}|{{ {"z": [], "y": {}} | tojson(indent=2) }}|{{ {"b": 1, "a": 2} | tojson(sort_keys=true) }}"#;
    let tmpl = ChatTemplate::new(src, None, None)?;
    let out = tmpl.render(&[], false, &Map::new())?;
    assert_eq!(
        out,
        "{\"name\": \"f\", \"arguments\": {\"b\": 1, \"a\": [1.0, null, true]}}|\
         {\n  \"z\": [],\n  \"y\": {}\n}|{\"a\": 2, \"b\": 1}"
    );
    Ok(())
}

#[test]
fn raise_exception_becomes_a_clean_error() -> TestResult {
    let src = "{% for m in messages %}{% if m.role == 'system' and not loop.first %}\
               {{ raise_exception('System message must be first') }}{% endif %}{% endfor %}";
    let tmpl = ChatTemplate::new(src, None, None)?;
    let msgs = [ChatMessage::user("a"), ChatMessage::system("b")];
    match tmpl.render(&msgs, true, &Map::new()) {
        Err(ChatTemplateError::Raised(msg)) => assert_eq!(msg, "System message must be first"),
        other => return Err(format!("expected Raised, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn template_bugs_are_render_errors_not_raised() -> TestResult {
    let tmpl = ChatTemplate::new("{{ messages[0].content.nosuchmethod() }}", None, None)?;
    match tmpl.render(&[ChatMessage::user("a")], true, &Map::new()) {
        Err(ChatTemplateError::Render(msg)) => assert!(!msg.is_empty()),
        other => return Err(format!("expected Render, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn model_without_template_uses_plain_fallback() -> TestResult {
    let tok = Tokenizer::synthetic(false)?;
    let tmpl = ChatTemplate::from_tokenizer(&tok)?;
    assert!(tmpl.is_fallback());
    let msgs = [ChatMessage::system("Be brief."), ChatMessage::user("Hi")];
    assert_eq!(
        tmpl.render(&msgs, true, &Map::new())?,
        "system: Be brief.\nuser: Hi\nassistant: "
    );
    assert_eq!(
        tmpl.render(&msgs, false, &Map::new())?,
        "system: Be brief.\nuser: Hi\n"
    );
    Ok(())
}

#[test]
fn synthetic_tokenizer_template_matches_qwen3_rendering() -> TestResult {
    let (_, qwen) = qwen3()?;
    let tok = Tokenizer::synthetic(true)?;
    let tmpl = ChatTemplate::from_tokenizer(&tok)?;
    let msgs = [ChatMessage::user("Hi")];
    let extra = kwargs(json!({"enable_thinking": false}));
    let out = tmpl.render(&msgs, true, &extra)?;
    assert_eq!(out, qwen.render(&msgs, true, &extra)?);
    let ids = tok.encode(&out, false)?;
    assert_eq!(ids.first(), tok.token_to_id("<|im_start|>").as_ref());
    assert_eq!(tok.decode(&ids, false)?, out);
    Ok(())
}

#[test]
fn messages_deserialize_from_openai_json() -> TestResult {
    let msgs: Vec<ChatMessage> = serde_json::from_value(json!([
        {"role": "assistant", "content": null, "tool_calls": [{"id": "1"}]},
        {"role": "tool", "content": "x", "tool_call_id": "1"}
    ]))?;
    assert_eq!(msgs[0].content, "");
    assert!(msgs[0].reasoning_content.is_none());
    assert_eq!(msgs[1].tool_call_id.as_deref(), Some("1"));
    Ok(())
}
