//! Per-request think-mode resolution: the toggles clients use (system-prompt
//! soft switches, `chat_template_kwargs`, `reasoning_effort`) and the budget
//! fields, resolved against the model's think configuration into one
//! [`ThinkPlan`], with a 400-style error naming the fields when they
//! contradict each other.
//!
//! Precedence: explicit request fields (`chat_template_kwargs.enable_thinking`
//! / `.thinking`, `reasoning_effort`) over soft switches in the conversation
//! (`/think`, `/no_think` in a system or user message, the latest one wins;
//! `detailed thinking on|off` as the system prompt) over the model default.

use serde::{Deserialize, Serialize};

use crate::chat::ChatMessage;

/// A model's think-mode settings (server config, per model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ThinkConfig {
    /// Whether the model has think tags at all (detected from the tokenizer
    /// unless set). Without support, toggles are accepted and do nothing, and
    /// a thinking budget is an error.
    pub supported: Option<bool>,
    /// Thinking when the request says nothing.
    pub default_enabled: bool,
    pub start_tag: String,
    pub end_tag: String,
    /// Inserted when the budget runs out, before the end tag.
    pub budget_message: String,
    /// Replaces an early end tag while under `min_thinking_tokens`.
    pub continuation: String,
    /// Tokens kept for the answer when thinking has no explicit budget.
    pub answer_reserve: usize,
    /// Thinking budgets for `reasoning_effort` levels.
    pub effort_budgets: EffortBudgets,
    /// State a request's thinking budget in the prompt as well as enforcing
    /// it ("Think for about N tokens.", see [`super::target`]); off by default.
    pub budget_in_prompt: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EffortBudgets {
    pub minimal: usize,
    pub low: usize,
    pub medium: usize,
    pub high: usize,
    pub xhigh: usize,
}

impl Default for EffortBudgets {
    fn default() -> Self {
        Self {
            minimal: 128,
            low: 512,
            medium: 2048,
            high: 8192,
            xhigh: 32768,
        }
    }
}

impl Default for ThinkConfig {
    fn default() -> Self {
        Self {
            supported: None,
            default_enabled: true,
            start_tag: "<think>".into(),
            end_tag: "</think>".into(),
            budget_message: "Considering the limited time by the user, I have to give the solution based on the thinking directly now.".into(),
            continuation: "Wait".into(),
            answer_reserve: 64,
            effort_budgets: EffortBudgets::default(),
            budget_in_prompt: false,
        }
    }
}

/// The think-related fields of one request (all optional).
#[derive(Debug, Clone, Default)]
pub struct ThinkRequest<'a> {
    pub messages: &'a [ChatMessage],
    /// `chat_template_kwargs.enable_thinking` (or its alias `thinking`).
    pub enable_thinking: Option<bool>,
    pub reasoning_effort: Option<&'a str>,
    /// `thinking_budget` or an alias.
    pub thinking_budget: Option<usize>,
    pub min_thinking_tokens: Option<usize>,
    pub thinking_budget_message: Option<&'a str>,
}

/// What the engine and the template get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThinkPlan {
    /// Thinking on for this request (always false on a model without support).
    pub enabled: bool,
    pub budget: Option<usize>,
    pub min_thinking_tokens: usize,
    pub budget_message: String,
}

/// A request whose think fields cannot be honoured (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ThinkError {
    pub message: String,
    /// The field to blame (OpenAI `param`).
    pub param: String,
}

fn err(param: &str, message: String) -> ThinkError {
    ThinkError {
        message,
        param: param.into(),
    }
}

/// The latest soft switch in the conversation, if any.
pub fn soft_switch(messages: &[ChatMessage]) -> Option<bool> {
    let mut found = None;
    for m in messages {
        let role = m.role.as_str();
        if role == "system" || role == "developer" {
            match m.content.trim().to_ascii_lowercase().as_str() {
                "detailed thinking on" => found = Some(true),
                "detailed thinking off" => found = Some(false),
                _ => {}
            }
        }
        if matches!(role, "system" | "developer" | "user") {
            // The last switch inside one message wins too.
            let text = &m.content;
            let last_on = last_switch(text, "/think");
            let last_off = last_switch(text, "/no_think");
            match (last_on, last_off) {
                (Some(a), Some(b)) => found = Some(a > b),
                (Some(_), None) => found = Some(true),
                (None, Some(_)) => found = Some(false),
                (None, None) => {}
            }
        }
    }
    found
}

