//! Reward-model score jobs on the engine thread, through `EngineHandle`:
//! chunked ragged batches equal one-by-one scores, score jobs interleave
//! with a running generation, and they share the generation queue (full
//! queue, cancellation).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use candle_core::Device;
use tokio::sync::mpsc::error::TryRecvError;

use crate::engine::batching_tests::{fixture, params, prompt, Fixture};
use crate::engine::{
    EngineConfig, EngineEvent, EngineHandle, GenerateRequest, ModelBundle, RewardModel, ScoreError,
    ScoreRequest, SubmitError,
};
use crate::model::test_fixtures::write_model;

/// A tiny random reward model next to the fixture's policy.
fn reward_dir(f: &Fixture) -> std::path::PathBuf {
    let dir = f.dir.with_file_name("rm");
    if !dir.join("config.json").is_file() {
        write_model("tiny", &dir, |o| {
            o.seed = 9;
            o.reward_head = true;
        });
    }
    dir
}

fn spawn(f: &Fixture, cfg: EngineConfig) -> EngineHandle {
    let (dir, rm) = (f.dir.clone(), reward_dir(f));
    EngineHandle::spawn(
        move || {
            let mut b = ModelBundle::load(&dir, None, &Device::Cpu)?;
            b.load_reward(&rm, None, &Device::Cpu)?;
            Ok::<_, crate::engine::BundleError>(b)
        },
        cfg,
    )
    .expect("engine")
}

fn generation(len: usize, salt: u32, max_tokens: usize) -> GenerateRequest {
    GenerateRequest {
        id: format!("g{salt}"),
        prompt_ids: prompt(len, salt),
        n: 1,
        params: params(None, max_tokens),
        think: None,
    }
}

fn score_job(lens: &[usize]) -> ScoreRequest {
    ScoreRequest {
        id: "s".into(),
        sequences: lens
            .iter()
            .enumerate()
            .map(|(i, &len)| prompt(len, 40 + i as u32))
            .collect(),
    }
}

#[test]
fn chunked_engine_scores_equal_one_by_one_scores_and_are_deterministic() {
    let f = fixture();
    // 7 tokens a step: most sequences are split over several steps and
    // several short ones share a forward.
    let engine = spawn(
        &f,
        EngineConfig {
            score_chunk: 7,
            ..EngineConfig::default()
        },
    );
    let lens = [3, 20, 9, 1, 15, 2, 2, 30];
    let job = score_job(&lens);
    let a = engine.submit_score(job.clone()).unwrap().blocking_recv();
    let b = engine.submit_score(job.clone()).unwrap().blocking_recv();
    let (a, b) = (a.expect("scores"), b.expect("scores"));
    assert_eq!(a, b, "the same job scores the same");
    assert_eq!(a.tokens, lens.iter().sum::<usize>());
    let mut rm = RewardModel::load(&reward_dir(&f), None, &Device::Cpu).unwrap();
    rm.max_batch = 1;
    let single = rm.score_tokens(&job.sequences).unwrap();
    assert_eq!(a.scores.len(), single.len());
    for (i, (x, y)) in a.scores.iter().zip(&single).enumerate() {
        assert!(
            (x - y).abs() < 1e-5,
            "sequence {i}: engine {x} vs alone {y}"
        );
    }
    let m = engine.metrics();
    assert_eq!(m.score_requests_total.load(Ordering::Relaxed), 2);
    assert_eq!(m.score_tokens_total.load(Ordering::Relaxed), 2 * 82);
}

#[test]
fn score_jobs_run_between_decode_steps_of_a_long_generation() {
    let f = fixture();
    let engine = spawn(&f, EngineConfig::default());
    let mut gen = engine.submit(generation(16, 1, 3000)).unwrap();
    let m = engine.metrics();
    while m.running_sequences.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(2));
    }
    drain(&mut gen);
    // ~40 score steps of 128 tokens while the generation decodes.
    let rx = engine.submit_score(score_job(&[400; 12])).unwrap();
    let out = rx.blocking_recv().expect("scores");
    assert_eq!(out.scores.len(), 12);
    let tokens_meanwhile = drain(&mut gen);
    assert!(
        tokens_meanwhile >= 20,
        "decoding went on between score chunks: {tokens_meanwhile} tokens"
    );
    assert!(m.running_sequences.load(Ordering::Relaxed) > 0);
}

/// Tokens received so far; panics if the generation has ended.
fn drain(gen: &mut tokio::sync::mpsc::UnboundedReceiver<EngineEvent>) -> usize {
    let mut tokens = 0;
    loop {
        match gen.try_recv() {
            Ok(EngineEvent::Token { .. }) => tokens += 1,
            Ok(EngineEvent::Finished(_)) => panic!("the generation finished before the scores"),
            Ok(EngineEvent::Error(e)) => panic!("engine error: {e}"),
            Ok(_) => {}
            Err(TryRecvError::Empty) => return tokens,
            Err(e) => panic!("stream closed: {e}"),
        }
    }
}

