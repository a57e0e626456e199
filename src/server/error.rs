//! The one error type of the HTTP layer. Every failure a client can see —
//! validation, auth, routing, extractor rejections, engine refusals — is an
//! [`ApiError`] and leaves as OpenAI's body
//! `{"error": {"message", "type", "param", "code"}}` with a matching status,
//! so SDKs raise their typed exceptions (`BadRequestError`, `RateLimitError`, ...).

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::openai::decode::DecodeError;
use crate::engine::{FailureKind, RequestFailure, SubmitError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// A field is missing, has the wrong type or is out of range. `param`
    /// names the field (`messages`, `temperature`, `messages[0].content`).
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    /// Prompt plus completion budget exceed the model's context window.
    #[error("{0}")]
    ContextLength(String),
    #[error("invalid API key")]
    InvalidApiKey,
    #[error("the model `{0}` does not exist")]
    ModelNotFound(String),
    #[error("no route for {0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("content-type must be application/json")]
    UnsupportedMediaType,
    /// The client was too slow sending the request (body read timeout).
    #[error("{0}")]
    RequestTimeout(String),
    /// Rejections of the HTTP parser itself, answered before any route runs.
    #[error("the request headers are too large")]
    HeadersTooLarge,
    #[error("the request URI is too long")]
    UriTooLong,
    /// Too many requests right now; the client should retry after a pause.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// Loading, shutting down, or an engine gone.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an engine failure; the message is safe to show.
    #[error("{0}")]
    Internal(String),
    /// A rejection by the HTTP layer itself (axum, tower) that has no
    /// variant of its own, with the status it chose; see [`openai_shaped`].
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
}

#[derive(Serialize)]
struct Body<'a> {
    error: ErrorObject<'a>,
}

/// OpenAI's error object (also sent as an SSE event mid-stream).
#[derive(Debug, Serialize)]
pub struct ErrorObject<'a> {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub param: Option<&'a str>,
    pub code: Option<&'static str>,
}

/// An error's OpenAI `type` and `code`: set as a response extension by
/// [`ApiError::into_response`] so the access log can name the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorInfo {
    pub kind: &'static str,
    pub code: Option<&'static str>,
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        Self::InvalidRequest {
            message: e.message,
            param: e.param,
        }
    }
}

impl ApiError {
    /// Invalid-request error naming `param`.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
        }
    }

    /// The same error (kind, status, `param`) with `what` in front of its
    /// message: "reward model scoring failed: ...".
    pub fn context(self, what: &str) -> Self {
        let pre = |m: String| format!("{what}: {m}");
        match self {
            Self::InvalidRequest { message, param } => Self::InvalidRequest {
                message: pre(message),
                param,
            },
            Self::ContextLength(m) => Self::ContextLength(pre(m)),
            Self::RequestTimeout(m) => Self::RequestTimeout(pre(m)),
            Self::RateLimited {
                message,
                retry_after_secs,
            } => Self::RateLimited {
                message: pre(message),
                retry_after_secs,
            },
            Self::Unavailable(m) => Self::Unavailable(pre(m)),
            Self::Internal(m) => Self::Internal(pre(m)),
            Self::Rejected { status, message } => Self::Rejected {
                status,
                message: pre(message),
            },
            other => other,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest { .. } | Self::ContextLength(_) => StatusCode::BAD_REQUEST,
            Self::InvalidApiKey => StatusCode::UNAUTHORIZED,
            Self::ModelNotFound(_) | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Rejected { status, .. } => *status,
        }
    }

    /// The error's `type` and `code`.
    pub fn info(&self) -> ErrorInfo {
        self.parts().0
    }

    /// The body's error object.
    pub fn object(&self) -> ErrorObject<'_> {
        let (info, param) = self.parts();
        ErrorObject {
            message: self.to_string(),
            kind: info.kind,
            param,
            code: info.code,
        }
    }

    /// `type` and `code`, and the `param` the error names.
    fn parts(&self) -> (ErrorInfo, Option<&str>) {
        let (kind, code, param) = match self {
            Self::InvalidRequest { param, .. } => ("invalid_request_error", None, param.as_deref()),
            Self::ContextLength(_) => (
                "invalid_request_error",
                Some("context_length_exceeded"),
                Some("messages"),
            ),
            Self::InvalidApiKey => ("invalid_request_error", Some("invalid_api_key"), None),
            Self::ModelNotFound(_) => (
                "invalid_request_error",
                Some("model_not_found"),
                Some("model"),
            ),
            Self::NotFound(_) => ("invalid_request_error", Some("not_found"), None),
            Self::MethodNotAllowed => ("invalid_request_error", Some("method_not_allowed"), None),
            Self::PayloadTooLarge { .. } => {
                ("invalid_request_error", Some("payload_too_large"), None)
            }
            Self::UnsupportedMediaType => (
                "invalid_request_error",
                Some("unsupported_media_type"),
                None,
            ),
            Self::RequestTimeout(_) => ("invalid_request_error", Some("request_timeout"), None),
            Self::HeadersTooLarge => (
                "invalid_request_error",
                Some("request_header_fields_too_large"),
                None,
            ),
            Self::UriTooLong => ("invalid_request_error", Some("uri_too_long"), None),
            Self::RateLimited { .. } => ("rate_limit_error", Some("rate_limit_exceeded"), None),
            Self::Unavailable(_) => ("server_error", Some("service_unavailable"), None),
            Self::Internal(_) => ("server_error", Some("internal_error"), None),
            Self::Rejected { status, .. } if status.is_server_error() => {
                ("server_error", None, None)
            }
            Self::Rejected { .. } => ("invalid_request_error", None, None),
        };
        (ErrorInfo { kind, code }, param)
    }

    /// The JSON body as a string (for SSE error events).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Body {
            error: self.object(),
        })
        .unwrap_or_else(|_| r#"{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}"#.into())
    }

    /// The engine went away before finishing a request.
    pub fn engine_gone() -> Self {
        Self::from(RequestFailure::stopped())
    }

    /// Maps an engine refusal; `retry_after_secs` is the configured hint.
    pub fn from_submit(e: SubmitError, retry_after_secs: u64) -> Self {
        match e {
            SubmitError::QueueFull { .. } => Self::RateLimited {
                message: e.to_string(),
                retry_after_secs,
            },
            SubmitError::ShuttingDown => Self::Unavailable(e.to_string()),
            SubmitError::TooLarge { .. } => Self::ContextLength(e.to_string()),
            SubmitError::NoRewardModel => Self::invalid("model", e.to_string()),
        }
    }
}

