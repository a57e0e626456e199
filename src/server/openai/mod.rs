//! OpenAI wire types, the bottom layer of the server: what clients send
//! ([`request`], decoded by [`decode`] with errors naming the field, in JSON
//! terms by [`serde_message`]), the typed vendor `selection` field
//! ([`selection`]), and what they get back ([`response`], including the
//! `quorum` report). Nothing here imports the rest of the server. Requests
//! are lenient on the way in (unknown fields are ignored, so SDK upgrades
//! never break a client); checking happens one layer up in
//! `server::validate`, which names the field of any problem.

pub mod decode;
pub mod quorum;
pub mod request;
pub mod response;
pub mod selection;
pub mod serde_message;

pub use quorum::{QuorumReport, RolloutReport};
pub use request::{
    ChatCompletionRequest, CompletionRequest, SamplingFields, ThinkFields, VendorFields,
};
pub use response::*;
pub use selection::{SelectionError, SelectionOptions};
