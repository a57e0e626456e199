//! `tokenizer_config.json`: the fields serving needs, normalised.
//!
//! The file is parsed as untyped JSON first and each field checked by hand, so
//! an unexpected shape yields an error naming the field instead of serde's
//! "invalid type at line 1 column 93817".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::TokenizerError;

/// HF writes `model_max_length` as 1e30 (`VERY_LARGE_INTEGER`) to mean "no
/// limit"; anything at or above this is treated as unset.
const UNSET_MAX_LENGTH: f64 = 1e18;

/// The parts of `tokenizer_config.json` that serving uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenizerConfig {
    /// The chat template to use: the plain string form, or the template named
    /// `default` of the list form. `None` when the model has none (callers fall
    /// back to [`crate::chat::ChatTemplate::fallback`]).
    pub chat_template: Option<String>,
    /// Every named template of the list form (`{name, template}` entries), for
    /// callers that want e.g. `tool_use`. Empty for the string form.
    pub chat_templates: BTreeMap<String, String>,
    /// BOS token text (string or `AddedToken` `content`).
    pub bos_token: Option<String>,
    /// EOS token text: the token that ends an assistant turn for chat models.
    pub eos_token: Option<String>,
    /// Padding token text.
    pub pad_token: Option<String>,
    /// Unknown-token text.
    pub unk_token: Option<String>,
    /// Whether plain `encode(.., add_special_tokens=true)` should start with BOS.
    pub add_bos_token: Option<bool>,
    /// Whether plain encoding should end with EOS (informational).
    pub add_eos_token: Option<bool>,
    /// Maximum sequence length the tokenizer was configured for, if set.
    pub model_max_length: Option<u64>,
}

impl TokenizerConfig {
    /// Loads `dir/tokenizer_config.json` if present (otherwise the default,
    /// empty config), then a sibling `chat_template.jinja` or
    /// `chat_template.json` when the config carries no template.
    pub(crate) fn load_dir(dir: &Path) -> Result<Self, TokenizerError> {
        let path = dir.join("tokenizer_config.json");
        let mut cfg = match read_optional(&path)? {
            Some(text) => Self::from_json_str(&text, &path)?,
            None => Self::default(),
        };
        if cfg.chat_template.is_none() {
            let jinja = dir.join("chat_template.jinja");
            if let Some(src) = read_optional(&jinja)? {
                cfg.chat_template = Some(src);
            } else {
                let json_path = dir.join("chat_template.json");
                if let Some(text) = read_optional(&json_path)? {
                    let root = parse_json(&text, &json_path)?;
                    let field = root.get("chat_template").unwrap_or(&Value::Null);
                    let (default, named) = parse_chat_template(field, &json_path)?;
                    cfg.chat_template = default;
                    cfg.chat_templates = named;
                }
            }
        }
        Ok(cfg)
    }

    /// Parses the text of a `tokenizer_config.json`; `path` names the file in
    /// errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self, TokenizerError> {
        let root = parse_json(text, path)?;
        let obj = root.as_object().ok_or_else(|| TokenizerError::Malformed {
            path: path.to_path_buf(),
            message: "top level is not a JSON object".into(),
        })?;
        let get = |k: &str| obj.get(k).unwrap_or(&Value::Null);
        let (chat_template, chat_templates) = parse_chat_template(get("chat_template"), path)?;
        Ok(Self {
            chat_template,
            chat_templates,
            bos_token: token_text(get("bos_token"), "bos_token", path)?,
            eos_token: token_text(get("eos_token"), "eos_token", path)?,
            pad_token: token_text(get("pad_token"), "pad_token", path)?,
            unk_token: token_text(get("unk_token"), "unk_token", path)?,
            add_bos_token: opt_bool(get("add_bos_token"), "add_bos_token", path)?,
            add_eos_token: opt_bool(get("add_eos_token"), "add_eos_token", path)?,
            model_max_length: max_length(get("model_max_length"), path)?,
        })
    }
}

fn bad(path: &Path, field: &str, message: impl Into<String>) -> TokenizerError {
    TokenizerError::BadField {
        path: path.to_path_buf(),
        field: field.to_string(),
        message: message.into(),
    }
}

