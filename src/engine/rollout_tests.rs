//! Batched rollouts for training ([`generate_groups`]) on a trainable
//! (`Var`-backed) tiny model: outputs follow in-place weight updates exactly
//! like a freshly loaded model with those weights, raw log-probs equal a
//! Train-mode forward's `log_softmax(logits / T)`, forced tokens are marked,
//! and the KV budget only changes the schedule, not the tokens.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use candle_core::{DType, Device, Tensor, D};

use super::batching_tests::{fixture, Fixture};
use super::output::GroupOutput;
use super::rollout::{generate_groups, GroupRequest, RolloutConfig, RolloutError};
use super::think::{ThinkSpec, ThinkTokens};
use super::{generate_group, EngineError, FinishReason, SamplingParams};
use crate::model::{load_model, load_trainable, Mode, Positions, SeqInput, Transformer};
use crate::tokenizer::Tokenizer;

/// `</think>` in the Qwen3 vocabulary.
const END_THINK: u32 = 151668;

fn shared() -> &'static (Fixture, Tokenizer, Vec<u32>) {
    static F: OnceLock<(Fixture, Tokenizer, Vec<u32>)> = OnceLock::new();
    F.get_or_init(|| {
        let f = fixture();
        let tok = Tokenizer::from_dir(&f.dir).expect("tokenizer");
        let eos = super::bundle::eos_token_ids(&f.dir, &tok).expect("eos ids");
        let served = super::ModelBundle::load(&f.dir, None, &Device::Cpu).expect("load");
        assert_eq!(eos, served.eos_token_ids, "the server's stop ids");
        (f, tok, eos)
    })
}

fn trainable() -> (Transformer, candle_nn::VarMap) {
    let (m, vars, _) = load_trainable(&shared().0.dir, DType::F32, &Device::Cpu).expect("load");
    (m, vars)
}

fn prompt(text: &str) -> Vec<u32> {
    let chat = format!("<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n");
    shared().1.encode(&chat, false).expect("encode")
}

fn requests(params: &SamplingParams) -> Vec<GroupRequest> {
    ["What is 2+3?", "Name a colour.", "Count to five, please."]
        .iter()
        .enumerate()
        .map(|(i, q)| GroupRequest {
            prompt_ids: prompt(q),
            n: 2,
            params: SamplingParams {
                seed: params.seed.map(|s| s + i as u64),
                ..params.clone()
            },
            eos_token_ids: shared().2.clone(),
            think: None,
        })
        .collect()
}

fn greedy(max: usize) -> SamplingParams {
    SamplingParams {
        max_tokens: Some(max),
        ignore_eos: true,
        raw_logprobs: true,
        ..SamplingParams::greedy()
    }
}

fn sampled(max: usize, temperature: f32) -> SamplingParams {
    SamplingParams {
        temperature,
        seed: Some(11),
        ..greedy(max)
    }
}

fn run(model: &Transformer, reqs: &[GroupRequest], cfg: &RolloutConfig) -> Vec<GroupOutput> {
    generate_groups(model, &shared().1, reqs, cfg, &mut |_| true).expect("generate")
}

fn tokens(outs: &[GroupOutput]) -> Vec<Vec<u32>> {
    outs.iter()
        .flat_map(|g| g.rollouts.iter().map(|r| r.token_ids.clone()))
        .collect()
}

/// Write the trainable model's current weights as a model directory.
fn save_as_model(vars: &candle_nn::VarMap, out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    for entry in std::fs::read_dir(&shared().0.dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_owned();
        if !name.to_string_lossy().ends_with(".safetensors") {
            std::fs::copy(&p, out.join(name)).unwrap();
        }
    }
    vars.save(out.join("model.safetensors")).unwrap();
}

/// Perturb weights in place, as an optimizer step would. The fixture's
/// random tied model mostly repeats its last input token (its embedding
/// dominates the residual stream); noise on the final norm and the last MLP
/// breaks that, so the tokens really depend on the update.
fn update(vars: &candle_nn::VarMap, scale: f64) {
    for name in [
        "model.norm.weight",
        "model.layers.1.mlp.gate_proj.weight",
        "model.layers.1.mlp.up_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
    ] {
        let var = vars.data().lock().unwrap()[name].clone();
        let noise = var.as_tensor().randn_like(0.0, scale).unwrap();
        var.set(&(var.as_tensor() + noise).unwrap()).unwrap();
    }
}

