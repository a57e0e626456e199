//! GRPO rollouts: a step's prompts rendered as the server renders them
//! (chat template + think mode), G samples each through the batched
//! rollout engine on the current (or a one-step-old) weights with the
//! sampling distribution's raw log-probs, judged by each task's `scoring`
//! verifier and shaped into rewards, and turned into training sequences
//! that train only on the tokens the model sampled.

use serde::{Deserialize, Serialize};
use serde_json::Map;

use quorum_scoring::verifier::verifier_by_name;
use quorum_train::batch::Example;
use quorum_train::grpo::update::RolloutSeq;
use quorum_train::grpo_config::ThinkMix;
use quorum_train::rewards::{
    sample_target, score_group, Reward, RewardConfig, RewardContext, Rollout,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::chat::{ChatTemplate, SpecialTokenPolicy};
use crate::engine::in_engine_pool;
use crate::engine::rollout::{generate_groups, GroupRequest, RolloutConfig};
use crate::engine::sampler::SamplingParams;
use crate::engine::sequence::FinishReason;
use crate::engine::think::prompt::{build_chat_prompt, ThinkOptions};
use crate::engine::think::resolve::ThinkConfig;
use crate::engine::think::with_thinking_target;
use crate::model::Transformer;
use crate::tokenizer::Tokenizer;

use super::eval::EvalTask;

/// One sampled answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredRollout {
    pub text: String,
    pub token_ids: Vec<u32>,
    pub sampled: Vec<bool>,
    /// Raw sampling-distribution log-probs (`None`: engine-forced).
    pub raw_logprobs: Vec<Option<f32>>,
    pub truncated: bool,
    pub reasoning_tokens: usize,
    /// The verifier's verdict on the answer part.
    pub correct: bool,
    /// The shaped reward and its parts.
    pub reward: Reward,
}

/// One prompt's group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredGroup {
    /// Index of the task in the training set.
    pub task: usize,
    pub prompt_ids: Vec<u32>,
    pub thinking: bool,
    /// The L1 target stated in the prompt (length control).
    pub target_thinking_tokens: Option<usize>,
    pub rollouts: Vec<ScoredRollout>,
}

impl ScoredGroup {
    pub fn rewards(&self) -> Vec<f64> {
        self.rollouts.iter().map(|r| r.reward.total).collect()
    }
}

/// Everything sampling needs besides the weights and the prompts.
pub struct RolloutContext<'a> {
    pub tok: &'a Tokenizer,
    pub template: &'a ChatTemplate,
    pub think: &'a ThinkConfig,
    pub eos: Vec<u32>,
    pub group_size: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub max_completion_tokens: usize,
    pub think_mix: ThinkMix,
    pub seed: u64,
    pub reward: &'a RewardConfig,
}

/// SplitMix64: seeds of a step's rollouts from (run seed, step, round, group).
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn enable_thinking(mix_mode: ThinkMix, task: usize, seed: u64) -> Option<bool> {
    match mix_mode {
        ThinkMix::On => Some(true),
        ThinkMix::Off => Some(false),
        ThinkMix::Default => None,
        ThinkMix::Mixed => Some(mix(seed ^ task as u64) & 1 == 0),
    }
}

/// Sample and score a group for each of `tasks` (`(index, task)`), with
/// rollout seeds derived from `salt` (the step and refill round);
/// `progress` (step / steps) drives scheduled reward terms.
pub fn sample_groups(
    model: &Transformer,
    ctx: &RolloutContext,
    tasks: &[(usize, &EvalTask)],
    salt: u64,
    progress: f64,
) -> anyhow::Result<Vec<ScoredGroup>> {
    let mut requests = Vec::with_capacity(tasks.len());
    let mut prompts = Vec::with_capacity(tasks.len());
    let mut targets = Vec::with_capacity(tasks.len());
    for (k, (index, task)) in tasks.iter().enumerate() {
        let opts = ThinkOptions {
            enable_thinking: enable_thinking(ctx.think_mix, *index, ctx.seed),
            ..ThinkOptions::default()
        };
        let build = |messages: &[crate::chat::ChatMessage]| {
            build_chat_prompt(
                ctx.template,
                ctx.tok,
                messages,
                &Map::new(),
                &opts,
                ctx.think,
                SpecialTokenPolicy::default(),
            )
        };
        let mut p = build(&task.messages)?;
        // L1 length control: a sampled target stated in the prompt with
        // the server's words (`budget_in_prompt`), rewarded by distance.
        let mut target = None;
        if ctx.reward.length_control.enabled && p.thinking() {
            let mut rng = ChaCha8Rng::seed_from_u64(mix(ctx.seed ^ mix(salt ^ mix(*index as u64))));
            let n = sample_target(ctx.reward, &mut rng);
            p = build(&with_thinking_target(&task.messages, n))?;
            target = Some(n);
        }
        targets.push(target);
        requests.push(GroupRequest {
            prompt_ids: p.ids.clone(),
            n: ctx.group_size,
            params: SamplingParams {
                temperature: ctx.temperature as f32,
                top_p: ctx.top_p as f32,
                max_tokens: Some(ctx.max_completion_tokens),
                seed: Some(mix(ctx.seed ^ mix(salt ^ mix(k as u64)))),
                raw_logprobs: true,
                ..SamplingParams::default()
            },
            eos_token_ids: ctx.eos.clone(),
            // The model's own thinking, limited by max_completion_tokens
            // only: budget-forced text would not be the model's.
            think: None,
        });
        prompts.push(p);
    }
    let outs = in_engine_pool(|| {
        generate_groups(
            model,
            ctx.tok,
            &requests,
            &RolloutConfig::default(),
            &mut |_| true,
        )
    })?;
    let reward_ctx = RewardContext {
        max_completion_tokens: ctx.max_completion_tokens,
        progress,
    };
    let mut groups = Vec::with_capacity(tasks.len());
    for ((((_, task), out), prompt), (target, (index, _))) in tasks
        .iter()
        .zip(outs)
        .zip(&prompts)
        .zip(targets.into_iter().zip(tasks))
    {
        let verifier = verifier_by_name(&task.verifier)?;
        let user = task
            .messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let thinking = prompt.thinking();
        let judged: Vec<(bool, bool)> = out
            .rollouts
            .iter()
            .map(|ro| {
                let (_, answer) = prompt.split(&ro.text);
                (
                    verifier.verify(&answer, &task.answer).correct,
                    matches!(ro.finish_reason, FinishReason::Length),
                )
            })
            .collect();
        let views: Vec<Rollout> = out
            .rollouts
            .iter()
            .zip(&judged)
            .map(|(ro, &(correct, truncated))| Rollout {
                text: &ro.text,
                prompt: &user,
                thinking,
                tokens: ro.token_ids.len(),
                reasoning_tokens: ro.reasoning_tokens,
                truncated,
                correct,
                target_thinking_tokens: target,
            })
            .collect();
        let rewards = score_group(ctx.reward, &reward_ctx, &views);
        let rollouts = out
            .rollouts
            .into_iter()
            .zip(judged)
            .zip(rewards)
            .map(|((ro, (correct, truncated)), reward)| ScoredRollout {
                truncated,
                correct,
                reward,
                text: ro.text,
                token_ids: ro.token_ids,
                sampled: ro.sampled,
                raw_logprobs: ro.raw_logprobs,
                reasoning_tokens: ro.reasoning_tokens,
            })
            .collect();
        groups.push(ScoredGroup {
            task: *index,
            prompt_ids: prompt.ids.clone(),
            thinking,
            target_thinking_tokens: target,
            rollouts,
        });
    }
    Ok(groups)
}

