//! Output records: task records and SFT conversations (think on / off),
//! with the think toggles the server understands spread over examples.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::rng::{mix64, Rng};
use super::{fnv1a64, Problem};
use crate::data::{direct_content, think_content, Message};

/// A task record (`--format tasks`); `solution` is the trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub prompt: String,
    pub answer: String,
    pub verifier: String,
    pub solution: String,
}

/// An SFT conversation (`--format sft`): `messages` ends with the assistant
/// turn; `answer`/`verifier` let the same file serve evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftRecord {
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template_kwargs: Option<Map<String, Value>>,
    pub id: String,
    pub answer: String,
    pub verifier: String,
}

/// How an SFT example asks for think on or off (what the server resolves:
/// `/think` and `/no_think` in a system or user message, the
/// `enable_thinking` template kwarg, or nothing = the default, on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Toggle {
    /// No toggle: thinking by default.
    Default,
    /// System message `/think`.
    SystemThink,
    /// ` /think` at the end of the user message.
    UserThink,
    /// System message `/no_think`.
    SystemNoThink,
    /// ` /no_think` at the end of the user message.
    UserNoThink,
    /// `"chat_template_kwargs": {"enable_thinking": false}`.
    KwargsNoThink,
}

impl Toggle {
    pub const THINK: [Toggle; 3] = [Toggle::Default, Toggle::SystemThink, Toggle::UserThink];
    pub const NO_THINK: [Toggle; 3] = [
        Toggle::SystemNoThink,
        Toggle::UserNoThink,
        Toggle::KwargsNoThink,
    ];

    /// Whether this toggle means think on.
    pub fn thinking(self) -> bool {
        Toggle::THINK.contains(&self)
    }
}

/// The share of think-on examples; each side's three toggles are equally likely.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThinkMix {
    pub think_ratio: f64,
}

impl Default for ThinkMix {
    fn default() -> Self {
        ThinkMix { think_ratio: 0.5 }
    }
}

const TOGGLE_SALT: u64 = 0x7468_696e_6b5f_6f6e;

impl ThinkMix {
    /// The toggle of one problem under `seed`: depends on both only (not on
    /// the problem's position), so it does not change with `--n`.
    pub fn toggle(&self, seed: u64, p: &Problem) -> Toggle {
        let mut rng = Rng::new(mix64(seed ^ TOGGLE_SALT) ^ fnv1a64(p.canonical.as_bytes()));
        let side = if rng.chance(self.think_ratio) {
            &Toggle::THINK
        } else {
            &Toggle::NO_THINK
        };
        *rng.pick(side)
    }
}

pub fn task_record(p: &Problem, kind: &str) -> TaskRecord {
    TaskRecord {
        id: p.id(kind),
        prompt: p.prompt.clone(),
        answer: p.answer.clone(),
        verifier: p.verifier.to_string(),
        solution: p.trace.clone(),
    }
}

pub fn sft_record(p: &Problem, kind: &str, toggle: Toggle) -> SftRecord {
    let mut messages = Vec::with_capacity(3);
    let mut user = p.prompt.clone();
    let mut kwargs = None;
    match toggle {
        Toggle::Default => {}
        Toggle::SystemThink => messages.push(Message::new("system", "/think")),
        Toggle::SystemNoThink => messages.push(Message::new("system", "/no_think")),
        Toggle::UserThink => user.push_str(" /think"),
        Toggle::UserNoThink => user.push_str(" /no_think"),
        Toggle::KwargsNoThink => {
            kwargs = Some(Map::from_iter([(
                "enable_thinking".to_string(),
                Value::Bool(false),
            )]))
        }
    }
    messages.push(Message::new("user", user));
    let content = if toggle.thinking() {
        think_content(&p.trace, &p.answer)
    } else {
        direct_content(&p.answer)
    };
    messages.push(Message::new("assistant", content));
    SftRecord {
        messages,
        chat_template_kwargs: kwargs,
        id: p.id(kind),
        answer: p.answer.clone(),
        verifier: p.verifier.to_string(),
    }
}
