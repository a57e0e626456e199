//! The `selection` request field and the per-model defaults of the server
//! configuration.
//!
//! `selection` is a [`SelectionConfig`] (`{"strategy": "majority", ...}`,
//! strategy parameters alongside) plus Quorum's serving keys, taken out
//! before the strategy is parsed:
//! - `extract`: how answers are pulled out of completions — a preset name
//!   (`math` (default), `gsm8k`, `choice`, `explicit`) or an
//!   [`ExtractConfig`] object (`{"extractors": ["boxed", ...], "after_think": true,
//!   "regex": "ANSWER: (\\S+)"}`); `regex` is compiled here, so a bad pattern is
//!   an error naming `selection.extract.regex`;
//! - `early_stop` (bool, default false): adaptive stopping, see [`super::early`];
//! - `warmup` (int): for `confidence` early stop, how many finished
//!   rollouts set the threshold (default `ceil(rollouts / 4)`).
//!
//! A bare string (`"selection": "majority"`) is shorthand for `{"strategy": ...}`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use quorum_scoring::{AnswerPattern, ExtractConfig, SelectionConfig};
use serde::Deserialize;
use serde_json::Value;

use crate::server::config::ServerConfig;

/// A parsed `selection` field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelectionOptions {
    pub config: SelectionConfig,
    /// `None`: the math chain, explicit markers only for truncated rollouts.
    pub extract: Option<ExtractConfig>,
    pub early_stop: bool,
    pub warmup: Option<usize>,
}

impl SelectionOptions {
    /// Parses the JSON value; the error names the offending part.
    pub fn parse(v: &Value) -> Result<Self, String> {
        let mut obj = match v {
            Value::String(s) => {
                let mut m = serde_json::Map::new();
                m.insert("strategy".into(), Value::String(s.clone()));
                m
            }
            Value::Object(m) => m.clone(),
            _ => return Err(
                "selection must be an object like {\"strategy\": \"majority\"} or a strategy name"
                    .into(),
            ),
        };
        let extract = match obj.remove("extract") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(extract_preset(&name)?),
            Some(Value::Object(mut m)) => {
                // Compiled here (once per request) so that the error names the key.
                let regex = match m.remove("regex") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(p)) => Some(
                        AnswerPattern::new(&p)
                            .map_err(|e| format!("selection.extract.regex: {e}"))?,
                    ),
                    Some(_) => {
                        return Err("selection.extract.regex must be a string (a regular expression)".into())
                    }
                };
                let mut cfg: ExtractConfig = serde_json::from_value(Value::Object(m))
                    .map_err(|e| format!("selection.extract: {e}"))?;
                cfg.regex = regex;
                Some(cfg)
            }
            Some(_) => {
                return Err(
                    "selection.extract must be a preset name (math, gsm8k, choice, explicit) or an object".into(),
                )
            }
        };
        let early_stop = match obj.remove("early_stop") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err("selection.early_stop must be a boolean".into()),
        };
        let warmup = match obj.remove("warmup") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64().and_then(|w| usize::try_from(w).ok()) {
                Some(w) if w >= 1 => Some(w),
                _ => return Err("selection.warmup must be a positive integer".into()),
            },
        };
        if !obj.contains_key("strategy") {
            return Err("selection.strategy is required (first, majority, best_of_n, weighted_majority, confidence)".into());
        }
        let config: SelectionConfig =
            serde_json::from_value(Value::Object(obj)).map_err(|e| format!("selection: {e}"))?;
        config.build().map_err(|e| format!("selection: {e}"))?;
        Ok(Self {
            config,
            extract,
            early_stop,
            warmup,
        })
    }

    /// The strategy's wire name (`majority`, `best_of_n`, ...).
    pub fn strategy_name(&self) -> &'static str {
        match self.config {
            SelectionConfig::First => "first",
            SelectionConfig::Majority => "majority",
            SelectionConfig::BestOfN { .. } => "best_of_n",
            SelectionConfig::WeightedMajority { .. } => "weighted_majority",
            SelectionConfig::Confidence(_) => "confidence",
        }
    }
}

fn extract_preset(name: &str) -> Result<ExtractConfig, String> {
    Ok(match name {
        "math" => ExtractConfig::math(),
        "gsm8k" => ExtractConfig::gsm8k(),
        "choice" => ExtractConfig::choice(),
        "explicit" => ExtractConfig::explicit(),
        other => {
            return Err(format!(
                "selection.extract `{other}` is not one of math, gsm8k, choice, explicit"
            ))
        }
    })
}

