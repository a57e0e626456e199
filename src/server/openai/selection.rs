//! The `selection` vendor field, typed: the strategy, its parameters and
//! Quorum's serving keys (the same parser checks `[server.defaults.ID]`
//! selections at start-up).
//!
//! `selection` is a [`SelectionConfig`] (`{"strategy": "majority", ...}`,
//! strategy parameters alongside) plus Quorum's serving keys, taken out
//! before the strategy is parsed:
//! - `extract`: how answers are pulled out of completions — a preset name
//!   (`math` (default), `gsm8k`, `choice`, `explicit`) or an
//!   [`ExtractConfig`] object (`{"extractors": ["boxed", ...], "after_think": true,
//!   "regex": "ANSWER: (\\S+)"}`); `regex` is compiled here, so a bad pattern is
//!   an error naming `selection.extract.regex`;
//! - `early_stop` (bool, default false): adaptive stopping (`server::selection::early`);
//! - `warmup` (int): for `confidence` early stop, how many finished
//!   rollouts set the threshold (default `ceil(rollouts / 4)`).
//!
//! A bare string (`"selection": "majority"`) is shorthand for `{"strategy": ...}`.
//!
//! `selection` and `selection.extract` are Quorum's own objects and strict:
//! an unknown key (`selection.stratgy`, a parameter the strategy does not
//! take) is an error naming its path. Errors are [`SelectionError`]s whose
//! `param` is the key to blame.

use quorum_scoring::{AnswerPattern, ExtractConfig, SelectionConfig};
use serde_json::{Map, Value};

use super::serde_message::plain;

/// A parsed `selection` field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelectionOptions {
    pub config: SelectionConfig,
    /// `None`: the math chain, explicit markers only for truncated rollouts.
    pub extract: Option<ExtractConfig>,
    pub early_stop: bool,
    pub warmup: Option<usize>,
}

/// A rejected `selection`: the key to blame (`selection.extract.regex`,
/// `selection.stratgy`) and why, in plain language.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SelectionError {
    pub param: String,
    pub message: String,
}

fn bad(param: impl Into<String>, message: impl Into<String>) -> SelectionError {
    SelectionError {
        param: param.into(),
        message: message.into(),
    }
}

/// Quorum's serving keys of `selection`, next to the strategy and its parameters.
const SERVING_KEYS: [&str; 3] = ["extract", "early_stop", "warmup"];

/// The strategy names, for messages.
const STRATEGIES: &str = "first, majority, best_of_n, weighted_majority, confidence";

impl SelectionOptions {
    /// Parses the JSON value. `selection` is Quorum's own object, so it is
    /// strict: an unknown key (`selection.stratgy`) is an error naming it.
    pub fn parse(v: &Value) -> Result<Self, SelectionError> {
        let mut obj = match v {
            Value::String(s) => {
                let mut m = serde_json::Map::new();
                m.insert("strategy".into(), Value::String(s.clone()));
                m
            }
            Value::Object(m) => m.clone(),
            _ => return Err(bad(
                "selection",
                "selection must be an object like {\"strategy\": \"majority\"} or a strategy name",
            )),
        };
        let extract = match obj.remove("extract") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(extract_preset(&name)?),
            Some(Value::Object(m)) => Some(extract_object(m)?),
            Some(_) => {
                return Err(bad(
                    "selection.extract",
                    "selection.extract must be a preset name (math, gsm8k, choice, explicit) or an object",
                ))
            }
        };
        let early_stop = match obj.remove("early_stop") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(_) => {
                return Err(bad(
                    "selection.early_stop",
                    "selection.early_stop must be a boolean",
                ))
            }
        };
        let warmup = match obj.remove("warmup") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64().and_then(|w| usize::try_from(w).ok()) {
                Some(w) if w >= 1 => Some(w),
                _ => {
                    return Err(bad(
                        "selection.warmup",
                        "selection.warmup must be a positive integer",
                    ))
                }
            },
        };
        let config = strategy_config(obj)?;
        config
            .build()
            .map_err(|e| bad("selection", format!("selection: {e}")))?;
        Ok(Self {
            config,
            extract,
            early_stop,
            warmup,
        })
    }

    /// The strategy's wire name (`majority`, `best_of_n`, ...).
    pub fn strategy_name(&self) -> &'static str {
        strategy_name(&self.config)
    }
}

