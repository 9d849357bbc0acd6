//! One HTTP request: route it through the core, answer it from the mirror, log one line.

use std::io::{self, Read};
use std::time::Instant;

use pyrsia_core::reference::Host;
use pyrsia_core::reference::Reference;
use pyrsia_core::registry::range::{ContentRange, RangeOutcome};
use pyrsia_core::registry::{Code, Method, OciError, Route, route, split_target};
use pyrsia_std::mirror::BlobReader;
use tiny_http::{Header, Request, Response, StatusCode};

use crate::ErrorResponse;
use crate::abort::abort_connection;
use crate::log_api;
use crate::node::Node;
use crate::npm_api;
use crate::pypi_api;
use crate::status_page;

/// A response body: bytes in memory, or a blob (a stored file or a download in progress).
pub(crate) enum Body {
    Bytes(io::Cursor<Vec<u8>>),
    Blob(io::Take<BlobReader>),
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Body::Bytes(bytes) => bytes.read(buf),
            Body::Blob(blob) => blob.read(buf),
        }
    }
}

/// What to send: status, headers, body and its length.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Body,
    pub(crate) len: u64,
    /// A blob body: sent on the raw stream with large writes.
    pub(crate) stream: bool,
}

impl Reply {
    pub(crate) fn bytes(status: u16, content_type: &str, bytes: Vec<u8>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", content_type.to_string())],
            len: bytes.len() as u64,
            body: Body::Bytes(io::Cursor::new(bytes)),
            stream: false,
        }
    }

    /// A stored, verified package file: streamed from the store (sendfile), and cacheable for
    /// ever by clients (a file's bytes never change under its name).
    pub(crate) fn immutable_file(content_type: &str, blob: pyrsia_std::store::StoredBlob) -> Reply {
        let size = blob.record.size;
        Reply {
            status: 200,
            headers: vec![
                ("Content-Type", content_type.to_string()),
                ("Cache-Control", "max-age=31536000, immutable".to_string()),
            ],
            len: size,
            body: Body::Blob(io::Read::take(BlobReader::Stored(blob), size)),
            stream: true,
        }
    }

    fn error(error: &OciError) -> Reply {
        let response = ErrorResponse::from(error);
        Reply::bytes(
            response.status,
            response.content_type,
            response.body.into_bytes(),
        )
    }
}

/// The headers every response carries.
const API_VERSION: (&str, &str) = ("Docker-Distribution-API-Version", "registry/2.0");

/// Sends a reply through tiny_http's response writer.
fn send(request: Request, reply: Reply) -> io::Result<()> {
    let mut response = Response::new(
        StatusCode(reply.status),
        Vec::new(),
        reply.body,
        usize::try_from(reply.len).ok(),
        None,
    )
    .with_chunked_threshold(usize::MAX);
    for (name, value) in
        std::iter::once(API_VERSION).chain(reply.headers.iter().map(|(n, v)| (*n, v.as_str())))
    {
        // Every value is a digest, media type, number or range: ASCII that always parses.
        if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    request.respond(response)
}

/// Bytes copied per write when streaming a blob: large writes go to the socket directly
/// instead of through tiny_http's small buffers.
const STREAM_CHUNK: usize = 256 * 1024;

/// Sends a blob body on the raw connection with large writes (tiny_http's own path copies
/// through 8 KiB buffers). The connection stays usable for the next request.
fn send_stream(request: Request, mut reply: Reply) -> io::Result<()> {
    use std::io::Write;
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (name, value) in
        std::iter::once(API_VERSION).chain(reply.headers.iter().map(|(n, v)| (*n, v.as_str())))
    {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", reply.len));
    let peer = request.remote_addr().copied();
    // Over TLS the bytes must go through rustls: sendfile would write plaintext to the socket.
    let plain = !request.secure();
    let mut writer = request.into_writer();
    writer.write_all(head.as_bytes())?;
    if let Body::Blob(blob) = &mut reply.body
        && plain
        && let Some(peer) = peer
        && send_file(&mut *writer, blob, peer)?
    {
        return Ok(());
    }
    let mut buf = vec![0u8; STREAM_CHUNK];
    let mut left = reply.len;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let n = reply.body.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "blob shorter than announced",
            ));
        }
        writer.write_all(&buf[..n])?;
        left -= n as u64;
    }
    writer.flush()
}

