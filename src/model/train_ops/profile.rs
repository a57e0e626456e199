//! Optional per-op timing of the fused training ops (off by default; one
//! relaxed atomic load per op call when off). `benches/train_step.rs
//! --profile` uses it to show where a step's time goes: whatever a step
//! spends outside these ops is candle's autograd (gradient accumulation,
//! residual adds, embedding) and the optimiser.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The timed ops, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Linear,
    RmsNorm,
    Rope,
    /// [`super::causal_attention`] and [`super::qkv_attention`] (whose q/k
    /// norms and rotary embedding count here too).
    Attention,
    SiluMul,
    TokenLogprobs,
}

const OPS: [Op; 6] = [
    Op::Linear,
    Op::RmsNorm,
    Op::Rope,
    Op::Attention,
    Op::SiluMul,
    Op::TokenLogprobs,
];

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Linear => "linear",
            Op::RmsNorm => "rms_norm",
            Op::Rope => "rope",
            Op::Attention => "attention",
            Op::SiluMul => "silu_mul",
            Op::TokenLogprobs => "token_logprobs",
        }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Nanoseconds per (op, phase): phase 0 forward, 1 backward.
static NANOS: [[AtomicU64; 2]; 6] = [const { [const { AtomicU64::new(0) }; 2] }; 6];
static CALLS: [[AtomicU64; 2]; 6] = [const { [const { AtomicU64::new(0) }; 2] }; 6];

/// Turn timing on or off (and clear the counters).
pub fn enable(on: bool) {
    for op in 0..OPS.len() {
        for phase in 0..2 {
            NANOS[op][phase].store(0, Ordering::Relaxed);
            CALLS[op][phase].store(0, Ordering::Relaxed);
        }
    }
    ENABLED.store(on, Ordering::Relaxed);
}

/// One op's totals since [`enable`].
#[derive(Debug, Clone, Copy)]
pub struct OpTime {
    pub op: Op,
    pub forward_s: f64,
    pub backward_s: f64,
    pub forward_calls: u64,
    pub backward_calls: u64,
}

/// The totals of every op since [`enable`].
pub fn totals() -> Vec<OpTime> {
    OPS.iter()
        .enumerate()
        .map(|(i, &op)| OpTime {
            op,
            forward_s: NANOS[i][0].load(Ordering::Relaxed) as f64 * 1e-9,
            backward_s: NANOS[i][1].load(Ordering::Relaxed) as f64 * 1e-9,
            forward_calls: CALLS[i][0].load(Ordering::Relaxed),
            backward_calls: CALLS[i][1].load(Ordering::Relaxed),
        })
        .collect()
}

/// Adds the time until drop to `op`'s forward or backward total.
pub(crate) struct Timer {
    slot: Option<(usize, usize, Instant)>,
}

impl Timer {
    pub(crate) fn start(op: Op, backward: bool) -> Self {
        let slot = ENABLED.load(Ordering::Relaxed).then(|| {
            let i = OPS.iter().position(|&o| o == op).unwrap_or(0);
            (i, usize::from(backward), Instant::now())
        });
        Self { slot }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some((i, phase, t)) = self.slot {
            NANOS[i][phase].fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            CALLS[i][phase].fetch_add(1, Ordering::Relaxed);
        }
    }
}
