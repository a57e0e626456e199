//! A conversation → token ids with think mode applied as the server applies
//! it, without HTTP: the toggles resolved by [`super::resolve()`] (explicit
//! switch or `reasoning_effort` over `/think` / `/no_think` in the
//! conversation over the model default), `enable_thinking` passed to the
//! chat template, the think block opened or closed to match
//! ([`super::resolve::apply_to_prompt`]), tokenized by the one prompt
//! builder ([`crate::chat::prompt`]) — with the budget stated in the prompt
//! under `budget_in_prompt` ([`super::target`]) — plus the [`ThinkSpec`] the engine
//! enforces and the reasoning/answer split of the output. Used by
//! `quorum generate` and the trainers' rollouts.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{
    resolve, split_all, tokenizer_supports_think, ThinkConfig, ThinkError, ThinkPlan, ThinkRequest,
    ThinkSpec, ThinkTokens,
};
use crate::chat::{ChatMessage, ChatTemplate, PromptError, SpecialTokenPolicy};
use crate::tokenizer::{Tokenizer, TokenizerError};

/// The think fields of one request, outside HTTP (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThinkOptions {
    /// Explicit on/off (`--enable-thinking`, `enable_thinking`).
    pub enable_thinking: Option<bool>,
    /// `none|minimal|low|medium|high|xhigh`.
    pub reasoning_effort: Option<String>,
    pub thinking_budget: Option<usize>,
    pub min_thinking_tokens: Option<usize>,
    /// Replaces the model's budget message.
    pub thinking_budget_message: Option<String>,
}

/// Why a prompt could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ChatPromptError {
    /// The think fields contradict each other or the model.
    #[error("{}: {}", .0.param, .0.message)]
    Think(ThinkError),
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error("encoding the think texts: {0}")]
    ThinkTexts(#[from] TokenizerError),
}

/// A prompt ready for the engine, with its think mode.
#[derive(Debug, Clone)]
pub struct ChatPrompt {
    /// The rendered text (think block opened or closed as planned).
    pub text: String,
    pub ids: Vec<u32>,
    pub plan: ThinkPlan,
    /// The model has think tags (and the config does not turn them off).
    pub supported: bool,
    /// What the engine enforces per rollout; `None` when not thinking.
    pub think: Option<ThinkSpec>,
    start_tag: String,
    end_tag: String,
}

impl ChatPrompt {
    /// Whether the output starts inside the think block.
    pub fn thinking(&self) -> bool {
        self.supported && self.plan.enabled
    }

    /// `(reasoning, answer)` of an output text, as the server's
    /// `reasoning_content` / `content`: reasoning is `None` when not
    /// thinking (a stray empty think block is dropped from the answer).
    pub fn split(&self, text: &str) -> (Option<String>, String) {
        let (r, c) = split_all(text, &self.start_tag, &self.end_tag, self.thinking());
        (self.thinking().then_some(r), c)
    }

    /// A streaming splitter for one output, agreeing with [`Self::split`].
    pub fn splitter(&self) -> super::ReasoningSplitter {
        super::ReasoningSplitter::new(&self.start_tag, &self.end_tag, self.thinking())
    }
}

/// Build the prompt of `messages` (with a generation prompt) under think
/// `opts`, against the model's think config `cfg`. `kwargs` are further
/// chat-template kwargs; `enable_thinking` in them is set to the plan on a
/// think-capable model.
pub fn build_chat_prompt(
    template: &ChatTemplate,
    tok: &Tokenizer,
    messages: &[ChatMessage],
    kwargs: &Map<String, Value>,
    opts: &ThinkOptions,
    cfg: &ThinkConfig,
    policy: SpecialTokenPolicy,
) -> Result<ChatPrompt, ChatPromptError> {
    let supported = cfg
        .supported
        .unwrap_or_else(|| tokenizer_supports_think(tok, &cfg.start_tag, &cfg.end_tag));
    let req = ThinkRequest {
        messages,
        enable_thinking: opts.enable_thinking,
        reasoning_effort: opts.reasoning_effort.as_deref(),
        thinking_budget: opts.thinking_budget,
        min_thinking_tokens: opts.min_thinking_tokens,
        thinking_budget_message: opts.thinking_budget_message.as_deref(),
    };
    let plan = resolve(&req, cfg, supported).map_err(ChatPromptError::Think)?;
    let mut kwargs = kwargs.clone();
    if supported {
        kwargs.insert("enable_thinking".into(), Value::Bool(plan.enabled));
    }
    // With `budget_in_prompt`, the budget is stated in the prompt too.
    let stated = super::budget_in_prompt(messages, &plan, cfg, supported);
    let messages = stated.as_deref().unwrap_or(messages);
    let think_mode = PromptThink {
        plan: &plan,
        cfg,
        supported,
    };
    let (text, ids) = render_prompt(template, tok, messages, &kwargs, &think_mode, policy, None)?;
    let think = think_spec(&plan, cfg, supported, tok)?;
    Ok(ChatPrompt {
        text,
        ids,
        plan,
        supported,
        think,
        start_tag: cfg.start_tag.clone(),
        end_tag: cfg.end_tag.clone(),
    })
}

