//! Task data: JSONL and Parquet records mapped onto [`Task`] by a
//! [`FieldMap`], with the GSM8K (`#### N`) and MATH (`\boxed{}`) answer
//! conventions read in place ([`AnswerFormat`]).
//!
//! Every error names the file and line (JSONL) or row (Parquet):
//! `tasks.jsonl:17: missing field `prompt` or `messages``. With
//! [`LoadOptions::skip_malformed`] such records are skipped and counted in
//! the [`LoadReport`]. An empty dataset is an error, and
//! [`check_references`] reports, before a run starts, every reference answer
//! its verifier cannot use.

mod check;
mod error;
mod fields;
mod jsonl;
mod load;
mod location;
mod parquet_rows;
mod raw;
mod record;
mod task;

pub use check::{check_references, ensure_references, ReferenceFailure, FIRST_FAILURES};
pub use error::DataError;
pub use fields::{AnswerFormat, FieldMap, LoadOptions};
pub use load::{load_tasks, FileFormat, LoadReport, Loaded, FIRST_ERRORS};
pub use location::Location;
pub use raw::read_raw_records;
pub use task::PASS_RATE_FIELD;
pub use task::{direct_content, think_content, Conversation, Message, Prompt, TargetStyle, Task};

#[cfg(test)]
mod tests;
