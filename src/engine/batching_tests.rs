//! Continuous batching on a tiny random-weight model: batched output equals
//! independent runs, prefix-cache hits equal cold runs, cancellation frees
//! KV, admission and the queue bound behave.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::Device;

use super::batch::{BatchConfig, Batcher};
use super::group::GroupSink;
use super::rollout::{GroupOutput, GroupRequest, TokenEvent};
use super::scheduler::SchedulerConfig;
use super::{
    generate_group, EngineConfig, EngineEvent, EngineHandle, EngineMetrics, GenerateRequest,
    ModelBundle, SamplingParams, SubmitError,
};
use crate::model::init::{init_model, InitOptions};
use crate::model::presets::preset;

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("model");
    let mut opts = InitOptions::new(preset("tiny").expect("preset"), &dir);
    opts.seed = 3;
    init_model(&opts, &|_| {}).expect("init model");
    Fixture { _tmp: tmp, dir }
}

fn load(f: &Fixture) -> ModelBundle {
    ModelBundle::load(&f.dir, None, &Device::Cpu).expect("load")
}

fn prompt(len: usize, salt: u32) -> Vec<u32> {
    (0..len as u32)
        .map(|i| 100 + (i * 37 + salt * 101) % 5000)
        .collect()
}

fn params(seed: Option<u64>, max_tokens: usize) -> SamplingParams {
    let base = match seed {
        Some(s) => SamplingParams {
            temperature: 0.9,
            seed: Some(s),
            ..SamplingParams::default()
        },
        None => SamplingParams::greedy(),
    };
    SamplingParams {
        max_tokens: Some(max_tokens),
        ignore_eos: true,
        logprobs: true,
        ..base
    }
}

fn cold(b: &ModelBundle, prompt: &[u32], n: usize, p: &SamplingParams) -> GroupOutput {
    let req = GroupRequest {
        prompt_ids: prompt.to_vec(),
        n,
        params: p.clone(),
        eos_token_ids: b.eos_token_ids.clone(),
    };
    generate_group(&b.loaded.model, &b.tokenizer, &req, &mut |_| true).expect("generate")
}

fn assert_same_tokens(a: &GroupOutput, b: &GroupOutput) {
    assert_eq!(a.rollouts.len(), b.rollouts.len());
    for (x, y) in a.rollouts.iter().zip(&b.rollouts) {
        assert_eq!(x.token_ids, y.token_ids, "rollout {}", x.index);
        for (lx, ly) in x.logprobs.iter().zip(&y.logprobs) {
            assert!((lx.logprob - ly.logprob).abs() < 1e-4, "{lx:?} vs {ly:?}");
        }
    }
}

/// A sink a test can close from outside.
#[derive(Clone, Default)]
struct TestSink {
    closed: Rc<RefCell<bool>>,
    tokens: Rc<RefCell<usize>>,
    cached: Rc<RefCell<Option<usize>>>,
}

impl GroupSink for TestSink {
    fn started(&mut self, _prompt: usize, cached: usize) -> bool {
        *self.cached.borrow_mut() = Some(cached);
        true
    }
    fn token(&mut self, _ev: TokenEvent<'_>) -> bool {
        *self.tokens.borrow_mut() += 1;
        true
    }
    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}

fn batch_cfg(chunk: usize, prefix_bytes: usize) -> BatchConfig {
    BatchConfig {
        scheduler: SchedulerConfig {
            kv_budget_tokens: 1 << 20,
            prefill_chunk: chunk,
            max_decode_seqs: 256,
        },
        prefix_cache_bytes: prefix_bytes,
    }
}

/// Run every group to completion; outputs by submission order.
fn drain(batcher: &mut Batcher<'_>, count: usize) -> Vec<GroupOutput> {
    let mut outs: Vec<Option<GroupOutput>> = (0..count).map(|_| None).collect();
    while !batcher.is_idle() {
        for done in batcher.step() {
            outs[done.id as usize] = Some(done.result.expect("group ok"));
        }
    }
    outs.into_iter().map(|o| o.expect("finished")).collect()
}

#[test]
fn batched_groups_with_different_prompt_lengths_match_independent_runs() {
    let f = fixture();
    let b = load(&f);
    let eos: Arc<[u32]> = b.eos_token_ids.clone().into();
    let groups = [
        (prompt(5, 1), 3, params(None, 12)),
        (prompt(70, 2), 4, params(Some(7), 10)),
        (prompt(33, 3), 2, params(Some(8), 14)),
    ];
    // A small chunk forces prefill chunks and decodes into the same forwards.
    let metrics = Arc::new(EngineMetrics::default());
    let mut batcher = Batcher::new(&b.loaded.model, &b.tokenizer, batch_cfg(16, 0), metrics);
    for (i, (p, n, sp)) in groups.iter().enumerate() {
        let sink = Box::new(TestSink::default());
        batcher
            .submit(p.clone(), *n, sp.clone(), eos.clone(), sink)
            .unwrap();
        if i == 0 {
            // Let the first group start decoding before the others arrive.
            batcher.step();
            batcher.step();
        }
    }
    let outs = drain(&mut batcher, groups.len());
    for ((p, n, sp), out) in groups.iter().zip(&outs) {
        assert_same_tokens(out, &cold(&b, p, *n, sp));
    }
    // Rollout 0 of a seeded batch equals a lone seeded run.
    let lone = cold(&b, &groups[1].0, 1, &groups[1].2);
    assert_eq!(lone.rollouts[0].token_ids, outs[1].rollouts[0].token_ids);
}

