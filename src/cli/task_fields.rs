//! The dataset flags every command that reads a task file shares
//! (`train filter`, `bench eval`, `data distill`): which column holds the
//! prompt, the answer, the verifier…, read through the `train` crate's
//! loaders (JSONL or Parquet; a bad line is an error naming `file:line`).

use quorum_train::data::{AnswerFormat, FieldMap, LoadOptions};

#[derive(Debug, Clone, clap::Args)]
pub struct TaskFieldArgs {
    /// Column of the prompt (string or messages); GSM8K: question, MATH: problem.
    #[arg(long, default_value = "prompt")]
    pub prompt_field: String,
    /// Column of a conversation, used when the prompt column is absent.
    #[arg(long, default_value = "messages")]
    pub messages_field: String,
    #[arg(long, default_value = "answer")]
    pub answer_field: String,
    #[arg(long, default_value = "solution")]
    pub solution_field: String,
    #[arg(long, default_value = "verifier")]
    pub verifier_field: String,
    #[arg(long, default_value = "id")]
    pub id_field: String,
    #[arg(long, default_value = "chat_template_kwargs")]
    pub chat_template_kwargs_field: String,
    /// auto, plain, gsm8k (`… #### N`), boxed (last `\boxed{}` of the solution).
    #[arg(long, default_value = "auto", value_parser = parse_answer_format)]
    pub answer_format: AnswerFormat,
    /// Verifier of records that name none.
    #[arg(long, default_value = "math")]
    pub verifier: String,
    /// Skip (and count) malformed records instead of failing.
    #[arg(long)]
    pub skip_malformed: bool,
}

fn parse_answer_format(s: &str) -> Result<AnswerFormat, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("`{s}` is not one of auto, plain, gsm8k, boxed"))
}

impl TaskFieldArgs {
    /// Load options of task files with reference answers.
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            fields: FieldMap {
                prompt: self.prompt_field.clone(),
                messages: self.messages_field.clone(),
                answer: self.answer_field.clone(),
                solution: self.solution_field.clone(),
                verifier: self.verifier_field.clone(),
                id: self.id_field.clone(),
                chat_template_kwargs: self.chat_template_kwargs_field.clone(),
            },
            answer_format: self.answer_format,
            verifier: self.verifier.clone(),
            skip_malformed: self.skip_malformed,
            require_answer: true,
        }
    }
}
