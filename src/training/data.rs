//! Training data for the root crate's trainers, read through the `train`
//! crate's loaders (JSONL / Parquet, field mapping, file:line errors):
//! conversations for SFT, held-out tasks for eval, and reward-model records.

use std::path::Path;

use serde_json::{Map, Value};

use quorum_train::data::{ensure_references, load_tasks, read_raw_records, LoadReport, Message};
use quorum_train::rm::data::{classify, RmRecord};
use quorum_train::rm_config::RmData;
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

pub(crate) fn eval_task(t: quorum_train::data::Task) -> EvalTask {
    EvalTask {
        messages: chat(t.prompt_messages()),
        answer: t.answer.clone().unwrap_or_default(),
        verifier: t.verifier.clone(),
        pass_rate: t.pass_rate,
    }
}

/// Reward-model records of `path` (tasks, labelled completions, pairs; see
/// [`quorum_train::rm::data`]). Task references must parse for their
/// verifier; an unlabelled completion is labelled by it (on the answer
/// after the think block, as rollouts are judged).
pub fn load_rm_records(path: &Path, data: &RmData) -> anyhow::Result<Vec<RmRecord>> {
    let mut opts = data.task_options();
    opts.require_answer = false;
    let loaded = load_tasks(&[path], &opts)?;
    report(&path.display().to_string(), &loaded.report);
    let with_answers: Vec<_> = loaded
        .tasks
        .iter()
        .filter(|t| t.answer.is_some())
        .cloned()
        .collect();
    ensure_references(&with_answers)?;
    let raw = read_raw_records(&[path])?;
    let judge = |t: &quorum_train::data::Task, completion: &str| match (
        quorum_scoring::verifier_by_name(&t.verifier),
        &t.answer,
    ) {
        (Ok(v), Some(a)) => v.verify(quorum_scoring::after_think(completion), a).correct,
        _ => false,
    };
    Ok(classify(loaded.tasks, &raw, &data.rm_fields, &judge)?)
}
