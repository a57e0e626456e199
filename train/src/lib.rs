//! Training algorithms (SFT, GRPO/RLVR, reward models) over a small policy trait.
//!
//! This crate holds what does not need the real model: task data and
//! generators, loss masks, losses, the optimizer and schedules, batching,
//! checkpoint/resume state and metrics. The root crate wires in the real
//! `Transformer` and rollout engine through [`policy`].

pub mod data;
pub mod gen;
