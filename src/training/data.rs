//! Training data for the root crate's trainers, read through the `train`
//! crate's loaders (JSONL / Parquet, field mapping, file:line errors):
//! conversations for SFT and held-out tasks for eval.

use std::path::Path;

use serde_json::{Map, Value};

use quorum_train::data::{ensure_references, load_tasks, LoadReport, Message};
use quorum_train::sft_config::DataSection;

use crate::chat::ChatMessage;

use super::eval::EvalTask;

/// One SFT conversation and its template kwargs.
pub struct Conversation {
    pub messages: Vec<ChatMessage>,
    pub kwargs: Map<String, Value>,
    /// `file:line`, for messages.
    pub origin: String,
}

fn chat(messages: Vec<Message>) -> Vec<ChatMessage> {
    messages
        .into_iter()
        .map(|m| ChatMessage::new(m.role, m.content))
        .collect()
}

fn report(what: &str, r: &LoadReport) {
    if r.skipped > 0 {
        eprintln!(
            "{what}: skipped {} malformed records (data.skip_malformed); first: {}",
            r.skipped,
            r.first_errors.join("; ")
        );
    }
}

/// SFT conversations of `path`: records with messages as they are, prompt +
/// solution records as `data.target` says.
pub fn load_conversations(path: &Path, data: &DataSection) -> anyhow::Result<Vec<Conversation>> {
    let loaded = load_tasks(&[path], &data.load_options(false))?;
    report(&path.display().to_string(), &loaded.report);
    let mut out = Vec::with_capacity(loaded.tasks.len());
    for task in &loaded.tasks {
        let conv = task.to_sft_messages(data.target)?;
        out.push(Conversation {
            messages: chat(conv.messages),
            kwargs: conv.chat_template_kwargs.unwrap_or_default(),
            origin: task.source.to_string(),
        });
    }
    Ok(out)
}

/// Held-out tasks (prompt side and reference answer); every reference must
/// parse for its verifier, checked before training starts.
pub fn load_eval_tasks(path: &Path, data: &DataSection) -> anyhow::Result<Vec<EvalTask>> {
    let loaded = load_tasks(&[path], &data.load_options(true))?;
    report(&path.display().to_string(), &loaded.report);
    ensure_references(&loaded.tasks)?;
    Ok(loaded.tasks.into_iter().map(eval_task).collect())
}

/// Prompt tasks of `path` with explicit load options (GRPO's data section);
/// every reference must parse for its verifier, checked before training.
pub fn load_eval_tasks_with(
    path: &Path,
    opts: &quorum_train::data::LoadOptions,
) -> anyhow::Result<Vec<EvalTask>> {
    let loaded = load_tasks(&[path], opts)?;
    report(&path.display().to_string(), &loaded.report);
    ensure_references(&loaded.tasks)?;
    Ok(loaded.tasks.into_iter().map(eval_task).collect())
}

fn eval_task(t: quorum_train::data::Task) -> EvalTask {
    EvalTask {
        messages: chat(t.prompt_messages()),
        answer: t.answer.clone().unwrap_or_default(),
        verifier: t.verifier.clone(),
        pass_rate: t.pass_rate,
    }
}
