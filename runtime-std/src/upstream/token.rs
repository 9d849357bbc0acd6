//! Anonymous Bearer tokens, as Docker Hub hands them out: one per repository scope, fetched
//! from the challenge's realm and reused until shortly before they expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pyrsia_core::registry::BearerChallenge;
use serde::Deserialize;

use super::UpstreamError;

/// Tokens are dropped this long before their stated expiry, so none is used as it lapses.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);
/// What the token spec says to assume when the server gives no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

struct CachedToken {
    value: String,
    valid_until: Instant,
}

/// A cache of Bearer tokens keyed by scope.
#[derive(Default)]
pub(super) struct TokenCache {
    tokens: Mutex<HashMap<String, CachedToken>>,
}

impl TokenCache {
    /// A still-valid token for `scope`.
    pub(super) fn get(&self, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(scope)
            .filter(|t| t.valid_until > Instant::now())
            .map(|t| t.value.clone())
    }

    /// Fetches a token for the challenge (scope from the challenge, else `default_scope`) and
    /// caches it.
    pub(super) fn fetch(
        &self,
        agent: &ureq::Agent,
        challenge: &BearerChallenge<'_>,
        default_scope: &str,
    ) -> Result<String, UpstreamError> {
        let scope = challenge.scope.unwrap_or(default_scope);
        let mut request = agent.get(challenge.realm).query("scope", scope);
        if let Some(service) = challenge.service {
            request = request.query("service", service);
        }
        let mut response = request.call().map_err(|e| {
            UpstreamError::Unreachable(format!("token endpoint {}: {e}", challenge.realm))
        })?;
        if !response.status().is_success() {
            return Err(UpstreamError::Denied(format!(
                "token endpoint {} answered {}",
                challenge.realm,
                response.status()
            )));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_vec()
            .map_err(|e| UpstreamError::Unreachable(format!("token endpoint: {e}")))?;
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Protocol(format!("token response is not JSON: {e}")))?;
        let value = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| UpstreamError::Protocol("token response has no token".into()))?;
        let lifetime = parsed
            .expires_in
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        let valid_until = Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN);
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.insert(
            scope.to_string(),
            CachedToken {
                value: value.clone(),
                valid_until,
            },
        );
        Ok(value)
    }
}
