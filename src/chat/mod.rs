//! Chat templates: HF-compatible rendering of a conversation into a prompt.
//!
//! Models are fine-tuned on prompts produced by the Jinja template in their
//! `tokenizer_config.json`, as rendered by Python `transformers`. Any deviation
//! (a missing newline, a different JSON spacing in a tool list) puts the
//! prompt off-distribution, so [`ChatTemplate`] reproduces HF's environment
//! with minijinja:
//!
//! * `trim_blocks` and `lstrip_blocks` on, a trailing newline of the template
//!   dropped, `{% break %}` / `{% continue %}` available (HF loads
//!   `jinja2.ext.loopcontrols`);
//! * lenient undefined values as in Jinja's default: absent message fields are
//!   *missing*, so `message.reasoning_content is defined` is false when the
//!   client sent none;
//! * Python methods on strings / dicts / lists (`startswith`, `split`,
//!   `strip`, `items`, ...) via `minijinja_contrib::pycompat`;
//! * HF's globals: `raise_exception(msg)` (rendering fails with
//!   [`ChatTemplateError::Raised`] carrying `msg`), `strftime_now(fmt)` (UTC),
//!   and HF's `tojson` (Python `json.dumps(ensure_ascii=False)` formatting,
//!   with `indent`, `separators`, `sort_keys`);
//! * `bos_token` / `eos_token` variables, and `tools` / `documents` defined
//!   as `none` unless passed in `extra`, as HF does;
//! * `{% generation %}` blocks (HF's training-mask extension) render as plain
//!   blocks.
//!
//! Known gap: object key order in `tojson` output follows the order of the
//! `serde_json::Map` given in `extra` — insertion order only if serde_json's
//! `preserve_order` feature is enabled, alphabetical otherwise. Python keeps
//! the client's order.
//!
//! # Fallback
//!
//! A model without a chat template (a base model) gets
//! [`ChatTemplate::fallback`]: each message as a `"{role}: {content}\n"` line,
//! then `"assistant: "` when a generation prompt is requested. No special
//! tokens are inserted, so it works with any vocabulary. Example:
//!
//! ```text
//! system: Be brief.
//! user: Hi
//! assistant:
//! ```

mod message;
pub mod prompt;
mod pyjson;
mod strftime;
mod template;

pub use message::ChatMessage;
pub use prompt::{PromptError, RenderedPrompt, SpecialTokenPolicy};
pub use template::{ChatTemplate, FALLBACK_TEMPLATE};

/// Errors from compiling or rendering a chat template.
#[derive(Debug, thiserror::Error)]
pub enum ChatTemplateError {
    /// The template source does not compile (syntax error, unknown tag).
    #[error("chat template does not compile: {0}")]
    Compile(String),
    /// The template called `raise_exception(msg)`: the conversation is not
    /// acceptable to this model (e.g. roles do not alternate). Worth reporting
    /// to the client as a bad request with `msg`.
    #[error("chat template rejected the conversation: {0}")]
    Raised(String),
    /// Rendering failed for another reason (a template bug or a value of an
    /// unexpected type).
    #[error("chat template failed to render: {0}")]
    Render(String),
}
