//! OpenAI's `best_of` on `/v1/completions`: "generates `best_of`
//! completions server-side and returns the best (the one with the highest
//! log probability per token)". Quorum draws `best_of` rollouts, ranks them
//! by mean token log-probability (highest first, ties to the lower rollout
//! index) and returns the best `n` as `choices[0..n]`, best first. `usage`
//! counts every token decoded, returned or not.
//!
//! Rules, as OpenAI's: `best_of >= n`; with `stream`, `best_of` must equal
//! `n` (nothing can be ranked before every rollout has finished), and then
//! the rollouts stream unranked. Quorum's own fields: `best_of` and
//! `rollouts` both set the sample count, so giving both with different
//! values is an error. An explicit `selection` in the request wins over the
//! log-probability ranking: `best_of` then only sets the rollout count and
//! the strategy ranks (a model's configured default `selection` does not
//! override `best_of`).

use super::error::ApiError;
use crate::engine::GenerateOutput;

/// Request checks of `best_of` (400s naming `best_of`).
pub fn check(
    best_of: Option<usize>,
    rollouts: Option<usize>,
    n: usize,
    stream: bool,
) -> Result<(), ApiError> {
    let Some(b) = best_of else {
        return Ok(());
    };
    if rollouts.is_some_and(|r| r != b) {
        return Err(ApiError::invalid(
            "best_of",
            "best_of and rollouts both set the number of samples drawn; give one of them",
        ));
    }
    if b < n {
        return Err(ApiError::invalid(
            "best_of",
            format!("best_of must be greater than or equal to n ({n}), got {b}"),
        ));
    }
    if stream && b != n {
        return Err(ApiError::invalid(
            "best_of",
            format!(
                "best_of cannot be used with stream unless it equals n (best_of = {b}, n = {n})"
            ),
        ));
    }
    Ok(())
}

/// Ranks the rollouts by mean token log-probability, keeps the best `n`
/// and renumbers them `0..n` best first. Token counts (usage) stay those of
/// every rollout decoded. A rollout without tokens ranks last.
pub fn rank(mut out: GenerateOutput, n: usize) -> GenerateOutput {
    let key = |lp: Option<f64>| lp.filter(|x| !x.is_nan()).unwrap_or(f64::NEG_INFINITY);
    let mut rollouts = std::mem::take(&mut out.rollouts);
    rollouts.sort_by(|a, b| {
        key(b.mean_logprob)
            .total_cmp(&key(a.mean_logprob))
            .then(a.index.cmp(&b.index))
    });
    rollouts.truncate(n);
    for (k, r) in rollouts.iter_mut().enumerate() {
        r.index = k;
    }
    GenerateOutput { rollouts, ..out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{FinishReason, RolloutOutput};

    fn output(means: &[Option<f64>]) -> GenerateOutput {
        let rollouts = means
            .iter()
            .enumerate()
            .map(|(index, &mean_logprob)| RolloutOutput {
                index,
                text: format!("r{index}"),
                token_ids: Vec::new(),
                sampled: Vec::new(),
                raw_logprobs: Vec::new(),
                finish_reason: FinishReason::Length,
                logprobs: Vec::new(),
                mean_logprob,
                reasoning_tokens: 0,
                thinking_budget_cut: false,
                ttft_ms: 0.0,
                total_ms: 0.0,
            })
            .collect();
        GenerateOutput {
            rollouts,
            prompt_tokens: 3,
            cached_tokens: 0,
            completion_tokens: 40,
            reasoning_tokens: 0,
            timings: Default::default(),
        }
    }

    fn texts(out: &GenerateOutput) -> Vec<(usize, &str)> {
        out.rollouts
            .iter()
            .map(|r| (r.index, r.text.as_str()))
            .collect()
    }

    #[test]
    fn rank_keeps_the_best_n_by_mean_logprob_best_first() {
        let out = output(&[Some(-2.0), None, Some(-0.5), Some(-1.0), Some(-0.5)]);
        let ranked = rank(out, 3);
        assert_eq!(texts(&ranked), [(0, "r2"), (1, "r4"), (2, "r3")]);
        assert_eq!(ranked.completion_tokens, 40, "usage counts every rollout");
        let all = rank(output(&[None, Some(-3.0)]), 2);
        assert_eq!(texts(&all), [(0, "r1"), (1, "r0")]);
    }

    fn param(r: Result<(), ApiError>) -> Option<String> {
        match r {
            Err(ApiError::InvalidRequest { param, .. }) => param,
            Err(e) => panic!("unexpected {e:?}"),
            Ok(()) => None,
        }
    }

    #[test]
    fn check_names_best_of_for_each_rule() {
        let best_of = Some("best_of".to_string());
        assert_eq!(param(check(None, Some(3), 1, true)), None);
        assert_eq!(param(check(Some(3), None, 2, false)), None);
        assert_eq!(param(check(Some(2), None, 2, true)), None);
        assert_eq!(param(check(Some(3), Some(3), 1, false)), None);
        assert_eq!(param(check(Some(1), None, 2, false)), best_of);
        assert_eq!(param(check(Some(3), None, 1, true)), best_of);
        assert_eq!(param(check(Some(3), Some(4), 1, false)), best_of);
    }
}
