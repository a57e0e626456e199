//! The JSON body extractor. axum's own `Json` answers malformed bodies with
//! plain-text errors; clients of an OpenAI API expect the OpenAI error shape
//! for every failure, so this one maps content-type, size, syntax and type
//! errors to [`ApiError`], naming the offending field path when serde knows it.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::state::AppState;

/// A JSON request body that rejects with OpenAI-shaped errors.
pub struct ApiJson<T>(pub T);

/// A request type decodable from a JSON body.
pub trait JsonBody: Sized {
    fn from_json(bytes: &[u8]) -> Result<Self, ApiError>;
}

impl<T: JsonBody> FromRequest<AppState> for ApiJson<T> {
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
        let limit = state.config.max_body_bytes;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e, limit))?;
        T::from_json(&bytes).map(ApiJson)
    }
}

fn body_error(e: BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        ApiError::InvalidRequest {
            message: format!("could not read the request body: {e}"),
            param: None,
        }
    }
}

/// Deserializes `bytes`, reporting the JSON path of a type error as `param`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || path == "." {
            let what = if inner.is_data() {
                "invalid request body"
            } else {
                "malformed JSON in request body"
            };
            ApiError::InvalidRequest {
                message: format!("{what}: {inner}"),
                param: None,
            }
        } else {
            ApiError::invalid(path.clone(), format!("{path}: {inner}"))
        }
    })
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
        let inner = e.into_inner();
        if path == "." {
            ApiError::InvalidRequest {
                message: format!("invalid request body: {inner}"),
                param: None,
            }
        } else {
            ApiError::invalid(path.clone(), format!("{path}: {inner}"))
        }
    })
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

    #[test]
    fn syntax_errors_and_bad_utf8_are_invalid_requests() {
        for body in [&b"{\"n\": 1,"[..], b"not json", b"{\"n\": 1, \"messages\": [\"\xff\"]}"] {
            let e = parse::<Req>(body).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{e}");
        }
    }
}
