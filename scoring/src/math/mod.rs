//! Math answer parsing: cleanup, numbers, expressions, structured answers.

pub mod answer;
pub mod clean;
pub mod expr;
mod lex;
pub mod number;
