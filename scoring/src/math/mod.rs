//! Math answer parsing: cleanup, numbers, expressions, structured answers.

pub mod answer;
pub mod clean;
pub mod equation;
pub mod expr;
pub mod identity;
mod lex;
pub mod matrix;
pub mod number;
pub mod sets;
