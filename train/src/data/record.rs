//! One record (a JSON object: a JSONL line or a Parquet row) to a [`Task`],
//! through the [`FieldMap`] and the [`AnswerFormat`] rule.

use std::collections::HashMap;

use quorum_scoring::extract::last_boxed;
use serde_json::{Map, Value};

use super::error::DataError;
use super::fields::{AnswerFormat, LoadOptions};
use super::location::Location;
use super::task::{Message, Prompt, Task, PASS_RATE_FIELD};

/// Verifier names already checked while loading (`verifier_by_name` compiles
/// regexes; a file usually names one or two verifiers).
#[derive(Default)]
pub(crate) struct VerifierNames(HashMap<String, Result<(), String>>);

impl VerifierNames {
    fn check(&mut self, name: &str) -> Result<(), String> {
        self.0
            .entry(name.to_string())
            .or_insert_with(|| {
                quorum_scoring::verifier_by_name(name)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .clone()
    }
}

/// A field's value: the key itself, else a dotted path into nested objects.
/// JSON `null` (Parquet's missing values) counts as absent.
fn lookup<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let found = obj.get(name).or_else(|| {
        let mut parts = name.split('.');
        let mut cur = obj.get(parts.next()?)?;
        for p in parts {
            cur = cur.as_object()?.get(p)?;
        }
        Some(cur)
    })?;
    (!found.is_null()).then_some(found)
}

struct Record<'a> {
    obj: &'a Map<String, Value>,
    loc: &'a Location,
}

