//! The JSON body extractor. axum's own `Json` answers malformed bodies with
//! plain-text errors; clients of an OpenAI API expect the OpenAI error shape
//! for every failure, so this one maps content-type, size, syntax and type
//! errors to [`ApiError`]; decoding itself (naming the offending field path
//! when serde knows it) is the wire layer's, [`super::openai::decode`].

use std::time::Duration;

use axum::extract::{FromRequest, Request};
use axum::http::header;
use futures::StreamExt;

use super::error::ApiError;
use super::openai::decode::JsonBody;
use super::state::AppState;

/// A JSON request body that rejects with OpenAI-shaped errors.
pub struct ApiJson<T>(pub T);

impl<T: JsonBody + Send + 'static> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = read_body(
            req,
            state.config.max_body_bytes,
            state.config.body_read_timeout,
        )
        .await?;
        // A large body is parsed on the blocking pool, in a preparation slot
        // (as its tokenization will be): the async workers stay free for
        // everyone else's requests.
        super::tokenize::prepare(state, bytes.len(), move || {
            T::from_json(&bytes).map_err(ApiError::from)
        })
        .await
        .map(ApiJson)
    }
}

/// Bodies over the limit are still read (and discarded) up to this many
/// bytes before answering 413: a server that answers while the client is
/// still sending and then closes the socket makes most HTTP clients report
/// a broken connection instead of the 413. Beyond it the connection is cut.
const MAX_DRAIN_BYTES: usize = 64 << 20;

/// The body within `deadline` (a total deadline from the handler's start:
/// a client trickling bytes cannot hold the request open), else 408.
async fn read_body(req: Request, limit: usize, deadline: Duration) -> Result<Vec<u8>, ApiError> {
    tokio::time::timeout(deadline, read_all(req, limit))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::RequestTimeout(format!(
                "the request body did not arrive within {} s",
                deadline.as_secs()
            )))
        })
}

async fn read_all(req: Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_DRAIN_BYTES) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut stream = req.into_body().into_data_stream();
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::InvalidRequest {
            message: format!("could not read the request body: {e}"),
            param: None,
        })?;
        seen = seen.saturating_add(chunk.len());
        if seen > MAX_DRAIN_BYTES {
            break;
        }
        if seen <= limit {
            buf.extend_from_slice(&chunk);
        }
    }
    if seen > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(buf)
}