/// Training sequences of `groups` with their advantages (`adv[g][i]`):
/// prompt + completion, weight 1 on the completion tokens the model
/// sampled (forced tokens and masked rollouts weigh 0), the rollout-time
/// log-probs as the behaviour policy's.
pub fn training_sequences(
    groups: &[ScoredGroup],
    adv: &[Vec<f64>],
) -> anyhow::Result<Vec<RolloutSeq>> {
    let mut out = Vec::new();
    for (g, a) in groups.iter().zip(adv) {
        for (r, &a) in g.rollouts.iter().zip(a) {
            if r.token_ids.is_empty() {
                continue;
            }
            let p = g.prompt_ids.len();
            let mut ids = g.prompt_ids.clone();
            ids.extend_from_slice(&r.token_ids);
            let mut weights = vec![0f32; p];
            let mut old = vec![0f32; p.saturating_sub(1)];
            for (j, &s) in r.sampled.iter().enumerate() {
                let lp = r.raw_logprobs.get(j).copied().flatten();
                let trained = s && !r.reward.masked && lp.is_some();
                weights.push(f32::from(u8::from(trained)));
                old.push(if trained { lp.unwrap_or(0.0) } else { 0.0 });
            }
            if weights.len() != ids.len() {
                anyhow::bail!(
                    "rollout of task {}: {} tokens but {} provenance flags",
                    g.task,
                    r.token_ids.len(),
                    r.sampled.len()
                );
            }
            out.push(RolloutSeq::new(Example::new(ids, weights)?, old, a as f32)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(tokens: &[u32], sampled: &[bool], masked: bool) -> ScoredRollout {
        ScoredRollout {
            text: String::new(),
            token_ids: tokens.to_vec(),
            sampled: sampled.to_vec(),
            raw_logprobs: sampled
                .iter()
                .enumerate()
                .map(|(i, &s)| s.then_some(-(i as f32) - 1.0))
                .collect(),
            truncated: false,
            reasoning_tokens: 0,
            correct: true,
            reward: Reward {
                total: 1.0,
                correct: 1.0,
                masked,
                ..Reward::default()
            },
        }
    }

    #[test]
    fn forced_and_prompt_tokens_are_never_trained_on() {
        let g = ScoredGroup {
            task: 0,
            prompt_ids: vec![10, 11, 12],
            thinking: true,
            target_thinking_tokens: None,
            rollouts: vec![
                rollout(&[1, 2, 3, 4], &[true, false, false, true], false),
                rollout(&[5, 6], &[true, true], true),
            ],
        };
        let s = training_sequences(&[g], &[vec![0.5, -0.5]]).unwrap();
        assert_eq!(s[0].example.ids, vec![10, 11, 12, 1, 2, 3, 4]);
        assert_eq!(
            s[0].example.weights,
            vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]
        );
        // targets ids[1..]: prompt 11, 12, then the completion's four
        assert_eq!(s[0].old_logprobs, vec![0.0, 0.0, -1.0, 0.0, 0.0, -4.0]);
        assert_eq!(s[0].advantage, 0.5);
        // a masked (overlong-filtered) rollout trains nothing
        assert!(s[1].example.weights.iter().all(|&w| w == 0.0));
    }

    #[test]
    fn mixed_think_mode_is_a_stable_half_split() {
        let on = (0..1000)
            .filter(|&t| enable_thinking(ThinkMix::Mixed, t, 3) == Some(true))
            .count();
        assert!((400..600).contains(&on), "{on}");
        assert_eq!(
            enable_thinking(ThinkMix::Mixed, 17, 3),
            enable_thinking(ThinkMix::Mixed, 17, 3)
        );
        assert_eq!(enable_thinking(ThinkMix::Off, 1, 0), Some(false));
    }
}
