//! Task accuracy by generation: held-out problems answered greedily by the
//! rollout engine on the model's current weights (think on and think off,
//! forced with `enable_thinking` as a client would), judged by the
//! `scoring` verifier of each task on the answer part (after the think
//! block, what the server returns as `content`).

use serde::Serialize;
use serde_json::Map;

use quorum_scoring::verifier::verifier_by_name;

use crate::chat::{ChatMessage, ChatTemplate, SpecialTokenPolicy};
use crate::engine::in_engine_pool;
use crate::engine::rollout::{generate_groups, GroupRequest, RolloutConfig};
use crate::engine::sampler::SamplingParams;
use crate::engine::sequence::FinishReason;
use crate::engine::think::prompt::{build_chat_prompt, ThinkOptions};
use crate::engine::think::resolve::ThinkConfig;
use crate::engine::weights_view::inference_view;
use crate::model::Transformer;
use crate::tokenizer::Tokenizer;

/// One held-out problem.
#[derive(Debug, Clone)]
pub struct EvalTask {
    /// The prompt side of the conversation (system/user turns).
    pub messages: Vec<ChatMessage>,
    pub answer: String,
    pub verifier: String,
    /// Measured pass rate (`quorum train filter`), for the curriculum.
    pub pass_rate: Option<f64>,
}

/// Accuracy of one think mode.
#[derive(Debug, Clone, Serialize)]
pub struct ModeAccuracy {
    pub correct: usize,
    pub total: usize,
    pub accuracy: f64,
    /// Mean generated tokens per answer.
    pub mean_tokens: f64,
    /// Answers cut by the generation limit.
    pub truncated: usize,
}

/// Everything generation needs besides the weights.
pub struct EvalContext<'a> {
    pub tok: &'a Tokenizer,
    pub template: &'a ChatTemplate,
    pub think: &'a ThinkConfig,
    pub eos: Vec<u32>,
    pub max_new_tokens: usize,
}

/// Greedy answers to `tasks` with thinking `think`, judged by each task's
/// verifier. All problems decode together as one batch through the
/// engine's [`generate_groups`], on a gradient-free view of the current weights.
pub fn accuracy(
    model: &Transformer,
    ctx: &EvalContext,
    tasks: &[EvalTask],
    think: bool,
) -> anyhow::Result<ModeAccuracy> {
    let opts = ThinkOptions {
        enable_thinking: Some(think),
        ..ThinkOptions::default()
    };
    let mut requests = Vec::with_capacity(tasks.len());
    let mut prompts = Vec::with_capacity(tasks.len());
    for task in tasks {
        let p = build_chat_prompt(
            ctx.template,
            ctx.tok,
            &task.messages,
            &Map::new(),
            &opts,
            ctx.think,
            SpecialTokenPolicy::default(),
        )?;
        requests.push(GroupRequest {
            prompt_ids: p.ids.clone(),
            n: 1,
            params: SamplingParams {
                temperature: 0.0,
                max_tokens: Some(ctx.max_new_tokens),
                seed: Some(0),
                ..SamplingParams::default()
            },
            eos_token_ids: ctx.eos.clone(),
            // The model's own thinking, capped only by max_new_tokens: no
            // engine budget (its forced text would be the answer, not the model's).
            think: None,
        });
        prompts.push(p);
    }
    let view = inference_view(model);
    let outs = in_engine_pool(|| {
        generate_groups(
            &view,
            ctx.tok,
            &requests,
            &RolloutConfig::default(),
            &mut |_| true,
        )
    })?;
    let mut correct = 0;
    let mut tokens = 0;
    let mut truncated = 0;
    for ((task, out), prompt) in tasks.iter().zip(&outs).zip(&prompts) {
        let Some(ro) = out.rollouts.first() else {
            continue;
        };
        tokens += ro.token_ids.len();
        if matches!(ro.finish_reason, FinishReason::Length) {
            truncated += 1;
        }
        let verifier = verifier_by_name(&task.verifier)?;
        // The answer a client reads (`content`): a think block cut by the
        // limit has none.
        let (_, answer) = prompt.split(&ro.text);
        if verifier.verify(&answer, &task.answer).correct {
            correct += 1;
        }
    }
    let total = tasks.len();
    Ok(ModeAccuracy {
        correct,
        total,
        accuracy: if total == 0 {
            0.0
        } else {
            correct as f64 / total as f64
        },
        mean_tokens: if total == 0 {
            0.0
        } else {
            tokens as f64 / total as f64
        },
        truncated,
    })
}
