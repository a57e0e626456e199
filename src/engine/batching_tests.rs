//! Continuous batching on a tiny random-weight model, driven through the
//! `Batcher` step by step: batched output equals independent runs,
//! prefix-cache hits equal cold runs, cancellation frees KV at once.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use candle_core::Device;

use super::batch::{BatchConfig, Batcher};
use super::group::GroupSink;
use super::output::{GroupOutput, TokenEvent};
use super::rollout::GroupRequest;
use super::scheduler::SchedulerConfig;
use super::{generate_group, EngineMetrics, ModelBundle, SamplingParams};
use crate::model::test_fixtures::write_model;

pub(super) struct Fixture {
    _tmp: tempfile::TempDir,
    pub(super) dir: std::path::PathBuf,
}

pub(super) fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("model");
    write_model("tiny", &dir, |o| o.seed = 3);
    Fixture { _tmp: tmp, dir }
}

fn load(f: &Fixture) -> ModelBundle {
    ModelBundle::load(&f.dir, None, &Device::Cpu).expect("load")
}

pub(super) fn prompt(len: usize, salt: u32) -> Vec<u32> {
    (0..len as u32)
        .map(|i| 100 + (i * 37 + salt * 101) % 5000)
        .collect()
}

pub(super) fn params(seed: Option<u64>, max_tokens: usize) -> SamplingParams {
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
        think: None,
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
    // Two prompts, neither a prefix of the other: two entries.
    assert_eq!(metrics.prefix_cache_entries.load(Ordering::Relaxed), 2);
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
    assert_eq!(metrics.prefix_cache_entries.load(Ordering::Relaxed), 2);
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
