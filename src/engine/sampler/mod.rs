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
//!
//! # Layout
//!
//! - [`params`]: [`SamplingParams`], their ranges and validation
//!   ([`SamplingError`]);
//! - [`sampling`]: [`Sampler`] (per-rollout RNG stream, penalty counts) and
//!   the pipeline above, returning a [`Sampled`];
//! - `math`: the numeric kernels the pipeline runs on a row (softmax
//!   normaliser, log-softmax, top-k buffer, nucleus selection).

mod math;
pub mod params;
pub mod sampling;

pub use params::{
    SamplingError, SamplingParams, GREEDY_TEMPERATURE, MAX_LOGIT_BIAS, MAX_PENALTY,
    MAX_REPETITION_PENALTY, MAX_TEMPERATURE, MAX_TOP_LOGPROBS,
};
pub use sampling::{Sampled, Sampler};
