//! API-key check for `/v1/*` (`Authorization: Bearer <key>`). Keys are compared in constant time
//! (`subtle`) and every configured key is tried, so response timing does not
//! reveal how much of a guess was right or which key matched.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::{Choice, ConstantTimeEq};

use super::error::ApiError;
use super::state::AppState;

pub async fn require_api_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let keys = &state.config.api_keys;
    if keys.is_empty() {
        return Ok(next.run(req).await);
    }
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(k) if key_matches(keys, k) => Ok(next.run(req).await),
        _ => Err(ApiError::InvalidApiKey),
    }
}

fn key_matches(keys: &[String], given: &str) -> bool {
    let mut ok = Choice::from(0);
    for k in keys {
        ok |= k.as_bytes().ct_eq(given.as_bytes());
    }
    ok.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly() {
        let keys = vec!["sk-a".to_string(), "sk-bb".to_string()];
        assert!(key_matches(&keys, "sk-bb"));
        assert!(!key_matches(&keys, "sk-b"));
        assert!(!key_matches(&keys, ""));
    }
}
