//! [`SamplingParams`]: a request's sampling parameters (OpenAI / vLLM
//! names and semantics), their documented ranges and
//! [`SamplingParams::validate`], and [`SamplingError`].

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

/// Temperatures below this are treated as greedy decoding: dividing by a
/// near-zero temperature would overflow to `inf` and the distribution is a
/// point mass on the argmax anyway.
pub const GREEDY_TEMPERATURE: f32 = 1e-5;
/// Largest accepted `temperature` (OpenAI's limit).
pub const MAX_TEMPERATURE: f32 = 2.0;
/// `presence_penalty` and `frequency_penalty` lie in `[-MAX_PENALTY, MAX_PENALTY]` (OpenAI's limit).
pub const MAX_PENALTY: f32 = 2.0;
/// Largest accepted `repetition_penalty`; values above this destroy the
/// distribution in practice (common settings are 1.0–1.3).
pub const MAX_REPETITION_PENALTY: f32 = 2.0;
/// Absolute bound on a `logit_bias` value (OpenAI's limit): ±100 already bans
/// or forces a token, larger values only risk overflow.
pub const MAX_LOGIT_BIAS: f32 = 100.0;
/// Most `top_logprobs` alternatives per token (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// Invalid sampling parameters or logits.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SamplingError {
    /// A parameter is outside its documented range.
    #[error("{field} must be {expected}, got {value}")]
    OutOfRange {
        field: &'static str,
        expected: &'static str,
        value: String,
    },
    /// A token id (in `logit_bias` or `stop_token_ids`) is not in the vocabulary.
    #[error("{field} contains token id {id}, but the vocabulary has {vocab_size} tokens")]
    TokenOutOfVocab {
        field: &'static str,
        id: u32,
        vocab_size: usize,
    },
    /// OpenAI semantics: alternatives are only returned alongside logprobs.
    #[error("top_logprobs = {0} requires logprobs = true")]
    TopLogprobsWithoutLogprobs(usize),
    /// The logits buffer does not hold `rows` rows of `vocab` values.
    #[error("logits buffer holds {len} values, expected {rows} rows of vocab size {vocab}")]
    LogitsShape {
        len: usize,
        rows: usize,
        vocab: usize,
    },
    /// Every logit is `-inf` or NaN after processing (e.g. all tokens banned).
    #[error("no token can be sampled: every logit is -inf or NaN after processing")]
    NoViableToken,
}

