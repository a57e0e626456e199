//! The JSON body extractor. axum's own `Json` answers malformed bodies with
//! plain-text errors; clients of an OpenAI API expect the OpenAI error shape
//! for every failure, so this one maps content-type, size, syntax and type
//! errors to [`ApiError`], naming the offending field path when serde knows it.

use std::time::Duration;

use axum::extract::{FromRequest, Request};
use axum::http::header;
use futures::StreamExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::serde_message::plain;
use super::state::AppState;

/// A JSON request body that rejects with OpenAI-shaped errors.
pub struct ApiJson<T>(pub T);

/// A request type decodable from a JSON body.
pub trait JsonBody: Sized {
    fn from_json(bytes: &[u8]) -> Result<Self, ApiError>;
}

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
        super::tokenize::prepare(state, bytes.len(), move || T::from_json(&bytes))
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

/// Deserializes `bytes` (exactly one JSON value: trailing data is an
/// error), reporting the JSON path of a type error as `param`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::InvalidRequest {
                message: format!(
                    "malformed JSON in request body: {}",
                    plain(&inner.to_string())
                ),
                param: None,
            }
        } else {
            rejection(&path, &inner)
        }
    })?;
    de.end().map_err(|e| ApiError::InvalidRequest {
        message: format!(
            "malformed JSON in request body: {e}; the body must be exactly one JSON value"
        ),
        param: None,
    })?;
    Ok(value)
}

/// Decodes one part of a request from the already-parsed body, reporting
/// the JSON path of a type error (`messages[0].content`) as `param`. A
/// missing required field is reported at the top level with its name.
pub fn parse_part<T: DeserializeOwned>(body: &serde_json::Value) -> Result<T, ApiError> {
    if !body.is_object() {
        return Err(ApiError::InvalidRequest {
            message: "the request body must be a JSON object".into(),
            param: None,
        });
    }
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        rejection(&path, e.inner())
    })
}

/// The 400 of a data error at `path` (`.` = the top level), in plain
/// language (see [`plain`]).
fn rejection(path: &str, inner: &serde_json::Error) -> ApiError {
    let message = plain(&inner.to_string());
    if path == "." {
        ApiError::InvalidRequest {
            message: format!("invalid request body: {message}"),
            param: None,
        }
    } else {
        ApiError::invalid(path, format!("{path}: {message}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Req {
        n: u32,
        messages: Vec<String>,
    }

    #[test]
    fn type_errors_name_the_field() {
        let e = parse::<Req>(br#"{"n": "two", "messages": []}"#).unwrap_err();
        match e {
            ApiError::InvalidRequest { param, message } => {
                assert_eq!(param.as_deref(), Some("n"));
                assert!(message.starts_with("n: invalid type"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let e = parse::<Req>(br#"{"n": 1, "messages": [1]}"#).unwrap_err();
        assert!(matches!(e, ApiError::InvalidRequest { param: Some(p), .. } if p == "messages[0]"));
    }

    use axum::http::StatusCode;

    #[test]
    fn syntax_errors_and_bad_utf8_are_invalid_requests() {
        for body in [
            &b"{\"n\": 1,"[..],
            b"not json",
            b"{\"n\": 1, \"messages\": [\"\xff\"]}",
        ] {
            let e = parse::<Req>(body).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{e}");
        }
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        model: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        a: Option<u32>,
    }

    #[test]
    fn unknown_keys_of_strict_objects_are_named_with_their_path() {
        let e = parse::<Strict>(br#"{"model": "m", "modle": 1}"#).unwrap_err();
        assert!(
            matches!(&e, ApiError::InvalidRequest { param: Some(p), .. } if p == "modle"),
            "{e:?}"
        );
        assert!(
            e.to_string().starts_with("modle: unknown field `modle`"),
            "{e}"
        );
        let e = parse::<Strict>(br#"{"model": "m", "inner": {"b": 1}}"#).unwrap_err();
        assert!(
            matches!(&e, ApiError::InvalidRequest { param: Some(p), .. } if p == "inner.b"),
            "{e:?}"
        );
    }

    #[test]
    fn trailing_data_after_the_body_is_rejected() {
        for body in [
            &br#"{"n": 1, "messages": []} x"#[..],
            br#"{"n": 1, "messages": []}{}"#,
        ] {
            let e = parse::<Req>(body).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            assert!(e.to_string().contains("exactly one JSON value"), "{e}");
        }
        assert!(parse::<Req>(b"{\"n\": 1, \"messages\": []} \n\t").is_ok());
    }

    #[test]
    fn type_errors_are_in_json_terms() {
        let e = parse::<Req>(br#"{"n": -1, "messages": {}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "n: invalid value: integer `-1`, expected an integer from 0 to 4294967295 at line 1 column 8"
        );
        let e = parse::<Req>(br#"{"n": 1, "messages": {}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "messages: invalid type: object, expected an array at line 1 column 21"
        );
    }
}
