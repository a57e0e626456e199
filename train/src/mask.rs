//! Assistant-only loss masks, built from the rendered chat template.
//!
//! For each assistant turn `i`: `prefix` = the conversation before it
//! rendered *with* the generation prompt (exactly what the model is given at
//! inference, think prefix included), `upto` = the conversation through it.
//! The tokens of `upto` after `prefix` are the turn's own tokens (content,
//! think block, end-of-turn token): weight 1. Everything else — system and
//! user turns, template headers — weighs 0. This needs the template to be
//! prefix-stable for the turn; the final assistant turn must be (else the
//! example is an error), earlier turns that are not (Qwen3 drops earlier
//! turns' reasoning) are left unweighted and counted.

use std::fmt::Display;

use crate::batch::Example;
use crate::{Result, TrainError};

/// Renders a conversation to token ids with the model's chat template.
pub trait ChatRenderer<M> {
    type Error: Display;

    fn render_ids(
        &self,
        messages: &[M],
        add_generation_prompt: bool,
    ) -> std::result::Result<Vec<u32>, Self::Error>;
}

/// A masked conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskedConversation {
    pub example: Example,
    /// Earlier assistant turns left unweighted (template not prefix-stable).
    pub skipped_turns: usize,
}

pub fn assistant_only<M, R: ChatRenderer<M>>(
    renderer: &R,
    messages: &[M],
    is_assistant: impl Fn(&M) -> bool,
) -> Result<MaskedConversation> {
    let err = |e: R::Error| TrainError::Batch(format!("chat template: {e}"));
    let last = messages
        .iter()
        .rposition(&is_assistant)
        .ok_or_else(|| TrainError::Batch("the conversation has no assistant turn".into()))?;
    let ids = renderer.render_ids(messages, false).map_err(err)?;
    let mut weights = vec![0f32; ids.len()];
    let mut skipped = 0;
    for i in (0..=last).filter(|&i| is_assistant(&messages[i])) {
        let prefix = renderer.render_ids(&messages[..i], true).map_err(err)?;
        let upto = if i + 1 == messages.len() {
            ids.clone()
        } else {
            renderer.render_ids(&messages[..=i], false).map_err(err)?
        };
        let stable =
            upto.starts_with(&prefix) && ids.starts_with(&upto) && upto.len() > prefix.len();
        if !stable {
            if i == last {
                return Err(TrainError::Batch(format!(
                    "chat template is not prefix-stable at assistant message {i}: the \
                     generation prompt does not begin the rendered turn"
                )));
            }
            skipped += 1;
            continue;
        }
        for w in &mut weights[prefix.len().max(1)..upto.len()] {
            *w = 1.0;
        }
    }
    Ok(MaskedConversation {
        example: Example::new(ids, weights)?,
        skipped_turns: skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ChatML-like renderer over chars: `<role>content|` per turn, the
    /// generation prompt `<a>`; one token per char.
    struct Chars {
        /// Drop earlier assistant contents (like Qwen3 drops old reasoning).
        drop_old: bool,
    }

    impl ChatRenderer<(char, &'static str)> for Chars {
        type Error = String;
        fn render_ids(
            &self,
            m: &[(char, &'static str)],
            gen: bool,
        ) -> std::result::Result<Vec<u32>, String> {
            let mut s = String::new();
            for (k, (role, content)) in m.iter().enumerate() {
                let keep = !(self.drop_old && *role == 'a' && k + 1 < m.len());
                s.push('<');
                s.push(*role);
                s.push('>');
                if keep {
                    s.push_str(content);
                }
                s.push('|');
            }
            if gen {
                s.push_str("<a>");
            }
            Ok(s.chars().map(|c| c as u32).collect())
        }
    }

    fn weighted(m: &MaskedConversation) -> String {
        m.example
            .ids
            .iter()
            .zip(&m.example.weights)
            .filter(|(_, w)| **w > 0.0)
            .map(|(&i, _)| char::from_u32(i).unwrap())
            .collect()
    }

    #[test]
    fn only_assistant_tokens_are_weighted() {
        let conv = [
            ('s', "sys"),
            ('u', "hi"),
            ('a', "yo"),
            ('u', "q"),
            ('a', "ans"),
        ];
        let m = assistant_only(&Chars { drop_old: false }, &conv, |x| x.0 == 'a').unwrap();
        // each assistant turn: its content and its end marker
        assert_eq!(weighted(&m), "yo|ans|");
        assert_eq!(m.skipped_turns, 0);
    }

    #[test]
    fn unstable_earlier_turns_are_skipped_and_counted() {
        let conv = [('u', "hi"), ('a', "yo"), ('u', "q"), ('a', "ans")];
        let m = assistant_only(&Chars { drop_old: true }, &conv, |x| x.0 == 'a').unwrap();
        assert_eq!(weighted(&m), "ans|");
        assert_eq!(m.skipped_turns, 1);
    }

    #[test]
    fn a_conversation_without_assistant_is_an_error() {
        let conv = [('u', "hi")];
        assert!(assistant_only(&Chars { drop_old: false }, &conv, |x| x.0 == 'a').is_err());
    }
}
