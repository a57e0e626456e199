//! Dynamic sampling (DAPO): groups whose rewards are all equal carry no
//! gradient; drop them and sample that many new prompts, round after round,
//! until the batch is full or the refill cap is reached.

use crate::Result;

/// The kept groups of one step and what it took to get them.
#[derive(Debug, Clone, PartialEq)]
pub struct Filled<G> {
    pub groups: Vec<G>,
    /// Sampling rounds run (1 without refills).
    pub rounds: usize,
    /// Groups sampled over all rounds.
    pub sampled: usize,
    /// Zero-variance groups over all rounds (dropped when enabled, kept
    /// and counted when not).
    pub dropped: usize,
    /// Zero-variance groups in the first round (before any refill).
    pub first_round_dropped: usize,
}

impl<G> Filled<G> {
    /// Share of sampled groups that had no signal.
    pub fn zero_variance_fraction(&self) -> f64 {
        if self.sampled == 0 {
            0.0
        } else {
            self.dropped as f64 / self.sampled as f64
        }
    }
}

/// Sample `target` groups with `sample(n, round)` (which draws `n` new
/// prompts), keep those `has_signal` accepts, and refill exactly the
/// dropped count for up to `max_refills` more rounds. With `enabled` false
/// every group is kept (one round). A batch still short after the cap
/// trains on the groups it has.
pub fn fill<G>(
    target: usize,
    enabled: bool,
    max_refills: usize,
    mut sample: impl FnMut(usize, usize) -> Result<Vec<G>>,
    has_signal: impl Fn(&G) -> bool,
) -> Result<Filled<G>> {
    let mut out = Filled {
        groups: Vec::with_capacity(target),
        rounds: 0,
        sampled: 0,
        dropped: 0,
        first_round_dropped: 0,
    };
    let mut need = target;
    while need > 0 && out.rounds <= max_refills {
        let got = sample(need, out.rounds)?;
        if got.is_empty() {
            break;
        }
        out.sampled += got.len();
        let mut no_signal = 0;
        for g in got {
            let signal = has_signal(&g);
            no_signal += usize::from(!signal);
            if signal || !enabled {
                out.groups.push(g);
            }
        }
        if out.rounds == 0 {
            out.first_round_dropped = no_signal;
        }
        out.dropped += no_signal;
        out.rounds += 1;
        need = target.saturating_sub(out.groups.len());
        if !enabled {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prompts 0, 1, 2, … ; a prompt has signal unless it is a multiple of 3.
    fn sampler(
        log: &mut Vec<(usize, usize)>,
    ) -> impl FnMut(usize, usize) -> Result<Vec<usize>> + '_ {
        let mut next = 0;
        move |n, round| {
            log.push((n, round));
            let v: Vec<usize> = (next..next + n).collect();
            next += n;
            Ok(v)
        }
    }

    #[test]
    fn refills_exactly_the_dropped_groups() {
        let mut log = Vec::new();
        let f = fill(4, true, 5, sampler(&mut log), |&p| p % 3 != 0).unwrap();
        // round 0: 0..4 → drops 0, 3 (keeps 1, 2); round 1: 4, 5 → keeps 4, 5
        assert_eq!(f.groups, vec![1, 2, 4, 5]);
        assert_eq!(log, vec![(4, 0), (2, 1)]);
        assert_eq!(
            (f.rounds, f.sampled, f.dropped, f.first_round_dropped),
            (2, 6, 2, 2)
        );
        assert!((f.zero_variance_fraction() - 2.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn the_cap_stops_refilling_and_keeps_what_it_has() {
        let mut log = Vec::new();
        // only prompts ≥ 100 have signal: nothing is ever kept
        let f = fill(3, true, 2, sampler(&mut log), |&p| p >= 100).unwrap();
        assert!(f.groups.is_empty());
        assert_eq!(log, vec![(3, 0), (3, 1), (3, 2)]);
        assert_eq!((f.rounds, f.sampled, f.dropped), (3, 9, 9));
    }

    #[test]
    fn disabled_keeps_every_group_in_one_round() {
        let mut log = Vec::new();
        let f = fill(4, false, 5, sampler(&mut log), |&p| p % 3 != 0).unwrap();
        assert_eq!(f.groups, vec![0, 1, 2, 3]);
        assert_eq!(log, vec![(4, 0)]);
        assert_eq!((f.rounds, f.dropped), (1, 2));
    }
}
