//! Presentation cleanup: turns a raw answer string into a canonical
//! lower-case LaTeX-ish string (no `$`, `\text{}`, `\left`, units, ...).
//!
//! `clean` is iterated to a fixpoint so that `clean(clean(x)) == clean(x)`.

use super::matrix::ROW_SEP;
use crate::braces::{replace_command, unwrap_command};
use regex::Regex;
use std::sync::LazyLock;

const UNWRAP: &[&str] = &[
    r"\textbf",
    r"\textit",
    r"\textrm",
    r"\textnormal",
    r"\textup",
    r"\textsf",
    r"\text",
    r"\mathrm",
    r"\mathbf",
    r"\mathit",
    r"\mathsf",
    r"\mathtt",
    r"\mathnormal",
    r"\mbox",
    r"\hbox",
    r"\operatorname",
    r"\boxed",
    r"\fbox",
    r"\emph",
    r"\bm",
    r"\boldsymbol",
];

const DROP: &[&str] = &[
    r"\left",
    r"\right",
    r"\displaystyle",
    r"\textstyle",
    r"\bigl",
    r"\bigr",
    r"\biggl",
    r"\biggr",
    r"\big",
    r"\bigg",
    r"\quad",
    r"\qquad",
    r"\degree",
    r"\degrees",
    r"\limits",
];

const LITERALS: &[(&str, &str)] = &[
    ("\u{2212}", "-"),
    ("\u{2013}", "-"),
    ("\u{2014}", "-"),
    ("\u{3c0}", r"\pi "),
    ("\u{221e}", r"\infty "),
    ("\u{d7}", r"\times "),
    ("\u{b7}", r"\cdot "),
    ("\u{f7}", r"\div "),
    ("\u{221a}", r"\sqrt"),
    ("\u{b0}", ""),
    ("\u{a0}", " "),
    ("\u{2009}", ""),
    ("\u{202f}", ""),
    ("\u{222a}", r"\cup "),
    (r"\$", ""),
    ("$", ""),
    (r"^{\circ}", ""),
    (r"^\circ", ""),
    (r"\circ", ""),
    (r"\!", ""),
    (r"\,", ""),
    (r"\;", ""),
    (r"\:", ""),
    (r"\ ", " "),
    (r"\%", "%"),
    ("{,}", ","),
    ("~", " "),
    (r"\lbrace", r"\{"),
    (r"\rbrace", r"\}"),
    (r"\lvert", "|"),
    (r"\rvert", "|"),
    (r"\mathbb{r}", r"(-\infty, \infty)"),
    (r"\emptyset", r"\{\}"),
    (r"\varnothing", r"\{\}"),
];

static ASSIGN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[a-z](?:_\{?[a-z0-9]+\}?)?|[a-z]\([a-z]\))\s*(?:=|\\approx)\s*(.+)$")
        .expect("static regex")
});

static UNITS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(.*\d.*?[^a-z\\])\s*(?:square\s+|sq\.?\s+|cubic\s+)?",
        r"(?:units?|cm|centimet(?:er|re)s?|mm|millimet(?:er|re)s?|km|kilomet(?:er|re)s?|met(?:er|re)s?|",
        r"inch(?:es)?|feet|foot|ft|yards?|miles?|mph|kph|km/h|m/s|kg|kilograms?|grams?|mg|pounds?|lbs?|",
        r"ounces?|oz|lit(?:er|re)s?|ml|gallons?|seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|",
        r"months?|years?|dollars?|cents?|euros?|degrees?|radians?|rad)",
        r"(?:\^\{?[23]\}?|\u{b2}|\u{b3})?$"
    ))
    .expect("static regex")
});

static SHORT_UNITS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(.*\d)\s+(?:m|g|s|h|l)(?:\^\{?[23]\}?)?$").expect("static regex")
});

static PERCENT_WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(.*\d.*?)\s*(?:percent|per cent|pct)$").expect("static regex"));

static THOUSANDS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?$").expect("static regex"));

static SPACES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\s+").expect("static regex"));

static MEMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z](?:_\{?[a-z0-9]+\}?)?\s*\\in\s*(.+)$").expect("static regex")
});

/// Words (two letters or more) in `\text{…}` after a number: units or nouns
/// ("12\text{ kg}", "256\text{ cookies}"), dropped the way math-verify
/// drops them. One letter (`\mathrm{e}`) may be a constant; "5 m" is left
/// to the unit patterns below.
static TEXT_UNIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(.*[\d}])\s*\\(?:text|mbox|mathrm)\{\s*[a-z][a-z .]+\}(?:\^\{?[23]\}?)?$")
        .expect("static regex")
});

