//! Accuracy at every N from one pool of samples per problem: the unbiased
//! pass@N ([`pass_at_k`]) and, for each selection strategy, the share of
//! N-subsets of the pool whose selected sample the verifier accepts —
//! every subset when there are at most [`SUBSETS`] of them, else
//! [`SUBSETS`] seeded random ones ([`subsets`]); the same subsets for every
//! strategy. Selection is the scoring crate's [`Selector`]s, as the server
//! runs them; answers are extracted and clustered once per problem over the
//! whole pool, so each subset's vote only compares cluster labels.

use serde::Serialize;

use quorum_scoring::select::at_k::{pass_at_k, subsets};
use quorum_scoring::select::cluster_answers;
use quorum_scoring::{RolloutSummary, Selector};

/// Subsets drawn per (problem, N) when there are more distinct ones.
pub const SUBSETS: usize = 64;

/// One sample as the estimators see it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Judged {
    /// The answer part (after the think block).
    pub content: String,
    pub correct: bool,
    pub tokens: usize,
    pub finish_reason: String,
    #[serde(default)]
    pub logprobs: Vec<f32>,
    /// Reward-model score of the whole completion.
    #[serde(default)]
    pub score: Option<f64>,
    pub latency_ms: f64,
}

/// Accuracy at one N.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AtN {
    pub n: usize,
    /// Unbiased pass@N (some sample of N correct): the bound of any selection.
    pub pass_at_n: f64,
    /// Per strategy, in the order given: its accuracy at N.
    pub accuracy: Vec<(String, f64)>,
    /// Mean generated tokens per problem at N (N × mean tokens per sample).
    pub tokens_per_problem: f64,
}

/// `C(n, k)`, saturating.
fn binomial(n: usize, k: usize) -> usize {
    let k = k.min(n - k.min(n));
    let mut c: u128 = 1;
    for i in 0..k {
        c = c * (n - i) as u128 / (i + 1) as u128;
        if c > usize::MAX as u128 {
            return usize::MAX;
        }
    }
    c as usize
}

