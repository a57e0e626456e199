//! Per-sequence token sampling over one row of logits.
//!
//! A [`Sampler`] owns everything one sequence (one rollout of one request)
//! needs to turn a vocab-sized `f32` logits row into a token: the request's
//! [`SamplingParams`], its own RNG stream, and incremental token counts for the
//! penalties. Rows are processed in place (the caller's logits buffer is
//! scratch space afterwards), so a decode step allocates nothing beyond the
//! optional `top_logprobs` vector.
//!
//! # Pipeline
//!
//! The order is fixed and matches vLLM's:
//!
//! 1. `logit_bias` is added to the raw logits (before everything, so a bias of
//!    `-100` bans a token even under penalties and `+100` forces it).
//! 2. `repetition_penalty` (HF/CTRL semantics) for every token seen in the
//!    prompt or the output: positive logits are divided by the penalty,
//!    negative ones multiplied by it.
//! 3. `presence_penalty` / `frequency_penalty` (OpenAI semantics) over
//!    *generated* tokens only: `logit -= presence * (count > 0) + frequency * count`.
//! 4. Temperature: logits are divided by `temperature`; a temperature below
//!    [`GREEDY_TEMPERATURE`] means greedy argmax (ties → lowest token id).
//! 5. Log-probabilities ([`Sampled::logprob`], [`Sampled::top_logprobs`]) are
//!    computed here: the log-softmax of the *processed* distribution (after
//!    steps 1–4) that the token is drawn from, but *before* the truncation of
//!    steps 6–8, so every reported value is finite and they are comparable
//!    across requests with different `top_k`/`top_p`. For greedy decoding the
//!    temperature is taken as 1 (the greedy "distribution" is a point mass,
//!    which would make every logprob 0 or -inf). These are what the server
//!    reports as OpenAI `logprobs` (vLLM's default, `raw_logprobs`, is the
//!    model's log-softmax at temperature 1 with no processing at all).
//!
//! The *sampling-distribution* log-prob [`Sampled::raw_logprob`], computed
//! only when [`SamplingParams::raw_logprobs`] is set (training rollouts), is
//! `log_softmax(logits / T)[token]` of the model's logits: temperature
//! applied, no logit bias, no penalties, no truncation — what a training
//! forward recomputes, so the importance ratio is exactly 1 on-policy. For
//! greedy decoding it is taken at T = 1, as above. With no bias or penalty
//! active it is the processed log-prob itself (no extra work); otherwise the
//! raw row is copied once before processing and normalised separately.
//! 6. `min_p`: drop tokens whose probability is below `min_p * p_max`.
//! 7. `top_k`: keep the `k` most likely tokens (renormalised).
//! 8. `top_p`: keep the smallest set of most likely tokens whose mass reaches
//!    `top_p` of what is left (renormalised); always at least one token.
//! 9. One uniform draw from the request's RNG stream selects the token.
//!
//! Ties in every ordering are broken by the lower token id, so results depend
//! only on the logits, the parameters and the RNG stream.
//!
//! # Reproducibility
//!
//! Each sampler draws from `ChaCha8Rng::seed_from_u64(seed)` with
//! `set_stream(rollout_index)`: rollout `k` of a seeded request produces the
//! same tokens whatever else is in the batch, and rollouts of one request are
//! independent streams rather than copies of each other. Without a seed the
//! seed is drawn from the OS-seeded thread RNG (and reported by
//! [`Sampler::seed`] so a run can be replayed).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
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

/// `top_k` at or below this is selected with a bounded insertion buffer during
/// the scan over the vocabulary; larger values collect candidates and use
/// `select_nth_unstable_by`.
const SMALL_TOP_K: usize = 64;
/// Tokens examined (selected and sorted) before the nucleus (top-p) search
/// switches to a histogram.
const NUCLEUS_FIRST_CHUNK: usize = 64;
/// [`sample_batch`] goes parallel only when the batch holds at least this many
/// logits in total (two rows of a 32k vocabulary): below that rayon's
/// scheduling costs more than it saves.
const PAR_MIN_ELEMS: usize = 1 << 16;

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

/// The result of one sampling step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sampled {
    /// The chosen token id.
    pub token: u32,
    /// Log-probability of `token` under the processed distribution (after
    /// bias, penalties and temperature; before min_p/top-k/top-p truncation;
    /// temperature 1 when greedy). Always finite.
    pub logprob: f32,
    /// The `top_logprobs` most likely tokens of that same distribution with
    /// their logprobs, sorted by logprob descending (ties: lower id first).
    /// Empty unless `logprobs` and `top_logprobs > 0`; tokens with `-inf`
    /// logits are never listed.
    pub top_logprobs: Vec<(u32, f32)>,
    /// `log_softmax(logits / T)[token]` of the unprocessed logits (no bias,
    /// no penalties, no truncation; T = 1 when greedy); `Some` exactly when
    /// [`SamplingParams::raw_logprobs`] is set. See the module docs.
    pub raw_logprob: Option<f32>,
}

/// Sampling state of one sequence: parameters, RNG stream, token counts and
/// reusable scratch buffers.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    seed: u64,
    rollout_index: u64,
    rng: ChaCha8Rng,
    /// Occurrences of each generated token (presence/frequency penalties).
    counts: HashMap<u32, u32>,
    /// Prompt ∪ generated token ids (repetition penalty); only maintained
    /// when the penalty is active.
    seen: HashSet<u32>,
    num_generated: usize,
    /// Scratch: truncation candidates `(id, unnormalised prob)`.
    candidates: Vec<(u32, f32)>,
    /// Scratch: top-logprob candidates `(id, processed logit)`.
    top: Vec<(u32, f32)>,
    /// Scratch: the unprocessed row, kept only for `raw_logprobs` when a
    /// bias or penalty changes the row.
    raw: Vec<f32>,
}