fn parse_json(text: &str, path: &Path) -> Result<Value, TokenizerError> {
    serde_json::from_str(text).map_err(|e| TokenizerError::Malformed {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn read_optional(path: &PathBuf) -> Result<Option<String>, TokenizerError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TokenizerError::Io {
            path: path.clone(),
            source,
        }),
    }
}

/// A special token is either `"<s>"` or an AddedToken-like `{"content": "<s>", ...}`.
fn token_text(v: &Value, field: &str, path: &Path) -> Result<Option<String>, TokenizerError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Object(o) => match o.get("content") {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            _ => Err(bad(path, field, "object form needs a string `content`")),
        },
        other => Err(bad(
            path,
            field,
            format!("expected a string or {{content}}, got {other}"),
        )),
    }
}

fn opt_bool(v: &Value, field: &str, path: &Path) -> Result<Option<bool>, TokenizerError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        other => Err(bad(path, field, format!("expected a boolean, got {other}"))),
    }
}

fn max_length(v: &Value, path: &Path) -> Result<Option<u64>, TokenizerError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) if (u as f64) < UNSET_MAX_LENGTH => Ok(Some(u)),
            (_, Some(f)) if f >= UNSET_MAX_LENGTH => Ok(None),
            (_, Some(f)) if f >= 0.0 && f.fract() == 0.0 => Ok(Some(f as u64)),
            _ => Err(bad(path, "model_max_length", format!("not a length: {n}"))),
        },
        other => Err(bad(
            path,
            "model_max_length",
            format!("expected a number, got {other}"),
        )),
    }
}

type ParsedTemplates = (Option<String>, BTreeMap<String, String>);

/// `chat_template` is a string, or a list of `{name, template}` of which the
/// one named `default` is used (HF's rule; with no `default` HF refuses to
/// pick, so the main template stays `None` and only the named map is filled).
fn parse_chat_template(v: &Value, path: &Path) -> Result<ParsedTemplates, TokenizerError> {
    const FIELD: &str = "chat_template";
    match v {
        Value::Null => Ok((None, BTreeMap::new())),
        Value::String(s) => Ok((Some(s.clone()), BTreeMap::new())),
        Value::Array(items) => {
            let mut named = BTreeMap::new();
            for (i, item) in items.iter().enumerate() {
                let name = item.get("name").and_then(Value::as_str);
                let template = item.get("template").and_then(Value::as_str);
                match (name, template) {
                    (Some(n), Some(t)) => {
                        named.insert(n.to_string(), t.to_string());
                    }
                    _ => {
                        let msg = format!("entry {i} needs string `name` and `template`");
                        return Err(bad(path, FIELD, msg));
                    }
                }
            }
            Ok((named.get("default").cloned(), named))
        }
        other => {
            let kind = match other {
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                _ => "an object",
            };
            Err(bad(
                path,
                FIELD,
                format!("expected a string or a list of {{name, template}}, got {kind}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TokenizerConfig, TokenizerError> {
        TokenizerConfig::from_json_str(text, Path::new("tokenizer_config.json"))
    }

    #[test]
    fn added_token_objects_and_named_templates_are_normalised() -> Result<(), TokenizerError> {
        let cfg = parse(
            r#"{"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>",
                "chat_template": [{"name": "tool_use", "template": "T"},
                                  {"name": "default", "template": "D"}],
                "add_bos_token": true, "model_max_length": 1000000000000000019884624838656}"#,
        )?;
        assert_eq!(cfg.bos_token.as_deref(), Some("<s>"));
        assert_eq!(cfg.eos_token.as_deref(), Some("</s>"));
        assert_eq!(cfg.chat_template.as_deref(), Some("D"));
        assert_eq!(
            cfg.chat_templates.get("tool_use").map(String::as_str),
            Some("T")
        );
        assert_eq!(cfg.add_bos_token, Some(true));
        assert_eq!(cfg.model_max_length, None);
        Ok(())
    }

    #[test]
    fn bad_field_errors_name_file_and_field() {
        let msg = parse(r#"{"eos_token": 5}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("tokenizer_config.json: field `eos_token`"),
            "{msg}"
        );
        let msg = parse(r#"{"chat_template": [{"name": "x"}]}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("field `chat_template`"), "{msg}");
        let msg = parse("[1, 2")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("tokenizer_config.json: malformed"), "{msg}");
    }
}
