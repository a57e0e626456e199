//! Per-rollout thinking control: ends reasoning at the thinking budget by
//! forcing the model's budget message and end tag, keeps an answer reserve
//! when no budget is given, and replaces an early end-of-think with a
//! continuation word until `min_thinking_tokens` (s1 budget forcing).

use std::sync::Arc;

/// Token ids of the think-mode texts of one model (encoded once per model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThinkTokens {
    /// The end tag (`</think>`), usually one token.
    pub end: Vec<u32>,
    /// Forced when the budget runs out: budget message, end tag, blank line.
    pub budget_forced: Vec<u32>,
    /// Replaces an early end tag while reasoning is shorter than the minimum.
    pub continuation: Vec<u32>,
}

impl ThinkTokens {
    /// Encode a model's think texts: the budget text is
    /// `{message}\n{end}\n\n` (Qwen3's convention: the answer follows a blank line).
    pub fn encode(
        tok: &crate::tokenizer::Tokenizer,
        end_tag: &str,
        budget_message: &str,
        continuation: &str,
    ) -> Result<Self, crate::tokenizer::TokenizerError> {
        Ok(Self {
            end: tok.encode(end_tag, false)?,
            budget_forced: tok.encode(&format!("{budget_message}\n{end_tag}\n\n"), false)?,
            continuation: tok.encode(continuation, false)?,
        })
    }
}

/// Whether a tokenizer knows both think tags as single tokens.
pub fn tokenizer_supports_think(tok: &crate::tokenizer::Tokenizer, start: &str, end: &str) -> bool {
    tok.token_to_id(start).is_some() && tok.token_to_id(end).is_some()
}

/// The limits of one rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThinkLimits {
    /// Reasoning tokens allowed before thinking is ended by force.
    pub thinking_budget: Option<usize>,
    pub min_thinking_tokens: usize,
    /// Tokens kept for the answer when no budget is given.
    pub answer_reserve: usize,
    /// Cap on reasoning + answer (`max_completion_tokens`).
    pub max_tokens: usize,
}

/// A request's think settings as the engine needs them. The server builds
/// it from the resolved plan and the model's encoded texts; the engine turns
/// it into one [`ThinkControl`] per rollout once the group's real token cap
/// (`max_tokens` clipped to the context) is known, so the answer reserve and
/// the budget text always fit under that cap.
#[derive(Debug, Clone)]
pub struct ThinkSpec {
    pub tokens: Arc<ThinkTokens>,
    /// The output starts inside the think block (the prompt opened it).
    pub thinking: bool,
    pub thinking_budget: Option<usize>,
    pub min_thinking_tokens: usize,
    pub answer_reserve: usize,
}

impl ThinkSpec {
    /// The control of one rollout whose output is capped at `max_tokens`.
    pub fn control(&self, max_tokens: usize) -> ThinkControl {
        let limits = ThinkLimits {
            thinking_budget: self.thinking_budget,
            min_thinking_tokens: self.min_thinking_tokens,
            answer_reserve: self.answer_reserve,
            max_tokens,
        };
        ThinkControl::new(self.tokens.clone(), limits, self.thinking)
    }
}

/// What to do with a sampled token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThinkAction {
    /// Append it as sampled.
    Keep,
    /// Append these tokens instead (they include the sampled one when it is kept).
    Force(Vec<u32>),
}

#[derive(Debug, Clone)]
pub struct ThinkControl {
    tokens: Arc<ThinkTokens>,
    limits: ThinkLimits,
    in_think: bool,
    reasoning_tokens: usize,
    budget_cut: bool,
    /// Trailing output tokens that may be the start of a multi-token end tag.
    end_progress: usize,
}

impl ThinkControl {
    /// `thinking`: whether the output starts inside the think block.
    pub fn new(tokens: Arc<ThinkTokens>, limits: ThinkLimits, thinking: bool) -> Self {
        Self {
            tokens,
            limits,
            in_think: thinking,
            reasoning_tokens: 0,
            budget_cut: false,
            end_progress: 0,
        }
    }

    pub fn in_think(&self) -> bool {
        self.in_think
    }

    /// Reasoning tokens so far: sampled ones and forced continuation words;
    /// the end tag and the forced budget text are not counted, so after a
    /// budget cut this is exactly the budget.
    pub fn reasoning_tokens(&self) -> usize {
        self.reasoning_tokens
    }

