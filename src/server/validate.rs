//! Wire requests → checked requests. Every rejection is a 400 whose message
//! and `param` name the field and the limit, so a client can fix the call
//! without reading server logs. Checks that need the model (vocabulary,
//! context window) run later in [`check_sampling`] and [`completion_budget`].

use serde_json::{Map, Value};

use super::config::ServerConfig;
use super::error::ApiError;
use super::openai::request::{Stop, WireMessage};
use super::openai::{
    ChatCompletionRequest, CompletionRequest, SamplingFields, SelectionOptions, ThinkFields,
    VendorFields,
};
use crate::chat::ChatMessage;
use crate::engine::sampler::SamplingError;
use crate::engine::SamplingParams;

/// What both endpoints share after validation.
#[derive(Debug, Clone)]
pub struct ValidRequest {
    pub model: String,
    /// Choices returned.
    pub n: usize,
    /// Samples drawn (`>= n`).
    pub rollouts: usize,
    /// Requested budget; `None` = as much as the context and the cap allow.
    pub max_tokens: Option<usize>,
    /// Sampling parameters; `max_tokens` is filled in once the prompt length is known.
    pub params: SamplingParams,
    pub stream: bool,
    pub include_usage: bool,
    pub user: Option<String>,
    /// Think mode the engine enforces (set by the chat route).
    pub think: Option<crate::engine::think::ThinkSpec>,
    /// `selection` (the request's, else the model's configured default),
    /// parsed; [`super::selection::plan`] decides whether it runs.
    pub selection: Option<SelectionOptions>,
}

#[derive(Debug, Clone)]
pub struct ValidChatRequest {
    pub common: ValidRequest,
    pub messages: Vec<ChatMessage>,
    /// Chat template kwargs (`chat_template_kwargs`).
    pub kwargs: Map<String, Value>,
    /// Think-mode fields, resolved once the model is known (`server::think`).
    pub think: ThinkFields,
}

/// A completions prompt: text to tokenize, or ids as given.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput {
    Text(String),
    Tokens(Vec<u32>),
}

#[derive(Debug, Clone)]
pub struct ValidCompletionRequest {
    pub common: ValidRequest,
    pub prompt: PromptInput,
    pub echo: bool,
    /// `best_of` ranking: return the best `n` rollouts by mean token
    /// log-probability (see [`super::best_of`]); off with an explicit
    /// `selection` or when streaming.
    pub rank_by_logprob: bool,
}

pub fn chat(req: ChatCompletionRequest, cfg: &ServerConfig) -> Result<ValidChatRequest, ApiError> {
    let ChatCompletionRequest {
        chat: req,
        sampling,
        vendor,
        think,
    } = req;
    if req.messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "messages must contain at least one message",
        ));
    }
    let messages = req
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| message(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(f) = &req.response_format {
        if f.kind != "text" {
            return Err(ApiError::invalid(
                "response_format",
                format!(
                    "response_format type `{}` is not supported; only `text` is (structured output is not implemented yet)",
                    f.kind
                ),
            ));
        }
    }
    let max_tokens = req.max_completion_tokens.or(req.max_tokens);
    let param = if req.max_completion_tokens.is_some() {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    let logprobs = req.logprobs.unwrap_or(false);
    let top_logprobs = req.top_logprobs.unwrap_or(0);
    let common = common(
        req.model,
        &sampling,
        &vendor,
        (max_tokens, param),
        (logprobs, top_logprobs),
        None,
        cfg,
    )?;
    check_think_limits(&think, max_tokens, param, cfg.max_tokens)?;
    let mut kwargs = vendor.chat_template_kwargs.unwrap_or_default();
    if let Some(tools) = req.tools.filter(|t| !t.is_null()) {
        kwargs.entry("tools").or_insert(tools);
    }
    Ok(ValidChatRequest {
        common,
        messages,
        kwargs,
        think,
    })
}

pub fn completion(
    req: CompletionRequest,
    cfg: &ServerConfig,
) -> Result<ValidCompletionRequest, ApiError> {
    let CompletionRequest {
        completion: req,
        sampling,
        vendor,
    } = req;
    let prompt = prompt(&req.prompt)?;
    if req.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid("suffix", "suffix is not supported"));
    }
    let top = req.logprobs.unwrap_or(0);
    let explicit_selection = vendor.selection.as_ref().is_some_and(|s| !s.is_null());
    let stream = sampling.stream.unwrap_or(false);
    super::best_of::check(
        req.best_of,
        vendor.rollouts,
        sampling.n.unwrap_or(1),
        stream,
    )?;
    let mut common = common(
        req.model,
        &sampling,
        &vendor,
        // OpenAI's legacy default budget is 16 tokens.
        (Some(req.max_tokens.unwrap_or(16)), "max_tokens"),
        (req.logprobs.is_some(), top),
        req.best_of,
        cfg,
    )?;
    let rank_by_logprob = req.best_of.is_some() && !explicit_selection && !stream;
    if req.best_of.is_some() && !explicit_selection {
        // `best_of` keeps OpenAI's meaning over a configured default strategy.
        common.selection = None;
    }
    Ok(ValidCompletionRequest {
        common,
        prompt,
        echo: req.echo,
        rank_by_logprob,
    })
}

