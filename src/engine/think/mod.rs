//! Think mode: per-rollout budget control ([`budget`]), request resolution
//! ([`resolve`]), the think-aware prompt builder ([`prompt`]) and the
//! streaming reasoning/content split ([`split`]).

pub mod budget;
pub mod prompt;
pub mod resolve;
pub mod split;

pub use budget::{
    tokenizer_supports_think, ThinkAction, ThinkControl, ThinkLimits, ThinkSpec, ThinkTokens,
};
pub use prompt::{build_chat_prompt, ChatPrompt, ChatPromptError, ThinkOptions};
pub use resolve::{
    resolve, soft_switch, EffortBudgets, ThinkConfig, ThinkError, ThinkPlan, ThinkRequest,
};
pub use split::{split_all, Field, ReasoningSplitter, SplitDelta};
