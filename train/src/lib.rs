//! Training algorithms (SFT, GRPO/RLVR, reward models) over small model traits.
//!
//! This crate holds what does not need the real model: task data and
//! generators, batching and loss weights, losses, the optimizer and
//! schedules, checkpoint/resume state, configs and metrics. The root crate
//! wires in the real `Transformer` and rollout engine through
//! [`policy::Policy`].

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod data;
mod error;
pub mod filter;
pub mod gen;
pub mod grpo;
pub mod grpo_config;
pub mod loss;
pub mod mask;
pub mod metrics;
pub mod optim;
pub mod policy;
pub mod rewards;
pub mod rm;
pub mod rm_config;
pub mod schedule;
pub mod sft;
pub mod sft_config;

pub use error::{Result, TrainError};
