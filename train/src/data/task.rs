//! The task record every loader produces, and its SFT conversation.

use serde::{Deserialize, Serialize};

use super::error::DataError;
use super::location::Location;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Message {
            role: role.to_string(),
            content: content.into(),
        }
    }
}

/// A task's prompt: a plain user text, or a conversation (which, for an
/// SFT record, ends with the assistant turn to learn).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Messages(Vec<Message>),
}

/// One task: what to ask, how to judge, and (for SFT) what to answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The record's `id` field, else `file:line`.
    pub id: String,
    pub source: Location,
    pub prompt: Prompt,
    /// The reference answer for the verifier (`72`, `\frac34`, a countdown
    /// reference …); `None` for SFT-only records.
    pub answer: Option<String>,
    /// A `quorum_scoring::verifier_by_name` name; checked when loading.
    pub verifier: String,
    /// A worked solution (GSM8K: the text before `####`; MATH: the whole
    /// solution; generated tasks: the reasoning trace).
    pub solution: Option<String>,
    /// Passed to the chat template (`{"enable_thinking": false}`).
    pub chat_template_kwargs: Option<serde_json::Map<String, serde_json::Value>>,
    /// The measured pass rate in `[0, 1]` (the record's [`PASS_RATE_FIELD`],
    /// written by `quorum train filter`), for the difficulty curriculum.
    #[serde(default)]
    pub pass_rate: Option<f64>,
}

/// The record field holding a task's measured pass rate (not mapped: the
/// difficulty filter writes it under this name next to the original fields).
pub const PASS_RATE_FIELD: &str = "pass_rate";

/// An SFT example: messages ending with the assistant turn, plus the
/// template kwargs to render them with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template_kwargs: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Conversation {
    /// `chat_template_kwargs.enable_thinking`, when set to a boolean.
    pub fn enable_thinking(&self) -> Option<bool> {
        self.chat_template_kwargs
            .as_ref()?
            .get("enable_thinking")?
            .as_bool()
    }
}

/// How [`Task::to_sft_messages`] builds the assistant turn of a record that
/// has a prompt and a solution (records with messages are used as they are).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStyle {
    /// The solution as written; `\n\n\boxed{answer}` is appended when it
    /// has no `\boxed{}` or `####` of its own. No solution: `\boxed{answer}`.
    #[default]
    Solution,
    /// `<think>\n{solution}\n</think>\n\n\boxed{answer}`.
    Think,
    /// `\boxed{answer}`, with `enable_thinking: false` in the kwargs.
    Direct,
}

/// The think-on assistant content: `<think>\nTRACE\n</think>\n\n\boxed{ANSWER}`.
pub fn think_content(trace: &str, answer: &str) -> String {
    format!("<think>\n{}\n</think>\n\n\\boxed{{{answer}}}", trace.trim())
}

/// The think-off assistant content: `\boxed{ANSWER}`.
pub fn direct_content(answer: &str) -> String {
    format!("\\boxed{{{answer}}}")
}

impl Task {
    /// The messages to generate from: the prompt text as one user message,
    /// or the conversation without its trailing assistant turn(s).
    pub fn prompt_messages(&self) -> Vec<Message> {
        match &self.prompt {
            Prompt::Text(t) => vec![Message::new("user", t.clone())],
            Prompt::Messages(ms) => {
                let keep = ms
                    .iter()
                    .rposition(|m| m.role != "assistant")
                    .map_or(0, |i| i + 1);
                ms[..keep].to_vec()
            }
        }
    }

