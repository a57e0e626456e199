//! Streaming split of generated text into reasoning and answer: the think
//! tags are removed, and a tag split across deltas (`</th` + `ink>`) is held
//! back until it is decided, so it never leaks into either field.

/// Which field text goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Reasoning,
    Content,
}

/// Text deltas for the two fields from one push.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SplitDelta {
    pub reasoning: String,
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Inside the think block (thinking on): looking for the end tag.
    Reasoning,
    /// Thinking off, nothing but whitespace seen: a stray block may open.
    MaybeStray,
    /// Thinking off, inside a stray block: dropped up to its end tag.
    InStray,
    /// Answer text.
    Content,
}

/// Splits a rollout's output text into reasoning and content.
///
/// With thinking on, the output starts inside the think block (the prompt
/// opened it): text goes to reasoning until the end tag, then to content.
/// With thinking off, everything is content, and a stray (usually empty)
/// think block the model emits at the very start anyway is dropped.
#[derive(Debug, Clone)]
pub struct ReasoningSplitter {
    start: String,
    end: String,
    state: State,
    /// Text not yet emitted because it may be (part of) a tag.
    held: String,
    /// Blank lines right after `</think>` belong to the template, not the answer.
    trim_leading_newlines: bool,
}

impl ReasoningSplitter {
    pub fn new(start: &str, end: &str, thinking: bool) -> Self {
        Self {
            start: start.to_string(),
            end: end.to_string(),
            state: if thinking {
                State::Reasoning
            } else {
                State::MaybeStray
            },
            held: String::new(),
            trim_leading_newlines: false,
        }
    }

    /// Where text currently goes.
    pub fn field(&self) -> Field {
        match self.state {
            State::Reasoning => Field::Reasoning,
            _ => Field::Content,
        }
    }

    /// Feed a text delta; returns what can be emitted now.
    pub fn push(&mut self, delta: &str) -> SplitDelta {
        self.held.push_str(delta);
        let mut out = SplitDelta::default();
        loop {
            match self.state {
                State::Reasoning => match self.held.find(&self.end) {
                    Some(pos) => {
                        out.reasoning.push_str(&self.held[..pos]);
                        self.held.drain(..pos + self.end.len());
                        self.state = State::Content;
                        self.trim_leading_newlines = true;
                    }
                    None => {
                        let keep = partial_suffix_len(&self.held, &self.end);
                        let emit = self.held.len() - keep;
                        out.reasoning.push_str(&self.held[..emit]);
                        self.held.drain(..emit);
                        return out;
                    }
                },
                State::MaybeStray => {
                    let trimmed = self.held.trim_start();
                    if trimmed.is_empty()
                        || (self.start.starts_with(trimmed) && trimmed.len() < self.start.len())
                    {
                        return out;
                    }
                    if trimmed.starts_with(&self.start) {
                        let cut = self.held.len() - trimmed.len() + self.start.len();
                        self.held.drain(..cut);
                        self.state = State::InStray;
                    } else {
                        self.state = State::Content;
                    }
                }
                State::InStray => match self.held.find(&self.end) {
                    Some(pos) => {
                        self.held.drain(..pos + self.end.len());
                        self.state = State::Content;
                        self.trim_leading_newlines = true;
                    }
                    None => return out,
                },
                State::Content => {
                    let text = std::mem::take(&mut self.held);
                    self.emit_content(&text, &mut out);
                    return out;
                }
            }
        }
    }

    /// End of generation: release anything held back.
    pub fn finish(&mut self) -> SplitDelta {
        let text = std::mem::take(&mut self.held);
        let mut out = SplitDelta::default();
        match self.state {
            State::Reasoning => out.reasoning.push_str(&text),
            // An unterminated stray block with thinking off is shown as is.
            State::InStray => {
                out.content.push_str(&self.start);
                out.content.push_str(&text);
            }
            State::MaybeStray | State::Content => self.emit_content(&text, &mut out),
        }
        out
    }

    fn emit_content(&mut self, text: &str, out: &mut SplitDelta) {
        let text = if self.trim_leading_newlines {
            let t = text.trim_start_matches(['\n', '\r']);
            if !t.is_empty() {
                self.trim_leading_newlines = false;
            }
            t
        } else {
            text
        };
        out.content.push_str(text);
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `tag`.
fn partial_suffix_len(text: &str, tag: &str) -> usize {
    let max = tag.len().saturating_sub(1).min(text.len());
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && tag.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

/// Split a complete output in one go.
pub fn split_all(text: &str, start: &str, end: &str, thinking: bool) -> (String, String) {
    let mut s = ReasoningSplitter::new(start, end, thinking);
    let mut a = s.push(text);
    let b = s.finish();
    a.reasoning.push_str(&b.reasoning);
    a.content.push_str(&b.content);
    (a.reasoning, a.content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(pieces: &[&str], thinking: bool) -> (String, String) {
        let mut s = ReasoningSplitter::new("<think>", "</think>", thinking);
        let (mut r, mut c) = (String::new(), String::new());
        for p in pieces {
            let d = s.push(p);
            r.push_str(&d.reasoning);
            c.push_str(&d.content);
        }
        let d = s.finish();
        r.push_str(&d.reasoning);
        c.push_str(&d.content);
        (r, c)
    }

    #[test]
    fn thinking_on_splits_at_end_tag_and_trims_blank_lines() {
        let (r, c) = stream(
            &["Let me see.", " 2+2=4.\n</think>\n\nThe answer is 4."],
            true,
        );
        assert_eq!(r, "Let me see. 2+2=4.\n");
        assert_eq!(c, "The answer is 4.");
    }

    #[test]
    fn end_tag_split_across_deltas_never_leaks() {
        let pieces = ["abc</", "th", "ink", ">\n\nok"];
        let (r, c) = stream(&pieces, true);
        assert_eq!(r, "abc");
        assert_eq!(c, "ok");
        // Every split point of the same text gives the same result.
        let full = "reason<x></think>\n\nans</thi";
        for i in 0..=full.len() {
            let (a, b) = full.split_at(i);
            assert_eq!(
                stream(&[a, b], true),
                ("reason<x>".into(), "ans</thi".into()),
                "split at {i}"
            );
        }
    }

    #[test]
    fn thinking_off_puts_everything_in_content() {
        assert_eq!(
            stream(&["The answer", " is 4."], false),
            ("".into(), "The answer is 4.".into())
        );
    }

    #[test]
    fn thinking_off_drops_a_stray_empty_think_block() {
        assert_eq!(
            stream(&["<th", "ink>\n\n</thi", "nk>\n\nHello"], false),
            ("".into(), "Hello".into())
        );
        assert_eq!(
            stream(&["<think></think>Hi"], false),
            ("".into(), "Hi".into())
        );
    }

    #[test]
    fn think_tag_later_in_content_is_kept_verbatim() {
        assert_eq!(
            stream(&["Use <think> tags like this"], false),
            ("".into(), "Use <think> tags like this".into())
        );
    }

    #[test]
    fn unterminated_reasoning_stays_reasoning() {
        assert_eq!(
            stream(&["still thinking </thi"], true),
            ("still thinking </thi".into(), "".into())
        );
    }

    #[test]
    fn multibyte_text_near_tags_is_char_safe() {
        assert_eq!(
            stream(&["思考中", "</think>", "\n\n答え"], true),
            ("思考中".into(), "答え".into())
        );
    }
}
