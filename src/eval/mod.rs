//! Accuracy against compute (`quorum bench eval`) and rejection-sampling
//! distillation (`quorum data distill`), over one client seam: a
//! [`source::SampleSource`] is the embedded engine ([`embedded`]) or any
//! OpenAI-compatible server ([`remote`]); reward scores come from a local
//! reward model ([`reward`]) or Quorum's `/v1/score` ([`remote`]).
//!
//! - [`problems`]: the task file (the `train` crate's loaders), verdicts, seeds;
//! - [`bench`]: draw the largest N once per problem and configuration,
//!   judge, score, cache ([`cache`]); every smaller N from that pool ([`at_n`]);
//! - [`results`]: what a run found, per configuration and N;
//! - [`report`], [`plots`]: the table, `results.json`, `results.csv`, PNGs;
//! - [`distill`]: keep the verifier-correct answers as SFT conversations.

pub mod at_n;
pub mod bench;
pub mod cache;
pub mod distill;
pub mod embedded;
pub mod plots;
pub mod problems;
pub mod remote;
pub mod report;
pub mod results;
pub mod reward;
pub mod source;
