//! `Span`: an inclusive range of small counts (digits, steps, numbers).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::rng::Rng;
use super::GenError;

/// An inclusive range of small counts (digits, steps): `3-5` or `4`; in
/// serde (TOML) the same strings or a plain integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SpanRepr", into = "String")]
pub struct Span {
    pub min: u32,
    pub max: u32,
}

impl Span {
    pub const fn new(min: u32, max: u32) -> Self {
        Span { min, max }
    }

    pub(crate) fn draw(self, rng: &mut Rng) -> u32 {
        rng.range(u64::from(self.min), u64::from(self.max)) as u32
    }

    pub(crate) fn check(self, what: &str, lo: u32, hi: u32) -> Result<(), GenError> {
        if self.min < lo || self.max > hi || self.min > self.max {
            return Err(GenError::BadConfig(format!(
                "{what} {self} must lie within {lo}-{hi}"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

impl FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let num = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{s}` is not N or MIN-MAX"))
        };
        let span = match s.split_once('-') {
            Some((a, b)) => Span::new(num(a)?, num(b)?),
            None => {
                let n = num(s)?;
                Span::new(n, n)
            }
        };
        if span.min > span.max {
            return Err(format!("`{s}`: MIN is above MAX"));
        }
        Ok(span)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SpanRepr {
    Count(u32),
    Text(String),
}

impl TryFrom<SpanRepr> for Span {
    type Error = String;

    fn try_from(r: SpanRepr) -> Result<Self, String> {
        match r {
            SpanRepr::Count(n) => Ok(Span::new(n, n)),
            SpanRepr::Text(s) => s.parse(),
        }
    }
}

impl From<Span> for String {
    fn from(s: Span) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_and_ranges() {
        assert_eq!("3-5".parse::<Span>(), Ok(Span::new(3, 5)));
        assert_eq!("4".parse::<Span>(), Ok(Span::new(4, 4)));
        assert!("5-3".parse::<Span>().is_err());
        assert!("x".parse::<Span>().is_err());
        let s: Vec<Span> = serde_json::from_str(r#"["2-4", 3]"#).unwrap();
        assert_eq!(s, vec![Span::new(2, 4), Span::new(3, 3)]);
        assert_eq!(serde_json::to_string(&Span::new(2, 4)).unwrap(), r#""2-4""#);
        assert!(serde_json::from_str::<Span>(r#""9-1""#).is_err());
    }
}
