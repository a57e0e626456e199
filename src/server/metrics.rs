//! HTTP-side metrics: status codes, request latency, server-side rejections,
//! the tokenization queue.
//! Engine-side counters (queue depth, running, tokens) are read from each
//! engine's `EngineMetrics` when `/metrics` is scraped; together they render
//! as Prometheus text in `routes::metrics`. Plain atomics: a scrape is rare
//! and a request must never wait on a metrics lock.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (queue lengths, work in progress).
/// `dec` stops at zero rather than wrapping.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(1))
            });
    }
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Increments now and decrements when the guard drops, so a cancelled
    /// future (client gone) cannot leave the gauge too high.
    pub fn track(&self) -> GaugeGuard<'_> {
        self.inc();
        GaugeGuard(self)
    }
}

/// See [`Gauge::track`].
#[must_use = "the gauge is decremented when the guard drops"]
#[derive(Debug)]
pub struct GaugeGuard<'a>(&'a Gauge);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Upper bounds (seconds) of the latency histogram buckets: generation
/// requests range from tens of milliseconds to minutes.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// A fixed-bucket Prometheus histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts; the last slot is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends `name_bucket`, `name_sum` and `name_count` lines.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            cum += b.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or("+Inf".to_string(), |v| v.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cum}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {}", self.count.load(Ordering::Relaxed));
    }
}

/// Counters kept by the HTTP layer.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    /// Responses by status code (a handful of distinct codes; a small map).
    by_status: Mutex<Vec<(u16, u64)>>,
    /// Generation requests refused by the concurrency limit (429).
    pub rejected_concurrency: Counter,
    /// Generation requests whose client went away before the end.
    pub client_disconnects: Counter,
    /// End-to-end latency of generation requests (streams: until the last event).
    pub request_latency: Histogram,
    /// Answer-selection outcomes.
    pub selection: SelectionMetrics,
    /// Large inputs waiting for a preparation thread (`server::tokenize`).
    pub tokenize_waiting: Gauge,
    /// Inputs being prepared now (JSON parse of large bodies, template
    /// rendering, tokenization).
    pub tokenize_running: Gauge,
}

impl ServerMetrics {
    pub fn count_status(&self, status: u16) {
        if let Ok(mut v) = self.by_status.lock() {
            match v.iter_mut().find(|(s, _)| *s == status) {
                Some((_, n)) => *n += 1,
                None => v.push((status, 1)),
            }
        }
    }

    /// Snapshot of responses by status, sorted by code.
    pub fn statuses(&self) -> Vec<(u16, u64)> {
        let mut v = self.by_status.lock().map(|v| v.clone()).unwrap_or_default();
        v.sort_unstable();
        v
    }
}

/// Selection outcomes on `/metrics`: requests by strategy, requests decided
/// early, rollouts stopped early and the tokens that saved.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_goes_up_and_down_and_stops_at_zero() {
        let g = Gauge::default();
        g.inc();
        g.inc();
        g.dec();
        assert_eq!(g.get(), 1);
        g.dec();
        g.dec();
        assert_eq!(g.get(), 0);
        g.set(7);
        assert_eq!(g.get(), 7);
        {
            let _a = g.track();
            let _b = g.track();
            assert_eq!(g.get(), 9);
        }
        assert_eq!(g.get(), 7);
    }

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(20));
        h.observe(Duration::from_millis(700));
        h.observe(Duration::from_secs(1000));
        let mut s = String::new();
        h.render(&mut s, "x", "help");
        assert!(s.contains("x_bucket{le=\"0.05\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"1\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"+Inf\"} 3\n"), "{s}");
        assert!(s.contains("x_count 3\n"), "{s}");
    }
}
