//! Think mode in the engine, on a tiny random-weight Qwen3-shaped model with
//! the real Qwen3 tokenizer: budget forcing inserts exactly the budget text
//! at exactly the budget, the minimum replaces an early `</think>`, the
//! answer reserve holds, forced tokens are stop-checked and count against
//! `max_tokens`, and a multi-token forced step computes the same KV as
//! feeding those tokens as prompt.

use std::sync::{Arc, OnceLock};

use candle_core::Device;

use super::batching_tests::{fixture, Fixture};
use super::output::GroupOutput;
use super::rollout::GroupRequest;
use super::think::{ThinkSpec, ThinkTokens};
use super::{generate_group, FinishReason, ModelBundle, SamplingParams};

/// `</think>` in the Qwen3 vocabulary.
const END_THINK: u32 = 151668;
const MESSAGE: &str = "Time is up.";

fn bundle() -> &'static ModelBundle {
    static B: OnceLock<(Fixture, ModelBundle)> = OnceLock::new();
    &B.get_or_init(|| {
        let f = fixture();
        let b = ModelBundle::load(&f.dir, None, &Device::Cpu).expect("load");
        (f, b)
    })
    .1
}

fn tokens() -> Arc<ThinkTokens> {
    Arc::new(ThinkTokens::encode(&bundle().tokenizer, "</think>", MESSAGE, "Wait").expect("encode"))
}

fn spec(budget: Option<usize>, min: usize, reserve: usize) -> ThinkSpec {
    ThinkSpec {
        tokens: tokens(),
        thinking: true,
        thinking_budget: budget,
        min_thinking_tokens: min,
        answer_reserve: reserve,
    }
}

/// Seeded sampling, EOS ignored; `</think>` biased by `end_bias`.
fn params(max_tokens: usize, end_bias: f32) -> SamplingParams {
    SamplingParams {
        temperature: 1.0,
        seed: Some(7),
        max_tokens: Some(max_tokens),
        ignore_eos: true,
        logprobs: true,
        logit_bias: [(END_THINK, end_bias)].into_iter().collect(),
        ..SamplingParams::default()
    }
}

fn prompt() -> Vec<u32> {
    let tok = &bundle().tokenizer;
    tok.encode(
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n",
        false,
    )
    .expect("encode")
}

fn run(
    prompt: Vec<u32>,
    n: usize,
    params: SamplingParams,
    think: Option<ThinkSpec>,
) -> GroupOutput {
    let b = bundle();
    let req = GroupRequest {
        prompt_ids: prompt,
        n,
        params,
        eos_token_ids: b.eos_token_ids.clone(),
        think,
    };
    generate_group(&b.loaded.model, &b.tokenizer, &req, &mut |_| true).expect("generate")
}

#[test]
fn budget_inserts_the_budget_text_at_exactly_the_budget() {
    let forced = tokens().budget_forced.clone();
    let out = run(prompt(), 3, params(60, -100.0), Some(spec(Some(9), 0, 4)));
    for r in &out.rollouts {
        assert_eq!(r.reasoning_tokens, 9);
        assert!(r.thinking_budget_cut);
        assert!(!r.token_ids[..9].contains(&END_THINK));
        assert_eq!(
            &r.token_ids[9..9 + forced.len()],
            &forced[..],
            "forced ids verbatim"
        );
        assert_eq!(
            r.token_ids.len(),
            60,
            "forced tokens count against max_tokens"
        );
        assert_eq!(r.finish_reason, FinishReason::Length);
        assert!(
            r.text.contains(&format!("{MESSAGE}\n</think>\n\n")),
            "{}",
            r.text
        );
        // Forced tokens are reported with logprob 0.0 (the 9th was sampled).
        let lps: Vec<f32> = r.logprobs.iter().map(|l| l.logprob).collect();
        assert!(lps[9..9 + forced.len()].iter().all(|&l| l == 0.0));
    }
}

#[test]
fn min_thinking_replaces_an_early_end_tag_with_the_continuation() {
    let wait = tokens().continuation.clone();
    assert_eq!(wait.len(), 1, "`Wait` is one Qwen3 token");
    // `</think>` is made certain by the bias: the model ends at once, every time.
    let out = run(prompt(), 1, params(30, 100.0), Some(spec(None, 4, 2)));
    let r = &out.rollouts[0];
    assert_eq!(&r.token_ids[..4], &[wait[0]; 4]);
    assert_eq!(
        r.token_ids[4], END_THINK,
        "the end tag is accepted at the minimum"
    );
    assert_eq!(r.reasoning_tokens, 4);
    assert!(!r.thinking_budget_cut);
    assert!(r.text.starts_with("WaitWaitWaitWait</think>"), "{}", r.text);
}

#[test]
fn answer_reserve_caps_thinking_without_a_budget() {
    let forced = tokens().budget_forced.len();
    let (max, reserve) = (50, 20);
    let out = run(
        prompt(),
        1,
        params(max, -100.0),
        Some(spec(None, 0, reserve)),
    );
    let r = &out.rollouts[0];
    assert_eq!(r.reasoning_tokens, max - reserve - forced);
    assert!(r.thinking_budget_cut);
    let answer = r.token_ids.len() - r.reasoning_tokens - forced;
    assert_eq!(answer, reserve, "the reserve is left for the answer");
}

#[test]
fn zero_budget_forces_the_text_before_any_sample() {
    let forced = tokens().budget_forced.clone();
    let out = run(prompt(), 2, params(40, -100.0), Some(spec(Some(0), 0, 4)));
    for r in &out.rollouts {
        assert_eq!(r.reasoning_tokens, 0);
        assert_eq!(&r.token_ids[..forced.len()], &forced[..]);
        assert_eq!(r.token_ids.len(), 40);
    }
}

#[test]
fn forced_text_is_stop_checked() {
    let mut p = params(60, -100.0);
    p.stop = vec!["is up".into()];
    let out = run(prompt(), 1, p, Some(spec(Some(5), 0, 4)));
    let r = &out.rollouts[0];
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert!(r.text.ends_with("Time "), "{:?}", r.text);
    assert!(r.token_ids.len() < 5 + tokens().budget_forced.len());
}

#[test]
fn a_forced_multi_token_step_equals_feeding_the_tokens_as_prompt() {
    // Greedy: the tokens after the forced run depend only on the KV, so a
    // multi-token decode step must match a fresh prefill of the same ids.
    let forced = tokens().budget_forced.len();
    let greedy = |max| SamplingParams {
        max_tokens: Some(max),
        ignore_eos: true,
        logprobs: true,
        ..SamplingParams::greedy()
    };
    let out = run(prompt(), 1, greedy(30), Some(spec(Some(6), 0, 4)));
    let ids = &out.rollouts[0].token_ids;
    let cut = 6 + forced;
    let mut p2 = prompt();
    p2.extend_from_slice(&ids[..cut]);
    let again = run(p2, 1, greedy(30 - cut), None);
    assert_eq!(&again.rollouts[0].token_ids[..], &ids[cut..]);
}

#[test]
fn without_think_mode_nothing_is_counted() {
    let out = run(prompt(), 1, params(10, 0.0), None);
    assert_eq!(out.rollouts[0].reasoning_tokens, 0);
    assert!(!out.rollouts[0].thinking_budget_cut);
}
