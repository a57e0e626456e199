//! [`ChatTemplate`]: an HF chat template compiled once, rendered per request.

use minijinja::value::Kwargs;
use minijinja::{Environment, Error, ErrorKind, State, Value};

use super::message::{json_to_value, ChatMessage};
use super::{pyjson, strftime, ChatTemplateError};
use crate::tokenizer::Tokenizer;

/// Name under which the template is stored in its environment.
const NAME: &str = "chat";

/// Used when a model ships no chat template: one `role: content` line per
/// message, then `assistant: ` as the generation prompt. It is what a base
/// model most plausibly continues, and it never raises.
pub const FALLBACK_TEMPLATE: &str = "{% for message in messages %}\
{{ message.role }}: {{ message.content }}\n\
{% endfor %}\
{% if add_generation_prompt %}assistant: {% endif %}";

/// The message `raise_exception` was called with, carried as the source of
/// the minijinja error so [`ChatTemplate::render`] can tell a deliberate
/// template refusal ("roles must alternate") from a template bug.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Raised(String);

/// A compiled chat template plus the special tokens it may reference.
/// Compile once per model and share (`Send + Sync`).
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: Option<String>,
    eos_token: Option<String>,
    is_fallback: bool,
}

impl ChatTemplate {
    /// Compiles `template_src` in an environment that mimics HF's
    /// (`trim_blocks`, `lstrip_blocks`, loop controls, lenient undefined,
    /// Python string/dict methods, HF's `tojson`, `raise_exception`,
    /// `strftime_now`). `bos_token` / `eos_token` are exposed to the template
    /// as variables of the same name (HF passes its special tokens this way).
    pub fn new(
        template_src: &str,
        bos_token: Option<&str>,
        eos_token: Option<&str>,
    ) -> Result<Self, ChatTemplateError> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .map_err(|e| ChatTemplateError::Compile(describe(&e)))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", |v: Value, kw: Kwargs| pyjson::tojson(&v, kw));
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", |fmt: String| {
            strftime::Civil::now().format(&fmt)
        });
        env.add_template_owned(NAME, rewrite_generation_tags(template_src))
            .map_err(|e| ChatTemplateError::Compile(describe(&e)))?;
        Ok(Self {
            env,
            bos_token: bos_token.map(str::to_owned),
            eos_token: eos_token.map(str::to_owned),
            is_fallback: false,
        })
    }

    /// The plain [`FALLBACK_TEMPLATE`] for models without a chat template.
    pub fn fallback() -> Self {
        // The fallback is a constant that compiles; a failure here is a bug
        // caught by the unit tests, and even then we degrade to an empty env.
        let mut t = Self::new(FALLBACK_TEMPLATE, None, None).unwrap_or_else(|_| Self {
            env: Environment::new(),
            bos_token: None,
            eos_token: None,
            is_fallback: true,
        });
        t.is_fallback = true;
        t
    }

    /// The tokenizer's chat template (or [`Self::fallback`] if it has none),
    /// with its BOS / EOS tokens.
    pub fn from_tokenizer(tok: &Tokenizer) -> Result<Self, ChatTemplateError> {
        let cfg = tok.config();
        match &cfg.chat_template {
            Some(src) => Self::new(src, cfg.bos_token.as_deref(), cfg.eos_token.as_deref()),
            None => Ok(Self::fallback()),
        }
    }

    /// Whether this is the built-in fallback rather than the model's template.
    pub fn is_fallback(&self) -> bool {
        self.is_fallback
    }

    /// Renders `messages`. `extra` holds template kwargs such as
    /// `enable_thinking` or `tools`; they may override `bos_token` /
    /// `eos_token` but not `messages` / `add_generation_prompt`. As in HF,
    /// `tools` and `documents` are `none` (defined) unless given.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, ChatTemplateError> {
        let token = |t: &Option<String>| t.as_deref().map_or(Value::from(()), Value::from);
        let mut ctx: Vec<(String, Value)> = vec![
            ("bos_token".into(), token(&self.bos_token)),
            ("eos_token".into(), token(&self.eos_token)),
            ("tools".into(), Value::from(())),
            ("documents".into(), Value::from(())),
        ];
        for (k, v) in extra {
            if k != "messages" && k != "add_generation_prompt" {
                ctx.retain(|(name, _)| name != k);
                ctx.push((k.clone(), json_to_value(v)));
            }
        }
        let msgs: Value = messages.iter().map(ChatMessage::to_value).collect();
        ctx.push(("messages".into(), msgs));
        ctx.push((
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        ));
        let tmpl = self
            .env
            .get_template(NAME)
            .map_err(|e| ChatTemplateError::Compile(describe(&e)))?;
        tmpl.render(Value::from_pairs(ctx)).map_err(classify)
    }
}