fn strategy_name(config: &SelectionConfig) -> &'static str {
    match config {
        SelectionConfig::First => "first",
        SelectionConfig::Majority => "majority",
        SelectionConfig::BestOfN { .. } => "best_of_n",
        SelectionConfig::WeightedMajority { .. } => "weighted_majority",
        SelectionConfig::Confidence(_) => "confidence",
    }
}

/// The strategy and its parameters (what is left of `selection` once the
/// serving keys are out). Unknown keys are found by round-tripping: a
/// parameter the strategy knows comes back when the parsed config is
/// serialized (every parameter has a default and is always written).
fn strategy_config(obj: Map<String, Value>) -> Result<SelectionConfig, SelectionError> {
    let Some(strategy) = obj.get("strategy").cloned() else {
        let required = format!("selection.strategy is required ({STRATEGIES})");
        return Err(match obj.keys().next() {
            Some(k) => bad(
                format!("selection.{k}"),
                format!("selection.{k} is not a known key; {required}"),
            ),
            None => bad("selection.strategy", required),
        });
    };
    let solo = |key: Option<(&String, &Value)>| {
        let mut m = Map::new();
        m.insert("strategy".into(), strategy.clone());
        if let Some((k, v)) = key {
            m.insert(k.clone(), v.clone());
        }
        serde_json::from_value::<SelectionConfig>(Value::Object(m))
    };
    // Name the culprit of a type error: the strategy itself, else the first
    // parameter that fails on its own (every parameter has a default).
    if let Err(e) = solo(None) {
        return Err(bad(
            "selection.strategy",
            format!("selection.strategy: {}", plain(&e.to_string())),
        ));
    }
    let config = match serde_json::from_value::<SelectionConfig>(Value::Object(obj.clone())) {
        Ok(c) => c,
        Err(e) => {
            let culprit = obj
                .iter()
                .filter(|(k, _)| *k != "strategy")
                .find_map(|kv| solo(Some(kv)).err().map(|e| (kv.0.clone(), e)));
            return Err(match culprit {
                Some((k, e)) => bad(
                    format!("selection.{k}"),
                    format!("selection.{k}: {}", plain(&e.to_string())),
                ),
                None => bad("selection", format!("selection: {}", plain(&e.to_string()))),
            });
        }
    };
    let known = known_keys(&config);
    if let Some(k) = obj.keys().find(|k| *k != "strategy" && !known.contains(k)) {
        let params = if known.is_empty() {
            "it takes no parameters".to_string()
        } else {
            format!("its parameters are {}", known.join(", "))
        };
        return Err(bad(
            format!("selection.{k}"),
            format!(
                "selection.{k} is not a known key for strategy `{}` ({params}; every strategy also takes {})",
                strategy_name(&config),
                SERVING_KEYS.join(", ")
            ),
        ));
    }
    Ok(config)
}

/// The parameter names of `config`'s strategy (not `strategy` itself).
fn known_keys(config: &SelectionConfig) -> Vec<String> {
    match serde_json::to_value(config) {
        Ok(Value::Object(m)) => m
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k != "strategy")
            .collect(),
        _ => Vec::new(),
    }
}

/// An `extract` object; `regex` is compiled here (once per request) so that
/// a bad pattern is an error naming `selection.extract.regex`.
fn extract_object(mut m: Map<String, Value>) -> Result<ExtractConfig, SelectionError> {
    let regex = match m.remove("regex") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(AnswerPattern::new(&p).map_err(|e| {
            bad(
                "selection.extract.regex",
                format!("selection.extract.regex: {e}"),
            )
        })?),
        Some(_) => {
            return Err(bad(
                "selection.extract.regex",
                "selection.extract.regex must be a string (a regular expression)",
            ))
        }
    };
    let mut known = match serde_json::to_value(ExtractConfig::default()) {
        Ok(Value::Object(d)) => d.into_iter().map(|(k, _)| k).collect(),
        _ => Vec::new(),
    };
    known.retain(|k| k != "regex");
    known.push("regex".into());
    if let Some(k) = m.keys().find(|k| !known.contains(k)) {
        return Err(bad(
            format!("selection.extract.{k}"),
            format!(
                "selection.extract.{k} is not a known key (selection.extract takes {})",
                known.join(", ")
            ),
        ));
    }
    let mut cfg: ExtractConfig = match serde_path_to_error::deserialize(Value::Object(m)) {
        Ok(c) => c,
        Err(e) => {
            let path = e.path().to_string();
            let param = if path == "." {
                "selection.extract".to_string()
            } else {
                format!("selection.extract.{path}")
            };
            let message = format!("{param}: {}", plain(&e.into_inner().to_string()));
            return Err(bad(param, message));
        }
    };
    cfg.regex = regex;
    Ok(cfg)
}

