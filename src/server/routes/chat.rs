//! `POST /v1/chat/completions`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::chat::{ChatMessage, ChatTemplate, SpecialTokenPolicy};
use crate::engine::sequence::TokenLogprob;
use crate::engine::think::prompt::render_prompt;
use crate::engine::think::ReasoningSplitter;
use crate::engine::{FinishReason, GenerateOutput};
use crate::server::error::ApiError;
use crate::server::extract::ApiJson;
use crate::server::generate::{self, finish_reason, respond_whole, usage, RequestRecord};
use crate::server::openai::*;
use crate::server::selection;
use crate::server::sse::{self, ChunkWriter, Source};
use crate::server::state::AppState;
use crate::server::think::{self, ChatThink};
use crate::server::tokenize;
use crate::server::tokens::chat_logprob;
use crate::server::validate::{self, ValidRequest};
use crate::tokenizer::Tokenizer;

/// The whole request path, in order: validate → model, think mode and
/// selection plan → admission → prompt (off the async workers) → engine →
/// response (JSON or SSE), with answer selection when the plan says so.
pub async fn chat_completions(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let mut req = validate::chat(body, &state.config)?;
    let entry = state.model(&req.common.model)?;
    let think = Arc::new(think::prepare_chat(&mut req, &state.config, &entry)?);
    let plan = selection::plan(&entry, &req.common, &req.messages, &state.config)?;
    let context = entry.engine.info().context_length;
    let input_bytes = content_bytes(&req.messages);
    tokenize::check_size(&entry.tokenizer, input_bytes, context)?;
    let permit = state.admit()?;
    let id = new_id("chatcmpl");
    let mut record = RequestRecord::new(&state, permit, id.clone(), "chat", &req.common);
    let common = req.common;
    let (template, tok) = (entry.template.clone(), entry.tokenizer.clone());
    let (messages, kwargs) = (req.messages, req.kwargs);
    let policy = state.config.special_token_policy(&common.model);
    let th = think.clone();
    let prompt = tokenize::prepare(&state, input_bytes, move || {
        let prompt = Prompt {
            template: &template,
            tok: &tok,
            policy,
            context,
        };
        prompt.encode(&messages, &kwargs, &th)
    })
    .await;
    let cancel = plan.as_ref().map(|p| p.cancel.clone());
    let submitted =
        prompt.and_then(|ids| generate::submit(&state, &entry, &id, ids, &common, cancel));
    let gen = record.check(submitted)?;
    let created = now_secs();
    if common.stream {
        let writer = ChatWriter {
            id,
            created,
            model: common.model.clone(),
            n: common.n,
            logprobs: common.params.logprobs,
            tokenizer: entry.tokenizer.clone(),
            splitters: (0..common.n).map(|_| think.splitter()).collect(),
            think,
        };
        let keepalive = state.config.keepalive;
        return Ok(sse::respond(
            Source::of(plan, gen),
            writer,
            record,
            common.include_usage,
            keepalive,
        ));
    }
    let (out, quorum) = respond_whole(plan, gen, &mut record).await?;
    let mut body = response(id, created, &common, &entry.tokenizer, out, quorum);
    think.split_choices(&mut body.choices);
    Ok(Json(body).into_response())
}

/// Bytes of text the client sent in `messages` (what bounds the prompt).
fn content_bytes(messages: &[ChatMessage]) -> usize {
    messages
        .iter()
        .map(|m| m.content.len() + m.reasoning_content.as_ref().map_or(0, String::len))
        .sum()
}

/// How a conversation becomes the prompt of one model.
struct Prompt<'a> {
    template: &'a ChatTemplate,
    tok: &'a Tokenizer,
    policy: SpecialTokenPolicy,
    context: usize,
}

impl Prompt<'_> {
    /// The conversation as the model's prompt ids, with the think block
    /// opened or closed as planned (the one prompt tail,
    /// [`crate::engine::think::prompt::render_prompt`]), refusing early a
    /// prompt that cannot fit the context.
    fn encode(
        &self,
        messages: &[ChatMessage],
        kwargs: &serde_json::Map<String, serde_json::Value>,
        think: &ChatThink,
    ) -> Result<Vec<u32>, ApiError> {
        render_prompt(
            self.template,
            self.tok,
            messages,
            kwargs,
            &think.prompt_think(),
            self.policy,
            Some(self.context),
        )
        .map(|(_, ids)| ids)
        .map_err(|e| tokenize::prompt_error(e, self.context))
    }
}

