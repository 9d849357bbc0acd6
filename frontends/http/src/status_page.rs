//! The node's status page at `GET /`: one self-contained HTML document (no external assets,
//! so it works offline and on an air-gapped LAN) that reads `/status` every two seconds and
//! shows health, upstreams, cache use, peers and their throughput, recent pulls with their
//! source and verification state, the transparency log, builds in progress and recent
//! errors. Also what the request handler records for it.

use pyrsia_core::digest::Digest;
use pyrsia_core::registry::{Method, Route, route, split_target};

use crate::node::Node;

/// The page. Its script builds every element with `textContent`, never `innerHTML`, so
/// names from clients and upstreams cannot inject markup.
pub(crate) const PAGE: &str = include_str!("status_page.html");

/// Records a registry request answered in full for the status page: which repository and
/// reference, the digest (`Docker-Content-Digest`), the bytes, and — from the mirror's
/// activity — whether they came from the cache, peers or the upstream.
pub(crate) fn record_pull(node: &Node, target: &str, digest: Option<&str>, bytes: u64) {
    let (path, query) = split_target(target);
    let Ok(routed) = route(Method::Get, path, query) else {
        return;
    };
    let (name, reference) = match routed {
        Route::Manifest {
            name, reference, ..
        } => (name.as_str().to_string(), reference.to_string()),
        Route::Blob { name, digest, .. } => (name.as_str().to_string(), digest.to_string()),
        _ => return,
    };
    let Some(digest) = digest.and_then(|d| Digest::parse(d).ok()) else {
        return;
    };
    node.mirror
        .metrics()
        .activity
        .pulled(&name, &reference, digest, bytes);
}

/// Records a failed request (a 5xx answer or a body that broke off) for the status page.
pub(crate) fn record_failure(node: &Node, method: &str, target: &str, what: &str) {
    node.mirror
        .metrics()
        .activity
        .failed(format!("{method} {target}: {what}"));
}

/// What `/status` adds for the page: recent pulls (each with whether the transparency log
/// has committed it), recent errors, and the age of the latest checkpoint.
pub(crate) fn activity_json(node: &Node) -> serde_json::Value {
    let activity = &node.mirror.metrics().activity;
    let pulls: Vec<serde_json::Value> = activity
        .recent_pulls()
        .into_iter()
        .map(|pull| {
            let committed = Digest::parse(&pull.digest)
                .ok()
                .is_some_and(|d| node.log.is_committed(&d));
            let mut value = serde_json::to_value(&pull).unwrap_or_default();
            value["committed"] = committed.into();
            value
        })
        .collect();
    let now = pyrsia_std::clock::unix_seconds();
    serde_json::json!({
        "now": now,
        "pulls": pulls,
        "errors": activity.recent_errors(),
        "checkpoint_age_secs": node
            .log
            .checkpoint()
            .map(|c| now.saturating_sub(c.checkpoint.timestamp)),
    })
}
