//! Set-valued answers written without set braces: `\pm`.
//! (`x \in S`, `\mathbb{R}` and "x = 1 or x = 6" are rewritten by the
//! cleaner and the span extractor; duplicates are dropped when sets are
//! compared, see [`crate::equivalence`].)

/// Splits `a \pm b` into `a + b` and `a - (b)`, and `\pm b` into `b` and
/// `-(b)`; `None` unless `s` has exactly one `\pm` (or `\mp`).
pub fn plus_minus(s: &str) -> Option<[String; 2]> {
    let (op, pos) = [r"\pm", r"\mp"]
        .iter()
        .find_map(|op| s.find(op).map(|p| (*op, p)))?;
    let before = s.get(..pos)?.trim();
    let after = s.get(pos + op.len()..)?.trim();
    if after.is_empty() || after.contains(r"\pm") || after.contains(r"\mp") {
        return None;
    }
    let (plus, minus) = if before.is_empty() {
        (after.to_string(), format!("-({after})"))
    } else {
        (format!("{before}+{after}"), format!("{before}-({after})"))
    };
    Some(if op == r"\mp" {
        [minus, plus]
    } else {
        [plus, minus]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_plus_minus() {
        assert_eq!(
            plus_minus(r"\pm 3"),
            Some(["3".to_string(), "-(3)".to_string()])
        );
        assert_eq!(
            plus_minus(r"1 \pm \sqrt{2}"),
            Some([r"1+\sqrt{2}".to_string(), r"1-(\sqrt{2})".to_string()])
        );
        assert_eq!(plus_minus(r"\pm 1 \pm 2"), None);
        assert_eq!(plus_minus("3"), None);
    }
}