#[test]
fn rollouts_follow_in_place_weight_updates_like_a_fresh_load() {
    let (model, vars) = trainable();
    let cfg = RolloutConfig::default();
    let reqs = requests(&greedy(12));
    let before = run(&model, &reqs, &cfg);
    update(&vars, 2.0);
    let after = run(&model, &reqs, &cfg);
    assert_ne!(
        tokens(&before),
        tokens(&after),
        "the update changed nothing"
    );

    let tmp = tempfile::tempdir().unwrap();
    save_as_model(&vars, tmp.path());
    let fresh = load_model(tmp.path(), None, &Device::Cpu).expect("reload");
    assert_eq!(tokens(&run(&fresh.model, &reqs, &cfg)), tokens(&after));
    // The same on sampled rollouts, and a group alone equals it batched.
    let reqs = requests(&sampled(12, 0.9));
    let batched = run(&model, &reqs, &cfg);
    assert_eq!(tokens(&run(&fresh.model, &reqs, &cfg)), tokens(&batched));
    let alone = generate_group(&fresh.model, &shared().1, &reqs[1], &mut |_| true).unwrap();
    assert_eq!(tokens(&[alone]), tokens(&batched[1..2]));
    // Inference forwards run on the Var-backed weights themselves as well
    // (with autograd bookkeeping the detached view avoids): same tokens.
    let direct = generate_group(&model, &shared().1, &reqs[1], &mut |_| true).unwrap();
    assert_eq!(tokens(&[direct]), tokens(&batched[1..2]));
}