/// Per-model serving defaults, `[server.defaults.ID]` in the TOML file
/// (`"*"` applies to every model without its own entry).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDefaults {
    /// Rollouts drawn when a request does not say (at least `n`).
    pub rollouts: Option<usize>,
    /// `selection` used when a request does not give one.
    pub selection: Option<Value>,
    /// Reward model of this model (overrides `--reward-model`).
    pub reward_model: Option<PathBuf>,
    /// Special-token text in user / tool contents acts as control tokens
    /// (overrides `--allow-special-tokens-in-content`).
    pub allow_special_tokens_in_content: Option<bool>,
}

/// Checks every configured default `selection` at start-up.
pub fn check_defaults(defaults: &BTreeMap<String, ModelDefaults>) -> Result<(), String> {
    for (id, d) in defaults {
        if let Some(v) = &d.selection {
            SelectionOptions::parse(v).map_err(|e| format!("defaults.{id}: {e}"))?;
        }
        if d.rollouts == Some(0) {
            return Err(format!("defaults.{id}.rollouts must be at least 1"));
        }
    }
    Ok(())
}

impl ServerConfig {
    /// The defaults that apply to `model` (its own entry, else `"*"`).
    pub fn model_defaults(&self, model: &str) -> Option<&ModelDefaults> {
        self.defaults.get(model).or_else(|| self.defaults.get("*"))
    }

    /// Rollouts drawn when the request gives neither `rollouts` nor `best_of`.
    pub fn default_rollouts(&self, model: &str) -> usize {
        self.model_defaults(model)
            .and_then(|d| d.rollouts)
            .unwrap_or(1)
    }

    /// `selection` used when the request gives none.
    pub fn default_selection(&self, model: &str) -> Option<Value> {
        self.model_defaults(model).and_then(|d| d.selection.clone())
    }

    /// How special-token text in `model`'s message contents is tokenized.
    pub fn special_token_policy(&self, model: &str) -> crate::chat::SpecialTokenPolicy {
        crate::chat::SpecialTokenPolicy {
            allow_in_content: self
                .model_defaults(model)
                .and_then(|d| d.allow_special_tokens_in_content)
                .unwrap_or(self.allow_special_tokens_in_content),
        }
    }

    /// The reward model directory of `model`, if any.
    pub fn reward_model_dir(&self, model: &str) -> Option<PathBuf> {
        self.model_defaults(model)
            .and_then(|d| d.reward_model.clone())
            .or_else(|| self.reward_model.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serving_keys_are_taken_out_before_the_strategy() {
        let o = SelectionOptions::parse(
            &json!({"strategy": "confidence", "keep_fraction": 0.5, "early_stop": true, "extract": "gsm8k", "warmup": 2}),
        )
        .unwrap();
        assert!(o.early_stop);
        assert_eq!(o.warmup, Some(2));
        assert_eq!(o.extract, Some(ExtractConfig::gsm8k()));
        assert_eq!(o.strategy_name(), "confidence");
        let o = SelectionOptions::parse(&json!("best_of_n")).unwrap();
        assert_eq!(o.strategy_name(), "best_of_n");
    }

    #[test]
    fn extract_regex_is_compiled_at_parse_time() {
        let o = SelectionOptions::parse(
            &json!({"strategy": "majority", "extract": {"regex": "ANSWER: (\\S+)", "after_think": false}}),
        )
        .unwrap();
        let cfg = o.extract.unwrap();
        assert_eq!(
            cfg.regex.as_ref().map(|p| p.as_str()),
            Some("ANSWER: (\\S+)")
        );
        assert!(!cfg.after_think);
        assert_eq!(cfg.extractors, ExtractConfig::math().extractors);
        let e = SelectionOptions::parse(
            &json!({"strategy": "majority", "extract": {"regex": "(unclosed"}}),
        )
        .unwrap_err();
        assert!(
            e.starts_with("selection.extract.regex: invalid regex `(unclosed`"),
            "{e}"
        );
        assert!(e.contains("unclosed group"), "{e}");
    }

    #[test]
    fn bad_values_are_rejected_with_a_reason() {
        for v in [
            json!({"strategy": "vibes"}),
            json!({"strategy": "confidence", "keep_fraction": 2.0}),
            json!({"early_stop": true}),
            json!({"strategy": "majority", "early_stop": "yes"}),
            json!({"strategy": "majority", "extract": "roman"}),
            json!({"strategy": "majority", "extract": {"extractors": ["regex"]}}),
            json!({"strategy": "majority", "extract": {"regex": 5}}),
            json!(3),
        ] {
            assert!(SelectionOptions::parse(&v).is_err(), "{v}");
        }
    }
}