/// A resolved think mode, as the prompt tail needs it.
pub struct PromptThink<'a> {
    pub plan: &'a ThinkPlan,
    pub cfg: &'a ThinkConfig,
    pub supported: bool,
}

/// The one prompt tail: renders `messages` with the generation prompt
/// (`kwargs` already agreeing with the think plan), opens or closes the
/// think block to match it, and tokenizes, refusing a prompt over `limit`
/// tokens early. Used by [`build_chat_prompt`] and the server's chat route
/// (which resolves think mode itself, to name request fields in errors).
pub fn render_prompt(
    template: &ChatTemplate,
    tok: &Tokenizer,
    messages: &[ChatMessage],
    kwargs: &Map<String, Value>,
    think: &PromptThink<'_>,
    policy: SpecialTokenPolicy,
    limit: Option<usize>,
) -> Result<(String, Vec<u32>), PromptError> {
    let rendered = crate::chat::prompt::render(template, tok, messages, true, kwargs, policy)?;
    let text =
        super::resolve::apply_to_prompt(&rendered.text, think.plan, think.cfg, think.supported);
    let rendered = rendered.with_text(text);
    let ids = rendered.encode(tok, limit)?;
    Ok((rendered.text, ids))
}

/// What the engine enforces for `plan` (as the server's chat route does);
/// `None` when not thinking.
pub fn think_spec(
    plan: &ThinkPlan,
    cfg: &ThinkConfig,
    supported: bool,
    tok: &Tokenizer,
) -> Result<Option<ThinkSpec>, TokenizerError> {
    if !(supported && plan.enabled) {
        return Ok(None);
    }
    let continuation = if cfg.continuation.is_empty() {
        ThinkConfig::default().continuation
    } else {
        cfg.continuation.clone()
    };
    let tokens = ThinkTokens::encode(tok, &cfg.end_tag, &plan.budget_message, &continuation)?;
    Ok(Some(ThinkSpec {
        tokens: Arc::new(tokens),
        thinking: true,
        thinking_budget: plan.budget,
        min_thinking_tokens: plan.min_thinking_tokens,
        answer_reserve: cfg.answer_reserve,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loaded once: the cases below build many prompts.
    fn qwen3() -> (&'static Tokenizer, &'static ChatTemplate) {
        static QWEN3: std::sync::OnceLock<(Tokenizer, ChatTemplate)> = std::sync::OnceLock::new();
        let (tok, template) = QWEN3.get_or_init(|| {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/qwen3-tokenizer");
            let tok = Tokenizer::from_dir(dir).unwrap();
            let template = ChatTemplate::from_tokenizer(&tok).unwrap();
            (tok, template)
        });
        (tok, template)
    }

    fn build(messages: &[ChatMessage], opts: ThinkOptions) -> Result<ChatPrompt, ChatPromptError> {
        build_with(messages, opts, &ThinkConfig::default())
    }

    fn build_with(
        messages: &[ChatMessage],
        opts: ThinkOptions,
        cfg: &ThinkConfig,
    ) -> Result<ChatPrompt, ChatPromptError> {
        let (tok, template) = qwen3();
        build_chat_prompt(
            template,
            tok,
            messages,
            &Map::new(),
            &opts,
            cfg,
            SpecialTokenPolicy::default(),
        )
    }

    #[test]
    fn toggles_resolve_as_the_server_and_shape_the_prompt_tail() {
        let user = [ChatMessage::user("2+2?")];
        let on = build(&user, ThinkOptions::default()).unwrap();
        assert!(
            on.thinking() && on.think.is_some(),
            "Qwen3 thinks by default"
        );
        assert!(
            on.text.ends_with("<|im_start|>assistant\n<think>\n"),
            "{}",
            on.text
        );
        let soft_off = [ChatMessage::system("/no_think"), ChatMessage::user("2+2?")];
        let off = build(&soft_off, ThinkOptions::default()).unwrap();
        assert!(!off.thinking() && off.think.is_none());
        assert!(
            off.text.ends_with("<think>\n\n</think>\n\n"),
            "{}",
            off.text
        );
        // An explicit switch beats the soft one; effort sets the budget.
        let opts = ThinkOptions {
            reasoning_effort: Some("low".into()),
            ..Default::default()
        };
        let low = build(&soft_off, opts).unwrap();
        assert_eq!(
            low.think.as_ref().and_then(|t| t.thinking_budget),
            Some(512)
        );
        let (tok, _) = qwen3();
        assert_eq!(low.ids, tok.encode(&low.text, false).unwrap());
    }

    /// The server's chat route, for the same fields: ids and spec must agree.
    fn server(
        messages: &[ChatMessage],
        opts: &ThinkOptions,
        cfg: &ThinkConfig,
    ) -> (Vec<u32>, Option<ThinkSpec>) {
        let (tok, template) = qwen3();
        let fields = crate::server::openai::ThinkFields {
            reasoning_effort: opts.reasoning_effort.clone(),
            thinking_budget: opts.thinking_budget,
            min_thinking_tokens: opts.min_thinking_tokens,
            thinking_budget_message: opts.thinking_budget_message.clone(),
            ..Default::default()
        };
        let mut kwargs = Map::new();
        if let Some(on) = opts.enable_thinking {
            kwargs.insert("enable_thinking".into(), Value::Bool(on));
        }
        let mut server = crate::server::ServerConfig::default();
        server.think.insert("*".into(), cfg.clone());
        let think =
            crate::server::think::prepare(&fields, &mut kwargs, messages, &server, "m", tok)
                .unwrap();
        let stated = think.prompt_messages(messages);
        let (_, ids) = render_prompt(
            template,
            tok,
            stated.as_deref().unwrap_or(messages),
            &kwargs,
            &think.prompt_think(),
            SpecialTokenPolicy::default(),
            None,
        )
        .unwrap();
        (ids, think.spec(tok).unwrap())
    }

    #[test]
    fn prompts_and_specs_equal_the_server_chat_routes() {
        let convs = [
            vec![ChatMessage::user("2+2?")],
            vec![
                ChatMessage::system("Be brief. /no_think"),
                ChatMessage::user("2+2?"),
            ],
            vec![
                ChatMessage::system("/no_think"),
                ChatMessage::user("now /think"),
            ],
        ];
        let opts = [
            ThinkOptions::default(),
            ThinkOptions {
                enable_thinking: Some(false),
                ..Default::default()
            },
            ThinkOptions {
                enable_thinking: Some(true),
                thinking_budget: Some(7),
                min_thinking_tokens: Some(2),
                thinking_budget_message: Some("Stop.".into()),
                ..Default::default()
            },
            ThinkOptions {
                reasoning_effort: Some("minimal".into()),
                ..Default::default()
            },
            ThinkOptions {
                reasoning_effort: Some("none".into()),
                ..Default::default()
            },
        ];
        let stated = ThinkConfig {
            budget_in_prompt: true,
            ..ThinkConfig::default()
        };
        let cfgs = [ThinkConfig::default(), stated];
        for (conv, o, cfg) in convs
            .iter()
            .flat_map(|c| opts.iter().map(move |o| (c, o)))
            .flat_map(|(c, o)| cfgs.iter().map(move |cfg| (c, o, cfg)))
        {
            let ours = build_with(conv, o.clone(), cfg).unwrap();
            let (ids, spec) = server(conv, o, cfg);
            assert_eq!(ours.ids, ids, "{conv:?} {o:?}");
            let phrase = ours.text.contains("Think for about");
            let budget = ours.think.as_ref().and_then(|t| t.thinking_budget);
            assert_eq!(
                phrase,
                cfg.budget_in_prompt && budget.is_some(),
                "{conv:?} {o:?}"
            );
            let view = |s: &Option<ThinkSpec>| {
                s.as_ref().map(|s| {
                    let t = (s.thinking_budget, s.min_thinking_tokens, s.answer_reserve);
                    (t, (*s.tokens).clone())
                })
            };
            assert_eq!(view(&ours.think), view(&spec), "{conv:?} {o:?}");
        }
    }

    #[test]
    fn contradictions_are_errors_naming_the_field() {
        let opts = ThinkOptions {
            enable_thinking: Some(false),
            thinking_budget: Some(10),
            ..Default::default()
        };
        let e = build(&[ChatMessage::user("hi")], opts).unwrap_err();
        assert!(e.to_string().starts_with("thinking_budget: "), "{e}");
    }

    #[test]
    fn the_split_follows_the_plan() {
        let on = build(&[ChatMessage::user("hi")], ThinkOptions::default()).unwrap();
        assert_eq!(
            on.split("Let me see.\n</think>\n\nHello."),
            (Some("Let me see.\n".into()), "Hello.".into())
        );
        let off = build(
            &[ChatMessage::user("hi")],
            ThinkOptions {
                enable_thinking: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(off.split("Hello."), (None, "Hello.".into()));
    }
}