#[test]
fn prefix_cache_hit_matches_cold_run_and_reports_cached_tokens() {
    let f = fixture();
    let b = load(&f);
    let eos: Arc<[u32]> = b.eos_token_ids.clone().into();
    let header = prompt(40, 9);
    let with_question = |salt: u32| [header.clone(), prompt(6, salt)].concat();
    let metrics = Arc::new(EngineMetrics::default());
    let mut batcher = Batcher::new(
        &b.loaded.model,
        &b.tokenizer,
        batch_cfg(512, 1 << 30),
        metrics.clone(),
    );
    let sp = params(Some(11), 8);
    let first = TestSink::default();
    batcher
        .submit(
            with_question(1),
            2,
            sp.clone(),
            eos.clone(),
            Box::new(first.clone()),
        )
        .unwrap();
    drain(&mut batcher, 1);
    assert_eq!(*first.cached.borrow(), Some(0));
    let second = TestSink::default();
    batcher
        .submit(
            with_question(2),
            2,
            sp.clone(),
            eos.clone(),
            Box::new(second.clone()),
        )
        .unwrap();
    let mut out = None;
    while !batcher.is_idle() {
        if let Some(d) = batcher.step().pop() {
            out = Some(d.result.unwrap());
        }
    }
    let out = out.unwrap();
    let cached = second.cached.borrow().unwrap();
    assert!(cached >= header.len(), "cached {cached}");
    assert_eq!(out.cached_tokens, cached);
    assert_same_tokens(&out, &cold(&b, &with_question(2), 2, &sp));
    assert_eq!(
        metrics.prefix_cache_hit_tokens.load(Ordering::Relaxed),
        cached as u64
    );
    // The same prompt again reuses all but its last token.
    let third = TestSink::default();
    batcher
        .submit(
            with_question(2),
            1,
            sp.clone(),
            eos,
            Box::new(third.clone()),
        )
        .unwrap();
    while !batcher.is_idle() {
        batcher.step();
    }
    assert_eq!(*third.cached.borrow(), Some(header.len() + 5));
}

#[test]
fn cancelled_group_frees_its_kv_at_the_next_step() {
    let f = fixture();
    let b = load(&f);
    let eos: Arc<[u32]> = b.eos_token_ids.clone().into();
    let metrics = Arc::new(EngineMetrics::default());
    let mut batcher = Batcher::new(
        &b.loaded.model,
        &b.tokenizer,
        batch_cfg(512, 0),
        metrics.clone(),
    );
    let doomed = TestSink::default();
    let other = TestSink::default();
    batcher
        .submit(
            prompt(20, 1),
            4,
            params(None, 1000),
            eos.clone(),
            Box::new(doomed.clone()),
        )
        .unwrap();
    batcher
        .submit(
            prompt(10, 2),
            1,
            params(None, 30),
            eos,
            Box::new(other.clone()),
        )
        .unwrap();
    for _ in 0..3 {
        batcher.step();
    }
    let busy = metrics.kv_reserved_bytes.load(Ordering::Relaxed);
    assert_eq!(metrics.running_sequences.load(Ordering::Relaxed), 5);
    *doomed.closed.borrow_mut() = true;
    let done = batcher.step();
    assert_eq!(done.len(), 1, "the cancelled group leaves at once");
    assert_eq!(metrics.requests_cancelled.load(Ordering::Relaxed), 1);
    assert!(metrics.kv_reserved_bytes.load(Ordering::Relaxed) < busy / 2);
    assert_eq!(metrics.kv_reserved_tokens.load(Ordering::Relaxed), 40);
    while !batcher.is_idle() {
        batcher.step();
    }
    assert_eq!(*other.tokens.borrow(), 30, "the other group is unaffected");
    assert_eq!(metrics.kv_reserved_bytes.load(Ordering::Relaxed), 0);
    assert_eq!(metrics.kv_reserved_tokens.load(Ordering::Relaxed), 0);
}

fn spawn(f: &Fixture, cfg: EngineConfig) -> EngineHandle {
    let dir = f.dir.clone();
    EngineHandle::spawn(
        move || ModelBundle::load(&dir, None, &Device::Cpu).map_err(|e| e.to_string()),
        cfg,
    )
    .expect("engine")
}

fn request(len: usize, salt: u32, n: usize, max_tokens: usize) -> GenerateRequest {
    GenerateRequest {
        id: format!("r{salt}"),
        prompt_ids: prompt(len, salt),
        n,
        params: params(None, max_tokens),
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
    let err = engine.submit(request(100, 1, 2, 60)).unwrap_err();
    assert_eq!(
        err,
        SubmitError::TooLarge {
            needed: 320,
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