/// Per-request sampling parameters (OpenAI / vLLM names and semantics).
///
/// Deserialises from an OpenAI-style request body: every field is optional,
/// `stop` may be a string or a list, `logit_bias` is a map from token id (a
/// JSON string key such as `"1234"`) to bias, and a negative `top_k` (vLLM's
/// `-1`) means off. Call [`SamplingParams::validate`] before use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// Softmax temperature in `[0, 2]`; `0` (below [`GREEDY_TEMPERATURE`]) is greedy argmax.
    pub temperature: f32,
    /// Nucleus mass in `(0, 1]`; `1` is off.
    pub top_p: f32,
    /// Keep only the `k` most likely tokens; `0` (or `>= vocab`) is off.
    #[serde(deserialize_with = "deserialize_top_k")]
    pub top_k: usize,
    /// Drop tokens with probability below `min_p * p_max`; in `[0, 1]`, `0` is off.
    pub min_p: f32,
    /// RNG seed; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// HF/CTRL repetition penalty in `(0, 2]` over prompt + output tokens; `1` is off.
    pub repetition_penalty: f32,
    /// OpenAI presence penalty in `[-2, 2]` over generated tokens.
    pub presence_penalty: f32,
    /// OpenAI frequency penalty in `[-2, 2]` over generated tokens.
    pub frequency_penalty: f32,
    /// Additive bias per token id, each in `[-100, 100]`; applied first.
    pub logit_bias: BTreeMap<u32, f32>,
    /// Return the sampled token's logprob (it is always computed; this flag
    /// tells the API layer whether to report it).
    pub logprobs: bool,
    /// Number of most likely alternatives to return per token, `0..=20`;
    /// requires `logprobs`.
    pub top_logprobs: usize,
    /// Generation budget in tokens (`>= 1`); `None` means up to the context limit.
    pub max_tokens: Option<usize>,
    /// Stop strings (non-empty); excluded from the output. Their number and
    /// length are server policy (`max_stop_strings`, `max_stop_bytes`): the
    /// matcher's work per token does not depend on them.
    #[serde(deserialize_with = "deserialize_stop")]
    pub stop: Vec<String>,
    /// Token ids that end generation (in addition to EOS).
    pub stop_token_ids: Vec<u32>,
    /// Keep generating past EOS (benchmarks); `stop_token_ids` still apply.
    pub ignore_eos: bool,
    /// Also compute each sampled token's sampling-distribution log-prob
    /// ([`Sampled::raw_logprob`]): training rollouts set it. Never read from
    /// or written to a request body.
    #[serde(skip)]
    pub raw_logprobs: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            seed: None,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: BTreeMap::new(),
            logprobs: false,
            top_logprobs: 0,
            max_tokens: None,
            stop: Vec::new(),
            stop_token_ids: Vec::new(),
            ignore_eos: false,
            raw_logprobs: false,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding parameters (temperature 0, everything else default).
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Whether these parameters decode greedily (argmax, no RNG use).
    pub fn is_greedy(&self) -> bool {
        self.temperature < GREEDY_TEMPERATURE
    }

    /// Checks every field against its documented limit (OpenAI-like) and
    /// every token id against `vocab_size`. NaN fails every range check.
    ///
    /// Limits: `temperature` in `[0, 2]`, `top_p` in `(0, 1]`, `min_p` in
    /// `[0, 1]`, `repetition_penalty` in `(0, 2]`, `presence_penalty` and
    /// `frequency_penalty` in `[-2, 2]`, `logit_bias` values in `[-100, 100]`
    /// with ids `< vocab_size`, `top_logprobs <= 20` (and only with
    /// `logprobs`), `max_tokens >= 1`, non-empty `stop` strings,
    /// `stop_token_ids < vocab_size`. `top_k` is unbounded (`>= vocab` is off).
    pub fn validate(&self, vocab_size: usize) -> Result<(), SamplingError> {
        check_range("temperature", self.temperature, "in [0, 2]", |t| {
            (0.0..=MAX_TEMPERATURE).contains(&t)
        })?;
        check_range("top_p", self.top_p, "in (0, 1]", |p| p > 0.0 && p <= 1.0)?;
        check_range("min_p", self.min_p, "in [0, 1]", |p| {
            (0.0..=1.0).contains(&p)
        })?;
        check_range(
            "repetition_penalty",
            self.repetition_penalty,
            "in (0, 2]",
            |r| r > 0.0 && r <= MAX_REPETITION_PENALTY,
        )?;
        let penalty_ok = |p: f32| (-MAX_PENALTY..=MAX_PENALTY).contains(&p);
        check_range(
            "presence_penalty",
            self.presence_penalty,
            "in [-2, 2]",
            penalty_ok,
        )?;
        check_range(
            "frequency_penalty",
            self.frequency_penalty,
            "in [-2, 2]",
            penalty_ok,
        )?;
        for (&id, &bias) in &self.logit_bias {
            check_token("logit_bias", id, vocab_size)?;
            check_range("logit_bias", bias, "in [-100, 100]", |b| {
                (-MAX_LOGIT_BIAS..=MAX_LOGIT_BIAS).contains(&b)
            })?;
        }
        if self.top_logprobs > MAX_TOP_LOGPROBS {
            return Err(SamplingError::OutOfRange {
                field: "top_logprobs",
                expected: "in [0, 20]",
                value: self.top_logprobs.to_string(),
            });
        }
        if self.top_logprobs > 0 && !self.logprobs {
            return Err(SamplingError::TopLogprobsWithoutLogprobs(self.top_logprobs));
        }
        if self.max_tokens == Some(0) {
            return Err(SamplingError::OutOfRange {
                field: "max_tokens",
                expected: "at least 1",
                value: "0".into(),
            });
        }
        if self.stop.iter().any(String::is_empty) {
            return Err(SamplingError::OutOfRange {
                field: "stop",
                expected: "non-empty strings",
                value: "\"\"".into(),
            });
        }
        for &id in &self.stop_token_ids {
            check_token("stop_token_ids", id, vocab_size)?;
        }
        Ok(())
    }
}

fn check_range(
    field: &'static str,
    value: f32,
    expected: &'static str,
    ok: impl Fn(f32) -> bool,
) -> Result<(), SamplingError> {
    // `ok` is written with comparisons that are false for NaN.
    if ok(value) {
        Ok(())
    } else {
        Err(SamplingError::OutOfRange {
            field,
            expected,
            value: value.to_string(),
        })
    }
}

