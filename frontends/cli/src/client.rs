//! A small blocking HTTP client for talking to a node: bounded time, bodies read whole only
//! for small answers (notes, entries, proofs); blobs are streamed by their callers.

use std::io::Read;
use std::time::Duration;

/// The default node URL.
pub(crate) const DEFAULT_NODE: &str = "http://127.0.0.1:7888";

/// The largest small answer read into memory (a checkpoint, an entry, a proof).
const MAX_SMALL_BODY: u64 = 16 << 20;

/// A connection to one node.
pub(crate) struct NodeClient {
    base: String,
    agent: ureq::Agent,
}

impl NodeClient {
    /// A client for the node at `base` (e.g. `http://127.0.0.1:7888`).
    pub(crate) fn new(base: &str) -> NodeClient {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_recv_body(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        NodeClient {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// The node's URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// GETs `path` and returns the body of a 200 answer.
    pub(crate) fn get(&self, path: &str) -> Result<Vec<u8>, String> {
        let mut response = self.open(path, &[])?;
        response
            .body_mut()
            .with_config()
            .limit(MAX_SMALL_BODY)
            .read_to_vec()
            .map_err(|e| format!("{path}: {e}"))
    }

    /// GETs `path` as JSON.
    pub(crate) fn get_json(&self, path: &str) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.get(path)?).map_err(|e| format!("{path}: not JSON: {e}"))
    }

    /// POSTs an empty body to `path` and returns the JSON of a 2xx answer.
    pub(crate) fn post_json(
        &self,
        path: &str,
        bearer: Option<&str>,
    ) -> Result<serde_json::Value, String> {
        let url = format!("{}{path}", self.base);
        let mut request = self.agent.post(&url);
        if let Some(token) = bearer {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.send_empty().map_err(|e| format!("{url}: {e}"))?;
        let mut body = String::new();
        let _ = response
            .body_mut()
            .as_reader()
            .take(MAX_SMALL_BODY)
            .read_to_string(&mut body);
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {} {}", response.status(), body.trim()));
        }
        serde_json::from_str(&body).map_err(|e| format!("{url}: not JSON: {e}"))
    }

    /// GETs `path` with extra headers and returns a reader over the body of a 200 answer.
    pub(crate) fn open(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<ureq::http::Response<ureq::Body>, String> {
        let url = format!("{}{path}", self.base);
        let mut request = self.agent.get(&url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.call().map_err(|e| format!("{url}: {e}"))?;
        if response.status() != 200 {
            let mut body = String::new();
            let _ = response
                .body_mut()
                .as_reader()
                .take(4096)
                .read_to_string(&mut body);
            return Err(format!("{url}: HTTP {} {}", response.status(), body.trim()));
        }
        Ok(response)
    }
}
