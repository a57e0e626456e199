//! How a file's columns map onto [`Task`](super::Task) fields, and the
//! load options (serde: the trainer's `[data]` / `[data.fields]` tables).

use serde::{Deserialize, Serialize};

/// Column names for each task field. A name with dots (`reward_model.ground_truth`)
/// reaches into nested objects when no column has the dotted name itself.
///
/// GSM8K: `prompt = "question"` (answer is already `answer`); MATH:
/// `prompt = "problem"` (solution is already `solution`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FieldMap {
    /// The prompt: a string, or a list of `{role, content}` messages.
    pub prompt: String,
    /// A conversation (`{role, content}` list); used when `prompt` is absent.
    pub messages: String,
    /// The reference answer (string or number).
    pub answer: String,
    /// A worked solution (string).
    pub solution: String,
    /// The verifier name (string); absent: [`LoadOptions::verifier`].
    pub verifier: String,
    /// The task id (string or number); absent: `file:line`.
    pub id: String,
    /// Chat template kwargs (object), e.g. `{"enable_thinking": false}`.
    pub chat_template_kwargs: String,
}

impl Default for FieldMap {
    fn default() -> Self {
        FieldMap {
            prompt: "prompt".into(),
            messages: "messages".into(),
            answer: "answer".into(),
            solution: "solution".into(),
            verifier: "verifier".into(),
            id: "id".into(),
            chat_template_kwargs: "chat_template_kwargs".into(),
        }
    }
}

/// How the answer and solution are read from the mapped fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerFormat {
    /// `gsm8k` when the answer field has a `#### N` line, `boxed` when there
    /// is no answer field and the solution has a `\boxed{}`, else `plain`.
    #[default]
    Auto,
    /// The answer and solution fields as they are.
    Plain,
    /// The answer field is `reasoning … #### N`: the answer is N, the
    /// solution the text before (unless a solution field exists). A record
    /// without `####` is an error.
    Gsm8k,
    /// The answer is the last `\boxed{}` of the solution (when there is no
    /// answer field). A record without one is an error.
    Boxed,
}

/// Options for [`load_tasks`](super::load_tasks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadOptions {
    pub fields: FieldMap,
    pub answer_format: AnswerFormat,
    /// The verifier of records without a verifier field.
    pub verifier: String,
    /// Skip malformed records (and count them) instead of failing.
    pub skip_malformed: bool,
    /// A record without a reference answer is an error (RL, evaluation).
    pub require_answer: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            fields: FieldMap::default(),
            answer_format: AnswerFormat::Auto,
            verifier: "math".into(),
            skip_malformed: false,
            require_answer: false,
        }
    }
}

impl LoadOptions {
    /// GSM8K's columns: `question`, `answer` (`… #### N`).
    pub fn gsm8k() -> Self {
        LoadOptions {
            fields: FieldMap {
                prompt: "question".into(),
                ..FieldMap::default()
            },
            answer_format: AnswerFormat::Gsm8k,
            ..LoadOptions::default()
        }
    }

    /// MATH's columns: `problem`, `solution` (with `\boxed{}`).
    pub fn math() -> Self {
        LoadOptions {
            fields: FieldMap {
                prompt: "problem".into(),
                ..FieldMap::default()
            },
            answer_format: AnswerFormat::Boxed,
            ..LoadOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        data: LoadOptions,
    }

    #[test]
    fn toml_tables_with_defaults() {
        let c: Cfg =
            toml_like(r#"{"data": {"answer_format": "gsm8k", "fields": {"prompt": "question"}}}"#)
                .unwrap();
        assert_eq!(c.data.fields.prompt, "question");
        assert_eq!(c.data.fields.answer, "answer");
        assert_eq!(c.data.answer_format, AnswerFormat::Gsm8k);
        assert_eq!(c.data.verifier, "math");
    }

    #[test]
    fn unknown_keys_are_errors_naming_them() {
        let e = toml_like(r#"{"data": {"fields": {"promt": "q"}}}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `promt`"), "{e}");
        let e = toml_like(r#"{"data": {"skip": true}}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `skip`"), "{e}");
    }

    // The same serde derive serves TOML; JSON keeps the crate free of a toml dep.
    fn toml_like(s: &str) -> Result<Cfg, serde_json::Error> {
        serde_json::from_str(s)
    }
}
