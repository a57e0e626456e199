//! Reward-model scoring on a tiny random `Qwen3ForSequenceClassification`.

mod common;

use candle_core::Device;
use quorum::chat::ChatMessage;
use quorum::engine::reward::RewardModel;
use quorum_scoring::{RewardScorer, RolloutSummary, SelectionConfig};

fn reward_model(seed: u64) -> (tempfile::TempDir, RewardModel) {
    let tmp = tempfile::tempdir().unwrap();
    common::write_model("tiny", &tmp.path().join("rm"), |o| {
        o.seed = seed;
        o.reward_head = true;
    });
    let rm = RewardModel::load(&tmp.path().join("rm"), None, &Device::Cpu).unwrap();
    (tmp, rm)
}

fn completions() -> Vec<String> {
    [
        "The answer is 4.",
        "5",
        "Let me think... \\boxed{4}",
        "I don't know",
        "four",
        "4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn reward_scores_are_deterministic_and_distinct() {
    let (_t, rm) = reward_model(1);
    let conv = [ChatMessage::user("What is 2+2?")];
    let a = rm.score(&conv, &completions()).unwrap();
    let b = rm.score(&conv, &completions()).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 6);
    assert!(a.iter().all(|s| s.is_finite()));
    let distinct: std::collections::BTreeSet<String> =
        a.iter().map(|s| format!("{s:.6}")).collect();
    assert!(
        distinct.len() > 1,
        "a random head should not score everything alike: {a:?}"
    );
}

#[test]
fn batched_scores_equal_one_by_one() {
    let (_t, mut rm) = reward_model(2);
    let conv = [
        ChatMessage::system("Be brief."),
        ChatMessage::user("What is 2+2?"),
    ];
    rm.max_batch = 6;
    let batched = rm.score(&conv, &completions()).unwrap();
    rm.max_batch = 1;
    let single = rm.score(&conv, &completions()).unwrap();
    for (i, (x, y)) in batched.iter().zip(&single).enumerate() {
        assert!(
            (x - y).abs() < 1e-5,
            "completion {i}: batched {x} vs single {y}"
        );
    }
}

#[test]
fn best_of_n_with_reward_scores_picks_the_argmax() {
    let (_t, rm) = reward_model(3);
    let texts = completions();
    let scores = RewardScorer::score(&rm, "What is 2+2?", &texts).unwrap();
    let rollouts: Vec<RolloutSummary> = texts
        .iter()
        .zip(&scores)
        .enumerate()
        .map(|(i, (t, s))| RolloutSummary {
            index: i,
            text: t.clone(),
            score: Some(*s),
            finish_reason: "stop".into(),
            ..RolloutSummary::default()
        })
        .collect();
    let selector = SelectionConfig::from_json(r#"{"strategy": "best_of_n"}"#).unwrap();
    let sel = selector.select(&rollouts);
    let argmax = scores
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap();
    assert_eq!(sel.winner, Some(argmax));
}

#[test]
fn a_policy_model_is_not_a_reward_model() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_model("tiny", &tmp.path().join("m"), |_| {});
    let err = RewardModel::load(&tmp.path().join("m"), None, &Device::Cpu)
        .err()
        .unwrap();
    assert!(err.to_string().contains("score"), "{err}");
}
