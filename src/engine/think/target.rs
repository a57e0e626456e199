//! A target thinking length stated in the prompt (L1 length control): one
//! phrase, [`target_phrase`], written the same way by the GRPO loop (with
//! the target n_gold it samples per prompt) and by the server (with a
//! request's thinking budget, under `budget_in_prompt`), so training and
//! serving agree on the words.
//!
//! Where the phrase goes ([`with_thinking_target`]): appended to the system
//! prompt — a first message with role `system` (or `developer`, which the
//! server renders as `system`) — when there is one, else to the last `user`
//! message (what L1 does: the phrase ends the question), else (no system
//! prompt and no user message) as a new system message in front. The
//! message's trailing whitespace is replaced by one blank line before the
//! phrase (an empty message becomes the phrase alone).

use super::{ThinkConfig, ThinkPlan};
use crate::chat::ChatMessage;

/// The words stating a target of `tokens` thinking tokens.
pub fn target_phrase(tokens: usize) -> String {
    format!("Think for about {tokens} tokens.")
}

/// `messages` with [`target_phrase`]`(tokens)` placed as the module docs say.
pub fn with_thinking_target(messages: &[ChatMessage], tokens: usize) -> Vec<ChatMessage> {
    let phrase = target_phrase(tokens);
    let mut out = messages.to_vec();
    let system = out
        .first()
        .is_some_and(|m| m.role == "system" || m.role == "developer");
    let at = if system {
        Some(0)
    } else {
        out.iter().rposition(|m| m.role == "user")
    };
    match at.and_then(|i| out.get_mut(i)) {
        Some(m) => {
            let body = m.content.trim_end();
            m.content = if body.is_empty() {
                phrase
            } else {
                format!("{body}\n\n{phrase}")
            };
        }
        None => out.insert(0, ChatMessage::system(phrase)),
    }
    out
}

/// The server switch (`budget_in_prompt` of the model's think config): the
/// messages to render when it is on, thinking is on and the request has a
/// thinking budget (`thinking_budget` or an alias, or one from
/// `reasoning_effort`) — the budget stated in the prompt *as well as*
/// enforced by the engine. `None`: render `messages` as they are.
pub fn budget_in_prompt(
    messages: &[ChatMessage],
    plan: &ThinkPlan,
    cfg: &ThinkConfig,
    supported: bool,
) -> Option<Vec<ChatMessage>> {
    if !(cfg.budget_in_prompt && supported && plan.enabled) {
        return None;
    }
    plan.budget.map(|b| with_thinking_target(messages, b))
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;
    use crate::chat::{ChatTemplate, SpecialTokenPolicy};
    use crate::tokenizer::Tokenizer;

    #[test]
    fn the_phrase_joins_the_system_prompt_else_the_last_user_message() {
        let phrase = "Think for about 300 tokens.";
        assert_eq!(target_phrase(300), phrase);
        let with_system = [
            ChatMessage::system("Be brief.\n"),
            ChatMessage::user("2+2?"),
        ];
        let got = with_thinking_target(&with_system, 300);
        assert_eq!(got[0].content, "Be brief.\n\nThink for about 300 tokens.");
        assert_eq!(got[1], with_system[1]);
        let turns = [
            ChatMessage::user("Hi"),
            ChatMessage::assistant("Hello."),
            ChatMessage::user("2+2?"),
        ];
        let got = with_thinking_target(&turns, 300);
        assert_eq!(got[..2], turns[..2]);
        assert_eq!(got[2].content, "2+2?\n\nThink for about 300 tokens.");
        let got = with_thinking_target(&[ChatMessage::system("")], 300);
        assert_eq!(got, vec![ChatMessage::system(phrase)]);
        let got = with_thinking_target(&[ChatMessage::assistant("x")], 300);
        assert_eq!(
            got,
            vec![ChatMessage::system(phrase), ChatMessage::assistant("x")]
        );
    }

    #[test]
    fn the_switch_needs_itself_thinking_and_a_budget() {
        let msgs = [ChatMessage::user("2+2?")];
        let plan = |enabled, budget| ThinkPlan {
            enabled,
            budget,
            min_thinking_tokens: 0,
            budget_message: String::new(),
        };
        let on = ThinkConfig {
            budget_in_prompt: true,
            ..ThinkConfig::default()
        };
        let got = budget_in_prompt(&msgs, &plan(true, Some(64)), &on, true);
        assert_eq!(
            got.map(|m| m[0].content.clone()).as_deref(),
            Some("2+2?\n\nThink for about 64 tokens.")
        );
        assert_eq!(budget_in_prompt(&msgs, &plan(true, None), &on, true), None);
        assert_eq!(budget_in_prompt(&msgs, &plan(false, None), &on, true), None);
        assert_eq!(
            budget_in_prompt(&msgs, &plan(true, Some(64)), &on, false),
            None
        );
        let off = ThinkConfig::default();
        assert!(!off.budget_in_prompt, "off by default");
        assert_eq!(
            budget_in_prompt(&msgs, &plan(true, Some(64)), &off, true),
            None
        );
    }

    /// The phrase as the chat template renders it, with the real Qwen3
    /// tokenizer and the small one `quorum train tokenizer` writes (both
    /// carry the Qwen3 chat template).
    #[test]
    fn both_templates_render_the_phrase_where_it_was_put() {
        let qwen3 = Tokenizer::from_dir(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3-tokenizer"),
        )
        .unwrap();
        let texts = ["What is 2+2? Think about it, then answer in a box."];
        let opts = crate::tokenizer::train::TokenizerTrainOptions::new(300);
        let small = crate::tokenizer::train::train_tokenizer_from_texts(texts.iter(), &opts)
            .unwrap()
            .tokenizer()
            .unwrap();
        for (name, tok) in [("qwen3", qwen3), ("small", small)] {
            let template = ChatTemplate::from_tokenizer(&tok).unwrap();
            let render = |msgs: &[ChatMessage]| {
                crate::chat::prompt::render(
                    &template,
                    &tok,
                    msgs,
                    true,
                    &Map::new(),
                    SpecialTokenPolicy::default(),
                )
                .unwrap()
                .text
            };
            let user = with_thinking_target(&[ChatMessage::user("What is 2+2?")], 7);
            assert_eq!(
                render(&user),
                "<|im_start|>user\nWhat is 2+2?\n\nThink for about 7 tokens.<|im_end|>\n\
                 <|im_start|>assistant\n",
                "{name}"
            );
            let sys = with_thinking_target(
                &[ChatMessage::system("Be brief."), ChatMessage::user("2+2?")],
                7,
            );
            assert_eq!(
                render(&sys),
                "<|im_start|>system\nBe brief.\n\nThink for about 7 tokens.<|im_end|>\n\
                 <|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n",
                "{name}"
            );
            // The phrase round-trips through each vocabulary.
            let ids = tok.encode(&render(&user), false).unwrap();
            assert!(
                tok.decode(&ids, false)
                    .unwrap()
                    .contains("Think for about 7 tokens."),
                "{name}"
            );
        }
    }
}
