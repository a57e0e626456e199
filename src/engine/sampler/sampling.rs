//! [`Sampler`]: the sampling state of one sequence (its parameters, its
//! own RNG stream, token counts for the penalties, scratch buffers) and
//! [`Sampler::sample`], which runs the pipeline of the [module
//! docs](super) over one logits row and returns a [`Sampled`].

use std::collections::{HashMap, HashSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::math::{
    by_prob_desc, exp_shifted_in_place, log_softmax_at, nucleus_len, push_top, scale_sanitize_max,
};
use super::params::{SamplingError, SamplingParams};

/// `top_k` at or below this is selected with a bounded insertion buffer during
/// the scan over the vocabulary; larger values collect candidates and use
/// `select_nth_unstable_by`.
const SMALL_TOP_K: usize = 64;

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
    rng: ChaCha8Rng,
    /// Occurrences of each generated token (presence/frequency penalties).
    counts: HashMap<u32, u32>,
    /// Prompt ∪ generated token ids (repetition penalty); only maintained
    /// when the penalty is active.
    seen: HashSet<u32>,
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
            rng,
            counts: HashMap::new(),
            seen: HashSet::new(),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::math::NUCLEUS_FIRST_CHUNK;
    use super::super::params::tests::params;
    use super::*;

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
        // The same sampler interleaved with others, as in a decode step.
        let mut batch = [
            Sampler::new(params(|p| p.seed = Some(7)), 0),
            Sampler::new(params(|_| {}), 1),
            Sampler::new(SamplingParams::greedy(), 0),
        ];
        let mut in_batch = Vec::new();
        for _ in 0..50 {
            let out: Vec<Sampled> = batch
                .iter_mut()
                .map(|s| s.sample(&mut flat.to_vec()).unwrap())
                .collect();
            in_batch.push(out[1].token);
        }
        assert_eq!(alone, in_batch);
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