/// Sends a blob with `sendfile(2)`: page cache to socket without copying through this
/// process. A stored blob goes in one call; a download being followed goes span by span as
/// its bytes become servable (never its last byte before the digest matched: the
/// [`pyrsia_std::mirror::FlightReader`] rule). The headers are flushed first; tiny_http's
/// writer stays held, so nothing else is written to the connection meanwhile. Returns false
/// (nothing sent) when the socket cannot be reached, and the caller copies instead.
#[cfg(target_os = "linux")]
fn send_file(
    writer: &mut dyn io::Write,
    blob: &mut io::Take<BlobReader>,
    peer: std::net::SocketAddr,
) -> io::Result<bool> {
    use std::io::Seek;
    let Some(socket) = crate::abort::connection_socket(peer) else {
        return Ok(false);
    };
    // The headers leave in a segment of their own: without TCP_NODELAY, Nagle holds a small
    // body back until the client acknowledges them, and a client that delays its ACK (every
    // Linux one, on a kept-alive connection) adds 40 ms to each response.
    if let Err(e) = rustix::net::sockopt::set_tcp_nodelay(&socket, true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    writer.flush()?;
    let mut left = blob.limit();
    match blob.get_mut() {
        BlobReader::Stored(stored) => {
            let mut offset = stored.file.stream_position()?;
            while left > 0 {
                left -= send_span(&socket, &stored.file, &mut offset, left)?;
            }
        }
        BlobReader::Following(download, _) => {
            while left > 0 {
                let Some((file, mut offset, len)) = download.next_span(left)? else {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "blob shorter than announced",
                    ));
                };
                let sent = send_span(&socket, file, &mut offset, len)?;
                download.advance(sent);
                left -= sent;
            }
        }
    }
    blob.set_limit(0);
    Ok(true)
}

/// One `sendfile(2)` of at most `len` bytes (and 1 GiB) of `file` from `offset`, which it
/// advances; returns the bytes sent, and errors on a file shorter than that.
#[cfg(target_os = "linux")]
fn send_span(
    socket: &std::os::fd::OwnedFd,
    file: &std::fs::File,
    offset: &mut u64,
    len: u64,
) -> io::Result<u64> {
    let want = usize::try_from(len).unwrap_or(usize::MAX).min(1 << 30);
    let sent = rustix::fs::sendfile(socket, file, Some(offset), want)?;
    if sent == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "blob file shorter than recorded",
        ));
    }
    Ok(sent as u64)
}

/// Elsewhere blobs are always copied.
#[cfg(not(target_os = "linux"))]
fn send_file(
    _writer: &mut dyn io::Write,
    _blob: &mut io::Take<BlobReader>,
    _peer: std::net::SocketAddr,
) -> io::Result<bool> {
    Ok(false)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        416 => "Range Not Satisfiable",
        _ => "",
    }
}

/// Handles one request to completion, including aborting the connection when a body fails
/// mid-transfer.
pub(crate) fn handle(node: &Node, request: Request) {
    let mirror = &node.mirror;
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let target = request.url().to_string();
    let peer = request.remote_addr().copied();
    let reply = respond_to(node, &request);
    let (status, len) = (reply.status, reply.len);
    let digest = reply
        .headers
        .iter()
        .find(|(name, _)| *name == "Docker-Content-Digest")
        .map(|(_, value)| value.clone());
    mirror.metrics().requests.inc();
    let sent = if reply.stream && method == "GET" {
        send_stream(request, reply)
    } else {
        send(request, reply)
    };
    match sent {
        Ok(()) => {
            if method != "HEAD" {
                mirror.metrics().bytes_served.inc_by(len);
            }
            if method == "GET" && status == 200 {
                status_page::record_pull(node, &target, digest.as_deref(), len);
            } else if status >= 500 {
                status_page::record_failure(node, &method, &target, &format!("answered {status}"));
            }
            tracing::info!(%method, %target, status, bytes = len, ms = started.elapsed().as_millis() as u64, "request");
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) =>
        {
            tracing::info!(%method, %target, status, ms = started.elapsed().as_millis() as u64, "client went away mid-response");
        }
        Err(e) => {
            let aborted = peer.is_some_and(abort_connection);
            status_page::record_failure(
                node,
                &method,
                &target,
                &format!("response broke off: {e}"),
            );
            tracing::warn!(%method, %target, status, error = %e, aborted, ms = started.elapsed().as_millis() as u64, "response failed mid-body; connection aborted");
        }
    }
}