impl Record<'_> {
    fn bad(&self, field: &str, message: impl Into<String>) -> DataError {
        DataError::BadField {
            loc: self.loc.clone(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn missing(&self, field: &str) -> DataError {
        DataError::MissingField {
            loc: self.loc.clone(),
            field: field.to_string(),
        }
    }

    fn string(&self, field: &str) -> Result<Option<String>, DataError> {
        match lookup(self.obj, field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => {
                Err(self.bad(field, format!("expected a string, found {}", kind(other))))
            }
        }
    }

    /// A string, or a number written as text (answers, ids).
    fn text_or_number(&self, field: &str) -> Result<Option<String>, DataError> {
        match lookup(self.obj, field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(self.bad(
                field,
                format!("expected a string or a number, found {}", kind(other)),
            )),
        }
    }

    fn messages(&self, field: &str, v: &Value) -> Result<Vec<Message>, DataError> {
        let Value::Array(items) = v else {
            return Err(self.bad(
                field,
                format!("expected a list of messages, found {}", kind(v)),
            ));
        };
        if items.is_empty() {
            return Err(self.bad(field, "empty list of messages"));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, m)| {
                message(m).map_err(|e| self.bad(field, format!("message {}: {e}", i + 1)))
            })
            .collect()
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `{role, content}`; content may also be OpenAI-style text parts.
fn message(v: &Value) -> Result<Message, String> {
    let Value::Object(m) = v else {
        return Err(format!("expected an object, found {}", kind(v)));
    };
    let role = match m.get("role") {
        Some(Value::String(r)) if !r.is_empty() => r.clone(),
        Some(other) if !other.is_null() => return Err(format!("`role` is {}", kind(other))),
        _ => return Err("missing `role`".into()),
    };
    let content = match m.get("content") {
        Some(Value::String(c)) => c.clone(),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for p in parts {
                match p.get("text").and_then(Value::as_str) {
                    Some(t) => text.push_str(t),
                    None => return Err("`content` part without `text`".into()),
                }
            }
            text
        }
        Some(other) if !other.is_null() => return Err(format!("`content` is {}", kind(other))),
        _ => return Err("missing `content`".into()),
    };
    Ok(Message { role, content })
}

/// `reasoning … #### 72` → (`72`, `reasoning …`).
fn split_gsm8k(answer: &str) -> Option<(String, String)> {
    let i = answer.rfind("####")?;
    let after = answer[i + 4..].trim();
    let final_line = after.lines().next().unwrap_or("").trim();
    if final_line.is_empty() {
        return None;
    }
    Some((final_line.to_string(), answer[..i].trim().to_string()))
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

pub(crate) fn task_from_value(
    value: &Value,
    loc: &Location,
    opts: &LoadOptions,
    verifiers: &mut VerifierNames,
) -> Result<Task, DataError> {
    let Value::Object(obj) = value else {
        return Err(DataError::Malformed {
            loc: loc.clone(),
            message: format!("expected a JSON object, found {}", kind(value)),
        });
    };
    let r = Record { obj, loc };
    let f = &opts.fields;

    let prompt = match (lookup(obj, &f.prompt), lookup(obj, &f.messages)) {
        (Some(Value::String(s)), _) if s.trim().is_empty() => {
            return Err(r.bad(&f.prompt, "empty prompt"))
        }
        (Some(Value::String(s)), _) => Prompt::Text(s.clone()),
        (Some(v @ Value::Array(_)), _) => Prompt::Messages(r.messages(&f.prompt, v)?),
        (Some(other), _) => {
            return Err(r.bad(
                &f.prompt,
                format!(
                    "expected a string or a list of messages, found {}",
                    kind(other)
                ),
            ))
        }
        (None, Some(v)) => Prompt::Messages(r.messages(&f.messages, v)?),
        (None, None) => return Err(r.missing(&format!("{}` or `{}", f.prompt, f.messages))),
    };

    let mut answer = non_empty(r.text_or_number(&f.answer)?);
    let solution_field = non_empty(r.string(&f.solution)?);
    let mut solution = solution_field.clone();
    let gsm8k = |answer: &mut Option<String>, solution: &mut Option<String>| {
        let raw = answer.as_deref()?;
        let (a, s) = split_gsm8k(raw)?;
        *answer = Some(a);
        if solution_field.is_none() && !s.is_empty() {
            *solution = Some(s);
        }
        Some(())
    };
    let boxed = |solution: &Option<String>| solution.as_deref().and_then(last_boxed);
    match opts.answer_format {
        AnswerFormat::Plain => {}
        AnswerFormat::Gsm8k => {
            if answer.is_none() {
                return Err(r.missing(&f.answer));
            }
            gsm8k(&mut answer, &mut solution)
                .ok_or_else(|| r.bad(&f.answer, "no `#### N` line (answer_format = gsm8k)"))?;
        }
        AnswerFormat::Boxed => {
            if answer.is_none() {
                if solution.is_none() {
                    return Err(r.missing(&format!("{}` or `{}", f.answer, f.solution)));
                }
                let b = boxed(&solution)
                    .ok_or_else(|| r.bad(&f.solution, "no \\boxed{} (answer_format = boxed)"))?;
                answer = Some(b);
            }
        }
        AnswerFormat::Auto => {
            if answer.as_deref().is_some_and(|a| a.contains("####")) {
                gsm8k(&mut answer, &mut solution);
            } else if answer.is_none() {
                answer = boxed(&solution);
            }
        }
    }
    let answer = non_empty(answer.map(|a| a.trim().to_string()));
    if opts.require_answer && answer.is_none() {
        return Err(r.missing(&f.answer));
    }

    let verifier = r
        .string(&f.verifier)?
        .unwrap_or_else(|| opts.verifier.clone());
    verifiers
        .check(&verifier)
        .map_err(|message| DataError::UnknownVerifier {
            loc: loc.clone(),
            name: verifier.clone(),
            message,
        })?;

    let chat_template_kwargs = match lookup(obj, &f.chat_template_kwargs) {
        None => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(other) => {
            return Err(r.bad(
                &f.chat_template_kwargs,
                format!("expected an object, found {}", kind(other)),
            ))
        }
    };
    let pass_rate = match lookup(obj, PASS_RATE_FIELD) {
        None => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(p) if (0.0..=1.0).contains(&p) => Some(p),
            _ => return Err(r.bad(PASS_RATE_FIELD, format!("{n} is not in [0, 1]"))),
        },
        Some(other) => {
            return Err(r.bad(
                PASS_RATE_FIELD,
                format!("expected a number in [0, 1], found {}", kind(other)),
            ))
        }
    };
    let id = r.text_or_number(&f.id)?.unwrap_or_else(|| loc.to_string());
    Ok(Task {
        id,
        source: loc.clone(),
        prompt,
        answer,
        verifier,
        solution,
        chat_template_kwargs,
        pass_rate,
    })
}
