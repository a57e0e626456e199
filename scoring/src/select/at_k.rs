//! Accuracy at N from a larger pool of samples per problem, so one pass of
//! `n` samples gives every smaller N:
//!
//! - [`pass_at_k`]: the unbiased estimator `1 − C(n−c, k) / C(n, k)` of
//!   Chen et al. (2021), the chance that a random k-subset holds a correct
//!   sample, computed as a product (no overflow, no cancellation).
//! - [`subsets`]: seeded random k-subsets of the pool; a selection
//!   strategy's accuracy at k (maj@k, rm@k, weighted@k) is its mean over
//!   them.

/// Unbiased pass@k of a problem with `c` correct samples out of `n`
/// (`k ≤ n`; `k > n` is treated as `k = n`).
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    let k = k.min(n);
    if c == 0 || k == 0 {
        return 0.0;
    }
    if n - c < k {
        return 1.0;
    }
    // C(n−c, k)/C(n, k) = Π_{i=n−c+1}^{n} (1 − k/i)
    let fail: f64 = ((n - c + 1)..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product();
    1.0 - fail
}

/// SplitMix64 step.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `count` random k-subsets of `0..n` (index lists in drawing order), from
/// `seed`; one subset `0..n` when `k ≥ n`. Subsets may repeat when there
/// are few distinct ones; the estimate stays unbiased.
pub fn subsets(n: usize, k: usize, count: usize, seed: u64) -> Vec<Vec<usize>> {
    if k >= n {
        return vec![(0..n).collect()];
    }
    let mut state = seed;
    (0..count)
        .map(|_| {
            // Partial Fisher–Yates: the first k of a random permutation.
            let mut idx: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = i + (next(&mut state) % (n - i) as u64) as usize;
                idx.swap(i, j);
            }
            idx.truncate(k);
            idx
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_at_k_by_hand() {
        // n = 4, c = 1, k = 2: 1 − C(3,2)/C(4,2) = 1 − 3/6
        assert!((pass_at_k(4, 1, 2) - 0.5).abs() < 1e-12);
        // n = 5, c = 2, k = 2: 1 − C(3,2)/C(5,2) = 1 − 3/10
        assert!((pass_at_k(5, 2, 2) - 0.7).abs() < 1e-12);
        // pass@1 is the fraction correct.
        assert!((pass_at_k(16, 5, 1) - 5.0 / 16.0).abs() < 1e-12);
        assert_eq!(pass_at_k(4, 0, 4), 0.0);
        assert_eq!(pass_at_k(4, 3, 2), 1.0);
        assert_eq!(pass_at_k(4, 1, 9), 1.0);
    }

    #[test]
    fn subsets_are_seeded_distinct_index_sets() {
        let a = subsets(16, 4, 8, 7);
        assert_eq!(a, subsets(16, 4, 8, 7));
        assert_ne!(a, subsets(16, 4, 8, 8));
        for s in &a {
            let mut t = s.clone();
            t.sort_unstable();
            t.dedup();
            assert_eq!(t.len(), 4);
            assert!(t.iter().all(|&i| i < 16));
        }
        assert_eq!(subsets(3, 5, 4, 0), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn subset_means_approach_pass_at_k() {
        // Mean of "any correct in the subset" over many subsets ≈ pass@k.
        let correct = [true, false, false, true, false, false, false, false];
        let s = subsets(8, 3, 20_000, 1);
        let hit = s.iter().filter(|s| s.iter().any(|&i| correct[i])).count() as f64;
        let est = hit / s.len() as f64;
        assert!((est - pass_at_k(8, 2, 3)).abs() < 0.01, "{est}");
    }
}