fn response(
    id: String,
    created: u64,
    req: &ValidRequest,
    tok: &Tokenizer,
    out: GenerateOutput,
    quorum: Option<QuorumReport>,
) -> ChatCompletion {
    let (n, logprobs) = (req.n, req.params.logprobs);
    let mut rollouts: Vec<_> = out.rollouts.iter().filter(|r| r.index < n).collect();
    rollouts.sort_by_key(|r| r.index);
    let choices = rollouts
        .into_iter()
        .map(|r| ChatChoice {
            index: r.index,
            message: AssistantMessage {
                role: "assistant",
                content: r.text.clone(),
                ..AssistantMessage::default()
            },
            logprobs: logprobs.then(|| ChatLogprobs {
                content: r.logprobs.iter().map(|lp| chat_logprob(tok, lp)).collect(),
            }),
            finish_reason: finish_reason(r.finish_reason),
        })
        .collect();
    ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model: req.model.clone(),
        system_fingerprint: FINGERPRINT,
        choices,
        usage: usage(&out),
        quorum,
    }
}

/// Chat stream chunks: a `role` chunk per choice, content deltas, a
/// `finish_reason` chunk per choice, and the optional usage chunk.
struct ChatWriter {
    id: String,
    created: u64,
    model: String,
    n: usize,
    logprobs: bool,
    tokenizer: Arc<Tokenizer>,
    think: Arc<ChatThink>,
    /// Per choice: reasoning/answer split with tag hold-back.
    splitters: Vec<ReasoningSplitter>,
}

impl ChatWriter {
    fn chunk(
        &self,
        choices: Vec<ChunkChoice>,
        usage: Option<Usage>,
        quorum: Option<QuorumReport>,
    ) -> String {
        serde_json::to_string(&ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: FINGERPRINT,
            choices,
            usage,
            quorum,
        })
        .unwrap_or_default()
    }
}

impl ChunkWriter for ChatWriter {
    fn start(&mut self) -> Vec<String> {
        (0..self.n)
            .map(|index| {
                let delta = Delta {
                    role: Some("assistant"),
                    content: Some(String::new()),
                    ..Delta::default()
                };
                self.chunk(
                    vec![ChunkChoice {
                        index,
                        delta,
                        logprobs: None,
                        finish_reason: None,
                    }],
                    None,
                    None,
                )
            })
            .collect()
    }

    fn token(&mut self, rollout: usize, text: &str, lp: &TokenLogprob) -> Option<String> {
        if rollout >= self.n || (text.is_empty() && !self.logprobs) {
            return None;
        }
        let split = self.splitters.get_mut(rollout).map(|s| s.push(text));
        let delta = split.and_then(|d| self.think.delta(d));
        if delta.is_none() && !self.logprobs {
            return None;
        }
        let logprobs = self.logprobs.then(|| ChatLogprobs {
            content: vec![chat_logprob(&self.tokenizer, lp)],
        });
        let delta = delta.unwrap_or_else(|| Delta {
            content: Some(String::new()),
            ..Delta::default()
        });
        Some(self.chunk(
            vec![ChunkChoice {
                index: rollout,
                delta,
                logprobs,
                finish_reason: None,
            }],
            None,
            None,
        ))
    }

    fn finish(
        &mut self,
        rollout: usize,
        reason: FinishReason,
        quorum: Option<QuorumReport>,
    ) -> Option<String> {
        // Text held back for a possible tag is released with the finish.
        let rest = self.splitters.get_mut(rollout).map(|s| s.finish());
        let delta = rest.and_then(|d| self.think.delta(d)).unwrap_or_default();
        (rollout < self.n).then(|| {
            self.chunk(
                vec![ChunkChoice {
                    index: rollout,
                    delta,
                    logprobs: None,
                    finish_reason: Some(finish_reason(reason)),
                }],
                None,
                quorum,
            )
        })
    }

    fn usage(&mut self, usage: Usage) -> String {
        self.chunk(Vec::new(), Some(usage), None)
    }
}
