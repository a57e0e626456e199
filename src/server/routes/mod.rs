//! HTTP handlers, one file per endpoint family.

pub mod chat;
pub mod completions;
pub mod health;
pub mod metrics;
pub mod models;
pub mod score;
