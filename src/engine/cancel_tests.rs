//! Per-rollout cancellation through a [`CancelSet`]: the flagged rollout
//! ends `Cancelled` and leaves the batch at once (KV bytes, KV reservation
//! and live sequences drop), the other rollouts decode to the end.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use candle_core::Device;

use super::batch::{BatchConfig, Batcher};
use super::batching_tests::{fixture, params, prompt};
use super::cancel::CancelSet;
use super::group::GroupSink;
use super::output::TokenEvent;
use super::scheduler::SchedulerConfig;
use super::{EngineMetrics, FinishReason, ModelBundle};

/// Counts tokens and records rollouts reported finished without a token.
struct Sink {
    cancel: Arc<CancelSet>,
    finished: Arc<Mutex<Vec<(usize, FinishReason)>>>,
}

impl GroupSink for Sink {
    fn started(&mut self, _prompt: usize, _cached: usize) -> bool {
        true
    }
    fn token(&mut self, _ev: TokenEvent<'_>) -> bool {
        true
    }
    fn is_closed(&self) -> bool {
        false
    }
    fn cancel_set(&self) -> Option<&CancelSet> {
        Some(&self.cancel)
    }
    fn rollout_finished(&mut self, rollout: usize, reason: FinishReason) -> bool {
        if let Ok(mut v) = self.finished.lock() {
            v.push((rollout, reason));
        }
        true
    }
}

#[test]
fn cancelling_one_rollout_frees_its_kv_and_keeps_the_others() {
    let f = fixture();
    let b = ModelBundle::load(&f.dir, None, &Device::Cpu).expect("load");
    let eos: Arc<[u32]> = b.eos_token_ids.clone().into();
    let metrics = Arc::new(EngineMetrics::default());
    let cfg = BatchConfig {
        scheduler: SchedulerConfig {
            kv_budget_tokens: 1 << 20,
            prefill_chunk: 512,
            max_decode_seqs: 256,
        },
        prefix_cache_bytes: 0,
    };
    let mut batcher = Batcher::new(&b.loaded.model, &b.tokenizer, cfg, metrics.clone());
    let cancel = Arc::new(CancelSet::new(3));
    let finished = Arc::new(Mutex::new(Vec::new()));
    let sink = Box::new(Sink {
        cancel: cancel.clone(),
        finished: finished.clone(),
    });
    let max_tokens = 12;
    batcher
        .submit(prompt(9, 4), 3, params(Some(5), max_tokens), eos, sink)
        .expect("submit");
    // Prefill + a few decode steps: all three rollouts are live.
    for _ in 0..4 {
        assert!(batcher.step().is_empty());
    }
    let r = Ordering::Relaxed;
    assert_eq!(metrics.running_sequences.load(r), 3);
    let bytes_before = metrics.kv_reserved_bytes.load(r);
    let reserved_before = metrics.kv_reserved_tokens.load(r);

    cancel.cancel(1);
    assert!(batcher.step().is_empty());
    assert_eq!(metrics.running_sequences.load(r), 2);
    assert!(metrics.kv_reserved_tokens.load(r) < reserved_before);
    // The shared prompt KV and three rollout caches (one 256-token block
    // each) become the prompt and two: the cancelled rollout's own block is
    // freed, the prompt its siblings read is not.
    let bytes_after = metrics.kv_reserved_bytes.load(r);
    assert_eq!(
        bytes_after * 4,
        bytes_before * 3,
        "{bytes_before} -> {bytes_after}"
    );
    assert_eq!(
        finished.lock().map(|v| v.clone()).unwrap_or_default(),
        vec![(1, FinishReason::Cancelled)]
    );

    let mut out = None;
    while !batcher.is_idle() {
        if let Some(done) = batcher.step().into_iter().next() {
            out = Some(done.result.expect("group ok"));
        }
    }
    let out = out.expect("finished");
    let r1 = &out.rollouts[1];
    assert_eq!(r1.finish_reason, FinishReason::Cancelled);
    assert!(r1.token_ids.len() < max_tokens);
    for i in [0, 2] {
        assert_eq!(out.rollouts[i].finish_reason, FinishReason::Length);
        assert_eq!(out.rollouts[i].token_ids.len(), max_tokens);
    }
    assert_eq!(metrics.kv_reserved_bytes.load(r), 0);
}