    /// Whether thinking was ended by the budget (or the answer reserve).
    pub fn budget_cut(&self) -> bool {
        self.budget_cut
    }

    /// The reasoning-token count at which thinking is ended by force.
    ///
    /// With a budget, the budget (and never so late that the budget text
    /// would not fit under `max_tokens`). Without one, late enough to leave
    /// the budget text plus `answer_reserve` tokens for the answer; when the
    /// cap cannot even hold the budget text, forcing would only produce a
    /// truncated message, so the cap alone ends thinking (`finish_reason:
    /// length`, as without think control).
    pub fn effective_budget(&self) -> usize {
        let room = self
            .limits
            .max_tokens
            .saturating_sub(self.tokens.budget_forced.len());
        match self.limits.thinking_budget {
            Some(b) if room > 0 => b.min(room),
            Some(b) => b,
            None if room == 0 => usize::MAX,
            None => room.saturating_sub(self.limits.answer_reserve),
        }
    }

    /// Decide on a sampled token; the caller appends what this returns.
    pub fn on_sampled(&mut self, token: u32) -> ThinkAction {
        if !self.in_think {
            return ThinkAction::Keep;
        }
        let end = &self.tokens.end;
        let completes_end =
            end.get(self.end_progress) == Some(&token) && self.end_progress + 1 == end.len();
        if completes_end {
            if self.reasoning_tokens.saturating_sub(self.end_progress)
                < self.limits.min_thinking_tokens
            {
                // Too early: the partial end tag already emitted stays (rare,
                // multi-token tags only); the final token becomes "Wait".
                self.end_progress = 0;
                let cont = &self.tokens.continuation;
                if self.reasoning_tokens + cont.len() >= self.effective_budget() {
                    // The continuation would run past the budget (or into the
                    // answer reserve): the budget is the hard limit, so end
                    // thinking with the budget text instead.
                    return self.cut(Vec::new());
                }
                self.reasoning_tokens += cont.len();
                return ThinkAction::Force(cont.clone());
            }
            self.in_think = false;
            self.end_progress = 0;
            return ThinkAction::Keep;
        }
        self.end_progress = if end.first() == Some(&token) {
            1
        } else if end.get(self.end_progress) == Some(&token) {
            self.end_progress + 1
        } else {
            0
        };
        self.reasoning_tokens += 1;
        if self.reasoning_tokens >= self.effective_budget() {
            return self.cut(vec![token]);
        }
        ThinkAction::Keep
    }

    /// End thinking by force: `kept` (the sampled token, if it stays), then
    /// the budget text.
    fn cut(&mut self, mut kept: Vec<u32>) -> ThinkAction {
        self.in_think = false;
        self.budget_cut = true;
        kept.extend_from_slice(&self.tokens.budget_forced);
        ThinkAction::Force(kept)
    }

