//! `POST /v1/completions` (legacy text completions): raw prompt, no chat
//! template; `echo` and the legacy parallel-array logprobs format.
//!
//! Drawing several rollouts: `best_of` ranks them by mean token
//! log-probability and returns the best `n` (OpenAI semantics, see
//! [`crate::server::best_of`]); `selection` / `rollouts` run answer
//! selection exactly as on chat (the reward model, if the strategy needs
//! it, scores each completion as the answer to the prompt taken as one user
//! message), with the `quorum` object on the response.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};

use crate::chat::ChatMessage;
use crate::engine::sequence::TokenLogprob;
use crate::engine::{FinishReason, GenerateOutput};
use crate::server::best_of;
use crate::server::error::ApiError;
use crate::server::extract::ApiJson;
use crate::server::generate::{self, finish_reason, respond_whole, RequestRecord};
use crate::server::openai::*;
use crate::server::selection;
use crate::server::sse::{self, ChunkWriter, Source};
use crate::server::state::AppState;
use crate::server::tokenize;
use crate::server::tokens::token_text;
use crate::server::validate::{self, PromptInput};
use crate::tokenizer::Tokenizer;

/// The request path, in order: validate → model and selection plan (or
/// `best_of` ranking) → admission → prompt ids (off the async workers) →
/// engine → response (JSON or SSE).
pub async fn completions(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let req = validate::completion(body, &state.config)?;
    let entry = state.model(&req.common.model)?;
    // `best_of` ranking and answer selection exclude each other (the
    // validator keeps `selection` only when it was asked for explicitly).
    let mut plan = match req.rank_by_logprob {
        true => None,
        false => selection::plan(&entry, &req.common, &[], &state.config)?,
    };
    let context = entry.engine.info().context_length;
    let input_bytes = match &req.prompt {
        PromptInput::Text(t) => t.len(),
        PromptInput::Tokens(_) => 0,
    };
    tokenize::check_size(&entry.tokenizer, input_bytes, context)?;
    let permit = state.admit()?;
    let id = new_id("cmpl");
    let mut record = RequestRecord::new(&state, permit, id.clone(), "completions", &req.common);
    let common = req.common;
    let tok = entry.tokenizer.clone();
    let (prompt, echo) = (req.prompt, req.echo);
    let prepared = tokenize::prepare(&state, input_bytes, move || {
        // The caller's raw text: special-token text in it is special.
        let ids = match &prompt {
            PromptInput::Text(t) => encode_text(&tok, t, context),
            PromptInput::Tokens(ids) => Ok(ids.clone()),
        }?;
        let text = match prompt {
            PromptInput::Text(t) => t,
            PromptInput::Tokens(_) => tok.decode(&ids, false).unwrap_or_default(),
        };
        Ok((ids, text))
    })
    .await;
    let (ids, prompt_text) = record.check(prepared)?;
    if let Some(p) = plan.as_mut() {
        // The reward model scores each completion as the answer to the
        // prompt taken as one user message.
        p.conversation = vec![ChatMessage::user(&prompt_text)];
    }
    let echo = echo.then(|| Echo {
        text: prompt_text,
        ids: ids.clone(),
    });
    let cancel = plan.as_ref().map(|p| p.cancel.clone());
    let submitted = generate::submit(&state, &entry, &id, ids, &common, cancel);
    let gen = record.check(submitted)?;
    let writer = CompletionWriter {
        id,
        created: now_secs(),
        model: common.model.clone(),
        n: common.n,
        logprobs: common.params.logprobs,
        tokenizer: entry.tokenizer.clone(),
        echo,
        offsets: vec![0; common.n],
    };
    if common.stream {
        let keepalive = state.config.keepalive;
        return Ok(sse::respond(
            Source::of(plan, gen),
            writer,
            record,
            common.include_usage,
            keepalive,
        ));
    }
    let (mut out, quorum) = respond_whole(plan, gen, &mut record).await?;
    if req.rank_by_logprob {
        out = best_of::rank(out, common.n);
    }
    Ok(Json(writer.response(out, quorum)).into_response())
}

/// The prompt to prepend (`echo`).
struct Echo {
    text: String,
    ids: Vec<u32>,
}

struct CompletionWriter {
    id: String,
    created: u64,
    model: String,
    n: usize,
    logprobs: bool,
    tokenizer: Arc<Tokenizer>,
    echo: Option<Echo>,
    /// Per choice: characters sent so far (legacy `text_offset`).
    offsets: Vec<usize>,
}

impl CompletionWriter {
    fn body(
        &self,
        choices: Vec<CompletionChoice>,
        usage: Option<Usage>,
        quorum: Option<QuorumReport>,
    ) -> Completion {
        Completion {
            id: self.id.clone(),
            object: "text_completion",
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: FINGERPRINT,
            choices,
            usage,
            quorum,
        }
    }