pub(crate) fn message(i: usize, m: WireMessage) -> Result<ChatMessage, ApiError> {
    let role = match m.role.as_str() {
        // Templates know `system`; OpenAI's `developer` plays that part.
        "system" | "developer" => "system",
        "user" | "assistant" | "tool" => m.role.as_str(),
        other => {
            return Err(ApiError::invalid(
                format!("messages[{i}].role"),
                format!("messages[{i}].role `{other}` is not one of system, developer, user, assistant, tool"),
            ))
        }
    };
    let content = match m.content {
        Value::String(s) => s,
        Value::Null if role == "assistant" => String::new(),
        Value::Array(parts) => text_parts(i, parts)?,
        _ => {
            return Err(ApiError::invalid(
                format!("messages[{i}].content"),
                format!("messages[{i}].content must be a string or an array of text parts"),
            ))
        }
    };
    Ok(ChatMessage {
        role: role.to_string(),
        content,
        reasoning_content: m.reasoning_content,
        tool_calls: m.tool_calls,
        tool_call_id: m.tool_call_id,
        name: m.name,
    })
}

/// Concatenates `[{"type": "text", "text": ...}, ...]`; other part types
/// (images, audio, files) are refused rather than silently dropped.
fn text_parts(i: usize, parts: Vec<Value>) -> Result<String, ApiError> {
    let mut out = String::new();
    for (j, part) in parts.iter().enumerate() {
        let field = format!("messages[{i}].content[{j}]");
        match (part.get("type").and_then(Value::as_str), part.get("text")) {
            (Some("text"), Some(Value::String(t))) => out.push_str(t),
            (Some("text"), _) => {
                return Err(ApiError::invalid(
                    format!("{field}.text"),
                    format!("{field}.text must be a string"),
                ))
            }
            (Some(kind), _) => {
                return Err(ApiError::invalid(
                    format!("{field}.type"),
                    format!("{field}.type `{kind}` is not supported; only `text` parts are"),
                ))
            }
            (None, _) => {
                return Err(ApiError::invalid(
                    format!("{field}.type"),
                    format!("{field} must be an object with a `type`"),
                ))
            }
        }
    }
    Ok(out)
}

