//! Chat messages and their conversion to template values.

use minijinja::Value;
use serde::{Deserialize, Deserializer, Serialize};

/// One chat message as the template sees it. The server flattens multi-part
/// content to a string before building these.
///
/// Absent optional fields are *missing* in the template context, not `none`:
/// HF templates test `message.reasoning_content is defined`, which must be
/// false when the client sent no such field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool`, ...
    pub role: String,
    /// Text content; `null` in JSON (assistant messages with only tool calls)
    /// becomes the empty string, as templates concatenate it unconditionally.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub content: String,
    /// Reasoning of an earlier assistant turn (Qwen3 / DeepSeek-R1 style).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// OpenAI-style tool calls of an assistant turn, passed through verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<serde_json::Value>,
    /// Tool-call id a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Optional participant or tool name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

impl ChatMessage {
    /// A message with just a role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            ..Self::default()
        }
    }

    /// `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }

    /// Sets `reasoning_content`.
    pub fn with_reasoning(mut self, reasoning: impl Into<String>) -> Self {
        self.reasoning_content = Some(reasoning.into());
        self
    }

    /// The template value: a map with only the fields that are present, in
    /// OpenAI field order.
    pub(crate) fn to_value(&self) -> Value {
        let mut pairs: Vec<(&str, Value)> = vec![
            ("role", Value::from(self.role.as_str())),
            ("content", Value::from(self.content.as_str())),
        ];
        if let Some(r) = &self.reasoning_content {
            pairs.push(("reasoning_content", Value::from(r.as_str())));
        }
        if let Some(tc) = &self.tool_calls {
            pairs.push(("tool_calls", json_to_value(tc)));
        }
        if let Some(id) = &self.tool_call_id {
            pairs.push(("tool_call_id", Value::from(id.as_str())));
        }
        if let Some(n) = &self.name {
            pairs.push(("name", Value::from(n.as_str())));
        }
        Value::from_pairs(pairs)
    }
}

/// Converts JSON to a template value, keeping object key order (which shows
/// in `tojson` output; with serde_json's `preserve_order` feature that is the
/// client's order, as in Python).
pub(crate) fn json_to_value(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::from(()),
        J::Bool(b) => Value::from(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        J::String(s) => Value::from(s.as_str()),
        J::Array(items) => items.iter().map(json_to_value).collect(),
        J::Object(map) => {
            Value::from_pairs(map.iter().map(|(k, v)| (k.as_str(), json_to_value(v))))
        }
    }
}