    /// A zero effective budget ends thinking before it starts: the budget
    /// text is forced right away, so not one reasoning token is sampled.
    /// Called once per rollout before its first sample.
    pub fn initial_force(&mut self) -> Option<Vec<u32>> {
        if self.in_think && self.effective_budget() == 0 {
            self.in_think = false;
            self.budget_cut = true;
            return Some(self.tokens.budget_forced.clone());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const END: u32 = 99;

    fn tokens() -> Arc<ThinkTokens> {
        Arc::new(ThinkTokens {
            end: vec![END],
            budget_forced: vec![50, 51, 52, END, 10],
            continuation: vec![77],
        })
    }

    fn limits(budget: Option<usize>, min: usize, max: usize) -> ThinkLimits {
        ThinkLimits {
            thinking_budget: budget,
            min_thinking_tokens: min,
            answer_reserve: 8,
            max_tokens: max,
        }
    }

    #[test]
    fn budget_forces_message_after_exactly_budget_reasoning_tokens() {
        let mut c = ThinkControl::new(tokens(), limits(Some(3), 0, 100), true);
        assert_eq!(c.on_sampled(1), ThinkAction::Keep);
        assert_eq!(c.on_sampled(2), ThinkAction::Keep);
        assert_eq!(
            c.on_sampled(3),
            ThinkAction::Force(vec![3, 50, 51, 52, END, 10])
        );
        assert!(c.budget_cut() && !c.in_think());
        assert_eq!(c.reasoning_tokens(), 3);
        assert_eq!(
            c.on_sampled(END),
            ThinkAction::Keep,
            "after thinking, tokens pass through"
        );
    }

    #[test]
    fn natural_end_before_budget_is_kept() {
        let mut c = ThinkControl::new(tokens(), limits(Some(10), 0, 100), true);
        c.on_sampled(1);
        assert_eq!(c.on_sampled(END), ThinkAction::Keep);
        assert!(!c.in_think() && !c.budget_cut());
    }

    #[test]
    fn answer_reserve_caps_reasoning_without_a_budget() {
        // max 20, reserve 8, forced text 5 -> thinking ends after 7 tokens.
        let mut c = ThinkControl::new(tokens(), limits(None, 0, 20), true);
        assert_eq!(c.effective_budget(), 7);
        for t in 0..6 {
            assert_eq!(c.on_sampled(t), ThinkAction::Keep);
        }
        assert!(matches!(c.on_sampled(6), ThinkAction::Force(_)));
        assert!(c.budget_cut());
    }

    #[test]
    fn a_cap_too_small_for_the_budget_text_never_forces_it() {
        // max 4 < 5 forced tokens: no reserve cut, thinking runs to the cap.
        let mut c = ThinkControl::new(tokens(), limits(None, 0, 4), true);
        assert_eq!(c.initial_force(), None);
        for t in 0..4 {
            assert_eq!(c.on_sampled(t), ThinkAction::Keep);
        }
        // Room for the text but not the reserve: thinking ends at once.
        let mut c = ThinkControl::new(tokens(), limits(None, 0, 9), true);
        assert_eq!(c.initial_force(), Some(vec![50, 51, 52, END, 10]));
        // An explicit budget stays the limit whatever the cap.
        let c = ThinkControl::new(tokens(), limits(Some(2), 0, 4), true);
        assert_eq!(c.effective_budget(), 2);
    }

    #[test]
    fn min_thinking_replaces_an_early_end_tag_with_the_continuation() {
        let mut c = ThinkControl::new(tokens(), limits(None, 3, 100), true);
        c.on_sampled(1);
        assert_eq!(c.on_sampled(END), ThinkAction::Force(vec![77]));
        assert!(c.in_think());
        c.on_sampled(2);
        assert_eq!(
            c.on_sampled(END),
            ThinkAction::Keep,
            "minimum reached: end accepted"
        );
        assert!(!c.in_think());
    }

    #[test]
    fn thinking_off_passes_everything_through() {
        let mut c = ThinkControl::new(tokens(), limits(Some(1), 5, 10), false);
        assert_eq!(c.on_sampled(END), ThinkAction::Keep);
        assert_eq!(c.on_sampled(1), ThinkAction::Keep);
        assert!(!c.budget_cut());
    }

    #[test]
    fn continuation_never_runs_past_the_budget() {
        // Budget 3, minimum 3: an end tag at 2 reasoning tokens would need a
        // continuation that reaches the budget, so the budget text comes.
        let mut c = ThinkControl::new(tokens(), limits(Some(3), 3, 100), true);
        c.on_sampled(1);
        c.on_sampled(2);
        assert_eq!(
            c.on_sampled(END),
            ThinkAction::Force(vec![50, 51, 52, END, 10])
        );
        assert!(c.budget_cut() && !c.in_think());
        assert_eq!(c.reasoning_tokens(), 2);
    }

    #[test]
    fn spec_builds_a_control_with_the_groups_cap() {
        let spec = ThinkSpec {
            tokens: tokens(),
            thinking: true,
            thinking_budget: None,
            min_thinking_tokens: 0,
            answer_reserve: 8,
        };
        assert_eq!(spec.control(20).effective_budget(), 7);
        assert!(spec.control(20).in_think());
    }

    #[test]
    fn zero_budget_forces_the_end_before_any_sampling() {
        let mut c = ThinkControl::new(tokens(), limits(Some(0), 0, 100), true);
        assert_eq!(c.initial_force(), Some(vec![50, 51, 52, END, 10]));
        assert!(!c.in_think());
    }
}