fn prompt(v: &Value) -> Result<PromptInput, ApiError> {
    let bad = || {
        ApiError::invalid(
            "prompt",
            "prompt must be a string, a list of one string, or a list of token ids (batched prompts are not supported)",
        )
    };
    let ids = |items: &[Value]| -> Result<Vec<u32>, ApiError> {
        items
            .iter()
            .map(|x| {
                x.as_u64()
                    .and_then(|id| u32::try_from(id).ok())
                    .ok_or_else(bad)
            })
            .collect()
    };
    let input = match v {
        Value::String(s) => PromptInput::Text(s.clone()),
        Value::Array(items) => match items.as_slice() {
            [Value::String(s)] => PromptInput::Text(s.clone()),
            [Value::Array(inner)] => PromptInput::Tokens(ids(inner)?),
            items if items.iter().all(Value::is_number) && !items.is_empty() => {
                PromptInput::Tokens(ids(items)?)
            }
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    match &input {
        PromptInput::Text(s) if s.is_empty() => {
            Err(ApiError::invalid("prompt", "prompt must not be empty"))
        }
        PromptInput::Tokens(t) if t.is_empty() => {
            Err(ApiError::invalid("prompt", "prompt must not be empty"))
        }
        _ => Ok(input),
    }
}

fn common(
    model: String,
    s: &SamplingFields,
    v: &VendorFields,
    (max_tokens, max_param): (Option<usize>, &'static str),
    (logprobs, top_logprobs): (bool, usize),
    best_of: Option<usize>,
    cfg: &ServerConfig,
) -> Result<ValidRequest, ApiError> {
    let n = s.n.unwrap_or(1);
    if n == 0 || n > cfg.max_n {
        return Err(ApiError::invalid(
            "n",
            format!("n must be between 1 and {}, got {n}", cfg.max_n),
        ));
    }
    let (rollouts, r_param) = match (v.rollouts, best_of) {
        (Some(r), _) => (r, "rollouts"),
        (None, Some(b)) => (b, "best_of"),
        // Unset: the model's configured default, at least `n`.
        (None, None) => (cfg.default_rollouts(&model).max(n), "rollouts"),
    };
    if rollouts < n || rollouts > cfg.max_rollouts {
        return Err(ApiError::invalid(
            r_param,
            format!(
                "{r_param} must be between n ({n}) and {}, got {rollouts}",
                cfg.max_rollouts
            ),
        ));
    }
    let own_selection = match v.selection.as_ref().filter(|s| !s.is_null()) {
        Some(s) => {
            let o =
                SelectionOptions::parse(s).map_err(|e| ApiError::invalid(e.param, e.message))?;
            check_warmup(&o, rollouts)?;
            Some(o)
        }
        None => None,
    };
    if let Some(m) = max_tokens {
        if m == 0 || m > cfg.max_tokens {
            return Err(ApiError::invalid(
                max_param,
                format!(
                    "{max_param} must be between 1 and {}, got {m}",
                    cfg.max_tokens
                ),
            ));
        }
    }
    let mut logit_bias = std::collections::BTreeMap::new();
    for (k, &b) in s.logit_bias.iter().flatten() {
        let id: u32 = k.parse().map_err(|_| {
            ApiError::invalid(
                "logit_bias",
                format!("logit_bias keys must be token ids, got `{k}`"),
            )
        })?;
        logit_bias.insert(id, b);
    }
    let d = SamplingParams::default();
    let params = SamplingParams {
        temperature: s.temperature.unwrap_or(d.temperature),
        top_p: s.top_p.unwrap_or(d.top_p),
        top_k: s.top_k.map_or(0, |k| usize::try_from(k).unwrap_or(0)),
        min_p: s.min_p.unwrap_or(d.min_p),
        seed: s.seed.map(|x| x as u64),
        repetition_penalty: s.repetition_penalty.unwrap_or(d.repetition_penalty),
        presence_penalty: s.presence_penalty.unwrap_or(d.presence_penalty),
        frequency_penalty: s.frequency_penalty.unwrap_or(d.frequency_penalty),
        logit_bias,
        logprobs,
        top_logprobs,
        max_tokens: None,
        stop: stop_strings(s.stop.as_ref(), cfg)?,
        stop_token_ids: s.stop_token_ids.clone().unwrap_or_default(),
        ignore_eos: s.ignore_eos.unwrap_or(false),
        raw_logprobs: false,
    };
    let stream = s.stream.unwrap_or(false);
    Ok(ValidRequest {
        n,
        rollouts,
        max_tokens,
        params,
        stream,
        include_usage: stream && s.stream_options.as_ref().is_some_and(|o| o.include_usage),
        user: s.user.clone(),
        think: None,
        selection: match own_selection {
            Some(o) => Some(o),
            // Checked at start-up (`config::check_defaults`).
            None => cfg
                .default_selection(&model)
                .map(|d| SelectionOptions::parse(&d))
                .transpose()
                .map_err(|e| ApiError::invalid(e.param, e.message))?,
        },
        model,
    })
}

/// Budgets the request cannot use are a 400 naming the field and the
/// limit: reasoning tokens count toward the completion budget, so no
/// thinking budget (any alias) or `min_thinking_tokens` may exceed the
/// request's `max_tokens` (`max_param` names the field it came from)
/// or, without one, the server's cap. Budgets from `reasoning_effort`
/// are the server's own and are clamped by the engine instead, as is
/// any budget larger than what the context leaves after the prompt.
pub fn check_think_limits(
    t: &ThinkFields,
    max_tokens: Option<usize>,
    max_param: &str,
    cap: usize,
) -> Result<(), ApiError> {
    let (limit, limit_name) = match max_tokens {
        Some(m) => (m, format!("{max_param} = {m}")),
        None => (cap, format!("the server's max_tokens cap = {cap}")),
    };
    for (field, v) in [
        ("thinking_budget", t.thinking_budget),
        ("thinking_token_budget", t.thinking_token_budget),
        ("reasoning_budget_tokens", t.reasoning_budget_tokens),
        ("max_thinking_tokens", t.max_thinking_tokens),
        ("min_thinking_tokens", t.min_thinking_tokens),
    ] {
        if let Some(v) = v.filter(|&v| v > limit) {
            return Err(ApiError::invalid(
                field,
                format!(
                    "{field} = {v} exceeds {limit_name}: reasoning tokens count toward the completion budget"
                ),
            ));
        }
    }
    Ok(())
}

/// A request's own `selection.warmup` must leave rollouts to stop: the
/// first `warmup` finished rollouts set the confidence threshold for the
/// rest. (A configured default's warmup is clamped to `rollouts - 1`.)
fn check_warmup(selection: &SelectionOptions, rollouts: usize) -> Result<(), ApiError> {
    match selection.warmup {
        Some(w) if w >= rollouts => Err(ApiError::invalid(
            "selection.warmup",
            format!(
                "selection.warmup must be below rollouts ({rollouts}): the first warmup finished rollouts set the threshold for the others, got {w}"
            ),
        )),
        _ => Ok(()),
    }
}

/// `stop` as a list, within the configured count and per-string byte limits
/// (both bound the stop matcher's per-request set-up and memory).
fn stop_strings(stop: Option<&Stop>, cfg: &ServerConfig) -> Result<Vec<String>, ApiError> {
    let stops = match stop {
        None => Vec::new(),
        Some(Stop::One(x)) => vec![x.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    if stops.len() > cfg.max_stop_strings {
        return Err(ApiError::invalid(
            "stop",
            format!(
                "stop may contain at most {} strings, got {}",
                cfg.max_stop_strings,
                stops.len()
            ),
        ));
    }
    if let Some((i, s)) = stops
        .iter()
        .enumerate()
        .find(|(_, s)| s.len() > cfg.max_stop_bytes)
    {
        let which = match stop {
            Some(Stop::Many(_)) => format!("stop[{i}]"),
            _ => "stop".to_string(),
        };
        return Err(ApiError::invalid(
            "stop",
            format!(
                "each stop string must be at most {} bytes, got {} bytes in {which}",
                cfg.max_stop_bytes,
                s.len()
            ),
        ));
    }
    Ok(stops)
}

/// Range and vocabulary checks of the sampling parameters, as a 400 naming the field.
pub fn check_sampling(p: &SamplingParams, vocab_size: usize) -> Result<(), ApiError> {
    p.validate(vocab_size).map_err(|e| {
        let field = match &e {
            SamplingError::OutOfRange { field, .. }
            | SamplingError::TokenOutOfVocab { field, .. } => *field,
            SamplingError::TopLogprobsWithoutLogprobs(_) => "top_logprobs",
            _ => "sampling",
        };
        ApiError::invalid(field, e.to_string())
    })
}

/// The completion budget: the requested `max_tokens`, or what the context
/// and the server cap leave; 400 `context_length_exceeded` when it cannot fit.
pub fn completion_budget(
    prompt_tokens: usize,
    requested: Option<usize>,
    context: usize,
    cap: usize,
) -> Result<usize, ApiError> {
    let left = context.saturating_sub(prompt_tokens);
    let budget = requested.unwrap_or_else(|| left.min(cap));
    if budget == 0 || prompt_tokens + budget > context {
        return Err(ApiError::ContextLength(format!(
            "This model's maximum context length is {context} tokens. However, you requested {} tokens ({prompt_tokens} in the prompt, {budget} for the completion). Please reduce the length of the messages or the completion.",
            prompt_tokens + budget
        )));
    }
    Ok(budget)
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
