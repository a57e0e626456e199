//! [`SampleSource`] over a model directory loaded in this process: prompts
//! built by the one prompt builder ([`build_chat_prompt`]: think toggles and
//! budgets resolved as the server's chat route resolves them), every
//! problem of a batch decoded together by the batched rollout engine
//! ([`generate_groups`]), each output split into reasoning and answer as
//! `reasoning_content` / `content`.

use std::time::Instant;

use crate::chat::SpecialTokenPolicy;
use crate::engine::in_engine_pool;
use crate::engine::rollout::{generate_groups, GroupRequest, RolloutConfig};
use crate::engine::sampler::SamplingParams;
use crate::engine::think::prompt::{build_chat_prompt, ChatPrompt, ThinkOptions};
use crate::engine::think::resolve::ThinkConfig;
use crate::engine::ModelBundle;

use super::source::{Sample, SampleRequest, SampleSource, SourceError};

pub struct EmbeddedSource {
    bundle: ModelBundle,
    think: ThinkConfig,
    name: String,
    batch: usize,
}

impl EmbeddedSource {
    /// `name` describes the model (its directory); `batch` problems are
    /// decoded per engine call.
    pub fn new(bundle: ModelBundle, name: String, batch: usize) -> Self {
        Self {
            bundle,
            think: ThinkConfig::default(),
            name,
            batch: batch.max(1),
        }
    }

    fn prompt(&self, r: &SampleRequest) -> Result<ChatPrompt, SourceError> {
        let opts = ThinkOptions {
            enable_thinking: r.think.enabled,
            thinking_budget: r.think.budget,
            ..ThinkOptions::default()
        };
        build_chat_prompt(
            &self.bundle.template,
            &self.bundle.tokenizer,
            &r.messages,
            &r.kwargs,
            &opts,
            &self.think,
            SpecialTokenPolicy::default(),
        )
        .map_err(|e| SourceError::Invalid(e.to_string()))
    }
}

impl SampleSource for EmbeddedSource {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn batch_hint(&self) -> usize {
        self.batch
    }

    fn sample(&self, requests: &[SampleRequest]) -> Result<Vec<Vec<Sample>>, SourceError> {
        let vocab = self.bundle.loaded.config.vocab_size;
        let mut prompts = Vec::with_capacity(requests.len());
        let mut groups = Vec::with_capacity(requests.len());
        for r in requests {
            let prompt = self.prompt(r)?;
            let params = SamplingParams {
                temperature: r.temperature,
                max_tokens: Some(r.max_tokens),
                seed: Some(r.seed),
                logprobs: true,
                ..SamplingParams::default()
            };
            params
                .validate(vocab)
                .map_err(|e| SourceError::Invalid(format!("--temperature / --max-tokens: {e}")))?;
            groups.push(GroupRequest {
                prompt_ids: prompt.ids.clone(),
                n: r.n,
                params,
                eos_token_ids: self.bundle.eos_token_ids.clone(),
                // The server's think spec: budgets enforced per rollout.
                think: prompt.think.clone(),
            });
            prompts.push(prompt);
        }
        let started = Instant::now();
        let outs = in_engine_pool(|| {
            generate_groups(
                &self.bundle.loaded.model,
                &self.bundle.tokenizer,
                &groups,
                &RolloutConfig::default(),
                &mut |_| true,
            )
        })
        .map_err(|e| SourceError::Engine(e.to_string()))?;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(outs
            .into_iter()
            .zip(&prompts)
            .map(|(out, prompt)| {
                out.rollouts
                    .iter()
                    .map(|ro| {
                        let (reasoning, content) = prompt.split(&ro.text);
                        Sample {
                            reasoning,
                            content,
                            tokens: ro.token_ids.len(),
                            finish_reason: ro.finish_reason.as_str().to_string(),
                            logprobs: ro.logprobs.iter().map(|l| l.logprob).collect(),
                            latency_ms: if ro.total_ms > 0.0 {
                                ro.total_ms
                            } else {
                                elapsed_ms
                            },
                        }
                    })
                    .collect()
            })
            .collect())
    }
}
