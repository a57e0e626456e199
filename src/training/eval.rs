//! Task accuracy by generation: held-out problems answered greedily by the
//! rollout engine on the model's current weights (think on and think off,
//! forced with `enable_thinking` as a client would), judged by the
//! `scoring` verifier of each task.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use quorum_scoring::verifier::verifier_by_name;

use crate::chat::{ChatMessage, ChatTemplate};
use crate::engine::rollout::{generate_group, GroupRequest};
use crate::engine::sampler::SamplingParams;
use crate::engine::think::resolve::ThinkConfig;
use crate::model::{GenerationConfig, ModelConfig, Transformer};
use crate::tokenizer::Tokenizer;

use super::render::ConversationRenderer;

/// One held-out problem.
#[derive(Debug, Clone)]
pub struct EvalTask {
    /// The prompt side of the conversation (system/user turns).
    pub messages: Vec<ChatMessage>,
    pub answer: String,
    pub verifier: String,
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
    pub think_supported: bool,
    pub eos: Vec<u32>,
    pub max_new_tokens: usize,
}

/// Stop ids of a model directory: config.json, generation_config.json and
/// the tokenizer's eos, deduplicated.
pub fn eos_ids(dir: &Path, cfg: &ModelConfig, tok: &Tokenizer) -> Vec<u32> {
    let mut ids: BTreeSet<u32> = cfg.eos_token_ids().into_iter().collect();
    if let Ok(text) = std::fs::read_to_string(dir.join("generation_config.json")) {
        if let Ok(g) = serde_json::from_str::<GenerationConfig>(&text) {
            if let Some(e) = g.eos_token_id {
                ids.extend(e.to_vec());
            }
        }
    }
    ids.extend(tok.eos_token_ids());
    ids.into_iter().collect()
}

/// Greedy answers to `tasks` with thinking `think`, judged by each task's verifier.
pub fn accuracy(
    model: &Transformer,
    ctx: &EvalContext,
    tasks: &[EvalTask],
    think: bool,
) -> anyhow::Result<ModeAccuracy> {
    let mut correct = 0;
    let mut tokens = 0;
    let mut truncated = 0;
    for task in tasks {
        let mut kwargs = Map::new();
        kwargs.insert("enable_thinking".into(), Value::Bool(think));
        let r = ConversationRenderer::new(
            ctx.template,
            ctx.tok,
            ctx.think,
            ctx.think_supported,
            &task.messages,
            kwargs,
        )
        .map_err(anyhow::Error::msg)?;
        use quorum_train::mask::ChatRenderer;
        let prompt_ids = r.render_ids(&task.messages, true).map_err(anyhow::Error::msg)?;
        let req = GroupRequest {
            prompt_ids,
            n: 1,
            params: SamplingParams {
                temperature: 0.0,
                max_tokens: Some(ctx.max_new_tokens),
                seed: Some(0),
                ..SamplingParams::default()
            },
            eos_token_ids: ctx.eos.clone(),
            think: None,
        };
        let out = generate_group(model, ctx.tok, &req, &mut |_| true)?;
        let Some(ro) = out.rollouts.first() else {
            continue;
        };
        tokens += ro.token_ids.len();
        if matches!(ro.finish_reason, crate::engine::sequence::FinishReason::Length) {
            truncated += 1;
        }
        let verifier = verifier_by_name(&task.verifier)?;
        if verifier.verify(&ro.text, &task.answer).correct {
            correct += 1;
        }
    }
    let total = tasks.len();
    Ok(ModeAccuracy {
        correct,
        total,
        accuracy: if total == 0 { 0.0 } else { correct as f64 / total as f64 },
        mean_tokens: if total == 0 { 0.0 } else { tokens as f64 / total as f64 },
        truncated,
    })
}
