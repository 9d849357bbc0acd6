//! One HTTP request: route it through the core, answer it from the mirror, log one line.

use std::io::{self, Read};
use std::time::Instant;

use pyrsia_core::reference::Host;
use pyrsia_core::registry::range::{ContentRange, RangeOutcome};
use pyrsia_core::registry::{Method, OciError, Route, route, split_target};
use pyrsia_std::mirror::Mirror;
use tiny_http::{Header, Request, Response, StatusCode};

use crate::ErrorResponse;
use crate::abort::abort_connection;

type Body = Box<dyn Read + Send>;

/// What to send: status, headers, body and its length.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Body,
    len: u64,
}

impl Reply {
    fn bytes(status: u16, content_type: &str, bytes: Vec<u8>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", content_type.to_string())],
            len: bytes.len() as u64,
            body: Box::new(io::Cursor::new(bytes)),
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

/// Handles one request to completion, including aborting the connection when a body fails
/// mid-transfer.
pub(crate) fn handle(mirror: &Mirror, request: Request) {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let target = request.url().to_string();
    let peer = request.remote_addr().copied();
    let reply = respond_to(mirror, &request);
    let (status, len) = (reply.status, reply.len);
    let mut response = Response::new(
        StatusCode(status),
        Vec::new(),
        reply.body,
        usize::try_from(len).ok(),
        None,
    )
    .with_chunked_threshold(usize::MAX);
    let api_version = ("Docker-Distribution-API-Version", "registry/2.0");
    for (name, value) in
        std::iter::once(api_version).chain(reply.headers.iter().map(|(n, v)| (*n, v.as_str())))
    {
        // Every value is a digest, media type, number or range: ASCII that always parses.
        if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    mirror.metrics().requests.inc();
    match request.respond(response) {
        Ok(()) => {
            if method != "HEAD" {
                mirror.metrics().bytes_served.inc_by(len);
            }
            tracing::info!(%method, %target, status, bytes = len, ms = started.elapsed().as_millis() as u64, "request");
        }
        Err(e) => {
            let aborted = peer.is_some_and(abort_connection);
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

fn respond_to(mirror: &Mirror, request: &Request) -> Reply {
    let (path, query) = split_target(request.url());
    match path {
        "/metrics" => {
            return Reply::bytes(
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                mirror.render_metrics().into_bytes(),
            );
        }
        "/status" => {
            let body = serde_json::to_vec_pretty(&mirror.status()).unwrap_or_default();
            return Reply::bytes(200, "application/json", body);
        }
        "/healthz" => return Reply::bytes(200, "text/plain", b"ok\n".to_vec()),
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
            mirror.manifest(&host, name, reference).map(|m| {
                let mut reply = Reply::bytes(200, m.media_type.as_str(), m.bytes);
                reply
                    .headers
                    .push(("Docker-Content-Digest", m.digest.to_string()));
                reply
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
                    body: Box::new(blob.reader),
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
