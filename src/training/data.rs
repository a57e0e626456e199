//! Training data for the root crate's trainers: conversations for SFT and
//! held-out tasks for eval, read through the `train` crate's loaders.

use std::path::Path;

use anyhow::Context;
use serde_json::{Map, Value};

use crate::chat::ChatMessage;

use super::eval::EvalTask;

/// One SFT conversation and its template kwargs.
pub struct Conversation {
    pub messages: Vec<ChatMessage>,
    pub kwargs: Map<String, Value>,
    /// `file:line`, for messages.
    pub origin: String,
}

/// Conversations of a JSONL file: `{"messages": [...], "chat_template_kwargs"?}`.
pub fn load_conversations(path: &Path) -> anyhow::Result<Vec<Conversation>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let origin = format!("{}:{}", path.display(), i + 1);
        let v: Value = serde_json::from_str(line).with_context(|| origin.clone())?;
        let messages: Vec<ChatMessage> = serde_json::from_value(
            v.get("messages")
                .cloned()
                .with_context(|| format!("{origin}: no `messages`"))?,
        )
        .with_context(|| format!("{origin}: `messages`"))?;
        let kwargs = v
            .get("chat_template_kwargs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        out.push(Conversation {
            messages,
            kwargs,
            origin,
        });
    }
    anyhow::ensure!(!out.is_empty(), "{}: no conversations", path.display());
    Ok(out)
}

/// Held-out tasks: `{"prompt", "answer", "verifier"?}`.
pub fn load_tasks(path: &Path) -> anyhow::Result<Vec<EvalTask>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let origin = format!("{}:{}", path.display(), i + 1);
        let v: Value = serde_json::from_str(line).with_context(|| origin.clone())?;
        let prompt = v
            .get("prompt")
            .and_then(Value::as_str)
            .with_context(|| format!("{origin}: no `prompt`"))?;
        let answer = match v.get("answer") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => anyhow::bail!("{origin}: no `answer`"),
        };
        let verifier = v
            .get("verifier")
            .and_then(Value::as_str)
            .unwrap_or("math")
            .to_string();
        out.push(EvalTask {
            messages: vec![ChatMessage::user(prompt)],
            answer,
            verifier,
        });
    }
    anyhow::ensure!(!out.is_empty(), "{}: no tasks", path.display());
    Ok(out)
}
