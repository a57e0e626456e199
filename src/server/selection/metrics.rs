//! Selection outcomes on `/metrics`: requests by strategy, requests decided
//! early, rollouts stopped early and the tokens that saved.

use std::fmt::Write;
use std::sync::Mutex;

use crate::server::metrics::Counter;

#[derive(Debug, Default)]
pub struct SelectionMetrics {
    /// Selections run, by strategy (five names at most: a small map).
    by_strategy: Mutex<Vec<(&'static str, u64)>>,
    /// Requests where early stopping cancelled at least one rollout.
    pub decided_early: Counter,
    /// Rollouts cancelled by early stopping.
    pub rollouts_stopped: Counter,
    /// `max_tokens` budget not decoded thanks to early stopping.
    pub tokens_saved: Counter,
}

impl SelectionMetrics {
    pub fn record(&self, strategy: &'static str, stopped: usize, tokens_saved: usize) {
        if let Ok(mut v) = self.by_strategy.lock() {
            match v.iter_mut().find(|(s, _)| *s == strategy) {
                Some((_, n)) => *n += 1,
                None => v.push((strategy, 1)),
            }
        }
        if stopped > 0 {
            self.decided_early.inc();
        }
        self.rollouts_stopped.add(stopped as u64);
        self.tokens_saved.add(tokens_saved as u64);
    }

    /// Appends the Prometheus series.
    pub fn render(&self, out: &mut String) {
        let mut v = self
            .by_strategy
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        v.sort_unstable();
        let _ = writeln!(
            out,
            "# HELP quorum_selections_total Answer selections run, by strategy.\n# TYPE quorum_selections_total counter"
        );
        for (s, n) in v {
            let _ = writeln!(out, "quorum_selections_total{{strategy=\"{s}\"}} {n}");
        }
        for (name, help, c) in [
            (
                "quorum_selection_decided_early_total",
                "Selections where early stopping cancelled rollouts.",
                &self.decided_early,
            ),
            (
                "quorum_selection_rollouts_stopped_total",
                "Rollouts cancelled by early stopping.",
                &self.rollouts_stopped,
            ),
            (
                "quorum_selection_tokens_saved_total",
                "max_tokens budget left undecoded by early stopping.",
                &self.tokens_saved,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.get()
            );
        }
    }
}
