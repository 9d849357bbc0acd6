//! The client for an upstream registry, speaking Docker Hub's dialect of the distribution API:
//! Bearer challenges with anonymous per-repository tokens, every manifest media type in
//! `Accept`, redirects for blobs (without forwarding credentials), bounded timeouts.

mod token;

use std::io::Read;
use std::time::Duration;

use pyrsia_core::digest::Digest;
use pyrsia_core::manifest::MANIFEST_LEN_MAX;
use pyrsia_core::media_type::MediaType;
use pyrsia_core::registry::BearerChallenge;
use ureq::http::{Response, StatusCode};

use token::TokenCache;

/// Docker Hub's registry endpoint: the default upstream for `docker.io`.
pub const DOCKER_HUB_URL: &str = "https://registry-1.docker.io";

/// Why an upstream request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// Could not connect, timed out, the connection broke, or the upstream answered 5xx: the
    /// caller may fall back to what it has cached.
    Unreachable(String),
    /// The upstream says the manifest, blob or repository does not exist.
    NotFound,
    /// The upstream refused access (401/403 after authenticating).
    Denied(String),
    /// The upstream is rate-limiting us.
    TooManyRequests,
    /// The upstream answered something that breaks the protocol.
    Protocol(String),
    /// This node does not fetch from that registry host: it is neither mapped with
    /// `--upstream` nor listed with `--allow-upstream` (nothing was contacted).
    NotAllowed(String),
    /// Too many requests of this node already wait on upstream downloads: nothing was
    /// contacted (the workers left are kept for what the node can answer itself).
    Busy,
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Unreachable(why) => write!(f, "upstream unreachable: {why}"),
            UpstreamError::NotFound => f.write_str("not found upstream"),
            UpstreamError::Denied(why) => write!(f, "upstream denied access: {why}"),
            UpstreamError::TooManyRequests => f.write_str("upstream rate limit reached"),
            UpstreamError::Protocol(why) => write!(f, "upstream protocol error: {why}"),
            UpstreamError::Busy => {
                f.write_str("too many requests are waiting on upstream downloads")
            }
            UpstreamError::NotAllowed(host) => write!(
                f,
                "this node does not fetch from {host} (the operator can add --allow-upstream {host})"
            ),
        }
    }
}

impl std::error::Error for UpstreamError {}

/// Timeouts for upstream requests. Both bound how long a client can wait on a dead upstream.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// To establish a TCP (and TLS) connection.
    pub connect: Duration,
    /// For any single read, headers or body: a stalled transfer fails after this long.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            read: Duration::from_secs(30),
        }
    }
}

/// A manifest as fetched from the upstream.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// The `Content-Type` it came with.
    pub content_type: Option<String>,
    /// The `Docker-Content-Digest` it came with.
    pub digest_header: Option<Digest>,
}

/// A blob body being received from the upstream.
pub struct BlobBody {
    /// The bytes, streaming.
    pub reader: Box<dyn Read + Send>,
    /// `Content-Length`, when given.
    pub len: Option<u64>,
    /// Whether this is a 206 answer to a `Range` request.
    pub partial: bool,
}