/// One cleanup pass; `keep_equations` keeps `x = …` whole (for
/// [`clean_math`]), otherwise a lone-variable left side is dropped.
fn clean_once(s: &str, keep_equations: bool) -> String {
    let mut s = s.trim().to_lowercase();
    if s.contains(r"\\") {
        s = s.replace(r"\\", ROW_SEP);
    }
    if let Some(c) = TEXT_UNIT.captures(&s) {
        s = c.get(1).map_or("", |m| m.as_str()).to_string();
    }
    for (from, to) in LITERALS {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    for (open, close) in [(r"\(", r"\)"), (r"\[", r"\]")] {
        if let Some(inner) = s.strip_prefix(open).and_then(|r| r.strip_suffix(close)) {
            s = inner.to_string();
        }
    }
    for cmd in UNWRAP {
        if s.contains(cmd) {
            s = unwrap_command(&s, cmd);
        }
    }
    for cmd in DROP {
        if s.contains(cmd) {
            s = replace_command(&s, cmd, "");
        }
    }
    for cmd in [r"\dfrac", r"\tfrac", r"\cfrac"] {
        if s.contains(cmd) {
            s = replace_command(&s, cmd, r"\frac");
        }
    }
    s = SPACES.replace_all(&s, " ").trim().to_string();
    while let Some(rest) = s.strip_suffix('.') {
        s = rest.trim_end().to_string();
    }
    if !keep_equations {
        if let Some(c) = ASSIGN.captures(&s) {
            let rest = c.get(1).map_or("", |m| m.as_str());
            if !rest.contains('=') {
                s = rest.to_string();
            }
        }
    }
    if let Some(c) = MEMBER.captures(&s) {
        s = c.get(1).map_or("", |m| m.as_str()).to_string();
    }
    for re in [&*UNITS, &*SHORT_UNITS] {
        if let Some(c) = re.captures(&s) {
            s = c.get(1).map_or("", |m| m.as_str()).trim_end().to_string();
        }
    }
    if let Some(c) = PERCENT_WORD.captures(&s) {
        s = format!("{}%", c.get(1).map_or("", |m| m.as_str()).trim_end());
    }
    if THOUSANDS.is_match(&s) {
        s = s.replace(',', "");
    }
    s
}

/// Cleans presentation noise from an answer string. Idempotent.
/// A lone-variable assignment `x = 5` is reduced to its value.
pub fn clean(s: &str) -> String {
    clean_with(s, false)
}

/// [`clean`] that keeps equations whole (`y = 7` stays `y = 7`), for
/// answers compared as equations.
pub fn clean_math(s: &str) -> String {
    clean_with(s, true)
}

fn clean_with(s: &str, keep_equations: bool) -> String {
    let mut cur = clean_once(s, keep_equations);
    for _ in 0..8 {
        let next = clean_once(&cur, keep_equations);
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn strips_latex_noise() {
        assert_eq!(clean(r"$\text{Yes}$."), "yes");
        assert_eq!(clean(r"\left( 1, 2 \right)"), "( 1, 2 )");
        assert_eq!(clean(r"90^\circ"), "90");
        assert_eq!(clean(r"\$1{,}000"), "1000");
        assert_eq!(clean(r"x = \dfrac{1}{2}"), r"\frac{1}{2}");
        assert_eq!(clean("12 square units"), "12");
        assert_eq!(clean(r"5\text{ cm}^2"), "5");
        assert_eq!(clean("50 percent"), "50%");
        assert_eq!(clean("1,234,567.5"), "1234567.5");
        assert_eq!(clean("1, 234"), "1, 234");
    }

    #[test]
    fn units_membership_and_reals() {
        use super::clean_math;
        assert_eq!(clean(r"256\text{ cookies}"), "256");
        assert_eq!(clean(r"12\text{ kg}"), "12");
        // One letter in \mathrm is a constant (e), not a unit.
        assert_eq!(clean(r"2\mathrm{e}"), "2e");
        assert_eq!(clean(r"x \in \{1, 2\}"), r"\{1, 2\}");
        assert_eq!(clean(r"\mathbb{R}"), r"(-\infty, \infty)");
        assert_eq!(clean_math("y = 7"), "y = 7");
        // A one-letter unit follows a number, not a variable.
        assert_eq!(clean("5 m"), "5");
        assert_eq!(clean_math("-3 = y + s"), "-3 = y + s");
        assert_eq!(clean("y = 7"), "7");
        assert_eq!(clean(r"1 & 2 \\ 3 & 4"), r"1 & 2 \cr 3 & 4");
    }
}
