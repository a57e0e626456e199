//! `GET /metrics`: Prometheus text exposition.
//!
//! Engine gauges and counters carry a `model` label; add new ones to
//! `engine_series` as the engine exposes them. HTTP-side series (statuses,
//! latency, tokenization queue, selection) have no label.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::engine::EngineMetrics;
use crate::server::state::AppState;

/// `(name, type, help, read)` for every per-engine series.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&EngineMetrics) -> f64,
);

/// Prefix-cache hits over all prompt tokens admitted (0 before any).
fn prefix_hit_ratio(m: &EngineMetrics) -> f64 {
    let hit = m.prefix_cache_hit_tokens.load(Ordering::Relaxed) as f64;
    let miss = m.prefix_cache_miss_tokens.load(Ordering::Relaxed) as f64;
    if hit + miss > 0.0 {
        hit / (hit + miss)
    } else {
        0.0
    }
}

fn engine_series() -> [Series; 21] {
    [
        (
            "quorum_requests_total",
            "counter",
            "Requests admitted by the engine.",
            |m| m.requests_total.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_rollouts_total",
            "counter",
            "Rollouts started.",
            |m| m.rollouts_total.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_prompt_tokens_total",
            "counter",
            "Prompt tokens processed.",
            |m| m.prompt_tokens_total.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_completion_tokens_total",
            "counter",
            "Tokens generated over all rollouts.",
            |m| m.completion_tokens_total.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_requests_rejected_total",
            "counter",
            "Requests refused because the engine queue was full.",
            |m| m.requests_rejected.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_requests_cancelled_total",
            "counter",
            "Requests cancelled (client gone).",
            |m| m.requests_cancelled.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_queue_depth",
            "gauge",
            "Requests waiting for the engine.",
            |m| m.queue_depth.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_running",
            "gauge",
            "Requests the engine is decoding.",
            |m| m.running.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_requests_waiting",
            "gauge",
            "Requests waiting for admission: queued, or holding for KV budget.",
            |m| (m.queue_depth.load(Ordering::Relaxed) + m.waiting.load(Ordering::Relaxed)) as f64,
        ),
        (
            "quorum_running_sequences",
            "gauge",
            "Unfinished rollouts of running requests.",
            |m| m.running_sequences.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_kv_cache_used_tokens",
            "gauge",
            "KV tokens reserved by running requests.",
            |m| m.kv_reserved_tokens.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_kv_cache_budget_tokens",
            "gauge",
            "KV budget in tokens; admission waits when it is reserved.",
            |m| m.kv_budget_tokens.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_kv_cache_used_bytes",
            "gauge",
            "Bytes the running requests' KV caches hold.",
            |m| m.kv_reserved_bytes.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_prefix_cache_bytes",
            "gauge",
            "Bytes held by the prefix cache.",
            |m| m.prefix_cache_bytes.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_prefix_cache_entries",
            "gauge",
            "Prompts held by the prefix cache.",
            |m| m.prefix_cache_entries.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_prefix_cache_hit_tokens_total",
            "counter",
            "Prompt tokens served from the prefix cache.",
            |m| m.prefix_cache_hit_tokens.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_prefix_cache_miss_tokens_total",
            "counter",
            "Prompt tokens that had to be prefilled.",
            |m| m.prefix_cache_miss_tokens.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_prefix_cache_hit_ratio",
            "gauge",
            "Prefix-cache hit tokens over all admitted prompt tokens.",
            prefix_hit_ratio,
        ),
        (
            "quorum_decode_steps_total",
            "counter",
            "Batched forward passes run.",
            |m| m.decode_steps_total.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_score_requests_total",
            "counter",
            "Reward-model score jobs answered by the engine.",
            |m| m.score_requests_total.load(Ordering::Relaxed) as f64,
        ),
        (
            "quorum_score_tokens_total",
            "counter",
            "Tokens run through the reward model.",
            |m| m.score_tokens_total.load(Ordering::Relaxed) as f64,
        ),
    ]
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::with_capacity(4096);
    for (name, kind, help, read) in engine_series() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (id, m) in state.models() {
            let _ = writeln!(out, "{name}{{model=\"{id}\"}} {}", read(m.engine.metrics()));
        }
    }
    let m = &state.metrics;
    let _ = writeln!(
        out,
        "# HELP quorum_http_responses_total HTTP responses by status code.\n# TYPE quorum_http_responses_total counter"
    );
    for (code, count) in m.statuses() {
        let _ = writeln!(
            out,
            "quorum_http_responses_total{{code=\"{code}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP quorum_requests_rejected_concurrency_total Requests refused by the concurrency limit.\n# TYPE quorum_requests_rejected_concurrency_total counter\nquorum_requests_rejected_concurrency_total {}",
        m.rejected_concurrency.get()
    );
    let _ = writeln!(
        out,
        "# HELP quorum_client_disconnects_total Generation requests whose client left early.\n# TYPE quorum_client_disconnects_total counter\nquorum_client_disconnects_total {}",
        m.client_disconnects.get()
    );
    for (name, help, gauge) in [
        (
            "quorum_tokenize_waiting",
            "Prompts waiting for a tokenization slot.",
            &m.tokenize_waiting,
        ),
        (
            "quorum_tokenize_running",
            "Prompts being tokenized.",
            &m.tokenize_running,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
            gauge.get()
        );
    }
    m.request_latency.render(
        &mut out,
        "quorum_request_duration_seconds",
        "End-to-end latency of generation requests.",
    );
    m.selection.render(&mut out);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}