#[test]
fn score_jobs_share_the_bounded_queue_and_cancel_when_dropped() {
    let f = fixture();
    let engine = spawn(
        &f,
        EngineConfig {
            queue_capacity: 2,
            kv_budget_tokens: Some(3000),
            ..EngineConfig::default()
        },
    );
    // One generation holds the budget, the next waits for it: the engine
    // stops taking work off the queue, so the queue fills up.
    let running = engine.submit(generation(20, 1, 2900)).unwrap();
    let waiting = engine.submit(generation(20, 2, 1000)).unwrap();
    let m = engine.metrics();
    let t = Instant::now();
    while m.waiting.load(Ordering::Relaxed) == 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "never waited");
        std::thread::sleep(Duration::from_millis(2));
    }
    let dropped = engine.submit_score(score_job(&[5, 6])).unwrap();
    let kept = engine.submit_score(score_job(&[7])).unwrap();
    let t = Instant::now();
    let full = engine.submit_score(score_job(&[3])).err();
    assert!(t.elapsed() < Duration::from_millis(20));
    assert_eq!(full, Some(SubmitError::QueueFull { capacity: 2 }));
    assert_eq!(
        engine.submit(generation(5, 3, 5)).err(),
        Some(SubmitError::QueueFull { capacity: 2 })
    );
    drop(dropped);
    drop((running, waiting));
    let out = kept.blocking_recv().expect("scores");
    assert_eq!(out.scores.len(), 1);
    assert_eq!(out.tokens, 7);
    // The dropped job was never scored.
    assert_eq!(m.score_requests_total.load(Ordering::Relaxed), 1);
    assert_eq!(m.score_tokens_total.load(Ordering::Relaxed), 7);
}

#[test]
fn malformed_score_jobs_are_refused_with_the_sequence_named() {
    let f = fixture();
    let engine = spawn(&f, EngineConfig::default());
    let mut job = score_job(&[4, 0]);
    let err = engine.submit_score(job.clone()).unwrap().blocking_recv();
    assert_eq!(err, Err(ScoreError::Invalid("sequence 1 is empty".into())));
    job.sequences[1] = vec![u32::MAX];
    let err = engine
        .submit_score(job)
        .unwrap()
        .blocking_recv()
        .unwrap_err();
    assert!(err.to_string().contains("sequence 1: token id"), "{err}");
    let empty = engine.submit_score(score_job(&[])).unwrap().blocking_recv();
    assert_eq!(empty.map(|o| o.scores.len()), Ok(0));
}

#[test]
fn an_engine_without_a_reward_model_refuses_score_jobs() {
    let f = fixture();
    let dir = f.dir.clone();
    let engine = EngineHandle::spawn(
        move || ModelBundle::load(&dir, None, &Device::Cpu),
        EngineConfig::default(),
    )
    .expect("engine");
    assert!(engine.info().reward.is_none());
    assert_eq!(
        engine.submit_score(score_job(&[3])).err(),
        Some(SubmitError::NoRewardModel)
    );
}

#[tokio::test]
async fn a_waiting_score_job_gets_in_once_the_engine_makes_room() {
    let f = fixture();
    let engine = spawn(
        &f,
        EngineConfig {
            queue_capacity: 2,
            kv_budget_tokens: Some(3000),
            ..EngineConfig::default()
        },
    );
    // As above: the engine stops taking work, two score jobs fill the queue.
    let running = engine.submit(generation(20, 1, 2900)).unwrap();
    let waiting = engine.submit(generation(20, 2, 1000)).unwrap();
    let m = engine.metrics();
    let t = Instant::now();
    while m.waiting.load(Ordering::Relaxed) == 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "never waited");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let queued = [
        engine.submit_score(score_job(&[5])).unwrap(),
        engine.submit_score(score_job(&[6])).unwrap(),
    ];
    let rejected = m.requests_rejected.load(Ordering::Relaxed);
    // No room within the patience: one refusal, after the patience.
    let t = Instant::now();
    let late = engine
        .submit_score_waiting(score_job(&[3]), Duration::from_millis(80))
        .await
        .err();
    assert_eq!(late, Some(SubmitError::QueueFull { capacity: 2 }));
    assert!(t.elapsed() >= Duration::from_millis(80));
    assert_eq!(m.requests_rejected.load(Ordering::Relaxed), rejected + 1);
    // A patient job waits while the queue stays full...
    let waiter = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .submit_score_waiting(score_job(&[4]), Duration::from_secs(60))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "no room yet");
    // ...and gets in once the engine takes a queued job.
    drop((running, waiting));
    let t = Instant::now();
    let rx = waiter.await.unwrap().expect("room was made");
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "woken, not timed out"
    );
    let out = rx.await.expect("scores");
    assert_eq!((out.scores.len(), out.tokens), (1, 4));
    for (rx, tokens) in queued.into_iter().zip([5, 6]) {
        assert_eq!(rx.await.expect("scores").tokens, tokens);
    }
    // Waiting is not retrying: the patient job was never refused.
    assert_eq!(m.requests_rejected.load(Ordering::Relaxed), rejected + 1);
}
