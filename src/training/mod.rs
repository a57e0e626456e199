//! The real model and engine wired into the `train` crate's algorithms:
//! [`policy::TransformerPolicy`] (the differentiable forward), chat
//! rendering for loss masks ([`render`]), eval by generation with the
//! rollout engine ([`eval`]), and the run loops: SFT ([`sft`]), GRPO
//! ([`grpo`]) and reward models ([`rm`]).

pub mod data;
pub mod eval;
pub mod filter;
pub mod grpo;
pub mod policy;
pub mod render;
pub mod rm;
mod rm_backbone;
pub mod rm_eval;
pub mod rm_samples;
pub mod rollouts;
pub mod run;
pub mod sft;
mod signals;