    /// The conversation to train on. A record whose messages end with an
    /// assistant turn is used as is; otherwise the assistant turn is built
    /// from `solution`/`answer` per `style`. Error when there is nothing to
    /// learn (no assistant turn, solution or answer).
    pub fn to_sft_messages(&self, style: TargetStyle) -> Result<Conversation, DataError> {
        let mut kwargs = self.chat_template_kwargs.clone();
        if let Prompt::Messages(ms) = &self.prompt {
            if ms.last().is_some_and(|m| m.role == "assistant") {
                return Ok(Conversation {
                    messages: ms.clone(),
                    chat_template_kwargs: kwargs,
                });
            }
        }
        let no_target = || DataError::NoSftTarget {
            loc: self.source.clone(),
        };
        let solution = self.solution.as_deref().map(str::trim);
        let answer = self.answer.as_deref().map(str::trim);
        let content = match style {
            TargetStyle::Solution => match (solution, answer) {
                (Some(s), Some(a)) if !has_answer_marker(s) => format!("{s}\n\n\\boxed{{{a}}}"),
                (Some(s), _) => s.to_string(),
                (None, Some(a)) => direct_content(a),
                (None, None) => return Err(no_target()),
            },
            TargetStyle::Think => {
                let (Some(s), Some(a)) = (solution, answer) else {
                    return Err(no_target());
                };
                think_content(s, a)
            }
            TargetStyle::Direct => {
                let a = answer.ok_or_else(no_target)?;
                kwargs
                    .get_or_insert_with(Default::default)
                    .insert("enable_thinking".into(), false.into());
                direct_content(a)
            }
        };
        let mut messages = self.prompt_messages();
        messages.push(Message::new("assistant", content));
        Ok(Conversation {
            messages,
            chat_template_kwargs: kwargs,
        })
    }
}

fn has_answer_marker(solution: &str) -> bool {
    solution.contains("\\boxed") || solution.contains("####")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(prompt: Prompt, answer: Option<&str>, solution: Option<&str>) -> Task {
        Task {
            id: "t".into(),
            source: Location {
                file: "t.jsonl".into(),
                line: 3,
            },
            prompt,
            answer: answer.map(Into::into),
            verifier: "math".into(),
            solution: solution.map(Into::into),
            chat_template_kwargs: None,
            pass_rate: None,
        }
    }

    #[test]
    fn solution_style_appends_the_boxed_answer_once() {
        let t = task(Prompt::Text("Q?".into()), Some("72"), Some("6*12=72."));
        let c = t.to_sft_messages(TargetStyle::Solution).unwrap();
        assert_eq!(
            c.messages,
            vec![
                Message::new("user", "Q?"),
                Message::new("assistant", "6*12=72.\n\n\\boxed{72}")
            ]
        );
        let t = task(Prompt::Text("Q?".into()), None, Some(r"so \boxed{5}."));
        let c = t.to_sft_messages(TargetStyle::Solution).unwrap();
        assert_eq!(c.messages[1].content, r"so \boxed{5}.");
    }

    #[test]
    fn think_and_direct_styles() {
        let t = task(Prompt::Text("Q?".into()), Some("72"), Some("trace"));
        let c = t.to_sft_messages(TargetStyle::Think).unwrap();
        assert_eq!(
            c.messages[1].content,
            "<think>\ntrace\n</think>\n\n\\boxed{72}"
        );
        assert_eq!(c.enable_thinking(), None);
        let c = t.to_sft_messages(TargetStyle::Direct).unwrap();
        assert_eq!(c.messages[1].content, "\\boxed{72}");
        assert_eq!(c.enable_thinking(), Some(false));
    }

    #[test]
    fn messages_ending_with_assistant_are_used_as_is() {
        let ms = vec![
            Message::new("system", "/no_think"),
            Message::new("user", "Q?"),
            Message::new("assistant", "A"),
        ];
        let t = task(Prompt::Messages(ms.clone()), None, None);
        assert_eq!(t.to_sft_messages(TargetStyle::Think).unwrap().messages, ms);
        assert_eq!(t.prompt_messages(), ms[..2].to_vec());
    }

    #[test]
    fn nothing_to_learn_names_the_line() {
        let t = task(Prompt::Text("Q?".into()), None, None);
        let e = t.to_sft_messages(TargetStyle::Solution).unwrap_err();
        assert!(e.to_string().starts_with("t.jsonl:3: "), "{e}");
    }
}
