//! The engine thread through `EngineHandle`: admission against the KV
//! budget, the bounded queue, and cancellation by dropping the stream.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use candle_core::Device;

use super::batching_tests::{fixture, params, prompt, Fixture};
use super::{
    EngineConfig, EngineEvent, EngineHandle, FailureKind, GenerateRequest, ModelBundle,
    RequestFailure, SubmitError,
};

fn spawn(f: &Fixture, cfg: EngineConfig) -> EngineHandle {
    let dir = f.dir.clone();
    EngineHandle::spawn(move || ModelBundle::load(&dir, None, &Device::Cpu), cfg).expect("engine")
}

fn request(len: usize, salt: u32, n: usize, max_tokens: usize) -> GenerateRequest {
    GenerateRequest {
        id: format!("r{salt}"),
        prompt_ids: prompt(len, salt),
        n,
        params: params(None, max_tokens),
        think: None,
    }
}

fn wait_finished(rx: &mut tokio::sync::mpsc::UnboundedReceiver<EngineEvent>) -> GroupOutputLite {
    let mut started_at = None;
    while let Some(ev) = rx.blocking_recv() {
        match ev {
            EngineEvent::Started { .. } => started_at = Some(Instant::now()),
            EngineEvent::Finished(out) => {
                return GroupOutputLite {
                    started_at: started_at.expect("started first"),
                    completion_tokens: out.completion_tokens,
                }
            }
            EngineEvent::Error(e) => panic!("engine error: {e}"),
            _ => {}
        }
    }
    panic!("stream ended without Finished");
}

struct GroupOutputLite {
    started_at: Instant,
    completion_tokens: usize,
}

#[test]
fn admission_rejects_past_the_budget_and_queues_what_fits_later() {
    let f = fixture();
    let engine = spawn(
        &f,
        EngineConfig {
            kv_budget_tokens: Some(300),
            prefix_cache_bytes: Some(0),
            ..EngineConfig::default()
        },
    );
    assert_eq!(engine.info().kv_budget_tokens, 300);
    // The prompt once plus 60 tokens per rollout.
    let err = engine.submit(request(100, 1, 4, 60)).unwrap_err();
    assert_eq!(
        err,
        SubmitError::TooLarge {
            needed: 340,
            budget: 300
        }
    );
    // Each fits alone (200 tokens), not together: the second waits its turn.
    let mut a = engine.submit(request(100, 2, 1, 100)).unwrap();
    let mut b = engine.submit(request(100, 3, 1, 100)).unwrap();
    let ra = wait_finished(&mut a);
    let finished_a = Instant::now();
    let rb = wait_finished(&mut b);
    assert_eq!(ra.completion_tokens, 100);
    assert_eq!(rb.completion_tokens, 100);
    assert!(rb.started_at >= ra.started_at);
    assert!(rb.started_at + Duration::from_millis(50) >= finished_a);
    let m = engine.metrics();
    assert_eq!(m.kv_reserved_tokens.load(Ordering::Relaxed), 0);
    assert_eq!(m.requests_rejected.load(Ordering::Relaxed), 1);
}

#[test]
fn full_queue_rejects_fast_and_dropped_stream_frees_kv() {
    let f = fixture();
    let engine = spawn(
        &f,
        EngineConfig {
            queue_capacity: 1,
            kv_budget_tokens: Some(3000),
            ..EngineConfig::default()
        },
    );
    // The first request takes most of the budget; the rest must wait.
    let mut held = vec![engine.submit(request(20, 1, 1, 2900)).unwrap()];
    let mut rejected = false;
    for salt in 2..8 {
        let t = Instant::now();
        match engine.submit(request(20, salt, 1, 1000)) {
            Ok(rx) => held.push(rx),
            Err(SubmitError::QueueFull { capacity: 1 }) => {
                assert!(t.elapsed() < Duration::from_millis(20));
                rejected = true;
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(rejected, "a full queue rejects");
    assert!(
        held.len() <= 3,
        "one running, one waiting, one queued at most"
    );
    let m = engine.metrics();
    // Wait until the first request is decoding, then drop every stream.
    while m.running_sequences.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(held);
    let t = Instant::now();
    while m.kv_reserved_bytes.load(Ordering::Relaxed) > 0
        || m.running.load(Ordering::Relaxed) > 0
        || m.waiting.load(Ordering::Relaxed) > 0
    {
        assert!(t.elapsed() < Duration::from_secs(10), "KV not freed");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(m.kv_reserved_tokens.load(Ordering::Relaxed), 0);
    // The engine still serves.
    let mut rx = engine.submit(request(10, 9, 2, 5)).unwrap();
    assert_eq!(wait_finished(&mut rx).completion_tokens, 10);
}

/// The first event of a request the worker refuses.
fn refusal(rx: &mut tokio::sync::mpsc::UnboundedReceiver<EngineEvent>) -> RequestFailure {
    match rx.blocking_recv() {
        Some(EngineEvent::Error(f)) => f,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn requests_the_worker_refuses_fail_with_a_client_kind() {
    let f = fixture();
    let engine = spawn(
        &f,
        EngineConfig {
            kv_budget_tokens: Some(100_000),
            prefix_cache_bytes: Some(0),
            ..EngineConfig::default()
        },
    );
    // n = 0 reserves nothing, so the handle lets it through; the worker's
    // validation refuses it.
    let mut rx = engine.submit(request(10, 1, 0, 5)).unwrap();
    let failure = refusal(&mut rx);
    assert_eq!(
        failure,
        RequestFailure::new(FailureKind::InvalidRequest, "n must be at least 1")
    );
    assert!(failure.kind.is_client_error());
    assert!(rx.blocking_recv().is_none(), "nothing follows an error");
    // A prompt that fills the whole context.
    let context = engine.info().context_length;
    let mut rx = engine.submit(request(context, 2, 1, 1)).unwrap();
    let failure = refusal(&mut rx);
    assert_eq!(failure.kind, FailureKind::ContextLength);
    assert_eq!(
        failure.message,
        format!(
            "this model's maximum context length is {context} tokens; the prompt has {context} tokens and max_tokens is 1"
        )
    );
    // The engine still serves.
    let mut rx = engine.submit(request(10, 3, 1, 3)).unwrap();
    assert_eq!(wait_finished(&mut rx).completion_tokens, 3);
}
