//! JSON bodies → wire types, with errors that name the field: the JSON path
//! of a type error (`messages[0].content`) is the `param` of the 400, and
//! serde's messages are put in JSON terms ([`super::serde_message`]).
//!
//! This is the wire layer's own decoding: it knows nothing of HTTP or the
//! server; [`DecodeError`] becomes an OpenAI `invalid_request_error` one
//! layer up (`server::error`).

use serde::de::DeserializeOwned;

use super::serde_message::plain;

/// A request body that could not be decoded: why, and the field to blame
/// (`None`: the body as a whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    pub message: String,
    pub param: Option<String>,
}

impl DecodeError {
    fn body(message: String) -> Self {
        Self {
            message,
            param: None,
        }
    }
}

/// A request type decodable from a JSON body.
pub trait JsonBody: Sized {
    fn from_json(bytes: &[u8]) -> Result<Self, DecodeError>;
}

/// Deserializes `bytes` (exactly one JSON value: trailing data is an
/// error), reporting the JSON path of a type error as `param`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            DecodeError::body(format!(
                "malformed JSON in request body: {}",
                plain(&inner.to_string())
            ))
        } else {
            rejection(&path, &inner)
        }
    })?;
    de.end().map_err(|e| {
        DecodeError::body(format!(
            "malformed JSON in request body: {e}; the body must be exactly one JSON value"
        ))
    })?;
    Ok(value)
}

/// Decodes one part of a request from the already-parsed body, reporting
/// the JSON path of a type error (`messages[0].content`) as `param`. A
/// missing required field is reported at the top level with its name.
pub fn parse_part<T: DeserializeOwned>(body: &serde_json::Value) -> Result<T, DecodeError> {
    if !body.is_object() {
        return Err(DecodeError::body(
            "the request body must be a JSON object".into(),
        ));
    }
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        rejection(&path, e.inner())
    })
}

/// The error of a data error at `path` (`.` = the top level), in plain
/// language (see [`plain`]).
fn rejection(path: &str, inner: &serde_json::Error) -> DecodeError {
    let message = plain(&inner.to_string());
    if path == "." {
        DecodeError::body(format!("invalid request body: {message}"))
    } else {
        DecodeError {
            message: format!("{path}: {message}"),
            param: Some(path.to_string()),
        }
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
        assert_eq!(e.param.as_deref(), Some("n"));
        assert!(e.message.starts_with("n: invalid type"), "{e}");
        let e = parse::<Req>(br#"{"n": 1, "messages": [1]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0]"));
    }

    #[test]
    fn syntax_errors_and_bad_utf8_are_invalid_requests() {
        for body in [
            &b"{\"n\": 1,"[..],
            b"not json",
            b"{\"n\": 1, \"messages\": [\"\xff\"]}",
        ] {
            let e = parse::<Req>(body).unwrap_err();
            assert_eq!(e.param, None, "{e}");
            assert!(e.message.starts_with("malformed JSON"), "{e}");
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
        assert_eq!(e.param.as_deref(), Some("modle"), "{e:?}");
        assert!(
            e.to_string().starts_with("modle: unknown field `modle`"),
            "{e}"
        );
        let e = parse::<Strict>(br#"{"model": "m", "inner": {"b": 1}}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("inner.b"), "{e:?}");
    }

    #[test]
    fn trailing_data_after_the_body_is_rejected() {
        for body in [
            &br#"{"n": 1, "messages": []} x"#[..],
            br#"{"n": 1, "messages": []}{}"#,
        ] {
            let e = parse::<Req>(body).unwrap_err();
            assert_eq!(e.param, None);
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
