//! Quorum: an inference-time scaling engine and server.
//!
//! Layers, bottom up: [`kernels`] (CPU matmul for decode-sized batches),
//! [`model`] (one transformer for serving and training), [`tokenizer`] and
//! [`chat`] (HF tokenizers and chat templates), [`engine`] (KV cache, sampler,
//! batched rollouts), and the CLI in `src/cli/`.

pub mod alloc;
pub mod atomic_write;
pub mod chat;
pub mod cli;
pub mod engine;
pub mod eval;
pub mod kernels;
pub mod model;
pub mod plot;
pub mod server;
pub mod sysinfo;
pub mod tokenizer;
pub mod training;
