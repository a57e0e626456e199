//! Per-rollout cancellation: a shared set of flags the request's consumer
//! raises (adaptive answer selection: "the vote is decided, stop the rest")
//! and the engine polls between steps.
//!
//! Dropping a request's event stream cancels the whole request; a
//! [`CancelSet`] cancels single rollouts while the others keep decoding. The
//! engine finishes each flagged rollout with [`super::FinishReason::Cancelled`]
//! (a `RolloutFinished` event follows), frees its KV cache and returns its KV
//! reservation to the scheduler at once. Lock-free: the consumer never waits
//! on the engine, and a step that finds nothing flagged costs one atomic load.

use std::sync::atomic::{AtomicBool, Ordering};

/// Cancellation flags for the rollouts of one request, indexed by rollout.
#[derive(Debug)]
pub struct CancelSet {
    flags: Vec<AtomicBool>,
    /// Raised with any flag: the engine's fast path when nothing is flagged.
    any: AtomicBool,
}

impl CancelSet {
    /// Flags for `n` rollouts, none raised.
    pub fn new(n: usize) -> Self {
        Self {
            flags: (0..n).map(|_| AtomicBool::new(false)).collect(),
            any: AtomicBool::new(false),
        }
    }

    /// Ask the engine to stop rollout `rollout` (out of range: ignored).
    /// Rollouts that already finished keep their own finish reason.
    pub fn cancel(&self, rollout: usize) {
        if let Some(f) = self.flags.get(rollout) {
            f.store(true, Ordering::Release);
            self.any.store(true, Ordering::Release);
        }
    }

    pub fn is_cancelled(&self, rollout: usize) -> bool {
        self.flags
            .get(rollout)
            .is_some_and(|f| f.load(Ordering::Acquire))
    }

    /// Whether any rollout was flagged (cheap; polled every step).
    pub fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    pub fn len(&self) -> usize {
        self.flags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::CancelSet;

    #[test]
    fn flags_are_per_rollout() {
        let c = CancelSet::new(3);
        assert!(!c.any());
        c.cancel(1);
        c.cancel(7);
        assert!(c.any() && c.is_cancelled(1));
        assert!(!c.is_cancelled(0) && !c.is_cancelled(2) && !c.is_cancelled(7));
    }
}
