//! OpenAI wire types: what clients send ([`request`]) and what they get back
//! ([`response`]). Requests are lenient on the way in (unknown fields are
//! ignored, so SDK upgrades never break a client); checking happens in
//! [`super::validate`], which names the field of any problem.

pub mod request;
pub mod response;

pub use request::{ChatCompletionRequest, CompletionRequest, SamplingFields, VendorFields};
pub use response::*;