fn check_token(field: &'static str, id: u32, vocab_size: usize) -> Result<(), SamplingError> {
    if (id as usize) < vocab_size {
        Ok(())
    } else {
        Err(SamplingError::TokenOutOfVocab {
            field,
            id,
            vocab_size,
        })
    }
}

/// `top_k` accepts vLLM's `-1` (and any negative value) as "off".
fn deserialize_top_k<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let k = Option::<i64>::deserialize(d)?.unwrap_or(0);
    Ok(usize::try_from(k).unwrap_or(0))
}

/// OpenAI's `stop` is `null`, a string, or a list of strings.
fn deserialize_stop<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Default parameters with seed 1234, edited by `f` (the sampler tests' fixture).
    pub(in crate::engine::sampler) fn params(
        f: impl FnOnce(&mut SamplingParams),
    ) -> SamplingParams {
        let mut p = SamplingParams {
            seed: Some(1234),
            ..SamplingParams::default()
        };
        f(&mut p);
        p
    }

    #[test]
    fn validate_accepts_defaults_and_names_the_offending_field() {
        assert_eq!(SamplingParams::default().validate(8), Ok(()));
        let field = |p: SamplingParams| match p.validate(8) {
            Err(SamplingError::OutOfRange { field, .. })
            | Err(SamplingError::TokenOutOfVocab { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        };
        assert_eq!(field(params(|p| p.temperature = 2.5)), "temperature");
        assert_eq!(field(params(|p| p.temperature = f32::NAN)), "temperature");
        assert_eq!(field(params(|p| p.top_p = 0.0)), "top_p");
        assert_eq!(field(params(|p| p.min_p = 1.5)), "min_p");
        assert_eq!(
            field(params(|p| p.repetition_penalty = 0.0)),
            "repetition_penalty"
        );
        assert_eq!(
            field(params(|p| p.presence_penalty = -2.5)),
            "presence_penalty"
        );
        assert_eq!(
            field(params(|p| p.frequency_penalty = 3.0)),
            "frequency_penalty"
        );
        assert_eq!(
            field(params(|p| p.logit_bias = BTreeMap::from([(8, 1.0)]))),
            "logit_bias"
        );
        assert_eq!(
            field(params(|p| p.logit_bias = BTreeMap::from([(1, 101.0)]))),
            "logit_bias"
        );
        assert_eq!(
            field(params(|p| {
                p.logprobs = true;
                p.top_logprobs = 21;
            })),
            "top_logprobs"
        );
        assert_eq!(field(params(|p| p.max_tokens = Some(0))), "max_tokens");
        assert_eq!(field(params(|p| p.stop = vec![String::new()])), "stop");
        // How many stop strings is server policy, not an engine limit.
        assert_eq!(
            params(|p| p.stop = vec!["x".into(); 17]).validate(8),
            Ok(())
        );
        assert_eq!(
            field(params(|p| p.stop_token_ids = vec![8])),
            "stop_token_ids"
        );
        assert_eq!(
            params(|p| p.top_logprobs = 3).validate(8),
            Err(SamplingError::TopLogprobsWithoutLogprobs(3))
        );
        let msg = params(|p| p.temperature = 3.0)
            .validate(8)
            .unwrap_err()
            .to_string();
        assert_eq!(msg, "temperature must be in [0, 2], got 3");
    }

    #[test]
    fn params_deserialize_from_openai_style_json() {
        let p: SamplingParams = serde_json::from_str(
            r#"{"temperature": 0.2, "top_k": -1, "stop": "END",
                "logit_bias": {"42": -100}, "seed": 7, "unknown_field": 1}"#,
        )
        .unwrap();
        assert_eq!(p.temperature, 0.2);
        assert_eq!(p.top_k, 0);
        assert_eq!(p.stop, vec!["END".to_string()]);
        assert_eq!(p.logit_bias, BTreeMap::from([(42, -100.0)]));
        assert_eq!(p.seed, Some(7));
        assert_eq!(p.top_p, 1.0);
        let p: SamplingParams =
            serde_json::from_str(r#"{"stop": ["a", "b"], "top_k": 5}"#).unwrap();
        assert_eq!(p.stop.len(), 2);
        assert_eq!(p.top_k, 5);
        let p: SamplingParams = serde_json::from_str(r#"{"stop": null}"#).unwrap();
        assert!(p.stop.is_empty());
    }
}