fn request_header<'r>(request: &'r Request, name: &'static str) -> impl Iterator<Item = &'r str> {
    request
        .headers()
        .iter()
        .filter(move |h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

const NOT_VERIFIED_MANIFEST: OciError = OciError::new(
    Code::ManifestUnknown,
    "not committed to the transparency log yet (node serves verified content only); verification was requested",
);
const NOT_VERIFIED_BLOB: OciError = OciError::new(
    Code::BlobUnknown,
    "not committed to the transparency log (node serves verified content only)",
);

fn respond_to(node: &Node, request: &Request) -> Reply {
    use crate::members_api;
    let mirror = &node.mirror;
    let (path, query) = split_target(request.url());
    if let Some(rest) = path.strip_prefix(pypi_api::PREFIX) {
        return pypi_api::respond(node, request, rest);
    }
    if let Some(rest) = path.strip_prefix(npm_api::PREFIX) {
        return npm_api::respond(node, request, rest);
    }
    if let Some(rest) = path.strip_prefix(crate::maven_api::PREFIX) {
        return crate::maven_api::respond(node, request, rest);
    }
    if let Some(rest) = path.strip_prefix(log_api::PREFIX) {
        if !matches!(
            request.method(),
            tiny_http::Method::Get | tiny_http::Method::Head
        ) {
            return Reply::error(
                &OciError::new(Code::Unsupported, "the log API is read-only").with_status(405),
            );
        }
        return match log_api::respond(node, rest, query) {
            Ok((content_type, body)) => Reply::bytes(200, content_type, body),
            Err(e) => Reply::error(&e),
        };
    }
    if path == crate::package_request_api::PATH {
        return match crate::package_request_api::request(node, request, query) {
            Ok(body) => Reply::bytes(202, "application/json", body),
            Err(e) => Reply::error(&e),
        };
    }
    if path == members_api::ENDORSE {
        return match members_api::endorse(node, request, query) {
            Ok(body) => Reply::bytes(202, "application/json", body),
            Err(e) => Reply::error(&e),
        };
    }
    match path {
        "/metrics" => {
            return Reply::bytes(
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                mirror.render_metrics().into_bytes(),
            );
        }
        "/status" => {
            let status = serde_json::json!({
                "mirror": mirror.status(),
                "log": node.log_status(),
                "network": node.network_status(),
                "activity": status_page::activity_json(node),
            });
            let body = serde_json::to_vec_pretty(&status).unwrap_or_default();
            return Reply::bytes(200, "application/json", body);
        }
        "/" => {
            return Reply::bytes(
                200,
                "text/html; charset=utf-8",
                status_page::PAGE.as_bytes().to_vec(),
            );
        }
        "/healthz" => return Reply::bytes(200, "text/plain", b"ok\n".to_vec()),
        "/peers" => {
            return match node.network_status() {
                Some(network) => Reply::bytes(
                    200,
                    "application/json",
                    serde_json::to_vec_pretty(&network).unwrap_or_default(),
                ),
                None => Reply::error(
                    &OciError::new(Code::Unsupported, "this node runs without a P2P network")
                        .with_status(404),
                ),
            };
        }
        _ => {}
    }
    let method = Method::parse(request.method().as_str());
    let routed = match route(method, path, query) {
        Ok(routed) => routed,
        Err(e) => return Reply::error(&e),
    };
    let result = match routed {
        Route::Base => Ok(Reply::bytes(200, "application/json", b"{}".to_vec())),
        Route::Manifest {
            name,
            reference,
            registry,
            ..
        } => {
            let host = registry.unwrap_or_else(Host::docker_hub);
            let tag = match reference {
                Reference::Tag(t) => Some(t.as_str()),
                Reference::Digest(_) => None,
            };
            mirror.manifest(&host, name, reference).and_then(|m| {
                node.request_verification(&host, name.as_str(), m.digest, tag);
                if !node.may_serve(&m.digest) {
                    return Err(NOT_VERIFIED_MANIFEST);
                }
                let mut reply = Reply::bytes(200, m.media_type.as_str(), m.bytes);
                reply
                    .headers
                    .push(("Docker-Content-Digest", m.digest.to_string()));
                Ok(reply)
            })
        }
        Route::Blob {
            name,
            digest,
            registry,
            ..
        } => {
            let host = registry.unwrap_or_else(Host::docker_hub);
            let range = request_header(request, "Range").next();
            if !node.may_serve(&digest) {
                return Reply::error(&NOT_VERIFIED_BLOB);
            }
            mirror.blob(&host, name, digest, range).map(|blob| {
                let mut headers = vec![
                    ("Content-Type", "application/octet-stream".to_string()),
                    ("Docker-Content-Digest", digest.to_string()),
                    ("Accept-Ranges", "bytes".to_string()),
                ];
                let status = match blob.range {
                    RangeOutcome::Full => 200,
                    RangeOutcome::Partial(r) => {
                        headers.push(("Content-Range", r.content_range(blob.size).to_string()));
                        206
                    }
                    RangeOutcome::Unsatisfiable => {
                        headers.push((
                            "Content-Range",
                            ContentRange::unsatisfied(blob.size).to_string(),
                        ));
                        416
                    }
                };
                Reply {
                    status,
                    headers,
                    len: blob.body_len(),
                    body: Body::Blob(blob.reader),
                    stream: status != 416,
                }
            })
        }
        Route::TagsList { name, registry, .. } => {
            let host = registry.unwrap_or_else(Host::docker_hub);
            mirror
                .tags(&host, name, query)
                .map(|body| Reply::bytes(200, "application/json", body))
        }
        Route::Unsupported(endpoint) => Err(endpoint.error()),
    };
    result.unwrap_or_else(|e| Reply::error(&e))
}
