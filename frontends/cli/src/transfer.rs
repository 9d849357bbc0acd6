//! Streaming a blob or file from a node while hashing it, with progress: what `pyrsia verify`
//! and `pyrsia prefetch` read.

use std::io::Read;

use pyrsia_core::digest::{Digest, Hasher, Verification, Verifier};
use pyrsia_core::manifest::Manifest;
use pyrsia_core::media_type::MediaType;

use crate::client::NodeClient;
use crate::progress::ByteProgress;

/// Bytes read per call.
const CHUNK: usize = 256 * 1024;
/// The most manifests one image may have (an index and its children).
pub(crate) const MAX_MANIFESTS: usize = 256;
/// The largest manifest read.
const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// The `Content-Length` of a response, if it has one.
fn content_length(response: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Streams `path` through `update`, showing progress as `label`; returns the bytes read.
fn stream(
    client: &NodeClient,
    path: &str,
    label: &str,
    mut update: impl FnMut(&[u8]),
) -> Result<u64, String> {
    let mut response = client.open(path, &[])?;
    let mut progress = ByteProgress::start(label, content_length(&response));
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; CHUNK];
    let mut read = 0u64;
    let outcome = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(read),
            Ok(n) => {
                update(&buf[..n]);
                read += n as u64;
                progress.advance(n as u64);
            }
            Err(e) => break Err(format!("{label}: {e}")),
        }
    };
    progress.finish();
    outcome
}

/// Streams a blob and checks it against `digest`; returns its size.
pub(crate) fn hash_blob(client: &NodeClient, path: &str, digest: Digest) -> Result<u64, String> {
    let mut verifier = Verifier::new(digest);
    let label = short(&digest);
    stream(client, path, &label, |bytes| verifier.update(bytes))?;
    let size = verifier.bytes_seen();
    match verifier.finish() {
        Verification::Match => Ok(size),
        Verification::Mismatch { actual } => {
            Err(format!("blob {digest}: the bytes served hash to {actual}"))
        }
    }
}

/// Streams a file of unknown digest and hashes it; returns its sha256 and size.
pub(crate) fn hash_unknown(client: &NodeClient, path: &str) -> Result<(Digest, u64), String> {
    let mut hasher = Hasher::new();
    let label = path.rsplit('/').next().unwrap_or(path).to_string();
    stream(client, path, &label, |bytes| hasher.update(bytes))?;
    let size = hasher.len();
    Ok((hasher.finish(), size))
}

/// `sha256:0123456789ab`: a digest short enough for a progress label.
pub(crate) fn short(digest: &Digest) -> String {
    let text = digest.to_string();
    text.chars().take(19).collect()
}

/// Fetches a manifest through the node and checks its bytes against `expected` (or the
/// node's `Docker-Content-Digest`); returns its digest and parsed form.
pub(crate) fn fetch_manifest(
    client: &NodeClient,
    path: &str,
    ns: &str,
    reference: &str,
    expected: Option<Digest>,
) -> Result<(Digest, Manifest), String> {
    let accept = MediaType::PULLABLE.map(MediaType::as_str).join(", ");
    let mut response = client.open(
        &format!("/v2/{path}/manifests/{reference}{ns}"),
        &[("Accept", &accept)],
    )?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type");
    let announced = header("docker-content-digest").and_then(|d| Digest::parse(&d).ok());
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_MANIFEST_BYTES)
        .read_to_vec()
        .map_err(|e| format!("manifest {reference}: {e}"))?;
    let digest = Digest::sha256(&body);
    if let Some(claimed) = expected.or(announced)
        && claimed != digest
    {
        return Err(format!(
            "manifest {reference}: the bytes served hash to {digest}, not {claimed}"
        ));
    }
    let manifest = Manifest::parse(&body, content_type.as_deref())
        .map_err(|e| format!("manifest {reference}: {e}"))?;
    Ok((digest, manifest))
}