impl Sampler {
    /// Creates the sampler for rollout `rollout_index` of a request.
    ///
    /// `params` should have passed [`SamplingParams::validate`]; an
    /// out-of-vocabulary `logit_bias` id is otherwise reported by
    /// [`Sampler::sample`].
    pub fn new(params: SamplingParams, rollout_index: u64) -> Self {
        let seed = params.seed.unwrap_or_else(rand::random);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(rollout_index);
        Self {
            params,
            seed,
            rollout_index,
            rng,
            counts: HashMap::new(),
            seen: HashSet::new(),
            num_generated: 0,
            candidates: Vec::new(),
            top: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// The request parameters.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The effective seed (drawn from the OS when the request had none), so
    /// an unseeded run can be replayed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The RNG stream index this sampler draws from.
    pub fn rollout_index(&self) -> u64 {
        self.rollout_index
    }

    /// Number of tokens passed to [`Sampler::observe`].
    pub fn num_generated(&self) -> usize {
        self.num_generated
    }

    /// Records the prompt for the repetition penalty. Call once, before the
    /// first [`Sampler::sample`]; a no-op when the penalty is off.
    pub fn observe_prompt(&mut self, prompt: &[u32]) {
        if self.repetition_active() {
            self.seen.extend(prompt.iter().copied());
        }
    }

    /// Records a token appended to the output. Call it for **every** output
    /// token — sampled or forced (e.g. an injected end-of-thinking marker) —
    /// because the penalties count the output, not the draws. `sample` does
    /// not call it, so the engine stays in control of what the sequence holds.
    pub fn observe(&mut self, token: u32) {
        *self.counts.entry(token).or_insert(0) += 1;
        if self.repetition_active() {
            self.seen.insert(token);
        }
        self.num_generated += 1;
    }

    /// Whether `token` ends the sequence: one of `stop_token_ids`, or one of
    /// the model's `eos_token_ids` unless `ignore_eos` is set.
    pub fn is_stop_token(&self, token: u32, eos_token_ids: &[u32]) -> bool {
        self.params.stop_token_ids.contains(&token)
            || (!self.params.ignore_eos && eos_token_ids.contains(&token))
    }

    fn repetition_active(&self) -> bool {
        self.params.repetition_penalty != 1.0
    }

    /// Whether steps 1–3 can change the row (bias or a penalty is set).
    fn processors_active(&self) -> bool {
        !self.params.logit_bias.is_empty()
            || self.repetition_active()
            || self.params.presence_penalty != 0.0
            || self.params.frequency_penalty != 0.0
    }

    /// Samples one token from `logits` (one vocab-sized row), following the
    /// pipeline in the module docs. The row is used as scratch space and
    /// holds unnormalised probabilities afterwards.
    ///
    /// Errors: an out-of-range `logit_bias` id, or no finite logit left.
    pub fn sample(&mut self, logits: &mut [f32]) -> Result<Sampled, SamplingError> {
        let keep_raw = self.params.raw_logprobs && self.processors_active();
        if keep_raw {
            self.raw.clear();
            self.raw.extend_from_slice(logits);
        }
        self.apply_logit_processors(logits)?;

        let greedy = self.params.is_greedy();
        let inv_t = if greedy {
            1.0
        } else {
            1.0 / self.params.temperature
        };

        // Pass 1: temperature, sanitise, max. NaN (a model bug) is treated as
        // -inf; +inf is clamped so that `logit - max` stays finite.
        let max = scale_sanitize_max(logits, inv_t);
        // First position of the max: ties go to the lowest id.
        let best = logits
            .iter()
            .position(|&v| v == max)
            .filter(|_| max > f32::NEG_INFINITY)
            .ok_or(SamplingError::NoViableToken)?;

        // Pass 2 (only if requested): top-logprob candidates from the logits,
        // before they are overwritten.
        let n_top = if self.params.logprobs {
            self.params.top_logprobs
        } else {
            0
        };
        self.top.clear();
        if n_top > 0 {
            for (i, &v) in logits.iter().enumerate() {
                if v > f32::NEG_INFINITY {
                    push_top(&mut self.top, n_top, i as u32, v);
                }
            }
        }

        // Pass 3: unnormalised probabilities in place (the max maps to
        // exactly 1) and their sum.
        let z = exp_shifted_in_place(logits, max);
        let ln_z = z.ln();

        let token = if greedy {
            best
        } else {
            self.draw(logits, best, z)
        };
        let p_token = logits.get(token).copied().unwrap_or(1.0);
        let logprob = (f64::from(p_token).ln() - ln_z) as f32;
        let top_logprobs = self
            .top
            .iter()
            .map(|&(id, v)| (id, (f64::from(v - max) - ln_z) as f32))
            .collect();
        let raw_logprob = match (self.params.raw_logprobs, keep_raw) {
            (false, _) => None,
            // Nothing changed the row: the processed distribution is the raw one.
            (true, false) => Some(logprob),
            (true, true) => Some(log_softmax_at(&mut self.raw, inv_t, token)),
        };
        Ok(Sampled {
            token: token as u32,
            logprob,
            top_logprobs,
            raw_logprob,
        })
    }

    /// Steps 1–3 of the pipeline (bias, repetition, presence/frequency), in
    /// place on raw logits. Penalised ids outside the row are skipped (they
    /// cannot be sampled anyway); an out-of-range bias id is an error because
    /// validation should have rejected it.
    fn apply_logit_processors(&self, logits: &mut [f32]) -> Result<(), SamplingError> {
        let vocab_size = logits.len();
        for (&id, &bias) in &self.params.logit_bias {
            let slot = logits
                .get_mut(id as usize)
                .ok_or(SamplingError::TokenOutOfVocab {
                    field: "logit_bias",
                    id,
                    vocab_size,
                })?;
            *slot += bias;
        }
        let rp = self.params.repetition_penalty;
        if self.repetition_active() {
            for &id in &self.seen {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = if *l > 0.0 { *l / rp } else { *l * rp };
                }
            }
        }
        let (presence, frequency) = (self.params.presence_penalty, self.params.frequency_penalty);
        if presence != 0.0 || frequency != 0.0 {
            for (&id, &count) in &self.counts {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l -= presence + frequency * count as f32;
                }
            }
        }
        Ok(())
    }

