//! Learning-rate schedules: linear warmup, then cosine decay to a floor.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WarmupCosine {
    /// Peak learning rate, reached at the end of warmup.
    pub peak: f64,
    pub warmup_steps: u64,
    /// Steps of the whole run (the cosine reaches the floor at this step).
    pub total_steps: u64,
    /// Floor as a fraction of the peak (0.1: decay to peak/10).
    pub min_ratio: f64,
}

impl WarmupCosine {
    /// Learning rate of optimizer step `step` (0-based): warmup rises
    /// linearly to the peak, `peak·(step+1)/warmup`; then
    /// `floor + (peak − floor)·½(1 + cos(π·p))` with `p` the fraction of the
    /// decay steps done, clamped to the floor after `total_steps`.
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let floor = self.peak * self.min_ratio;
        let decay = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let p = ((step - self.warmup_steps) as f64 / decay as f64).min(1.0);
        floor + (self.peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_values() {
        let s = WarmupCosine {
            peak: 1e-3,
            warmup_steps: 4,
            total_steps: 14,
            min_ratio: 0.1,
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
        assert!(close(s.lr(0), 2.5e-4));
        assert!(close(s.lr(3), 1e-3));
        assert!(close(s.lr(4), 1e-3)); // decay starts at the peak
                                       // halfway through the 10 decay steps: floor + (peak-floor)/2
        assert!(close(s.lr(9), 1e-4 + 0.9e-3 * 0.5));
        assert!(close(s.lr(14), 1e-4));
        assert!(close(s.lr(100), 1e-4));
        // step 6: p = 0.2
        let want = 1e-4 + 0.9e-3 * 0.5 * (1.0 + (std::f64::consts::PI * 0.2).cos());
        assert!(close(s.lr(6), want));
    }

    #[test]
    fn no_warmup_starts_at_peak() {
        let s = WarmupCosine {
            peak: 2.0,
            warmup_steps: 0,
            total_steps: 10,
            min_ratio: 0.0,
        };
        assert_eq!(s.lr(0), 2.0);
        assert!((s.lr(10)).abs() < 1e-12);
    }
}
