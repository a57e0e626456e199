//! `Span`: an inclusive range of small counts (digits, steps, numbers).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::rng::Rng;
use super::GenError;

/// An inclusive range of small counts (digits, steps): `3-5` or `4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
