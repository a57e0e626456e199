//! Think mode at the HTTP layer: the request fields, their resolution
//! against the model's [`ThinkConfig`] (see [`crate::engine::think::resolve`]
//! for the precedence), the prompt tail, the engine's [`ThinkSpec`], and the
//! reasoning/answer split of the output (whole or streamed).
//!
//! The engine enforces the budgets per rollout; this module only decides
//! what to ask for and how to show the result, so `/v1/chat/completions`
//! stays a thin route.

use serde_json::{Map, Value};

use super::config::{ReasoningField, ServerConfig};
use super::error::ApiError;
use super::openai::{AssistantMessage, ChatChoice, Delta, ThinkFields};
use super::state::ModelEntry;
use super::validate::ValidChatRequest;
use crate::chat::ChatMessage;
use crate::engine::think::prompt::{think_spec, PromptThink};
use crate::engine::think::{
    budget_in_prompt, resolve, split_all, tokenizer_supports_think, ReasoningSplitter, SplitDelta,
    ThinkConfig, ThinkPlan, ThinkRequest, ThinkSpec,
};
use crate::tokenizer::Tokenizer;

/// The resolved think mode of one chat request.
#[derive(Debug, Clone)]
pub struct ChatThink {
    pub plan: ThinkPlan,
    pub cfg: ThinkConfig,
    /// The model has think tags (and the config does not turn them off).
    pub supported: bool,
    /// Where the reasoning goes in responses.
    pub field: ReasoningField,
}

/// A 400 naming `param`.
fn invalid(param: &str, message: String) -> ApiError {
    ApiError::invalid(param, message)
}

/// One value from several alias fields; two different values are a 400
/// naming both.
fn one_of<T: PartialEq + Copy + std::fmt::Display>(
    fields: &[(&str, Option<T>)],
) -> Result<Option<(String, T)>, ApiError> {
    let mut found: Option<(&str, T)> = None;
    for &(name, v) in fields {
        let Some(v) = v else { continue };
        match found {
            Some((first, w)) if w != v => {
                return Err(invalid(
                    name,
                    format!("{first} = {w} contradicts {name} = {v}"),
                ))
            }
            Some(_) => {}
            None => found = Some((name, v)),
        }
    }
    Ok(found.map(|(n, v)| (n.to_string(), v)))
}

/// A boolean template kwarg, or a 400 when it is not one.
fn kwarg_bool(kwargs: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match kwargs.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid(
            &format!("chat_template_kwargs.{key}"),
            format!("chat_template_kwargs.{key} must be a boolean"),
        )),
    }
}

/// Resolve a chat request's think mode against model `entry`, make the
/// template kwargs agree with it, set what the engine enforces
/// (`req.common.think`), and, under the model's `budget_in_prompt`, state
/// the thinking budget in the messages ([`ChatThink::prompt_messages`]).
pub fn prepare_chat(
    req: &mut ValidChatRequest,
    server: &ServerConfig,
    entry: &ModelEntry,
) -> Result<ChatThink, ApiError> {
    let tok = &entry.tokenizer;
    let think = prepare(
        &req.think,
        &mut req.kwargs,
        &req.messages,
        server,
        &entry.id,
        tok,
    )?;
    req.common.think = think.spec(tok)?;
    if let Some(messages) = think.prompt_messages(&req.messages) {
        req.messages = messages;
    }
    Ok(think)
}

