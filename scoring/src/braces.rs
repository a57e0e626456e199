//! Brace and bracket scanning helpers shared by extraction and parsing.
//!
//! All helpers are iterative (no recursion) and only ever slice at byte
//! offsets obtained from `char_indices`, so they are safe on any UTF-8.

/// Given `s` and the byte offset of an opening `{`, returns the byte offset
/// of its matching `}`. Escaped braces (`\{`, `\}`) are skipped.
pub fn matching_brace(s: &str, open: usize) -> Option<usize> {
    let rest = s.get(open..)?;
    if !rest.starts_with('{') {
        return None;
    }
    let mut depth = 0usize;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '{' => depth += 1,
            '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits `s` at `sep` characters that are not nested inside any
/// `()`, `[]` or `{}` (kinds are not matched against each other, so
/// half-open intervals like `[1, 2)` nest correctly).
pub fn split_top_level(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            c if c == sep && depth == 0 => {
                parts.push(s.get(start..i).unwrap_or(""));
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(s.get(start..).unwrap_or(""));
    parts
}

/// True when the bracket at the first char of `s` closes exactly at the last
/// char (depth never returns to zero in between), ignoring bracket kinds.
pub fn outer_brackets_span_all(s: &str) -> bool {
    let mut depth = 0usize;
    let n = s.chars().count();
    for (k, c) in s.chars().enumerate() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                if depth == 0 {
                    return false;
                }
                depth -= 1;
                if depth == 0 && k + 1 != n {
                    return false;
                }
            }
            _ => {
                if depth == 0 {
                    return false;
                }
            }
        }
    }
    depth == 0 && n >= 2
}

/// Replaces every `\cmd{X}` with `X` (commands like `\text`). The command
/// name must not be followed by another letter (`\text` does not match
/// `\textbf`). Unbalanced occurrences are left untouched.
pub fn unwrap_command(s: &str, cmd: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find(cmd) {
        let after = pos + cmd.len();
        let tail = rest.get(after..).unwrap_or("");
        let next = tail.chars().next();
        if next.is_some_and(|c| c.is_ascii_alphabetic()) {
            out.push_str(rest.get(..after).unwrap_or(""));
            rest = tail;
            continue;
        }
        let ws = tail.len() - tail.trim_start().len();
        let brace_at = after + ws;
        match matching_brace(rest, brace_at) {
            Some(close) => {
                out.push_str(rest.get(..pos).unwrap_or(""));
                out.push_str(rest.get(brace_at + 1..close).unwrap_or(""));
                rest = rest.get(close + 1..).unwrap_or("");
            }
            None => {
                out.push_str(rest.get(..after).unwrap_or(""));
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Replaces the no-argument command `cmd` (e.g. `\left`) with `with`,
/// only where it is not followed by another ASCII letter.
pub fn replace_command(s: &str, cmd: &str, with: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find(cmd) {
        let after = pos + cmd.len();
        let tail = rest.get(after..).unwrap_or("");
        out.push_str(rest.get(..pos).unwrap_or(""));
        if tail.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
            out.push_str(cmd);
        } else {
            out.push_str(with);
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brace_matching_handles_nesting_and_escapes() {
        let s = r"\boxed{\frac{1}{2} \}}x";
        assert_eq!(matching_brace(s, 6), Some(s.len() - 2));
        assert_eq!(matching_brace("{", 0), None);
    }

    #[test]
    fn unwrap_and_replace_respect_word_boundaries() {
        assert_eq!(unwrap_command(r"\text{ cm}", r"\text"), " cm");
        assert_eq!(unwrap_command(r"\textbf{a}", r"\text"), r"\textbf{a}");
        assert_eq!(
            replace_command(r"\left(\rightarrow\right)", r"\right", ""),
            r"\left(\rightarrow)"
        );
    }

    #[test]
    fn splits_only_at_top_level() {
        assert_eq!(
            split_top_level("[1, 2), (3,4]", ','),
            vec!["[1, 2)", " (3,4]"]
        );
        assert!(outer_brackets_span_all("[1,2)"));
        assert!(!outer_brackets_span_all("(1)+(2)"));
    }
}
