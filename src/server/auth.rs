//! API-key check (`Authorization: Bearer <key>`), plus the status-code
//! counter middleware. Keys are compared in constant time (`subtle`) and
//! every configured key is tried, so response timing does not reveal how
//! much of a guess was right or which key matched.
//!
//! With keys configured, the check wraps the whole router: every path needs
//! a key except `/health` (load balancers probe it; without a valid key it
//! shows only its status) and `/metrics` (unless `--metrics-require-key`).
//! Unknown routes and wrong methods therefore answer 401 before 404/405, so
//! an unauthenticated caller learns nothing about the routes.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use subtle::{Choice, ConstantTimeEq};

use super::config::ServerConfig;
use super::error::ApiError;
use super::state::AppState;

pub async fn require_api_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let cfg = &state.config;
    if exempt(cfg, req.uri().path()) || authorized(cfg, req.headers()) {
        Ok(next.run(req).await)
    } else {
        Err(ApiError::InvalidApiKey)
    }
}

/// Paths answered without a key: `/health`, and `/metrics` unless
/// `metrics_require_key`.
fn exempt(cfg: &ServerConfig, path: &str) -> bool {
    match path {
        "/health" => true,
        "/metrics" => !cfg.metrics_require_key,
        _ => false,
    }
}

/// Whether the request may see everything: auth is off, or it carries a
/// valid key.
pub fn authorized(cfg: &ServerConfig, headers: &HeaderMap) -> bool {
    if cfg.api_keys.is_empty() {
        return true;
    }
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .is_some_and(|k| key_matches(&cfg.api_keys, k))
}

/// The token of a `Bearer` credential: the scheme is case-insensitive
/// (RFC 9110 §11.1) and any amount of whitespace may follow it.
fn bearer_token(value: &str) -> Option<&str> {
    let value = value.trim();
    let split = value.find(|c: char| c.is_ascii_whitespace())?;
    let (scheme, token) = value.split_at(split);
    let token = token.trim_start();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn key_matches(keys: &[String], given: &str) -> bool {
    let mut ok = Choice::from(0);
    for k in keys {
        ok |= k.as_bytes().ct_eq(given.as_bytes());
    }
    ok.into()
}

/// The start-up line saying whether auth is on and with how many keys
/// (never the keys themselves).
pub fn startup_summary(cfg: &ServerConfig) -> String {
    match cfg.api_keys.len() {
        0 => "auth off: no API keys configured, every route is open".into(),
        n => format!(
            "auth on: {n} API key{}; /health open (status only), /metrics {}",
            if n == 1 { "" } else { "s" },
            if cfg.metrics_require_key {
                "needs a key"
            } else {
                "open"
            }
        ),
    }
}

/// Logs [`startup_summary`] (a warning when auth is off on a non-loopback
/// address).
pub fn log_startup(cfg: &ServerConfig) {
    let line = startup_summary(cfg);
    let loopback = cfg
        .host
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(cfg.host == "localhost");
    if cfg.api_keys.is_empty() && !loopback {
        tracing::warn!(host = %cfg.host, "{line}");
    } else {
        tracing::info!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn keys_match_exactly() {
        let keys = vec!["sk-a".to_string(), "sk-bb".to_string()];
        assert!(key_matches(&keys, "sk-bb"));
        assert!(!key_matches(&keys, "sk-b"));
        assert!(!key_matches(&keys, ""));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_with_any_spacing() {
        for v in [
            "Bearer sk-a",
            "bearer sk-a",
            "BEARER sk-a",
            "bEaReR    sk-a",
            "Bearer\tsk-a ",
            "  Bearer sk-a",
        ] {
            assert_eq!(bearer_token(v), Some("sk-a"), "{v:?}");
        }
        for v in [
            "sk-a",
            "Bearer",
            "Bearer   ",
            "Basic sk-a",
            "Bearersk-a",
            "",
        ] {
            assert_eq!(bearer_token(v), None, "{v:?}");
        }
    }

    fn cfg(keys: &[&str], metrics_require_key: bool) -> ServerConfig {
        ServerConfig {
            api_keys: keys.iter().map(|k| k.to_string()).collect(),
            metrics_require_key,
            ..ServerConfig::default()
        }
    }

    #[test]
    fn authorized_needs_a_matching_bearer_key_only_when_keys_exist() {
        let mut h = HeaderMap::new();
        assert!(authorized(&cfg(&[], false), &h));
        assert!(!authorized(&cfg(&["sk-a"], false), &h));
        h.insert(AUTHORIZATION, HeaderValue::from_static("BEARER  sk-a"));
        assert!(authorized(&cfg(&["sk-a"], false), &h));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer sk-b"));
        assert!(!authorized(&cfg(&["sk-a"], false), &h));
    }

    #[test]
    fn only_health_and_optionally_metrics_are_exempt() {
        let open = cfg(&["k"], false);
        let strict = cfg(&["k"], true);
        assert!(exempt(&open, "/health") && exempt(&strict, "/health"));
        assert!(exempt(&open, "/metrics"));
        assert!(!exempt(&strict, "/metrics"));
        for p in ["/", "/v1/models", "/health/", "/metrics/x", "/nope"] {
            assert!(!exempt(&open, p), "{p}");
        }
    }

    #[test]
    fn startup_summary_counts_keys_without_showing_them() {
        let s = startup_summary(&cfg(&["sk-secret-1", "sk-secret-2"], true));
        assert!(s.starts_with("auth on: 2 API keys"), "{s}");
        assert!(s.contains("/metrics needs a key"), "{s}");
        assert!(!s.contains("sk-secret"), "{s}");
        assert!(startup_summary(&cfg(&[], false)).starts_with("auth off"));
        let one = startup_summary(&cfg(&["k"], false));
        assert!(one.starts_with("auth on: 1 API key;"), "{one}");
    }
}