/// Byte offset of the last `switch` that stands as a word (not `/thinking`).
fn last_switch(text: &str, switch: &str) -> Option<usize> {
    text.match_indices(switch)
        .filter(|(i, _)| {
            let after = text[i + switch.len()..].chars().next();
            let before = text[..*i].chars().next_back();
            after.is_none_or(|c| !c.is_alphanumeric() && c != '_')
                && before.is_none_or(|c| c.is_whitespace() || c.is_ascii_punctuation())
        })
        .map(|(i, _)| i)
        .last()
}

/// Resolve a request's think fields against the model's configuration.
pub fn resolve(
    req: &ThinkRequest,
    cfg: &ThinkConfig,
    model_supports: bool,
) -> Result<ThinkPlan, ThinkError> {
    let effort_budget = match req.reasoning_effort {
        None => None,
        Some(e) => Some(match e {
            "none" => None,
            "minimal" => Some(cfg.effort_budgets.minimal),
            "low" => Some(cfg.effort_budgets.low),
            "medium" => Some(cfg.effort_budgets.medium),
            "high" => Some(cfg.effort_budgets.high),
            "xhigh" => Some(cfg.effort_budgets.xhigh),
            other => {
                return Err(err(
                    "reasoning_effort",
                    format!("reasoning_effort `{other}` is not one of none, minimal, low, medium, high, xhigh"),
                ))
            }
        }),
    };
    if let (Some(on), Some(effort)) = (req.enable_thinking, req.reasoning_effort) {
        let effort_on = effort != "none";
        if on != effort_on {
            return Err(err(
                "reasoning_effort",
                format!(
                    "chat_template_kwargs.enable_thinking = {on} contradicts reasoning_effort = \"{effort}\""
                ),
            ));
        }
    }
    let explicit = req.enable_thinking.or(effort_budget.map(|b| b.is_some()));
    let enabled_requested = explicit
        .or_else(|| soft_switch(req.messages))
        .unwrap_or(cfg.default_enabled);
    if req.thinking_budget.is_some() || req.min_thinking_tokens.is_some() {
        let field = if req.thinking_budget.is_some() {
            "thinking_budget"
        } else {
            "min_thinking_tokens"
        };
        if !model_supports {
            return Err(err(
                field,
                format!("{field} was given but this model has no think mode (no think tags)"),
            ));
        }
        if explicit == Some(false) {
            return Err(err(
                field,
                format!("{field} was given but thinking is disabled by chat_template_kwargs.enable_thinking / reasoning_effort"),
            ));
        }
    }
    if let (Some(b), Some(m)) = (req.thinking_budget, req.min_thinking_tokens) {
        if m > b {
            return Err(err(
                "min_thinking_tokens",
                format!("min_thinking_tokens = {m} exceeds thinking_budget = {b}"),
            ));
        }
    }
    let enabled = model_supports && (enabled_requested || req.thinking_budget.is_some());
    Ok(ThinkPlan {
        enabled,
        budget: if enabled {
            req.thinking_budget.or(effort_budget.flatten())
        } else {
            None
        },
        min_thinking_tokens: if enabled {
            req.min_thinking_tokens.unwrap_or(0)
        } else {
            0
        },
        budget_message: req
            .thinking_budget_message
            .unwrap_or(&cfg.budget_message)
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(req: ThinkRequest) -> Result<ThinkPlan, ThinkError> {
        resolve(&req, &ThinkConfig::default(), true)
    }

    #[test]
    fn latest_soft_switch_wins_across_messages() {
        let msgs = [
            ChatMessage::system("You are helpful. /no_think"),
            ChatMessage::user("Hi /think"),
        ];
        assert_eq!(soft_switch(&msgs), Some(true));
        let msgs = [
            ChatMessage::system("/think"),
            ChatMessage::user("quick one /no_think"),
        ];
        assert_eq!(soft_switch(&msgs), Some(false));
        assert_eq!(
            soft_switch(&[ChatMessage::user("/thinking about it")]),
            None
        );
        assert_eq!(
            soft_switch(&[ChatMessage::system("detailed thinking off")]),
            Some(false)
        );
    }

    #[test]
    fn explicit_kwarg_beats_soft_switch_and_default() {
        let msgs = [ChatMessage::system("/think")];
        let p = plan(ThinkRequest {
            messages: &msgs,
            enable_thinking: Some(false),
            ..Default::default()
        })
        .unwrap();
        assert!(!p.enabled);
        let p = plan(ThinkRequest {
            messages: &msgs,
            ..Default::default()
        })
        .unwrap();
        assert!(p.enabled);
    }

    #[test]
    fn reasoning_effort_maps_to_budgets_and_none_disables() {
        let p = plan(ThinkRequest {
            reasoning_effort: Some("low"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((p.enabled, p.budget), (true, Some(512)));
        let p = plan(ThinkRequest {
            reasoning_effort: Some("none"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((p.enabled, p.budget), (false, None));
    }

    #[test]
    fn contradictory_enable_thinking_and_effort_is_an_error_naming_both() {
        let e = plan(ThinkRequest {
            enable_thinking: Some(false),
            reasoning_effort: Some("high"),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            e.message.contains("enable_thinking") && e.message.contains("reasoning_effort"),
            "{}",
            e.message
        );
    }

    #[test]
    fn thinking_budget_on_a_model_without_think_support_is_an_error() {
        let e = resolve(
            &ThinkRequest {
                thinking_budget: Some(10),
                ..Default::default()
            },
            &ThinkConfig::default(),
            false,
        )
        .unwrap_err();
        assert_eq!(e.param, "thinking_budget");
        // Toggles alone are accepted and do nothing.
        let p = resolve(
            &ThinkRequest {
                enable_thinking: Some(true),
                ..Default::default()
            },
            &ThinkConfig::default(),
            false,
        )
        .unwrap();
        assert!(!p.enabled);
    }

    #[test]
    fn unknown_effort_and_min_above_budget_are_errors() {
        assert_eq!(
            plan(ThinkRequest {
                reasoning_effort: Some("max"),
                ..Default::default()
            })
            .unwrap_err()
            .param,
            "reasoning_effort"
        );
        let e = plan(ThinkRequest {
            thinking_budget: Some(5),
            min_thinking_tokens: Some(9),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.param, "min_thinking_tokens");
    }
}

/// Make the rendered prompt agree with the plan: thinking on means the
/// think block is open when generation starts (the start tag is appended if
/// the template did not open it, as DeepSeek-R1's template does), so thinking
/// always starts and budgets count from the first token; thinking off on a
/// think-capable model means an empty, closed block (what Qwen3's template
/// writes for `enable_thinking=false`) if the template did not write one.
pub fn apply_to_prompt(
    prompt: &str,
    plan: &ThinkPlan,
    cfg: &ThinkConfig,
    model_supports: bool,
) -> String {
    if !model_supports {
        return prompt.to_string();
    }
    let (start, end) = (cfg.start_tag.as_str(), cfg.end_tag.as_str());
    let open = match (prompt.rfind(start), prompt.rfind(end)) {
        (Some(s), Some(e)) => s > e,
        (Some(_), None) => true,
        _ => false,
    };
    // Only the tail after the generation prompt matters: look at what follows
    // the last end tag (or the whole prompt).
    let closed_empty_at_end = prompt.trim_end().ends_with(end)
        && prompt
            .rfind(start)
            .is_some_and(|s| prompt[s + start.len()..].trim_start().starts_with(end));
    match (plan.enabled, open) {
        (true, true) => prompt.to_string(),
        (true, false) => format!("{prompt}{start}\n"),
        (false, true) => format!("{prompt}\n{end}\n\n"),
        (false, false) if closed_empty_at_end => prompt.to_string(),
        (false, false) => format!("{prompt}{start}\n\n{end}\n\n"),
    }
}

#[cfg(test)]
mod prompt_tests {
    use super::*;

    fn plan(enabled: bool) -> ThinkPlan {
        ThinkPlan {
            enabled,
            budget: None,
            min_thinking_tokens: 0,
            budget_message: String::new(),
        }
    }

    #[test]
    fn thinking_on_opens_the_block_once() {
        let cfg = ThinkConfig::default();
        let p = "<|im_start|>assistant\n";
        assert_eq!(
            apply_to_prompt(p, &plan(true), &cfg, true),
            "<|im_start|>assistant\n<think>\n"
        );
        let opened = "<|im_start|>assistant\n<think>\n";
        assert_eq!(apply_to_prompt(opened, &plan(true), &cfg, true), opened);
    }

    #[test]
    fn thinking_off_keeps_the_templates_empty_block_or_adds_one() {
        let cfg = ThinkConfig::default();
        let qwen_off = "<|im_start|>assistant\n<think>\n\n</think>\n\n";
        assert_eq!(
            apply_to_prompt(qwen_off, &plan(false), &cfg, true),
            qwen_off
        );
        assert_eq!(
            apply_to_prompt("A: ", &plan(false), &cfg, true),
            "A: <think>\n\n</think>\n\n"
        );
        assert_eq!(apply_to_prompt("A: ", &plan(false), &cfg, false), "A: ");
    }
}