/// The HTTP client every upstream request uses: `timeouts`, redirects followed, statuses
/// returned rather than raised, Pyrsia's user agent.
pub(crate) fn agent(timeouts: Timeouts) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(timeouts.connect))
        .timeout_per_read(Some(timeouts.read))
        .timeout_recv_response(Some(timeouts.read))
        .max_redirects(10)
        .user_agent(concat!("pyrsia/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

/// One upstream registry.
pub struct Upstream {
    base_url: String,
    agent: ureq::Agent,
    tokens: TokenCache,
}

impl Upstream {
    /// A client for the registry at `base_url` (`https://registry-1.docker.io`,
    /// `http://127.0.0.1:5000`).
    pub fn new(base_url: &str, timeouts: Timeouts) -> Self {
        Upstream {
            base_url: base_url.trim_end_matches('/').to_string(),
            agent: agent(timeouts),
            tokens: TokenCache::default(),
        }
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Resolves a manifest reference without downloading it: the digest, if the upstream says.
    pub fn head_manifest(
        &self,
        repository: &str,
        reference: &str,
        accept: &[MediaType],
    ) -> Result<Option<Digest>, UpstreamError> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base_url);
        let response = self.send(repository, |agent| {
            agent
                .head(&url)
                .header("Accept", accept_header(accept))
                .call()
        })?;
        Ok(digest_header(&response))
    }

    /// Downloads a manifest (at most [`MANIFEST_LEN_MAX`] bytes).
    pub fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
        accept: &[MediaType],
    ) -> Result<FetchedManifest, UpstreamError> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base_url);
        let mut response = self.send(repository, |agent| {
            agent
                .get(&url)
                .header("Accept", accept_header(accept))
                .call()
        })?;
        let content_type = header(&response, "content-type").map(str::to_string);
        let digest_header = digest_header(&response);
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MANIFEST_LEN_MAX as u64)
            .read_to_vec()
            .map_err(|e| UpstreamError::Unreachable(format!("reading manifest: {e}")))?;
        Ok(FetchedManifest {
            bytes,
            content_type,
            digest_header,
        })
    }

    /// Starts downloading a blob from byte `offset` (a `Range` request when non-zero).
    pub fn get_blob(
        &self,
        repository: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<BlobBody, UpstreamError> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base_url);
        let response = self.send(repository, |agent| {
            let request = agent.get(&url);
            if offset > 0 {
                request.header("Range", format!("bytes={offset}-")).call()
            } else {
                request.call()
            }
        })?;
        let partial = response.status() == StatusCode::PARTIAL_CONTENT;
        if offset > 0 && !partial {
            return Err(UpstreamError::Protocol(
                "upstream ignored a Range request".into(),
            ));
        }
        let len = header(&response, "content-length").and_then(|v| v.parse().ok());
        let reader = response
            .into_body()
            .into_with_config()
            .limit(u64::MAX)
            .reader();
        Ok(BlobBody {
            reader: Box::new(reader),
            len,
            partial,
        })
    }

    /// `tags/list` for a repository, passed through (JSON bytes).
    pub fn tags_list(&self, repository: &str, query: &str) -> Result<Vec<u8>, UpstreamError> {
        let mut url = format!("{}/v2/{repository}/tags/list", self.base_url);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        let mut response = self.send(repository, |agent| agent.get(&url).call())?;
        response
            .body_mut()
            .with_config()
            .limit(16 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| UpstreamError::Unreachable(format!("reading tags: {e}")))
    }

    /// Sends a request with the cached token for the repository; on a Bearer challenge fetches
    /// a token and sends once more. Maps statuses to [`UpstreamError`]s.
    fn send(
        &self,
        repository: &str,
        request: impl Fn(&AuthorizedAgent<'_>) -> Result<Response<ureq::Body>, ureq::Error>,
    ) -> Result<Response<ureq::Body>, UpstreamError> {
        let scope = format!("repository:{repository}:pull");
        let mut token = self.tokens.get(&scope);
        for attempt in 0..2 {
            let agent = AuthorizedAgent {
                agent: &self.agent,
                token: token.as_deref(),
            };
            let response =
                request(&agent).map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
            let status = response.status();
            let challenge =
                header(&response, "www-authenticate").and_then(|h| BearerChallenge::parse(h).ok());
            if status == StatusCode::UNAUTHORIZED
                && attempt == 0
                && let Some(challenge) = challenge
            {
                token = Some(self.tokens.fetch(&self.agent, &challenge, &scope)?);
                continue;
            }
            return match status.as_u16() {
                200..=299 => Ok(response),
                404 => Err(UpstreamError::NotFound),
                401 | 403 => Err(UpstreamError::Denied(format!("status {status}"))),
                429 => Err(UpstreamError::TooManyRequests),
                500..=599 => Err(UpstreamError::Unreachable(format!("status {status}"))),
                _ => Err(UpstreamError::Protocol(format!(
                    "unexpected status {status}"
                ))),
            };
        }
        Err(UpstreamError::Denied("token was not accepted".into()))
    }
}

/// The agent plus the Bearer token to attach, handed to request builders.
struct AuthorizedAgent<'a> {
    agent: &'a ureq::Agent,
    token: Option<&'a str>,
}

impl AuthorizedAgent<'_> {
    fn get(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        self.authorize(self.agent.get(url))
    }

    fn head(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        self.authorize(self.agent.head(url))
    }

    fn authorize(
        &self,
        request: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        match self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }
}

fn accept_header(accept: &[MediaType]) -> String {
    let types: Vec<&str> = accept.iter().map(|m| m.as_str()).collect();
    types.join(", ")
}

fn header<'r>(response: &'r Response<ureq::Body>, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

fn digest_header(response: &Response<ureq::Body>) -> Option<Digest> {
    header(response, "docker-content-digest").and_then(|v| Digest::parse(v.trim()).ok())
}