/// Every k-subset of `0..n` in lexicographic order.
fn all_subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        out.push(idx.clone());
        let Some(i) = (0..k).rev().find(|&i| idx[i] != i + n - k) else {
            return out;
        };
        idx[i] += 1;
        for j in i + 1..k {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

/// SplitMix64 step.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The k-subsets of a pool of `n` to average over: all of them when there
/// are at most `count`, else `count` seeded random ones; each in a random
/// order (strategies that depend on the order — `first`, tie-breaks — see
/// every member in every place alike), except the whole pool (`k ≥ n`),
/// which keeps the order it was drawn in.
pub fn subsets_for(n: usize, k: usize, count: usize, seed: u64) -> Vec<Vec<usize>> {
    if k == 0 || n == 0 {
        return Vec::new();
    }
    if k >= n {
        return vec![(0..n).collect()];
    }
    if binomial(n, k) > count {
        // Already in drawing order (a partial Fisher–Yates).
        return subsets(n, k, count, seed);
    }
    let mut state = seed ^ 0xA076_1D64_78BD_642F;
    let mut all = all_subsets(n, k);
    for s in &mut all {
        for i in (1..s.len()).rev() {
            let j = (next(&mut state) % (i as u64 + 1)) as usize;
            s.swap(i, j);
        }
    }
    all
}

/// The summaries the selectors see, answers replaced by their cluster label
/// over the whole pool (abstentions stay empty).
pub fn summaries(pool: &[Judged]) -> Vec<RolloutSummary> {
    let mut full: Vec<RolloutSummary> = pool
        .iter()
        .enumerate()
        .map(|(i, s)| RolloutSummary {
            index: i,
            text: s.content.clone(),
            answer: None,
            mean_logprob: None,
            token_logprobs: s.logprobs.clone(),
            score: s.score,
            finish_reason: s.finish_reason.clone(),
            tokens: s.tokens,
        })
        .collect();
    let answers: Vec<Option<String>> = full.iter().map(RolloutSummary::resolved_answer).collect();
    let clusters = cluster_answers(&answers, &Default::default());
    for (s, c) in full.iter_mut().zip(&clusters.cluster_of) {
        s.answer = Some(c.map(|c| c.to_string()).unwrap_or_default());
    }
    full
}

/// Whether `selector` picks a correct sample from `subset` of `pool`.
fn hit(
    selector: &dyn Selector,
    pool: &[Judged],
    summaries: &[RolloutSummary],
    subset: &[usize],
) -> bool {
    let rollouts: Vec<RolloutSummary> = subset
        .iter()
        .enumerate()
        .map(|(j, &m)| RolloutSummary {
            index: j,
            ..summaries[m].clone()
        })
        .collect();
    selector
        .select(&rollouts)
        .winner
        .and_then(|w| subset.get(w))
        .is_some_and(|&m| pool[m].correct)
}

/// Seed of a problem's subsets.
fn problem_seed(seed: u64, problem: usize) -> u64 {
    seed ^ (problem as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The rows of one configuration: `pools[p]` are problem p's samples (all
/// the same size), `ns` the N of the table, `strategies` the selectors.
pub fn at_n(
    pools: &[Vec<Judged>],
    ns: &[usize],
    strategies: &[(String, Box<dyn Selector>)],
    seed: u64,
) -> Vec<AtN> {
    let problems = pools.len().max(1) as f64;
    let sums: Vec<Vec<RolloutSummary>> = pools.iter().map(|p| summaries(p)).collect();
    let mean_tokens: f64 = pools
        .iter()
        .map(|p| p.iter().map(|s| s.tokens as f64).sum::<f64>() / p.len().max(1) as f64)
        .sum::<f64>()
        / problems;
    ns.iter()
        .map(|&n| {
            let mut pass = 0.0;
            let mut acc = vec![0.0; strategies.len()];
            for (p, (pool, sum)) in pools.iter().zip(&sums).enumerate() {
                let c = pool.iter().filter(|s| s.correct).count();
                pass += pass_at_k(pool.len(), c, n);
                let subs = subsets_for(pool.len(), n, SUBSETS, problem_seed(seed, p));
                if subs.is_empty() {
                    continue;
                }
                for (k, (_, sel)) in strategies.iter().enumerate() {
                    let hits = subs
                        .iter()
                        .filter(|sub| hit(sel.as_ref(), pool, sum, sub))
                        .count();
                    acc[k] += hits as f64 / subs.len() as f64;
                }
            }
            AtN {
                n,
                pass_at_n: pass / problems,
                accuracy: strategies
                    .iter()
                    .zip(acc)
                    .map(|((name, _), a)| (name.clone(), a / problems))
                    .collect(),
                tokens_per_problem: mean_tokens * n.min(pools.first().map_or(n, Vec::len)) as f64,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quorum_scoring::{BestOfN, First, Majority};

    fn s(answer: &str, correct: bool, score: f64) -> Judged {
        Judged {
            content: format!("\\boxed{{{answer}}}"),
            correct,
            tokens: 10,
            finish_reason: "stop".into(),
            logprobs: vec![],
            score: Some(score),
            latency_ms: 1.0,
        }
    }

    fn strategies() -> Vec<(String, Box<dyn Selector>)> {
        vec![
            ("first".into(), Box::new(First)),
            ("majority".into(), Box::new(Majority)),
            ("best_of_n".into(), Box::new(BestOfN::default())),
        ]
    }

    #[test]
    fn every_subset_is_enumerated_when_there_are_few() {
        assert_eq!(binomial(4, 2), 6);
        assert_eq!(binomial(16, 8), 12870);
        let mut all = subsets_for(4, 2, 64, 0);
        for s in &mut all {
            s.sort_unstable();
        }
        assert_eq!(
            all,
            vec![
                vec![0, 1],
                vec![0, 2],
                vec![0, 3],
                vec![1, 2],
                vec![1, 3],
                vec![2, 3]
            ]
        );
        assert_eq!(subsets_for(16, 8, 64, 0).len(), 64);
        assert_eq!(subsets_for(3, 3, 64, 0), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn estimates_match_hand_computed_values() {
        // One problem, four samples: answers 7 (right), 5, 5, 7 (right);
        // the reward model prefers the second 7.
        let pool = vec![
            s("7", true, 0.1),
            s("5", false, 0.2),
            s("5", false, 0.0),
            s("7", true, 0.9),
        ];
        let rows = at_n(&[pool], &[1, 2, 4], &strategies(), 0);
        let get = |row: &AtN, k: &str| {
            row.accuracy
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, a)| *a)
                .unwrap()
        };
        // N = 1: every strategy picks its one sample: 2 of 4 right.
        assert_eq!(rows[0].pass_at_n, 0.5);
        for k in ["first", "majority", "best_of_n"] {
            assert_eq!(get(&rows[0], k), 0.5, "{k}");
        }
        // N = 2: 6 pairs, 5 hold a right answer (all but {1, 2}).
        assert!((rows[1].pass_at_n - 5.0 / 6.0).abs() < 1e-12);
        // first: one member of each pair, in a random order: a multiple of 1/6.
        let f = get(&rows[1], "first") * 6.0;
        assert!((f - f.round()).abs() < 1e-9, "{f}");
        // best_of_n: the higher score: {0,1}->1 wrong, {0,2}->0 right,
        // {0,3}->3 right, {1,2}->1 wrong, {1,3}->3 right, {2,3}->3 right.
        assert!((get(&rows[1], "best_of_n") - 4.0 / 6.0).abs() < 1e-12);
        // N = 4: majority ties 2-2 (broken by log-prob, none here: the
        // cluster seen first, 7) -> right; best_of_n -> 0.9 -> right.
        assert_eq!(rows[2].pass_at_n, 1.0);
        assert_eq!(get(&rows[2], "majority"), 1.0);
        assert_eq!(get(&rows[2], "best_of_n"), 1.0);
        assert_eq!(get(&rows[2], "first"), 1.0);
        assert_eq!(rows[2].tokens_per_problem, 40.0);
        assert_eq!(rows[0].tokens_per_problem, 10.0);
    }

    #[test]
    fn majority_over_the_whole_pool_is_maj_at_max_n() {
        let pool = vec![
            s("3", false, 0.0),
            s("4", true, 0.0),
            s("3", false, 0.0),
            s("4.0", true, 0.0),
            s("3", false, 0.0),
        ];
        let rows = at_n(&[pool], &[5], &strategies(), 0);
        assert_eq!(rows[0].accuracy[1], ("majority".into(), 0.0));
        assert_eq!(rows[0].pass_at_n, 1.0);
    }
}
