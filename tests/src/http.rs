//! Plain HTTP requests to a node, for what the clients do not show: status codes, error
//! bodies, aborted transfers, raw request lines.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use pyrsia_core::digest::{Digest, Hasher};

/// A response read to the end, or the error that ended it.
pub struct Fetched {
    /// HTTP status.
    pub status: u16,
    /// The digest of the body bytes received.
    pub body_digest: Digest,
    /// Body bytes received.
    pub body_len: u64,
    /// The body when it is small (error JSON, manifests).
    pub small_body: String,
    /// `Some(error)` if reading the body failed (aborted transfer).
    pub body_error: Option<String>,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let printable = self.small_body.len() < 1024 && !self.small_body.contains('\0');
        f.debug_struct("Fetched")
            .field("status", &self.status)
            .field("body_len", &self.body_len)
            .field("body_digest", &self.body_digest)
            .field("body_error", &self.body_error)
            .field(
                "body",
                &if printable {
                    self.small_body.as_str()
                } else {
                    "<binary>"
                },
            )
            .finish()
    }
}

/// GETs `url` and hashes the body as it streams; the transfer may take up to 120 s.
pub fn get(url: &str) -> Result<Fetched, String> {
    get_with(url, &[])
}

/// [`get`] with extra request headers (e.g. `Range`).
pub fn get_with(url: &str, headers: &[(&str, &str)]) -> Result<Fetched, String> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .new_agent();
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.call().map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let mut reader = response
        .into_body()
        .into_with_config()
        .limit(u64::MAX)
        .reader();
    let mut hasher = Hasher::new();
    let mut small = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let body_error = loop {
        match reader.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => {
                hasher.update(&buf[..n]);
                if small.len() < 64 * 1024 {
                    small.extend_from_slice(&buf[..n.min(64 * 1024)]);
                }
            }
            Err(e) => break Some(e.to_string()),
        }
    };
    let body_len = hasher.len();
    Ok(Fetched {
        status,
        body_digest: hasher.finish(),
        body_len,
        small_body: String::from_utf8_lossy(&small).into_owned(),
        body_error,
    })
}

/// POSTs an empty body to `url`; returns the status and the (small) answer.
pub fn post(url: &str) -> Result<(u16, String), String> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    let response = agent.post(url).send_empty().map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .into_with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// GETs a small body (at most 1 MiB, e.g. a log entry) as bytes, with its status.
pub fn get_bytes(url: &str) -> Result<(u16, Vec<u8>), String> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    let response = agent.get(url).call().map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .into_with_config()
        .limit(1 << 20)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    Ok((status, bytes))
}

/// Sends `request_line` (e.g. `GET /v2/../x HTTP/1.1`) byte for byte, unnormalised, and
/// returns the status code and the body.
pub fn raw(authority: &str, request_line: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(authority).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "{request_line}\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// Sends `GET path` with `headers` and returns the whole response as text: status line,
/// headers and body (for tests that check response headers).
pub fn get_full(authority: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut stream = TcpStream::connect(authority).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let extra: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\n{extra}Connection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

/// A tiny_http server for a test's own upstream or attacker, bound at once to a port the
/// system picks (no window in which another process can take it); returns it and its port.
pub fn test_server() -> (tiny_http::Server, u16) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind a test server");
    let port = server
        .server_addr()
        .to_ip()
        .map(|a| a.port())
        .expect("an IP address");
    (server, port)
}
