//! Conversations rendered for training exactly as the server renders them:
//! the think mode is resolved from the same toggles (`/think`, `/no_think`,
//! `chat_template_kwargs.enable_thinking`, the model default), the template
//! gets `enable_thinking`, and a generation prompt gets the same think-block
//! fix-up, so the loss mask's prefix is the prompt the model is served.

use serde_json::{Map, Value};

use quorum_train::mask::ChatRenderer;

use crate::chat::{ChatMessage, ChatTemplate, SpecialTokenPolicy};
use crate::engine::think::resolve::{apply_to_prompt, resolve, ThinkConfig, ThinkPlan, ThinkRequest};
use crate::tokenizer::Tokenizer;

/// Renders one conversation's turns with one resolved think plan.
pub struct ConversationRenderer<'a> {
    template: &'a ChatTemplate,
    tok: &'a Tokenizer,
    kwargs: Map<String, Value>,
    plan: ThinkPlan,
    cfg: &'a ThinkConfig,
    supported: bool,
}

impl<'a> ConversationRenderer<'a> {
    /// Resolve the think mode of `messages` (and an explicit
    /// `enable_thinking` in `kwargs`) as a chat request would be.
    pub fn new(
        template: &'a ChatTemplate,
        tok: &'a Tokenizer,
        cfg: &'a ThinkConfig,
        supported: bool,
        messages: &[ChatMessage],
        mut kwargs: Map<String, Value>,
    ) -> Result<Self, String> {
        let enable = match kwargs.get("enable_thinking") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => return Err(format!("enable_thinking must be a boolean, got {other}")),
        };
        // Resolve on the prompt side only (what a request would carry).
        let prompt_side: Vec<ChatMessage> = messages
            .iter()
            .filter(|m| m.role != "assistant")
            .cloned()
            .collect();
        let req = ThinkRequest {
            messages: &prompt_side,
            enable_thinking: enable,
            ..Default::default()
        };
        let plan = resolve(&req, cfg, supported).map_err(|e| e.message)?;
        if supported {
            kwargs.insert("enable_thinking".into(), Value::Bool(plan.enabled));
        }
        Ok(Self {
            template,
            tok,
            kwargs,
            plan,
            cfg,
            supported,
        })
    }

    pub fn thinking(&self) -> bool {
        self.plan.enabled
    }

    /// The rendered text (generation prompt with the think fix-up).
    pub fn render_text(&self, messages: &[ChatMessage], gen: bool) -> Result<String, String> {
        let rendered = crate::chat::prompt::render(
            self.template,
            self.tok,
            messages,
            gen,
            &self.kwargs,
            SpecialTokenPolicy::default(),
        )
        .map_err(|e| e.to_string())?;
        Ok(if gen {
            apply_to_prompt(&rendered.text, &self.plan, self.cfg, self.supported)
        } else {
            rendered.text
        })
    }
}

impl ChatRenderer<ChatMessage> for ConversationRenderer<'_> {
    type Error = String;

    fn render_ids(&self, messages: &[ChatMessage], gen: bool) -> Result<Vec<u32>, String> {
        let rendered = crate::chat::prompt::render(
            self.template,
            self.tok,
            messages,
            gen,
            &self.kwargs,
            SpecialTokenPolicy::default(),
        )
        .map_err(|e| e.to_string())?;
        let rendered = if gen {
            let text = apply_to_prompt(&rendered.text, &self.plan, self.cfg, self.supported);
            rendered.with_text(text)
        } else {
            rendered
        };
        rendered.encode(self.tok, None).map_err(|e| e.to_string())
    }
}
