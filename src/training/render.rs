//! Conversations rendered for training exactly as the server renders them:
//! the think mode is resolved from the same toggles (`/think`, `/no_think`,
//! `chat_template_kwargs.enable_thinking`, the model default), the template
//! gets `enable_thinking`, and a generation prompt gets the same think-block
//! fix-up, so the loss mask's prefix is the prompt the model is served.

use serde_json::{Map, Value};

use quorum_train::mask::ChatRenderer;

use crate::chat::{ChatMessage, ChatTemplate, SpecialTokenPolicy};
use crate::engine::think::resolve::{
    apply_to_prompt, resolve, ThinkConfig, ThinkPlan, ThinkRequest,
};
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

#[cfg(test)]
mod tests {
    use super::*;
    use quorum_train::mask::assistant_only;

    /// The weighted tokens of a masked conversation, decoded.
    fn trained_text(
        tok: &Tokenizer,
        messages: &[ChatMessage],
        kwargs: Map<String, Value>,
    ) -> String {
        let template = ChatTemplate::from_tokenizer(tok).unwrap();
        let cfg = ThinkConfig::default();
        let r = ConversationRenderer::new(&template, tok, &cfg, true, messages, kwargs).unwrap();
        let m = assistant_only(&r, messages, |m| m.role == "assistant").unwrap();
        let ids: Vec<u32> = m
            .example
            .ids
            .iter()
            .zip(&m.example.weights)
            .filter(|(_, w)| **w > 0.0)
            .map(|(i, _)| *i)
            .collect();
        tok.decode(&ids, false).unwrap()
    }

    fn tokenizers() -> Vec<(&'static str, Tokenizer)> {
        let qwen3 = Tokenizer::from_dir(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3-tokenizer"),
        )
        .unwrap();
        vec![
            ("qwen3", qwen3),
            ("small", Tokenizer::synthetic(true).unwrap()),
        ]
    }

    #[test]
    fn think_on_trains_the_think_block_answer_and_end_of_turn() {
        for (name, tok) in tokenizers() {
            let conv = [
                ChatMessage::system("/think"),
                ChatMessage::user("Compute 12+34."),
                ChatMessage::assistant(
                    "<think>\n2+4+0=6 1+3+0=4\nr:64 a:46\n</think>\n\n\\boxed{46}",
                ),
            ];
            // The generation prompt already opens the think block, so the
            // trained text starts inside it.
            assert_eq!(
                trained_text(&tok, &conv, Map::new()),
                "2+4+0=6 1+3+0=4\nr:64 a:46\n</think>\n\n\\boxed{46}<|im_end|>\n",
                "{name}"
            );
        }
    }

    #[test]
    fn think_off_trains_only_the_answer_after_the_empty_block() {
        for (name, tok) in tokenizers() {
            let conv = [
                ChatMessage::user("Compute 12+34."),
                ChatMessage::assistant("\\boxed{46}"),
            ];
            let mut kw = Map::new();
            kw.insert("enable_thinking".into(), Value::Bool(false));
            assert_eq!(
                trained_text(&tok, &conv, kw),
                "\\boxed{46}<|im_end|>\n",
                "{name}"
            );
            // The soft switch gives the same mask as the kwarg.
            let conv = [
                ChatMessage::system("/no_think"),
                ChatMessage::user("Compute 12+34."),
                ChatMessage::assistant("\\boxed{46}"),
            ];
            assert_eq!(
                trained_text(&tok, &conv, Map::new()),
                "\\boxed{46}<|im_end|>\n",
                "{name}"
            );
        }
    }

    #[test]
    fn multi_turn_trains_each_assistant_turn_the_template_keeps() {
        for (name, tok) in tokenizers() {
            let conv = [
                ChatMessage::user("Hi /no_think"),
                ChatMessage::assistant("Hello."),
                ChatMessage::user("Compute 1+2. /no_think"),
                ChatMessage::assistant("\\boxed{3}"),
            ];
            let text = trained_text(&tok, &conv, Map::new());
            assert!(text.ends_with("\\boxed{3}<|im_end|>\n"), "{name}: {text:?}");
            assert!(
                !text.contains("Compute") && !text.contains("Hi"),
                "{name}: {text:?}"
            );
        }
    }
}
