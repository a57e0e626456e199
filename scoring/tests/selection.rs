//! Behavioural tests for the selection strategies.

use quorum_scoring::{
    majority_decided, BestOfN, ConfidenceMetric, ConfidenceSelector, First, Majority,
    MissingScores, RolloutSummary, SelectionConfig, Selector, WeightSource, WeightedMajority,
};

fn r(index: usize, answer: Option<&str>, lp: Option<f64>, score: Option<f64>) -> RolloutSummary {
    RolloutSummary {
        index,
        text: String::new(),
        answer: answer.map(str::to_string),
        mean_logprob: lp,
        score,
        finish_reason: "stop".into(),
        ..Default::default()
    }
}

#[test]
fn majority_clusters_equivalent_answers() {
    let rs = vec![
        r(0, Some("7"), None, None),
        r(1, Some("1/2"), None, None),
        r(2, Some(r"\frac{1}{2}"), None, None),
        r(3, Some("0.5"), None, None),
        r(4, Some("7.0"), None, None),
    ];
    let s = Majority.select(&rs);
    assert_eq!(s.winner, Some(1));
    assert_eq!(s.answer.as_deref(), Some("1/2"));
    assert!((s.vote_share - 0.6).abs() < 1e-12);
    assert_eq!(s.clusters.len(), 2);
    assert_eq!(s.clusters[1].members, vec![1, 2, 3]);
    assert_eq!(s.clusters[1].answer, "1/2");
    assert_eq!(
        s.rollouts.iter().map(|v| v.cluster).collect::<Vec<_>>(),
        vec![Some(0), Some(1), Some(1), Some(1), Some(0)]
    );
    assert_eq!(s.ranking, vec![1, 2, 3, 0, 4]);
}

#[test]
fn majority_vote_breaks_ties_by_mean_logprob_then_first_seen() {
    // Two clusters of two; cluster "5" has the higher mean logprob.
    let rs = vec![
        r(0, Some("3"), Some(-0.9), None),
        r(1, Some("5"), Some(-0.2), None),
        r(2, Some("3"), Some(-0.5), None),
        r(3, Some("5"), Some(-0.4), None),
    ];
    let s = Majority.select(&rs);
    assert_eq!(s.answer.as_deref(), Some("5"));
    assert_eq!(s.winner, Some(1));
    assert_eq!(s.ranking, vec![1, 3, 2, 0]);
    assert_eq!(s.vote_share, 0.5);

    // Equal logprobs (or none): the cluster seen first wins.
    let rs = vec![
        r(0, Some("3"), None, None),
        r(1, Some("5"), None, None),
        r(2, Some("5"), None, None),
        r(3, Some("3"), None, None),
    ];
    let s = Majority.select(&rs);
    assert_eq!(s.answer.as_deref(), Some("3"));
    assert_eq!(s.winner, Some(0));
}

