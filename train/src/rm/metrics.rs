//! Held-out quality of a reward model's scores.

/// Area under the ROC curve of `scores` for binary `labels`: the chance a
/// random correct sample outscores a random incorrect one, ties counting
/// half (the Mann–Whitney U statistic over both class sizes). `None` when
/// a class is empty or a score is not finite.
/// Mean AUC within groups (`group[i]` is sample `i`'s problem) over the
/// groups that have both labels: how well the scores rank one problem's
/// correct answers above its wrong ones — what best-of-N needs — free of
/// the problem-difficulty signal a pooled AUC also rewards. `None` when no
/// group has both labels.
pub fn within_group_auc(scores: &[f64], labels: &[bool], group: &[usize]) -> Option<f64> {
    if scores.len() != labels.len() || scores.len() != group.len() {
        return None;
    }
    let mut by: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, &g) in group.iter().enumerate() {
        by.entry(g).or_default().push(i);
    }
    let aucs: Vec<f64> = by
        .values()
        .filter_map(|m| {
            let s: Vec<f64> = m.iter().map(|&i| scores[i]).collect();
            let y: Vec<bool> = m.iter().map(|&i| labels[i]).collect();
            auc(&s, &y)
        })
        .collect();
    (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64)
}

pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() || scores.iter().any(|s| !s.is_finite()) {
        return None;
    }
    let pos = labels.iter().filter(|&&y| y).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    // Average ranks (1-based) with ties sharing the mean rank.
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0f64;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] {
                rank_sum_pos += mean_rank;
            }
        }
        i = j + 1;
    }
    let (p, n) = (pos as f64, neg as f64);
    Some((rank_sum_pos - p * (p + 1.0) / 2.0) / (p * n))
}

/// Share of pairs whose chosen score is above the rejected one (ties half).
pub fn pair_accuracy(chosen: &[f64], rejected: &[f64]) -> Option<f64> {
    if chosen.is_empty() || chosen.len() != rejected.len() {
        return None;
    }
    let wins: f64 = chosen
        .iter()
        .zip(rejected)
        .map(|(c, r)| match c.partial_cmp(r) {
            Some(std::cmp::Ordering::Greater) => 1.0,
            Some(std::cmp::Ordering::Equal) => 0.5,
            _ => 0.0,
        })
        .sum();
    Some(wins / chosen.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_by_hand() {
        // Positives 0.9, 0.4; negatives 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1,
        // 0.4<0.5, 0.4>0.1) → 3 of 4.
        let a = auc(&[0.9, 0.5, 0.4, 0.1], &[true, false, true, false]).unwrap();
        assert!((a - 0.75).abs() < 1e-12, "{a}");
        assert_eq!(auc(&[1.0, 2.0], &[false, true]), Some(1.0));
        assert_eq!(auc(&[2.0, 1.0], &[false, true]), Some(0.0));
    }

    #[test]
    fn ties_count_half_and_degenerate_inputs_have_no_auc() {
        assert_eq!(auc(&[1.0, 1.0, 1.0], &[true, false, false]), Some(0.5));
        assert_eq!(auc(&[1.0, 2.0], &[true, true]), None);
        assert_eq!(auc(&[f64::NAN, 2.0], &[true, false]), None);
        assert_eq!(pair_accuracy(&[1.0, 0.0, 2.0], &[0.0, 0.0, 3.0]), Some(0.5));
        assert_eq!(pair_accuracy(&[], &[]), None);
    }

    #[test]
    fn within_group_auc_ignores_the_difficulty_signal() {
        // group 0 all wrong and low, group 1 all right and high: pooled AUC 1
        // would credit that; within the mixed groups the ranking is reversed
        // in group 2 (0.0) and right in group 3 (1.0).
        let scores = [0.0, 0.1, 5.0, 5.1, 1.0, 2.0, 2.0, 1.0];
        let labels = [false, false, true, true, true, false, true, false];
        let group = [0, 0, 1, 1, 2, 2, 3, 3];
        assert_eq!(within_group_auc(&scores, &labels, &group), Some(0.5));
        assert_eq!(
            within_group_auc(&scores[..4], &labels[..4], &group[..4]),
            None
        );
    }
}