/// A failed engine request: the client's faults are 400s (context and KV
/// budget ones as `context_length_exceeded`), the engine's a 500, a stopped
/// engine a 503.
impl From<RequestFailure> for ApiError {
    fn from(f: RequestFailure) -> Self {
        match f.kind {
            FailureKind::InvalidRequest => Self::InvalidRequest {
                message: f.message,
                param: None,
            },
            FailureKind::ContextLength | FailureKind::KvBudget => Self::ContextLength(f.message),
            FailureKind::Internal => Self::Internal(f.message),
            FailureKind::Stopped => Self::Unavailable(f.message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status(),
            [(header::CONTENT_TYPE, "application/json")],
            self.to_json(),
        )
            .into_response();
        res.extensions_mut().insert(self.info());
        if let Self::RateLimited {
            retry_after_secs, ..
        } = &self
        {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        res
    }
}

/// Middleware around the whole router: an error response that is not
/// already JSON (axum's extractor rejections and fallbacks answer in plain
/// text) leaves with the OpenAI body instead, keeping its status and
/// headers, so no rejection by the HTTP layer escapes the error shape.
pub async fn openai_shaped(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    // Rejection texts are a line or two; a longer body is not one of them.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request rejected")
            .to_ascii_lowercase()
    } else {
        super::openai::serde_message::plain(&text)
    };
    let err = match status {
        StatusCode::NOT_FOUND => ApiError::NotFound(path),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
        StatusCode::BAD_REQUEST => ApiError::InvalidRequest {
            message,
            param: None,
        },
        _ => ApiError::Rejected { status, message },
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(err.to_json()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_openai_shape() {
        let v: serde_json::Value =
            serde_json::from_str(&ApiError::invalid("temperature", "too hot").to_json()).unwrap();
        assert_eq!(v["error"]["message"], "too hot");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "temperature");
        assert!(v["error"]["code"].is_null());
    }

    #[test]
    fn responses_carry_the_error_type_and_code_for_the_access_log() {
        let res = ApiError::InvalidApiKey.into_response();
        assert_eq!(
            res.extensions().get::<ErrorInfo>(),
            Some(&ErrorInfo {
                kind: "invalid_request_error",
                code: Some("invalid_api_key")
            })
        );
    }

    #[test]
    fn queue_full_is_429_with_retry_after() {
        let res = ApiError::from_submit(SubmitError::QueueFull { capacity: 2 }, 3).into_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn engine_failures_map_to_the_status_of_their_kind() {
        use crate::engine::EngineError;
        // What the worker sends for a request its validation refuses.
        let refused = ApiError::from(RequestFailure::from(EngineError::Invalid(
            "n must be at least 1".into(),
        )));
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let v: serde_json::Value = serde_json::from_str(&refused.to_json()).unwrap();
        assert_eq!(v["error"]["message"], "n must be at least 1");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let status = |kind| ApiError::from(RequestFailure::new(kind, "m")).status();
        assert_eq!(status(FailureKind::ContextLength), StatusCode::BAD_REQUEST);
        assert_eq!(status(FailureKind::KvBudget), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(FailureKind::Internal),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let stopped = ApiError::from(RequestFailure::stopped());
        assert_eq!(stopped.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            stopped.to_string(),
            "the engine stopped before finishing the request"
        );
    }

    #[tokio::test]
    async fn plain_text_rejections_get_the_openai_body_and_keep_their_headers() {
        use axum::routing::get;
        use tower::ServiceExt;
        let router = axum::Router::new()
            .route(
                "/text",
                get(|| async { (StatusCode::BAD_REQUEST, "Failed to parse the request body") }),
            )
            .route(
                "/timeout",
                get(|| async { (StatusCode::REQUEST_TIMEOUT, [(header::CONNECTION, "close")]) }),
            )
            .route("/ok", get(|| async { "fine" }))
            .layer(axum::middleware::from_fn(openai_shaped));
        let call = |uri: &'static str| {
            let router = router.clone();
            async move {
                let req = Request::builder()
                    .uri(uri)
                    .body(axum::body::Body::empty())
                    .unwrap();
                let res = router.oneshot(req).await.unwrap();
                let status = res.status();
                let headers = res.headers().clone();
                let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
                    .await
                    .unwrap();
                (
                    status,
                    headers,
                    String::from_utf8_lossy(&bytes).into_owned(),
                )
            }
        };
        let (status, headers, body) = call("/text").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["message"], "Failed to parse the request body");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let (status, headers, body) = call("/timeout").await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(headers[header::CONNECTION], "close");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["message"], "request timeout");
        let (status, _, body) = call("/ok").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "fine"));
    }
}