    fn chunk(
        &self,
        choice: Option<CompletionChoice>,
        usage: Option<Usage>,
        quorum: Option<QuorumReport>,
    ) -> String {
        serde_json::to_string(&self.body(choice.into_iter().collect(), usage, quorum))
            .unwrap_or_default()
    }

    /// Appends legacy logprob entries for `lps`, advancing `offset`.
    fn push_logprobs(&self, out: &mut LegacyLogprobs, lps: &[TokenLogprob], offset: &mut usize) {
        for lp in lps {
            let (token, _) = token_text(&self.tokenizer, lp.token);
            let top: Map<String, Value> = lp
                .top_logprobs
                .iter()
                .map(|&(id, l)| (token_text(&self.tokenizer, id).0, Value::from(l)))
                .collect();
            out.text_offset.push(*offset);
            *offset += token.chars().count();
            out.tokens.push(token);
            out.token_logprobs.push(Some(lp.logprob));
            out.top_logprobs.push(Some(top));
        }
    }

    /// Echoed prompt tokens: text and offsets, `null` logprobs.
    fn echo_logprobs(&self, offset: &mut usize) -> LegacyLogprobs {
        let mut out = LegacyLogprobs::default();
        for &id in self.echo.iter().flat_map(|e| e.ids.iter()) {
            let (token, _) = token_text(&self.tokenizer, id);
            out.text_offset.push(*offset);
            *offset += token.chars().count();
            out.tokens.push(token);
            out.token_logprobs.push(None);
            out.top_logprobs.push(None);
        }
        out
    }

    fn response(&self, out: GenerateOutput, quorum: Option<QuorumReport>) -> Completion {
        let mut rollouts: Vec<_> = out.rollouts.iter().filter(|r| r.index < self.n).collect();
        rollouts.sort_by_key(|r| r.index);
        let prefix = self.echo.as_ref().map_or("", |e| e.text.as_str());
        let choices = rollouts
            .into_iter()
            .map(|r| {
                let logprobs = self.logprobs.then(|| {
                    let mut offset = 0;
                    let mut lp = self.echo_logprobs(&mut offset);
                    self.push_logprobs(&mut lp, &r.logprobs, &mut offset);
                    lp
                });
                CompletionChoice {
                    index: r.index,
                    text: format!("{prefix}{}", r.text),
                    logprobs,
                    finish_reason: Some(finish_reason(r.finish_reason)),
                }
            })
            .collect();
        let usage = Usage::new(out.prompt_tokens, out.completion_tokens, out.cached_tokens);
        self.body(choices, Some(usage), quorum)
    }
}

impl ChunkWriter for CompletionWriter {
    fn start(&mut self) -> Vec<String> {
        let Some(echo) = &self.echo else {
            return Vec::new();
        };
        let text = echo.text.clone();
        (0..self.n)
            .map(|index| {
                let mut offset = 0;
                let logprobs = self.logprobs.then(|| self.echo_logprobs(&mut offset));
                self.offsets[index] = offset;
                let choice = CompletionChoice {
                    index,
                    text: text.clone(),
                    logprobs,
                    finish_reason: None,
                };
                self.chunk(Some(choice), None, None)
            })
            .collect()
    }

    fn token(&mut self, rollout: usize, text: &str, lp: &TokenLogprob) -> Option<String> {
        if rollout >= self.n || (text.is_empty() && !self.logprobs) {
            return None;
        }
        let logprobs = self.logprobs.then(|| {
            let mut out = LegacyLogprobs::default();
            let mut offset = self.offsets[rollout];
            self.push_logprobs(&mut out, std::slice::from_ref(lp), &mut offset);
            self.offsets[rollout] = offset;
            out
        });
        let choice = CompletionChoice {
            index: rollout,
            text: text.to_string(),
            logprobs,
            finish_reason: None,
        };
        Some(self.chunk(Some(choice), None, None))
    }

    fn finish(
        &mut self,
        rollout: usize,
        reason: FinishReason,
        quorum: Option<QuorumReport>,
    ) -> Option<String> {
        (rollout < self.n).then(|| {
            let choice = CompletionChoice {
                index: rollout,
                text: String::new(),
                logprobs: None,
                finish_reason: Some(finish_reason(reason)),
            };
            self.chunk(Some(choice), None, quorum)
        })
    }

    fn usage(&mut self, usage: Usage) -> String {
        self.chunk(None, Some(usage), None)
    }
}

/// A raw text prompt's ids (with the tokenizer's post-processor, e.g. BOS),
/// refused early when it cannot fit `context` tokens.
fn encode_text(tok: &Tokenizer, text: &str, context: usize) -> Result<Vec<u32>, ApiError> {
    let internal = |e: crate::tokenizer::TokenizerError| ApiError::Internal(e.to_string());
    if let Some(at_least) = tok.exceeds(text, context).map_err(internal)? {
        return Err(tokenize::too_long(context, at_least));
    }
    tok.encode(text, true).map_err(internal)
}
