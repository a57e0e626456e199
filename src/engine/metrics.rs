//! Counters and gauges the engine thread keeps for `/metrics`: lock-free
//! atomics, written by the engine and read by the HTTP layer.

use std::sync::atomic::{AtomicU64, AtomicUsize};

/// Counters the engine keeps for `/metrics`.
#[derive(Debug, Default)]
pub struct EngineMetrics {
    pub requests_total: AtomicU64,
    pub requests_rejected: AtomicU64,
    pub requests_cancelled: AtomicU64,
    pub rollouts_total: AtomicU64,
    pub prompt_tokens_total: AtomicU64,
    pub completion_tokens_total: AtomicU64,
    /// Requests submitted and still in the queue channel.
    pub queue_depth: AtomicUsize,
    /// Requests taken off the queue but waiting for KV budget (0 or 1: the
    /// rest wait in the channel). Waiting in all = `queue_depth + waiting`.
    pub waiting: AtomicUsize,
    /// Requests admitted and running (prefilling or decoding).
    pub running: AtomicUsize,
    /// Unfinished rollouts of running requests.
    pub running_sequences: AtomicUsize,
    /// The KV budget in tokens.
    pub kv_budget_tokens: AtomicUsize,
    /// KV tokens reserved by running requests (admission accounting).
    pub kv_reserved_tokens: AtomicUsize,
    /// Bytes the running requests' KV caches actually hold.
    pub kv_reserved_bytes: AtomicUsize,
    /// Bytes held by the prefix cache.
    pub prefix_cache_bytes: AtomicUsize,
    /// Prompts (KV snapshots) held by the prefix cache.
    pub prefix_cache_entries: AtomicUsize,
    /// Prompt tokens served from the prefix cache.
    pub prefix_cache_hit_tokens: AtomicU64,
    /// Prompt tokens that had to be prefilled.
    pub prefix_cache_miss_tokens: AtomicU64,
    /// Batched forwards run.
    pub decode_steps_total: AtomicU64,
    /// Reward-model score jobs answered (scored or failed).
    pub score_requests_total: AtomicU64,
    /// Tokens run through the reward model.
    pub score_tokens_total: AtomicU64,
}