/// Resolve think fields for model `model_id` and set `enable_thinking` in
/// the template kwargs, so the template renders the think block the way it
/// defines (on a model with think support).
pub fn prepare(
    fields: &ThinkFields,
    kwargs: &mut Map<String, Value>,
    messages: &[ChatMessage],
    server: &ServerConfig,
    model_id: &str,
    tok: &Tokenizer,
) -> Result<ChatThink, ApiError> {
    let cfg = server.think_config(model_id);
    let enable = one_of(&[
        (
            "chat_template_kwargs.enable_thinking",
            kwarg_bool(kwargs, "enable_thinking")?,
        ),
        (
            "chat_template_kwargs.thinking",
            kwarg_bool(kwargs, "thinking")?,
        ),
        ("thinking", fields.thinking),
    ])?;
    let budget = one_of(&[
        ("thinking_budget", fields.thinking_budget),
        ("thinking_token_budget", fields.thinking_token_budget),
        ("reasoning_budget_tokens", fields.reasoning_budget_tokens),
        ("max_thinking_tokens", fields.max_thinking_tokens),
    ])?;
    let supported = cfg
        .supported
        .unwrap_or_else(|| tokenizer_supports_think(tok, &cfg.start_tag, &cfg.end_tag));
    let req = ThinkRequest {
        messages,
        enable_thinking: enable.as_ref().map(|(_, v)| *v),
        reasoning_effort: fields.reasoning_effort.as_deref(),
        thinking_budget: budget.as_ref().map(|(_, v)| *v),
        min_thinking_tokens: fields.min_thinking_tokens,
        thinking_budget_message: fields.thinking_budget_message.as_deref(),
    };
    let plan = resolve(&req, &cfg, supported).map_err(|e| {
        // Name the alias the client actually sent.
        let param = match (&budget, e.param.as_str()) {
            (Some((name, _)), "thinking_budget") => name.clone(),
            _ => e.param,
        };
        invalid(&param, e.message)
    })?;
    if supported {
        kwargs.insert("enable_thinking".into(), Value::Bool(plan.enabled));
    }
    Ok(ChatThink {
        plan,
        cfg,
        supported,
        field: server.reasoning_field,
    })
}

impl ChatThink {
    /// The conversation with the thinking budget stated in it ("Think for
    /// about N tokens.", [`crate::engine::think::target`]) when the model's
    /// `budget_in_prompt` is on, thinking is on and there is a budget;
    /// `None`: the conversation as sent.
    pub fn prompt_messages(&self, messages: &[ChatMessage]) -> Option<Vec<ChatMessage>> {
        budget_in_prompt(messages, &self.plan, &self.cfg, self.supported)
    }