fn extract_preset(name: &str) -> Result<ExtractConfig, SelectionError> {
    Ok(match name {
        "math" => ExtractConfig::math(),
        "gsm8k" => ExtractConfig::gsm8k(),
        "choice" => ExtractConfig::choice(),
        "explicit" => ExtractConfig::explicit(),
        other => {
            return Err(bad(
                "selection.extract",
                format!("selection.extract `{other}` is not one of math, gsm8k, choice, explicit"),
            ))
        }
    })
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
        assert_eq!(e.param, "selection.extract.regex");
        assert!(
            e.message
                .starts_with("selection.extract.regex: invalid regex `(unclosed`"),
            "{e}"
        );
        assert!(e.message.contains("unclosed group"), "{e}");
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

    #[test]
    fn unknown_keys_are_errors_naming_their_path() {
        for (v, param) in [
            (json!({"stratgy": "majority"}), "selection.stratgy"),
            (
                json!({"strategy": "majority", "early_stp": true}),
                "selection.early_stp",
            ),
            (
                json!({"strategy": "majority", "keep_fraction": 0.5}),
                "selection.keep_fraction",
            ),
            (
                json!({"strategy": "confidence", "keep_fracton": 0.5}),
                "selection.keep_fracton",
            ),
            (
                json!({"strategy": "best_of_n", "weight": "score"}),
                "selection.weight",
            ),
            (
                json!({"strategy": "majority", "extract": {"extractor": ["boxed"]}}),
                "selection.extract.extractor",
            ),
        ] {
            let e = SelectionOptions::parse(&v).unwrap_err();
            assert_eq!(e.param, param, "{v}: {e}");
            assert!(e.message.starts_with(param), "{e}");
            assert!(e.message.contains("not a known key"), "{e}");
        }
        let e = SelectionOptions::parse(&json!({"strategy": "confidence", "x": 1})).unwrap_err();
        assert!(
            e.message
                .contains("keep_fraction, metric, group_size, weighted"),
            "{e}"
        );
        // Every key a strategy documents is accepted.
        for v in [
            json!({"strategy": "confidence", "keep_fraction": 0.5, "metric": "mean", "group_size": 8, "weighted": true}),
            json!({"strategy": "best_of_n", "on_missing": "first"}),
            json!({"strategy": "weighted_majority", "weight": "confidence"}),
            json!({"strategy": "majority", "extract": {"extractors": ["boxed"], "after_think": true, "regex": "A: (\\d+)"}}),
        ] {
            SelectionOptions::parse(&v).unwrap_or_else(|e| panic!("{v}: {e}"));
        }
    }

    #[test]
    fn type_errors_name_the_parameter_in_plain_words() {
        for (v, param, words) in [
            (
                json!({"strategy": "confidence", "group_size": "big"}),
                "selection.group_size",
                "expected a non-negative integer",
            ),
            (
                json!({"strategy": "confidence", "metric": 3}),
                "selection.metric",
                "(a string)",
            ),
            (json!({"strategy": 5}), "selection.strategy", "(a string)"),
            (
                json!({"strategy": "majority", "extract": {"after_think": "no"}}),
                "selection.extract.after_think",
                "expected a boolean",
            ),
        ] {
            let e = SelectionOptions::parse(&v).unwrap_err();
            assert_eq!(e.param, param, "{v}: {e}");
            assert!(e.message.contains(words), "{v}: {e}");
        }
    }
}