    /// Steps 6–9: truncation and the draw, over `probs` (unnormalised, max
    /// exactly 1 at `best`, summing to `z`). Returns the token index.
    fn draw(&mut self, probs: &[f32], best: usize, z: f64) -> usize {
        let vocab = probs.len();
        let min_p = self.params.min_p;
        let top_k = match self.params.top_k {
            k if k == 0 || k >= vocab => None,
            k => Some(k),
        };
        let top_p = (self.params.top_p < 1.0).then_some(self.params.top_p);
        let u: f64 = self.rng.random();

        if min_p <= 0.0 && top_k.is_none() && top_p.is_none() {
            // Untruncated: inverse-CDF scan in id order, no extra buffer.
            let target = u * z;
            let mut cum = 0f64;
            let mut last = best;
            for (i, &p) in probs.iter().enumerate() {
                if p > 0.0 {
                    cum += f64::from(p);
                    last = i;
                    if cum > target {
                        return i;
                    }
                }
            }
            return last;
        }

        // Collection threshold. min_p is relative to p_max, which is exactly 1.
        // With top-p alone, a token below (1 - top_p) * z / vocab can never be in
        // the nucleus: all such tokens together hold less than (1 - top_p) of
        // the mass, so the tokens above the bound already reach top_p. Skipping
        // them keeps the candidate list short without changing the result; the
        // nucleus target is then measured against the full mass `z`.
        let top_p_bound = top_p.filter(|_| min_p <= 0.0 && top_k.is_none());
        let threshold = match top_p_bound {
            Some(tp) => ((1.0 - f64::from(tp)) * z / vocab as f64 * 0.999) as f32,
            None => min_p.max(0.0),
        };

        let cands = &mut self.candidates;
        cands.clear();
        match top_k {
            Some(k) if k <= SMALL_TOP_K => {
                for (i, &p) in probs.iter().enumerate() {
                    if p > 0.0 && p >= threshold {
                        push_top(cands, k, i as u32, p);
                    }
                }
            }
            _ => {
                cands.extend(
                    probs
                        .iter()
                        .enumerate()
                        .filter(|&(_, &p)| p > 0.0 && p >= threshold)
                        .map(|(i, &p)| (i as u32, p)),
                );
                if let Some(k) = top_k {
                    if k < cands.len() {
                        cands.select_nth_unstable_by(k - 1, by_prob_desc);
                        cands.truncate(k);
                    }
                }
            }
        }

        if let Some(tp) = top_p {
            let mass = match top_p_bound {
                Some(_) => z,
                None => cands.iter().map(|&(_, p)| f64::from(p)).sum(),
            };
            let n = nucleus_len(cands, f64::from(tp) * mass);
            cands.truncate(n);
        }

        let total: f64 = cands.iter().map(|&(_, p)| f64::from(p)).sum();
        let target = u * total;
        let mut cum = 0f64;
        for &(id, p) in cands.iter() {
            cum += f64::from(p);
            if cum > target {
                return id as usize;
            }
        }
        cands.last().map_or(best, |&(id, _)| id as usize)
    }
}

/// Lanes of the manually unrolled reductions below: independent accumulators
/// let LLVM vectorise loops that would otherwise be a serial dependency chain.
const LANES: usize = 8;

/// Multiplies by `inv_t` in place, maps NaN to -inf and +inf to `f32::MAX`,
/// and returns the maximum (-inf when nothing is finite).
fn scale_sanitize_max(row: &mut [f32], inv_t: f32) -> f32 {
    #[inline(always)]
    fn step(l: &mut f32, acc: &mut f32, inv_t: f32) {
        let v = *l * inv_t;
        #[allow(clippy::eq_op)] // `v != v` is the branch-free NaN test
        let v = if v != v {
            f32::NEG_INFINITY
        } else if v > f32::MAX {
            f32::MAX
        } else {
            v
        };
        *l = v;
        *acc = if v > *acc { v } else { *acc };
    }
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (l, a) in chunk.iter_mut().zip(acc.iter_mut()) {
            step(l, a, inv_t);
        }
    }
    let mut max = f32::NEG_INFINITY;
    for l in chunks.into_remainder() {
        step(l, &mut max, inv_t);
    }
    acc.into_iter().fold(max, |m, a| if a > m { a } else { m })
}

/// `log_softmax(row · inv_t)[token]`, with the same sanitising and
/// arithmetic as [`Sampler::sample`]; `row` is scratch afterwards.
fn log_softmax_at(row: &mut [f32], inv_t: f32, token: usize) -> f32 {
    let max = scale_sanitize_max(row, inv_t);
    let x = row.get(token).copied().unwrap_or(f32::NEG_INFINITY);
    let ln_z = exp_shifted_in_place(row, max).ln();
    (f64::from(x - max) - ln_z) as f32
}

/// Replaces every `v` with `exp(v - max)` and returns the sum (in f64).
fn exp_shifted_in_place(row: &mut [f32], max: f32) -> f64 {
    // Two simple loops vectorise; one fused loop with f64 accumulators did not.
    for l in row.iter_mut() {
        *l = exp_nonpositive(*l - max);
    }
    let mut acc = [0f64; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (&p, a) in chunk.iter().zip(acc.iter_mut()) {
            *a += f64::from(p);
        }
    }
    let rest: f64 = chunks.remainder().iter().map(|&p| f64::from(p)).sum();
    rest + acc.iter().sum::<f64>()
}

