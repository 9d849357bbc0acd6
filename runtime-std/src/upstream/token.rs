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
/// The longest a token is reused, whatever the server claims (an absurd `expires_in` must
/// neither overflow the clock nor pin a token forever).
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Until when a token the server says expires in `expires_in` seconds is reused: its stated
/// lifetime less a margin, at most [`MAX_LIFETIME`] (no arithmetic on the server's number
/// can overflow).
fn valid_until(now: Instant, expires_in: Option<u64>) -> Instant {
    let lifetime = expires_in
        .map_or(DEFAULT_LIFETIME, Duration::from_secs)
        .min(MAX_LIFETIME);
    now.checked_add(lifetime.saturating_sub(EXPIRY_MARGIN))
        .unwrap_or(now)
}

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
        let valid_until = valid_until(Instant::now(), parsed.expires_in);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_stated_lifetime_is_capped_and_never_overflows() {
        let now = Instant::now();
        assert_eq!(
            valid_until(now, Some(u64::MAX)),
            now + MAX_LIFETIME - EXPIRY_MARGIN
        );
        assert_eq!(valid_until(now, Some(0)), now);
        assert_eq!(
            valid_until(now, None),
            now + DEFAULT_LIFETIME - EXPIRY_MARGIN
        );
    }
}