    /// The think mode as the prompt tail needs it
    /// ([`crate::engine::think::prompt::render_prompt`]).
    pub fn prompt_think(&self) -> PromptThink<'_> {
        PromptThink {
            plan: &self.plan,
            cfg: &self.cfg,
            supported: self.supported,
        }
    }

    /// What the engine enforces per rollout; `None` when not thinking.
    pub fn spec(&self, tok: &Tokenizer) -> Result<Option<ThinkSpec>, ApiError> {
        think_spec(&self.plan, &self.cfg, self.supported, tok)
            .map_err(|e| ApiError::Internal(format!("encoding the think texts: {e}")))
    }

    /// Whether the output starts inside the think block.
    pub fn thinking(&self) -> bool {
        self.supported && self.plan.enabled
    }

    /// `(reasoning, answer)` of a whole output; reasoning is `None` when not
    /// thinking (everything is the answer, a stray empty block dropped).
    pub fn split(&self, text: &str) -> (Option<String>, String) {
        let (r, c) = split_all(
            text,
            &self.cfg.start_tag,
            &self.cfg.end_tag,
            self.thinking(),
        );
        (self.thinking().then_some(r), c)
    }

    /// A streaming splitter for one choice.
    pub fn splitter(&self) -> ReasoningSplitter {
        ReasoningSplitter::new(&self.cfg.start_tag, &self.cfg.end_tag, self.thinking())
    }

    /// Split each choice's raw text into reasoning and answer.
    pub fn split_choices(&self, choices: &mut [ChatChoice]) {
        for c in choices {
            c.message = self.message(&c.message.content);
        }
    }

    /// The assistant message of one finished rollout's text.
    pub fn message(&self, text: &str) -> AssistantMessage {
        let (reasoning, content) = self.split(text);
        let (reasoning_content, reasoning) = self.field.place(reasoning);
        AssistantMessage {
            role: "assistant",
            content,
            reasoning_content,
            reasoning,
        }
    }

    /// The stream delta of one split step; `None` when it holds no text.
    pub fn delta(&self, d: SplitDelta) -> Option<Delta> {
        let some = |s: String| (!s.is_empty()).then_some(s);
        let (reasoning, content) = (some(d.reasoning), some(d.content));
        if reasoning.is_none() && content.is_none() {
            return None;
        }
        let (reasoning_content, reasoning) = self.field.place(reasoning);
        Some(Delta {
            role: None,
            content,
            reasoning_content,
            reasoning,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request-level budget checks (`validate::check_think_limits`).
    trait Limits {
        fn check_limits(&self, max: Option<usize>, param: &str, cap: usize)
            -> Result<(), ApiError>;
    }

    impl Limits for ThinkFields {
        fn check_limits(
            &self,
            max: Option<usize>,
            param: &str,
            cap: usize,
        ) -> Result<(), ApiError> {
            crate::server::validate::check_think_limits(self, max, param, cap)
        }
    }

    #[test]
    fn alias_fields_agree_or_name_both() {
        let ok = one_of(&[("a", Some(3)), ("b", None), ("c", Some(3))]).unwrap();
        assert_eq!(ok, Some(("a".to_string(), 3)));
        let e = one_of(&[("a", Some(3)), ("b", Some(4))]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("a = 3") && text.contains("b = 4"), "{text}");
    }

    #[test]
    fn reasoning_field_places_text() {
        let t = Some("r".to_string());
        assert_eq!(
            ReasoningField::ReasoningContent.place(t.clone()),
            (t.clone(), None)
        );
        assert_eq!(
            ReasoningField::Reasoning.place(t.clone()),
            (None, t.clone())
        );
        assert_eq!(ReasoningField::Both.place(t.clone()), (t.clone(), t));
    }

    #[test]
    fn think_settings_parse_from_the_server_section() {
        let s: super::super::config::ServeSettings = toml::from_str(
            "reasoning_field = \"both\"\n[think.qwen]\nsupported = false\nanswer_reserve = 8\n",
        )
        .expect("parse");
        let cfg = s.resolve().expect("resolve");
        assert_eq!(cfg.reasoning_field, ReasoningField::Both);
        let qwen = cfg.think_config("qwen");
        assert_eq!((qwen.supported, qwen.answer_reserve), (Some(false), 8));
        assert_eq!(cfg.think_config("other"), ThinkConfig::default());
    }

    #[test]
    fn budgets_beyond_the_completion_budget_are_400s_naming_the_limit() {
        let fields = |budget, min| ThinkFields {
            thinking_budget: budget,
            min_thinking_tokens: min,
            ..Default::default()
        };
        assert!(fields(Some(100), Some(100))
            .check_limits(Some(100), "max_tokens", 4096)
            .is_ok());
        assert!(fields(Some(4096), None)
            .check_limits(None, "max_tokens", 4096)
            .is_ok());
        for (f, max, param, want) in [
            (
                fields(Some(101), None),
                Some(100),
                "thinking_budget",
                "thinking_budget = 101 exceeds max_tokens = 100",
            ),
            (
                fields(None, Some(200)),
                Some(100),
                "min_thinking_tokens",
                "min_thinking_tokens = 200 exceeds max_tokens = 100",
            ),
            (
                fields(Some(5000), None),
                None,
                "thinking_budget",
                "thinking_budget = 5000 exceeds the server's max_tokens cap = 4096",
            ),
            (
                ThinkFields {
                    max_thinking_tokens: Some(9),
                    ..Default::default()
                },
                Some(8),
                "max_thinking_tokens",
                "max_thinking_tokens = 9 exceeds max_tokens = 8",
            ),
        ] {
            let e = f.check_limits(max, "max_tokens", 4096).unwrap_err();
            assert!(e.to_string().starts_with(want), "{e}");
            assert!(
                matches!(&e, ApiError::InvalidRequest { param: Some(p), .. } if p == param),
                "{e:?}"
            );
        }
        let e = fields(Some(11), None)
            .check_limits(Some(10), "max_completion_tokens", 4096)
            .unwrap_err();
        assert!(e.to_string().contains("max_completion_tokens = 10"), "{e}");
    }

    #[test]
    fn a_non_boolean_kwarg_is_a_400() {
        let mut kw = Map::new();
        kw.insert("enable_thinking".into(), Value::from("yes"));
        assert!(kwarg_bool(&kw, "enable_thinking").is_err());
    }
}
