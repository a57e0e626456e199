//! Outcome reward models: a scalar head on the policy backbone, read at
//! the last token of (conversation, completion), trained on verifier-
//! labelled rollouts with binary cross-entropy (balanced per problem) or on
//! preference pairs with the Bradley–Terry loss.
//!
//! - [`data`]: tasks, labelled completions and preference pairs.
//! - [`loss`]: the losses and per-problem balancing weights.
//! - [`step`]: one optimizer step over micro-batches ([`RmBatch`]).
//! - [`metrics`]: AUC and pairwise accuracy of held-out scores.
//!
//! The root crate samples the rollouts, renders pairs with the reward
//! model's chat template exactly as serving scores them, and runs the loop.

pub mod data;
pub mod loss;
pub mod metrics;
pub mod step;

pub use step::{rm_step, score_all, RmBatch, RmStepStats, RmTarget};