#[test]
fn majority_abstains_rollouts_without_answers() {
    let mut truncated = r(1, None, None, None);
    truncated.text = "let me compute 12 + 30 = 42 and then".into();
    truncated.finish_reason = "length".into();
    let mut lazy = r(2, None, None, None);
    lazy.text = r"<think>hmm 9</think> So the result is \boxed{8}.".into();
    let rs = vec![
        r(0, Some("9"), None, None),
        truncated,
        lazy,
        r(3, Some("8"), None, None),
    ];
    let s = Majority.select(&rs);
    assert_eq!(s.answer.as_deref(), Some("8"));
    assert_eq!(s.winner, Some(2));
    assert!(s.rollouts[1].abstained);
    assert_eq!(s.rollouts[1].vote, 0.0);
    assert!((s.vote_share - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(s.ranking, vec![2, 3, 0, 1]);
}

#[test]
fn majority_with_no_answers_falls_back_to_first_rollout() {
    let s = Majority.select(&[r(5, None, None, None), r(6, None, None, None)]);
    assert_eq!(s.winner, Some(5));
    assert_eq!(s.answer, None);
    assert_eq!(s.vote_share, 0.0);
    assert!(s.note.is_some());
    assert_eq!(Majority.select(&[]).winner, None);
}

#[test]
fn first_picks_rollout_zero() {
    let rs = vec![
        r(10, Some("1"), None, None),
        r(11, Some("2"), None, None),
        r(12, Some("2"), None, None),
    ];
    let s = First.select(&rs);
    assert_eq!(s.winner, Some(10));
    assert_eq!(s.answer.as_deref(), Some("1"));
    assert_eq!(s.ranking, vec![10, 11, 12]);
    assert!((s.vote_share - 1.0 / 3.0).abs() < 1e-12);
}

#[test]
fn best_of_n_picks_argmax_score() {
    let rs = vec![
        r(0, Some("1"), None, Some(0.2)),
        r(1, Some("2"), None, Some(0.9)),
        r(2, Some("1"), None, None),
        r(3, Some("3"), None, Some(0.9)),
        r(4, Some("1"), None, Some(f64::NAN)),
    ];
    let s = BestOfN::default().select(&rs);
    assert_eq!(s.winner, Some(1)); // ties -> earliest
    assert_eq!(s.answer.as_deref(), Some("2"));
    assert_eq!(s.ranking, vec![1, 3, 0, 2, 4]);
    assert_eq!(s.rollouts[1].vote, 0.9);
    assert!(s
        .note
        .as_deref()
        .unwrap()
        .contains("2 rollout(s) had no reward score"));
}

#[test]
fn best_of_n_without_scores_falls_back_as_configured() {
    let rs = vec![
        r(0, Some("1"), None, None),
        r(1, Some("2"), None, None),
        r(2, Some("2"), None, None),
    ];
    let s = BestOfN::default().select(&rs);
    assert_eq!(s.strategy, "best_of_n");
    assert_eq!(s.answer.as_deref(), Some("2"));
    assert_eq!(
        s.note.as_deref(),
        Some("no reward-model scores; fell back to majority")
    );
    let s = BestOfN {
        on_missing: MissingScores::First,
    }
    .select(&rs);
    assert_eq!(s.winner, Some(0));
}

#[test]
fn weighted_majority_sums_scores_per_cluster() {
    // "1" has 3 votes but low scores (0.3 total); "2" has 2 votes, 1.5 total.
    let rs = vec![
        r(0, Some("1"), None, Some(0.1)),
        r(1, Some("2"), None, Some(0.7)),
        r(2, Some("1"), None, Some(0.1)),
        r(3, Some("2.0"), None, Some(0.8)),
        r(4, Some("1"), None, Some(0.1)),
    ];
    let s = WeightedMajority::default().select(&rs);
    assert_eq!(s.answer.as_deref(), Some("2.0"));
    assert_eq!(s.clusters[1].answer, "2");
    assert_eq!(s.winner, Some(3)); // highest-weight member of the winning cluster
    assert!((s.vote_share - 1.5 / 1.8).abs() < 1e-9);
    assert_eq!(Majority.select(&rs).answer.as_deref(), Some("1"));
}

#[test]
fn weighted_majority_by_confidence_uses_exp_mean_logprob() {
    let rs = vec![
        r(0, Some("1"), Some(-3.0), None),
        r(1, Some("1"), Some(-3.0), None),
        r(2, Some("2"), Some(-0.01), None),
    ];
    let s = WeightedMajority {
        weight: WeightSource::Confidence,
    }
    .select(&rs);
    // 2*e^-3 = 0.0996 < e^-0.01 = 0.990
    assert_eq!(s.answer.as_deref(), Some("2"));
    assert!((s.rollouts[2].vote - (-0.01f64).exp()).abs() < 1e-12);
}

#[test]
fn confidence_drops_lowest_fraction_before_voting() {
    // Five rollouts: the three "wrong" ones are the least confident.
    let rs = vec![
        r(0, Some("4"), Some(-2.0), None),
        r(1, Some("7"), Some(-0.1), None),
        r(2, Some("4"), Some(-2.5), None),
        r(3, Some("7"), Some(-0.2), None),
        r(4, Some("4"), Some(-3.0), None),
    ];
    assert_eq!(Majority.select(&rs).answer.as_deref(), Some("4"));
    let sel = ConfidenceSelector {
        keep_fraction: 0.6,
        metric: ConfidenceMetric::Mean,
        ..Default::default()
    };
    let s = sel.select(&rs);
    // ceil(0.6 * 5) = 3 kept: rollouts 1, 3, 0.
    assert_eq!(
        s.rollouts.iter().map(|v| v.kept).collect::<Vec<_>>(),
        vec![true, true, false, true, false]
    );
    assert_eq!(s.answer.as_deref(), Some("7"));
    assert_eq!(s.winner, Some(1));
    assert!((s.vote_share - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(s.ranking, vec![1, 3, 0, 2, 4]);
}

#[test]
fn confidence_lowest_group_sees_local_dips() {
    // Same mean (-0.5) but rollout 1 has a sharp dip: its worst 2-token window is -1.5.
    let mut a = r(0, Some("1"), None, None);
    a.token_logprobs = vec![-0.5, -0.5, -0.5, -0.5];
    let mut b = r(1, Some("2"), None, None);
    b.token_logprobs = vec![0.0, -1.5, -1.5, 1.0];
    let sel = ConfidenceSelector {
        keep_fraction: 0.5,
        group_size: 2,
        ..Default::default()
    };
    let s = sel.select(&[a, b]);
    assert_eq!(s.answer.as_deref(), Some("1"));
    assert_eq!(s.rollouts[1].confidence, Some(-1.5));
    assert_eq!(
        quorum_scoring::select::lowest_group_confidence(&[-1.0, -3.0, 0.0], 2),
        Some(-2.0)
    );
    assert_eq!(
        quorum_scoring::select::lowest_group_confidence(&[-1.0, -3.0], 100),
        Some(-2.0)
    );
}

#[test]
fn selection_config_parses_and_builds() {
    let cfg: SelectionConfig = serde_json::from_str(r#"{"strategy":"majority"}"#).unwrap();
    assert_eq!(cfg, SelectionConfig::Majority);
    let cfg: SelectionConfig = serde_json::from_str(r#"{"strategy":"best_of_n"}"#).unwrap();
    assert_eq!(
        cfg,
        SelectionConfig::BestOfN {
            on_missing: MissingScores::Majority
        }
    );
    let cfg: SelectionConfig =
        serde_json::from_str(r#"{"strategy":"weighted_majority","weight":"confidence"}"#).unwrap();
    assert_eq!(
        cfg,
        SelectionConfig::WeightedMajority {
            weight: WeightSource::Confidence
        }
    );
    let cfg: SelectionConfig =
        serde_json::from_str(r#"{"strategy":"confidence","keep_fraction":0.5,"group_size":16}"#)
            .unwrap();
    let SelectionConfig::Confidence(c) = &cfg else {
        panic!("{cfg:?}")
    };
    assert_eq!(
        (c.keep_fraction, c.group_size, c.metric),
        (0.5, 16, ConfidenceMetric::LowestGroup)
    );
    assert!(cfg.build().is_ok());
    assert!(SelectionConfig::from_json(r#"{"strategy":"confidence","keep_fraction":0}"#).is_err());
    assert!(SelectionConfig::from_json(r#"{"strategy":"nope"}"#).is_err());
    let sel = SelectionConfig::from_json(r#"{"strategy":"first"}"#).unwrap();
    assert_eq!(sel.select(&[r(3, Some("1"), None, None)]).winner, Some(3));
}

#[test]
fn selection_serializes_for_the_quorum_response() {
    let s = Majority.select(&[
        r(0, Some("2"), Some(-0.1), None),
        r(1, Some("2"), None, None),
    ]);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["strategy"], "majority");
    assert_eq!(v["winner"], 0);
    assert_eq!(v["vote_share"], 1.0);
    assert_eq!(v["rollouts"][1]["cluster"], 0);
    assert_eq!(v["rollouts"][1]["kept"], true);
    assert_eq!(v["clusters"][0]["votes"], 2.0);
}

#[test]
fn majority_decided_counts_ties_conservatively() {
    let a = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
    assert!(!majority_decided(&a(&["1", "1", "2"]), 1));
    assert!(majority_decided(&a(&["1", "1", "1", "2"]), 1));
    assert!(majority_decided(&a(&["1/2", "0.5", r"\frac12"]), 2));
    assert!(!majority_decided(&a(&["1/2", "0.5", r"\frac12"]), 3));
    assert!(majority_decided(&[], 0));
}
