//! Think mode: per-rollout budget control ([`budget`]), request resolution
//! ([`resolve`]), the think-aware prompt builder ([`prompt`]), the target
//! thinking length stated in the prompt ([`target`]) and the streaming
//! reasoning/content split ([`split`]).

pub mod budget;
pub mod prompt;
pub mod resolve;
pub mod split;
pub mod target;

pub use budget::{
    tokenizer_supports_think, ThinkAction, ThinkControl, ThinkLimits, ThinkSpec, ThinkTokens,
};
pub use prompt::{build_chat_prompt, ChatPrompt, ChatPromptError, ThinkOptions};
pub use resolve::{
    resolve, soft_switch, EffortBudgets, ThinkConfig, ThinkError, ThinkPlan, ThinkRequest,
};
pub use split::{split_all, Field, ReasoningSplitter, SplitDelta};
pub use target::{budget_in_prompt, target_phrase, with_thinking_target};