/// `exp(x)` for `x <= 0` (including -inf), within about 2 ulp, returning
/// exactly `1` at `0` and exactly `0` below -87 (where `expf` leaves the
/// normal range anyway).
///
/// Why not `f32::exp`: it is a libm call per element and made the exp pass
/// over a 151k vocabulary the most expensive part of sampling. This is the
/// Cephes `expf` polynomial with branch-free range reduction, which LLVM
/// vectorises.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let xc = if x >= -87.0 { x } else { -87.0 };
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    let k = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_2e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((k + 127) << 23) as u32);
    if x >= -87.0 {
        y * scale
    } else {
        0.0
    }
}

/// Descending by value, ties by ascending id: a total order, so partial
/// selections are deterministic.
fn by_prob_desc(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// Inserts `(id, v)` into `buf` (sorted by [`by_prob_desc`], at most `cap`
/// long). Ids must arrive in ascending order, so an equal value ranks after
/// the ones already present. O(cap) per insert, O(1) for the common reject.
fn push_top(buf: &mut Vec<(u32, f32)>, cap: usize, id: u32, v: f32) {
    if buf.len() >= cap {
        match buf.last() {
            Some(&(_, last)) if v > last => {
                buf.pop();
            }
            _ => return,
        }
    }
    let pos = buf.partition_point(|&(_, b)| b >= v);
    buf.insert(pos, (id, v));
}

/// Length of the smallest prefix, in [`by_prob_desc`] order, whose mass
/// reaches `target` (at least 1), after rearranging `cands` so that this
/// nucleus is `cands[..len]` (in no particular but deterministic order).
///
/// Avoids sorting the vocabulary. A peaked distribution is settled by the
/// first [`NUCLEUS_FIRST_CHUNK`] tokens (one O(n) selection and a tiny
/// sort). A flat one, whose nucleus can be tens of thousands of tokens, is
/// settled with a histogram of probabilities over log-spaced bins: every bin
/// above the one where the mass crosses the target is kept whole, and only
/// that crossing bin is sorted.
fn nucleus_len(cands: &mut [(u32, f32)], target: f64) -> usize {
    // A prefix whose mass equals the target up to rounding counts as reaching
    // it, so an exact boundary (probs 0.5, 0.3, … with top_p 0.5) does not
    // pull in one more token because of the last bit of a sum.
    let target = target * (1.0 - 1e-6);
    let len = cands.len();
    let head = NUCLEUS_FIRST_CHUNK.min(len);
    if head < len {
        cands.select_nth_unstable_by(head - 1, by_prob_desc);
    }
    cands[..head].sort_unstable_by(by_prob_desc);
    let mut cum = 0f64;
    for (i, &(_, p)) in cands[..head].iter().enumerate() {
        cum += f64::from(p);
        if cum >= target {
            return i + 1;
        }
    }

    let rest = &mut cands[head..];
    let mut mass = [0f64; NUCLEUS_BINS];
    for &(_, p) in rest.iter() {
        mass[prob_bin(p)] += f64::from(p);
    }
    // The crossing bin: the highest bin at which the cumulative mass
    // (from the top) reaches the target.
    let mut crossing = None;
    for (bin, &m) in mass.iter().enumerate().rev() {
        if cum + m >= target {
            crossing = Some(bin);
            break;
        }
        cum += m;
    }
    let Some(crossing) = crossing else {
        return len.max(1); // rounding: the whole list is the nucleus
    };
    // Move the bins above the crossing to the front, then the crossing bin.
    let above = partition_in_place(rest, |p| prob_bin(p) > crossing);
    let at = above + partition_in_place(&mut rest[above..], |p| prob_bin(p) == crossing);
    let bin = &mut rest[above..at];
    bin.sort_unstable_by(by_prob_desc);
    for (i, &(_, p)) in bin.iter().enumerate() {
        cum += f64::from(p);
        if cum >= target {
            return head + above + i + 1;
        }
    }
    head + at
}

/// Number of histogram bins of [`prob_bin`].
const NUCLEUS_BINS: usize = 1024;

/// A bin index that is monotone in `p` for `p` in `(0, 1]`: the float's
/// exponent and top 3 mantissa bits (8 bins per octave), at most 1016.
fn prob_bin(p: f32) -> usize {
    ((p.to_bits() >> 20) as usize).min(NUCLEUS_BINS - 1)
}

/// Moves the elements whose probability satisfies `keep` to the front
/// (order not preserved) and returns how many there are.
fn partition_in_place(items: &mut [(u32, f32)], keep: impl Fn(f32) -> bool) -> usize {
    let mut w = 0;
    for r in 0..items.len() {
        if keep(items[r].1) {
            items.swap(w, r);
            w += 1;
        }
    }
    w
}

/// Samples one token per row of `logits` (`samplers.len()` rows of `vocab`
/// values, row-major), row `i` with `samplers[i]`.
///
/// Rows run in parallel on the rayon pool when the batch is large enough to
/// pay for it: a 151k-vocab row costs about 0.3 ms untruncated or greedy and
/// up to ~0.8 ms with top-p over a flat distribution (measured on the 2-core
/// dev box, where the parallel path showed no gain because the second core
/// was busy; it is there for many-core servers). Each row uses only its own
/// sampler's RNG, so the results are identical either way.
pub fn sample_batch(
    samplers: &mut [Sampler],
    logits: &mut [f32],
    vocab: usize,
) -> Result<Vec<Sampled>, SamplingError> {
    let rows = samplers.len();
    let shape_err = SamplingError::LogitsShape {
        len: logits.len(),
        rows,
        vocab,
    };
    if rows.checked_mul(vocab) != Some(logits.len()) {
        return Err(shape_err);
    }
    if rows == 0 {
        return Ok(Vec::new());
    }
    if vocab == 0 {
        return Err(shape_err);
    }
    if rows >= 2 && logits.len() >= PAR_MIN_ELEMS {
        samplers
            .par_iter_mut()
            .zip(logits.par_chunks_mut(vocab))
            .map(|(s, row)| s.sample(row))
            .collect()
    } else {
        samplers
            .iter_mut()
            .zip(logits.chunks_mut(vocab))
            .map(|(s, row)| s.sample(row))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(f: impl FnOnce(&mut SamplingParams)) -> SamplingParams {
        let mut p = SamplingParams {
            seed: Some(1234),
            ..SamplingParams::default()
        };
        f(&mut p);
        p
    }

    fn log_softmax(x: &[f32]) -> Vec<f64> {
        let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z: f64 = x.iter().map(|&v| (v as f64 - m).exp()).sum();
        x.iter().map(|&v| v as f64 - m - z.ln()).collect()
    }

    fn softmax(x: &[f32]) -> Vec<f64> {
        log_softmax(x).into_iter().map(f64::exp).collect()
    }

    /// Draws `n` tokens from fresh copies of `logits` and returns frequencies.
    fn frequencies(sampler: &mut Sampler, logits: &[f32], n: usize) -> Vec<f64> {
        let mut counts = vec![0usize; logits.len()];
        let mut row = logits.to_vec();
        for _ in 0..n {
            row.copy_from_slice(logits);
            counts[sampler.sample(&mut row).unwrap().token as usize] += 1;
        }
        counts.into_iter().map(|c| c as f64 / n as f64).collect()
    }

    fn draws(sampler: &mut Sampler, logits: &[f32], n: usize) -> Vec<u32> {
        (0..n)
            .map(|_| sampler.sample(&mut logits.to_vec()).unwrap().token)
            .collect()
    }

    const LOGITS: [f32; 6] = [1.0, 2.5, -0.5, 2.0, 0.0, 1.5];

    #[test]
    fn fast_exp_is_accurate_to_a_few_ulp() {
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive(-100.0), 0.0);
        let mut worst = 0f64;
        for i in 0..=870_000 {
            // down to -87.0 inclusive
            let x = -(i as f32) * 1e-4;
            let exact = (x as f64).exp();
            let rel = ((exp_nonpositive(x) as f64 - exact) / exact).abs();
            worst = worst.max(rel);
        }
        assert!(
            worst < 3.0 * f32::EPSILON as f64,
            "worst relative error {worst}"
        );
    }

    #[test]
    fn greedy_picks_argmax() {
        let mut s = Sampler::new(SamplingParams::greedy(), 0);
        assert_eq!(s.sample(&mut LOGITS.to_vec()).unwrap().token, 1);
    }

    #[test]
    fn greedy_ties_go_to_lowest_id() {
        let mut s = Sampler::new(SamplingParams::greedy(), 0);
        let out = s.sample(&mut [0.0, 3.0, 1.0, 3.0, 3.0]).unwrap();
        assert_eq!(out.token, 1);
    }

    #[test]
    fn tiny_temperature_behaves_like_greedy() {
        let mut s = Sampler::new(params(|p| p.temperature = 0.01), 0);
        assert!(draws(&mut s, &LOGITS, 500).iter().all(|&t| t == 1));
        // Below the greedy threshold the RNG is not touched and no inf appears.
        let mut s = Sampler::new(params(|p| p.temperature = 1e-7), 0);
        let out = s.sample(&mut LOGITS.to_vec()).unwrap();
        assert_eq!(out.token, 1);
        assert!(out.logprob.is_finite());
    }

    #[test]
    fn top_k_one_equals_greedy() {
        let mut s = Sampler::new(params(|p| p.top_k = 1), 0);
        assert!(draws(&mut s, &LOGITS, 500).iter().all(|&t| t == 1));
    }

    #[test]
    fn top_k_keeps_k_most_likely_with_renormalised_frequencies() {
        let mut s = Sampler::new(params(|p| p.top_k = 2), 0);
        let f = frequencies(&mut s, &LOGITS, 20_000);
        let expect = softmax(&[2.5, 2.0]);
        assert!((f[1] - expect[0]).abs() < 0.015, "{f:?}");
        assert!((f[3] - expect[1]).abs() < 0.015, "{f:?}");
        assert_eq!(f[0] + f[2] + f[4] + f[5], 0.0, "{f:?}");
    }

    #[test]
    fn large_top_k_uses_selection_path_and_keeps_k_tokens() {
        // 200 tokens, top_k 100 > SMALL_TOP_K: only ids 100..200 (largest logits).
        let logits: Vec<f32> = (0..200).map(|i| i as f32 * 0.01).collect();
        let mut s = Sampler::new(params(|p| p.top_k = 100), 0);
        assert!(draws(&mut s, &logits, 2000).iter().all(|&t| t >= 100));
    }

    #[test]
    fn top_p_keeps_the_smallest_nucleus() {
        // probs 0.5, 0.3, 0.15, 0.05: top_p 0.75 needs {0, 1} (0.8 >= 0.75).
        let probs = [0.5f32, 0.3, 0.15, 0.05];
        let logits: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        let mut s = Sampler::new(params(|p| p.top_p = 0.75), 0);
        let f = frequencies(&mut s, &logits, 20_000);
        assert_eq!(f[2] + f[3], 0.0, "{f:?}");
        assert!((f[0] - 0.5 / 0.8).abs() < 0.015, "{f:?}");
        // top_p 0.5 is reached by the first token alone.
        let mut s = Sampler::new(params(|p| p.top_p = 0.5), 0);
        assert!(draws(&mut s, &logits, 500).iter().all(|&t| t == 0));
        // top_p just above 0.8 needs the third token too.
        let mut s = Sampler::new(params(|p| p.top_p = 0.81), 0);
        let f = frequencies(&mut s, &logits, 20_000);
        assert!(f[2] > 0.1 && f[3] == 0.0, "{f:?}");
    }

    #[test]
    fn top_p_over_a_large_vocabulary_matches_a_full_sort() {
        // Exercises the chunked nucleus and the collection bound: 5000 tokens
        // with a smooth distribution, nucleus much larger than the first chunk.
        let logits: Vec<f32> = (0..5000u32)
            .map(|i| ((i * 7919) % 5000) as f32 / 1000.0)
            .collect();
        let top_p = 0.9f32;
        let probs = softmax(&logits);
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        let mut cum = 0.0;
        let mut keep = 0;
        for &i in &order {
            cum += probs[i];
            keep += 1;
            if cum >= top_p as f64 {
                break;
            }
        }
        let min_kept = probs[order[keep - 1]];
        let mut s = Sampler::new(params(|p| p.top_p = top_p), 3);
        let tokens = draws(&mut s, &logits, 3000);
        assert!(tokens
            .iter()
            .all(|&t| probs[t as usize] >= min_kept * (1.0 - 1e-6)));
        // And the kept set really is truncated (some excluded tokens exist).
        assert!(keep < logits.len() && keep > NUCLEUS_FIRST_CHUNK);
    }

    #[test]
    fn nucleus_selection_equals_sorted_prefix_definition() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut rand01 = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32
        };
        for (n, spread) in [
            (10, 1.0),
            (300, 4.0),
            (5000, 2.0),
            (5000, 20.0),
            (20_000, 0.5),
        ] {
            // Quantised logits so that equal probabilities (ties) occur.
            let probs: Vec<f32> = (0..n)
                .map(|_| exp_nonpositive(-((rand01() * spread * 8.0).round() / 8.0)))
                .collect();
            for top_p in [0.1f64, 0.5, 0.9, 0.99] {
                let mut sorted: Vec<(u32, f32)> = probs
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| (i as u32, p))
                    .collect();
                sorted.sort_by(by_prob_desc);
                let total: f64 = sorted.iter().map(|&(_, p)| f64::from(p)).sum();
                let target = top_p * total;
                let mut cum = 0.0;
                let mut expect_len = sorted.len();
                for (i, &(_, p)) in sorted.iter().enumerate() {
                    cum += f64::from(p);
                    if cum >= target * (1.0 - 1e-6) {
                        expect_len = i + 1;
                        break;
                    }
                }
                let mut expect: Vec<u32> = sorted[..expect_len].iter().map(|c| c.0).collect();
                expect.sort_unstable();

                let mut cands: Vec<(u32, f32)> = probs
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| (i as u32, p))
                    .collect();
                let len = nucleus_len(&mut cands, target);
                let mut got: Vec<u32> = cands[..len].iter().map(|c| c.0).collect();
                got.sort_unstable();
                assert_eq!(got, expect, "n {n} spread {spread} top_p {top_p}");
            }
        }
    }

    #[test]
    fn min_p_filters_tokens_below_fraction_of_max() {
        // probs relative to max: 1, 0.5, 0.2, 0.05 → min_p 0.3 keeps {0, 1}.
        let logits: Vec<f32> = [1.0f32, 0.5, 0.2, 0.05].iter().map(|r| r.ln()).collect();
        let mut s = Sampler::new(params(|p| p.min_p = 0.3), 0);
        let f = frequencies(&mut s, &logits, 20_000);
        assert_eq!(f[2] + f[3], 0.0, "{f:?}");
        assert!((f[0] - 1.0 / 1.5).abs() < 0.015, "{f:?}");
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_logits() {
        let mut s = Sampler::new(params(|p| p.repetition_penalty = 2.0), 0);
        s.observe_prompt(&[0, 1]);
        s.observe(2);
        let mut row = vec![3.0, -1.5, 0.5, 4.0];
        s.apply_logit_processors(&mut row).unwrap();
        assert_eq!(row, vec![1.5, -3.0, 0.25, 4.0]);
    }

    #[test]
    fn repetition_penalty_counts_a_token_once() {
        let mut s = Sampler::new(params(|p| p.repetition_penalty = 2.0), 0);
        s.observe_prompt(&[0, 0]);
        s.observe(0);
        s.observe(0);
        let mut row = vec![8.0, 1.0];
        s.apply_logit_processors(&mut row).unwrap();
        assert_eq!(row, vec![4.0, 1.0]);
    }

    #[test]
    fn presence_and_frequency_penalties_subtract_documented_amounts() {
        let mut s = Sampler::new(
            params(|p| {
                p.presence_penalty = 0.5;
                p.frequency_penalty = 0.25;
            }),
            0,
        );
        // Prompt tokens do not count for OpenAI penalties.
        s.observe_prompt(&[3]);
        s.observe(1);
        s.observe(2);
        s.observe(2);
        s.observe(2);
        let mut row = vec![1.0, 1.0, 1.0, 1.0];
        s.apply_logit_processors(&mut row).unwrap();
        // id 1: 1 - (0.5 + 0.25*1); id 2: 1 - (0.5 + 0.25*3).
        assert_eq!(row, vec![1.0, 0.25, -0.25, 1.0]);
    }

    #[test]
    fn logit_bias_is_applied_before_penalties() {
        let mut s = Sampler::new(
            params(|p| {
                p.repetition_penalty = 2.0;
                p.logit_bias = BTreeMap::from([(0, 1.0)]);
            }),
            0,
        );
        s.observe(0);
        let mut row = vec![3.0, 0.0];
        s.apply_logit_processors(&mut row).unwrap();
        assert_eq!(row, vec![2.0, 0.0]); // (3 + 1) / 2
    }

    #[test]
    fn logit_bias_plus_100_forces_and_minus_100_bans_a_token() {
        let mut s = Sampler::new(params(|p| p.logit_bias = BTreeMap::from([(4, 100.0)])), 0);
        assert!(draws(&mut s, &LOGITS, 1000).iter().all(|&t| t == 4));

        let mut s = Sampler::new(params(|p| p.logit_bias = BTreeMap::from([(1, -100.0)])), 0);
        assert!(draws(&mut s, &LOGITS, 5000).iter().all(|&t| t != 1));
        let mut g = Sampler::new(
            SamplingParams {
                logit_bias: BTreeMap::from([(1, -100.0)]),
                ..SamplingParams::greedy()
            },
            0,
        );
        assert_eq!(g.sample(&mut LOGITS.to_vec()).unwrap().token, 3);
    }

    #[test]
    fn seeded_sampling_is_reproducible() {
        let flat = [0.0f32; 8];
        let a = draws(&mut Sampler::new(params(|_| {}), 5), &flat, 200);
        let b = draws(&mut Sampler::new(params(|_| {}), 5), &flat, 200);
        assert_eq!(a, b);
        let c = draws(
            &mut Sampler::new(params(|p| p.seed = Some(99)), 5),
            &flat,
            200,
        );
        assert_ne!(a, c);
    }

    #[test]
    fn different_rollout_indices_give_different_streams() {
        let flat = [0.0f32; 8];
        let a = draws(&mut Sampler::new(params(|_| {}), 0), &flat, 200);
        let b = draws(&mut Sampler::new(params(|_| {}), 1), &flat, 200);
        assert_ne!(a, b);
    }

    #[test]
    fn rollout_stream_is_independent_of_batch_composition() {
        let flat = [0.0f32; 8];
        let alone = draws(&mut Sampler::new(params(|_| {}), 1), &flat, 50);
        let mut batch = vec![
            Sampler::new(params(|p| p.seed = Some(7)), 0),
            Sampler::new(params(|_| {}), 1),
            Sampler::new(SamplingParams::greedy(), 0),
        ];
        let mut in_batch = Vec::new();
        for _ in 0..50 {
            let mut logits = flat.repeat(3);
            let out = sample_batch(&mut batch, &mut logits, flat.len()).unwrap();
            in_batch.push(out[1].token);
        }
        assert_eq!(alone, in_batch);
    }

    #[test]
    fn parallel_and_serial_batches_agree() {
        // vocab 40_000 × 2 rows crosses PAR_MIN_ELEMS.
        let vocab = 40_000;
        let row: Vec<f32> = (0..vocab).map(|i| ((i * 31) % 97) as f32 / 10.0).collect();
        let mk = || {
            vec![
                Sampler::new(params(|p| p.top_p = 0.9), 0),
                Sampler::new(params(|p| p.top_k = 50), 1),
            ]
        };
        let mut batch = mk();
        let mut logits = row.repeat(2);
        let par = sample_batch(&mut batch, &mut logits, vocab).unwrap();
        let mut serial = mk();
        let s0 = serial[0].sample(&mut row.clone()).unwrap();
        let s1 = serial[1].sample(&mut row.clone()).unwrap();
        assert_eq!(par, vec![s0, s1]);
    }

    #[test]
    fn sample_batch_rejects_wrong_shape() {
        let mut batch = vec![Sampler::new(params(|_| {}), 0)];
        let err = sample_batch(&mut batch, &mut [0.0; 5], 4).unwrap_err();
        assert!(matches!(
            err,
            SamplingError::LogitsShape {
                len: 5,
                rows: 1,
                vocab: 4
            }
        ));
        assert!(sample_batch(&mut [], &mut [], 4).unwrap().is_empty());
        assert!(sample_batch(&mut batch, &mut [], 0).is_err());
    }

    #[test]
    fn sampling_frequencies_match_softmax_probabilities() {
        // 20k draws with a fixed seed: deterministic, and 0.012 is > 4 sigma.
        let mut s = Sampler::new(params(|_| {}), 0);
        let f = frequencies(&mut s, &LOGITS, 20_000);
        for (fi, pi) in f.iter().zip(softmax(&LOGITS)) {
            assert!((fi - pi).abs() < 0.012, "freq {f:?}");
        }
        // With temperature the target is softmax(logits / T).
        let mut s = Sampler::new(params(|p| p.temperature = 0.5), 1);
        let f = frequencies(&mut s, &LOGITS, 20_000);
        let scaled: Vec<f32> = LOGITS.iter().map(|l| l / 0.5).collect();
        for (fi, pi) in f.iter().zip(softmax(&scaled)) {
            assert!((fi - pi).abs() < 0.012, "freq {f:?}");
        }
    }

    #[test]
    fn logprobs_equal_log_softmax_of_processed_logits() {
        let mut s = Sampler::new(
            params(|p| {
                p.temperature = 0.7;
                p.top_k = 2; // truncation must not affect reported logprobs
                p.logprobs = true;
                p.top_logprobs = 3;
            }),
            0,
        );
        let out = s.sample(&mut LOGITS.to_vec()).unwrap();
        let scaled: Vec<f32> = LOGITS.iter().map(|l| l / 0.7).collect();
        let expect = log_softmax(&scaled);
        assert!((out.logprob as f64 - expect[out.token as usize]).abs() < 1e-5);
        let ids: Vec<u32> = out.top_logprobs.iter().map(|&(id, _)| id).collect();
        assert_eq!(ids, vec![1, 3, 5]);
        for &(id, lp) in &out.top_logprobs {
            assert!((lp as f64 - expect[id as usize]).abs() < 1e-5);
        }
    }

    #[test]
    fn raw_logprobs_are_the_sampling_distribution_without_bias_or_penalties() {
        // Bias and penalties change what is drawn and the reported logprob,
        // never the raw one: log_softmax(logits / T) of the model's row.
        let mut s = Sampler::new(
            params(|p| {
                p.temperature = 0.8;
                p.top_p = 0.9;
                p.logit_bias = [(4, 3.0)].into_iter().collect();
                p.repetition_penalty = 1.3;
                p.presence_penalty = 0.5;
                p.raw_logprobs = true;
            }),
            0,
        );
        s.observe_prompt(&[1]);
        s.observe(3);
        let scaled: Vec<f32> = LOGITS.iter().map(|l| l / 0.8).collect();
        let raw = log_softmax(&scaled);
        for _ in 0..20 {
            let out = s.sample(&mut LOGITS.to_vec()).unwrap();
            let t = out.token as usize;
            let got = out.raw_logprob.expect("requested") as f64;
            assert!(
                (got - raw[t]).abs() < 1e-5,
                "token {t}: {got} vs {}",
                raw[t]
            );
            assert!(
                (out.logprob as f64 - raw[t]).abs() > 1e-3,
                "processed differs"
            );
        }
        // Without processors the raw log-prob is the processed one; with the
        // flag off it is not computed.
        let mut plain = Sampler::new(
            params(|p| {
                p.temperature = 0.8;
                p.raw_logprobs = true;
            }),
            0,
        );
        let out = plain.sample(&mut LOGITS.to_vec()).unwrap();
        assert_eq!(out.raw_logprob, Some(out.logprob));
        assert!((out.logprob as f64 - raw[out.token as usize]).abs() < 1e-5);
        let mut off = Sampler::new(params(|p| p.temperature = 0.8), 0);
        assert_eq!(off.sample(&mut LOGITS.to_vec()).unwrap().raw_logprob, None);
    }

    #[test]
    fn greedy_raw_logprobs_use_temperature_one_and_ignore_bias() {
        let mut s = Sampler::new(
            SamplingParams {
                raw_logprobs: true,
                logit_bias: [(0, 10.0)].into_iter().collect(),
                ..SamplingParams::greedy()
            },
            0,
        );
        let out = s.sample(&mut LOGITS.to_vec()).unwrap();
        assert_eq!(out.token, 0, "the bias picks the token");
        let expect = log_softmax(&LOGITS)[0];
        assert!((out.raw_logprob.unwrap() as f64 - expect).abs() < 1e-6);
    }

    #[test]
    fn greedy_logprobs_use_temperature_one() {
        let mut s = Sampler::new(
            SamplingParams {
                logprobs: true,
                top_logprobs: 2,
                ..SamplingParams::greedy()
            },
            0,
        );
        let out = s.sample(&mut LOGITS.to_vec()).unwrap();
        let expect = log_softmax(&LOGITS);
        assert!((out.logprob as f64 - expect[1]).abs() < 1e-6);
        assert_eq!(out.top_logprobs.len(), 2);
        assert!((out.top_logprobs[1].1 as f64 - expect[3]).abs() < 1e-6);
    }

    #[test]
    fn top_logprobs_are_empty_unless_requested_and_skip_banned_tokens() {
        let mut s = Sampler::new(params(|_| {}), 0);
        assert!(s
            .sample(&mut LOGITS.to_vec())
            .unwrap()
            .top_logprobs
            .is_empty());
        let mut s = Sampler::new(
            params(|p| {
                p.logprobs = true;
                p.top_logprobs = 5;
            }),
            0,
        );
        let mut row = vec![0.0, f32::NEG_INFINITY, 1.0];
        let out = s.sample(&mut row).unwrap();
        assert_eq!(out.top_logprobs.len(), 2);
        assert!(out.top_logprobs.iter().all(|&(_, lp)| lp.is_finite()));
    }

    #[test]
    fn all_banned_or_nan_logits_are_an_error_not_a_panic() {
        let mut s = Sampler::new(params(|_| {}), 0);
        let err = s.sample(&mut [f32::NAN, f32::NEG_INFINITY]).unwrap_err();
        assert_eq!(err, SamplingError::NoViableToken);
        assert_eq!(s.sample(&mut []).unwrap_err(), SamplingError::NoViableToken);
        // NaN entries are ignored when others are finite.
        let out = s.sample(&mut [f32::NAN, 0.0]).unwrap();
        assert_eq!(out.token, 1);
        assert_eq!(out.logprob, 0.0);
    }

    #[test]
    fn logit_bias_id_outside_the_row_is_an_error_at_sample_time() {
        let mut s = Sampler::new(params(|p| p.logit_bias = BTreeMap::from([(10, 1.0)])), 0);
        let err = s.sample(&mut LOGITS.to_vec()).unwrap_err();
        assert!(matches!(err, SamplingError::TokenOutOfVocab { id: 10, .. }));
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

    #[test]
    fn is_stop_token_respects_ignore_eos() {
        let s = Sampler::new(params(|p| p.stop_token_ids = vec![5]), 0);
        assert!(s.is_stop_token(5, &[2]));
        assert!(s.is_stop_token(2, &[2]));
        assert!(!s.is_stop_token(3, &[2]));
        let s = Sampler::new(params(|p| p.ignore_eos = true), 0);
        assert!(!s.is_stop_token(2, &[2]));
    }

    #[test]
    fn unseeded_sampler_reports_its_seed_for_replay() {
        let mut s = Sampler::new(SamplingParams::default(), 2);
        let seed = s.seed();
        let flat = [0.0f32; 8];
        let a = draws(&mut s, &flat, 50);
        let replay = SamplingParams {
            seed: Some(seed),
            ..SamplingParams::default()
        };
        assert_eq!(a, draws(&mut Sampler::new(replay, 2), &flat, 50));
    }
}