/// `raise_exception(msg)`: HF's way for a template to reject a conversation.
fn raise_exception(_state: &State, msg: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg.clone()).with_source(Raised(msg)))
}

/// Maps a render error: a `raise_exception` becomes [`ChatTemplateError::Raised`]
/// with just the template's message, anything else a render error with its
/// location.
fn classify(err: Error) -> ChatTemplateError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(Raised(msg)) = e.downcast_ref::<Raised>() {
            return ChatTemplateError::Raised(msg.clone());
        }
        source = e.source();
    }
    ChatTemplateError::Render(describe(&err))
}

/// One-line description with the template line, e.g.
/// "syntax error: unexpected `}` (in chat:12)".
fn describe(err: &Error) -> String {
    let mut s = err.to_string();
    if let (Some(line), false) = (err.line(), s.contains(&format!("{NAME}:"))) {
        s.push_str(&format!(" (line {line})"));
    }
    s
}

/// HF's `{% generation %}...{% endgeneration %}` extension (marks assistant
/// tokens for training masks) has no minijinja equivalent; for rendering it
/// is a no-op block, so rewrite it to `{% if true %}...{% endif %}`, keeping
/// the tag's whitespace-control markers.
fn rewrite_generation_tags(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(start) = rest.find("{%") {
        let Some(len) = rest[start..].find("%}") else {
            break;
        };
        let tag = &rest[start..start + len + 2];
        let inner = &tag[2..tag.len() - 2];
        let body = inner.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        out.push_str(&rest[..start]);
        match body {
            "generation" => out.push_str(&tag.replacen("generation", "if true", 1)),
            "endgeneration" => out.push_str(&tag.replacen("endgeneration", "endif", 1)),
            _ => out.push_str(tag),
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, msgs: &[ChatMessage]) -> Result<String, ChatTemplateError> {
        ChatTemplate::new(src, Some("<s>"), Some("</s>"))?.render(msgs, true, &Default::default())
    }

    #[test]
    fn chat_template_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ChatTemplate>();
    }

    #[test]
    fn fallback_renders_role_lines_and_prompt() -> Result<(), ChatTemplateError> {
        let t = ChatTemplate::fallback();
        assert!(t.is_fallback());
        let msgs = [ChatMessage::system("Be brief."), ChatMessage::user("Hi")];
        let out = t.render(&msgs, true, &Default::default())?;
        assert_eq!(out, "system: Be brief.\nuser: Hi\nassistant: ");
        Ok(())
    }

    #[test]
    fn generation_tags_render_as_plain_blocks() -> Result<(), ChatTemplateError> {
        let src = "{%- for m in messages %}{% generation %}[{{ m.content }}]{%- endgeneration %}{% endfor %}";
        assert_eq!(
            render(src, &[ChatMessage::user("a"), ChatMessage::user("b")])?,
            "[a][b]"
        );
        Ok(())
    }

    #[test]
    fn special_tokens_tools_and_absent_fields() -> Result<(), ChatTemplateError> {
        let src = "{{ bos_token }}|{{ tools is none }}|{{ messages[0].name is defined }}|\
                   {{ messages[0].reasoning_content is defined }}|{{ 'a,b'.split(',')[1] }}";
        let msg = ChatMessage {
            name: Some("n".into()),
            ..ChatMessage::user("x")
        };
        // Booleans print Python-style, as in Jinja.
        assert_eq!(render(src, &[msg])?, "<s>|True|True|False|b");
        Ok(())
    }

    #[test]
    fn syntax_errors_are_compile_errors_with_location() {
        let err = ChatTemplate::new("{% for m in messages %}\n{{ m.content }", None, None);
        match err {
            Err(ChatTemplateError::Compile(msg)) => assert!(msg.contains("syntax error"), "{msg}"),
            other => panic!("expected a compile error, got {other:?}"),
        }
    }

    #[test]
    fn strftime_now_formats_current_date() -> Result<(), ChatTemplateError> {
        let out = render("{{ strftime_now('%Y-%m-%d') }}", &[])?;
        assert_eq!(out.len(), 10);
        assert!(out.starts_with("20"), "{out}");
        Ok(())
    }
}