/// `log_softmax(logits / t)` of a Train-mode forward over prompt + output,
/// at the rows that predict each output token.
fn train_logprobs(model: &Transformer, prompt: &[u32], out: &[u32], t: f64) -> Vec<f32> {
    let mut ids = prompt.to_vec();
    ids.extend_from_slice(out);
    let mut seqs = [SeqInput {
        tokens: &ids,
        cache: None,
    }];
    let logits = model
        .forward(&mut seqs, Positions::All, Mode::Train)
        .unwrap();
    let lp = candle_nn::ops::log_softmax(&(logits / t).unwrap(), D::Minus1).unwrap();
    let rows = lp.narrow(0, prompt.len() - 1, out.len()).unwrap();
    let idx = Tensor::new(out, &Device::Cpu)
        .unwrap()
        .unsqueeze(1)
        .unwrap();
    rows.gather(&idx, 1)
        .unwrap()
        .squeeze(1)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn think_spec(tok: &Tokenizer, budget: usize) -> ThinkSpec {
    ThinkSpec {
        tokens: Arc::new(ThinkTokens::encode(tok, "</think>", "Time is up.", "Wait").unwrap()),
        thinking: true,
        thinking_budget: Some(budget),
        min_thinking_tokens: 0,
        answer_reserve: 4,
    }
}

#[test]
fn raw_logprobs_equal_a_train_forward_and_forced_tokens_are_marked() {
    let (model, vars) = trainable();
    update(&vars, 0.5);
    let tok = &shared().1;
    let t = 0.7;
    let mut think_prompt = prompt("Think about 7*8.");
    think_prompt.extend(tok.encode("<think>\n", false).unwrap());
    let spec = think_spec(tok, 5);
    let forced = spec.tokens.budget_forced.clone();
    let mut params = sampled(24, t);
    // A bias steers sampling away from `</think>`, penalties and top-p shape
    // the draw; the raw log-prob ignores all of them.
    params.logit_bias = [(END_THINK, -100.0)].into_iter().collect();
    params.presence_penalty = 1.5;
    params.repetition_penalty = 1.3;
    params.top_p = 0.9;
    let reqs = vec![
        GroupRequest {
            think: Some(spec),
            prompt_ids: think_prompt,
            ..requests(&params).remove(0)
        },
        requests(&params).remove(1),
    ];
    let outs = run(&model, &reqs, &RolloutConfig::default());
    let mut checked = 0;
    for (req, g) in reqs.iter().zip(&outs) {
        for r in &g.rollouts {
            assert_eq!(r.sampled.len(), r.token_ids.len());
            assert_eq!(r.raw_logprobs.len(), r.token_ids.len());
            let expect = train_logprobs(&model, &req.prompt_ids, &r.token_ids, t as f64);
            for (j, (&s, raw)) in r.sampled.iter().zip(&r.raw_logprobs).enumerate() {
                assert_eq!(
                    s,
                    raw.is_some(),
                    "token {j}: forced tokens have no log-prob"
                );
                if let Some(raw) = raw {
                    assert!(
                        (raw - expect[j]).abs() < 1e-4,
                        "token {j}: {raw} vs {}",
                        expect[j]
                    );
                    checked += 1;
                }
            }
            if req.think.is_some() {
                // 5 sampled reasoning tokens, the forced budget text, the answer.
                let n = forced.len();
                assert!(r.thinking_budget_cut);
                assert_eq!(&r.token_ids[5..5 + n], &forced[..]);
                assert!(r.sampled[..5].iter().all(|&s| s));
                assert!(r.sampled[5..5 + n].iter().all(|&s| !s));
                assert!(r.sampled[5 + n..].iter().all(|&s| s));
            } else {
                assert!(r.sampled.iter().all(|&s| s));
            }
        }
    }
    assert!(checked > 60, "only {checked} tokens compared");
}

#[test]
fn the_kv_budget_bounds_the_batch_but_not_the_tokens() {
    let (model, vars) = trainable();
    update(&vars, 1.0);
    let reqs = requests(&sampled(10, 1.0));
    let wide = run(&model, &reqs, &RolloutConfig::default());
    // Room for one group at a time, two sequences per forward.
    let largest = reqs
        .iter()
        .map(|r| r.prompt_ids.len() + 2 * 10)
        .max()
        .unwrap();
    let narrow = RolloutConfig {
        kv_budget_tokens: largest,
        max_batch_seqs: 2,
        prefill_chunk: 7,
    };
    let mut last = None;
    let outs = generate_groups(&model, &shared().1, &reqs, &narrow, &mut |p| {
        last = Some(*p);
        true
    })
    .unwrap();
    let last = last.unwrap();
    assert_eq!((last.groups_done, last.groups_total), (3, 3));
    assert_eq!(last.tokens, 3 * 2 * 10);
    assert_eq!(tokens(&outs), tokens(&wide));
    assert!(outs.iter().all(|g| g.timings.queue_ms >= 0.0));
    // Deterministic: the same call again gives the same tokens.
    assert_eq!(
        tokens(&run(&model, &reqs, &RolloutConfig::default())),
        tokens(&wide)
    );
}

#[test]
fn a_bad_request_is_named_and_stopping_cancels_the_rest() {
    let (model, _) = trainable();
    let mut reqs = requests(&greedy(8));
    reqs[1].prompt_ids.clear();
    let err = generate_groups(&model, &shared().1, &reqs, &Default::default(), &mut |_| {
        true
    });
    assert!(
        matches!(
            err,
            Err(RolloutError {
                group: 1,
                source: EngineError::EmptyPrompt
            })
        ),
        "{err:?}"
    );
    let reqs = requests(&greedy(50));
    let one_at_a_time = RolloutConfig {
        kv_budget_tokens: 200,
        ..Default::default()
    };
    let outs = generate_groups(&model, &shared().1, &reqs, &one_at_a_time, &mut |p| {
        p.steps < 3
    })
    .unwrap();
    assert_eq!(outs.len(), reqs.len());
    for r in &outs[0].rollouts {
        assert_eq!(r.finish_reason, FinishReason::Cancelled);
        assert!(r.token_ids.len() < 50);
    }
    assert!(outs[2].rollouts.is_empty(), "never admitted");
}
