//! `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` challenges (RFC 6750 §3, as
//! Docker Hub and distribution send them), parsed without allocating.

/// A Bearer challenge: where to get a token, for which service and scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BearerChallenge<'a> {
    /// The token endpoint URL.
    pub realm: &'a str,
    /// The `service` to ask the token for, when given.
    pub service: Option<&'a str>,
    /// The `scope` the resource needs (`repository:library/alpine:pull`), when given.
    pub scope: Option<&'a str>,
}

/// Why a challenge could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ChallengeError {
    /// The scheme is not `Bearer` (e.g. `Basic`).
    NotBearer,
    /// No `realm` parameter.
    MissingRealm,
    /// Parameters are not `key=value` or `key="value"` pairs.
    Malformed,
}

impl core::fmt::Display for ChallengeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ChallengeError::NotBearer => "authentication challenge is not Bearer",
            ChallengeError::MissingRealm => "Bearer challenge has no realm",
            ChallengeError::Malformed => "authentication challenge is malformed",
        })
    }
}

impl core::error::Error for ChallengeError {}

impl<'a> BearerChallenge<'a> {
    /// Parses a `WWW-Authenticate` header value. Quoted values may not contain `"` (registries
    /// never send escaped quotes); unknown parameters (`error`, ...) are ignored.
    pub fn parse(header: &'a str) -> Result<Self, ChallengeError> {
        let header = header.trim();
        let (scheme, mut params) = header.split_once(' ').unwrap_or((header, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ChallengeError::NotBearer);
        }
        let mut challenge = BearerChallenge {
            realm: "",
            service: None,
            scope: None,
        };
        loop {
            params = params.trim_start_matches([' ', ',']);
            if params.is_empty() {
                break;
            }
            let (key, rest) = params.split_once('=').ok_or(ChallengeError::Malformed)?;
            let (value, rest) = match rest.strip_prefix('"') {
                Some(quoted) => quoted.split_once('"').ok_or(ChallengeError::Malformed)?,
                None => rest.split_once(',').unwrap_or((rest, "")),
            };
            match known_parameter(key.trim()) {
                Some("realm") => challenge.realm = value,
                Some("service") => challenge.service = Some(value),
                Some("scope") => challenge.scope = Some(value),
                _ => {}
            }
            params = rest;
        }
        if challenge.realm.is_empty() {
            return Err(ChallengeError::MissingRealm);
        }
        Ok(challenge)
    }
}

/// The parameter's canonical name when it is one of the three we use (names are
/// case-insensitive).
fn known_parameter(key: &str) -> Option<&'static str> {
    ["realm", "service", "scope"]
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_docker_hub_challenge() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#;
        let c = BearerChallenge::parse(h).unwrap();
        assert_eq!(c.realm, "https://auth.docker.io/token");
        assert_eq!(c.service, Some("registry.docker.io"));
        assert_eq!(c.scope, Some("repository:library/alpine:pull"));
    }

    #[test]
    fn tolerates_spacing_unquoted_and_unknown_parameters() {
        let h = r#"bearer realm=http://127.0.0.1:9/token, error="invalid_token" ,Service="svc""#;
        let c = BearerChallenge::parse(h).unwrap();
        assert_eq!(c.realm, "http://127.0.0.1:9/token");
        assert_eq!(c.service, Some("svc"));
        assert_eq!(c.scope, None);
    }

    #[test]
    fn rejects_unusable_challenges() {
        assert_eq!(
            BearerChallenge::parse(r#"Basic realm="x""#),
            Err(ChallengeError::NotBearer)
        );
        assert_eq!(
            BearerChallenge::parse(r#"Bearer service="x""#),
            Err(ChallengeError::MissingRealm)
        );
        assert_eq!(
            BearerChallenge::parse(r#"Bearer realm="x"#),
            Err(ChallengeError::Malformed)
        );
        assert_eq!(
            BearerChallenge::parse("Bearer realm"),
            Err(ChallengeError::Malformed)
        );
        assert_eq!(BearerChallenge::parse(""), Err(ChallengeError::NotBearer));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,120}") {
            let _ = BearerChallenge::parse(&s);
        }
    }
}
