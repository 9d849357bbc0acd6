//! The node's counters, exported in the Prometheus text format at `GET /metrics` and
//! summarised by `pyrsia status`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Every metric the mirror maintains. Cheap to update from any thread.
pub struct Metrics {
    registry: Registry,
    /// Registry API requests answered.
    pub requests: Counter,
    /// Manifests and blobs served from the local store.
    pub cache_hits: Counter,
    /// Manifests and blobs that had to be fetched.
    pub cache_misses: Counter,
    /// Upstream fetches started (manifests and blobs).
    pub upstream_fetches: Counter,
    /// Upstream requests that failed (unreachable, 5xx, broken transfer).
    pub upstream_errors: Counter,
    /// Upstream content that failed digest verification and was discarded.
    pub verification_failures: Counter,
    /// Body bytes sent to clients.
    pub bytes_served: Counter,
    /// Bytes received from upstreams.
    pub upstream_bytes: Counter,
    /// Blobs and manifests fetched from peers.
    pub peer_fetches: Counter,
    /// Bytes received from peers.
    pub peer_bytes: Counter,
    /// Piece bytes served to peers.
    pub piece_bytes_served: Counter,
    /// Piece bytes served to peers while this node was still downloading the blob (the
    /// swarm: a node need not hold a whole blob to serve it).
    pub piece_bytes_served_partial: Counter,
    /// Stored bytes re-hashed by the scrubber.
    pub scrubbed_bytes: Counter,
    /// Stored blobs found rotten by the scrubber and quarantined.
    pub scrub_quarantined: Counter,
    /// Blobs and manifests held (updated when scraped).
    pub store_blobs: Gauge,
    /// Bytes held (updated when scraped).
    pub store_bytes: Gauge,
    /// 1 when the last upstream request succeeded, 0 when it failed.
    pub upstream_up: Gauge,
    /// HTTP worker threads alive (a handler that panics loses its request, not its worker).
    pub http_workers: Gauge,
    /// Request handlers that panicked.
    pub handler_panics: Counter,
    /// Databases (the log's, the store's) refusing writes after a failed one, until they are
    /// reopened.
    pub databases_failing: Gauge,
    /// The last pulls and errors, for the status page (not exported to Prometheus).
    pub activity: crate::activity::Activity,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `pyrsia_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pyrsia");
        let metrics = Metrics {
            requests: Counter::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            upstream_fetches: Counter::default(),
            upstream_errors: Counter::default(),
            verification_failures: Counter::default(),
            bytes_served: Counter::default(),
            upstream_bytes: Counter::default(),
            peer_fetches: Counter::default(),
            peer_bytes: Counter::default(),
            piece_bytes_served: Counter::default(),
            piece_bytes_served_partial: Counter::default(),
            scrubbed_bytes: Counter::default(),
            scrub_quarantined: Counter::default(),
            store_blobs: Gauge::default(),
            store_bytes: Gauge::default(),
            upstream_up: Gauge::default(),
            http_workers: Gauge::default(),
            handler_panics: Counter::default(),
            databases_failing: Gauge::default(),
            activity: crate::activity::Activity::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Registry API requests answered",
            metrics.requests.clone(),
        );
        registry.register(
            "cache_hits",
            "Manifests and blobs served from the local store",
            metrics.cache_hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Manifests and blobs fetched from elsewhere",
            metrics.cache_misses.clone(),
        );
        registry.register(
            "upstream_fetches",
            "Upstream fetches started",
            metrics.upstream_fetches.clone(),
        );
        registry.register(
            "upstream_errors",
            "Failed upstream requests",
            metrics.upstream_errors.clone(),
        );
        registry.register(
            "verification_failures",
            "Upstream content discarded for a digest mismatch",
            metrics.verification_failures.clone(),
        );
        registry.register(
            "served_bytes",
            "Body bytes sent to clients",
            metrics.bytes_served.clone(),
        );
        registry.register(
            "upstream_bytes",
            "Bytes received from upstreams",
            metrics.upstream_bytes.clone(),
        );
        registry.register(
            "peer_fetches",
            "Blobs and manifests fetched from peers",
            metrics.peer_fetches.clone(),
        );
        registry.register(
            "peer_bytes",
            "Bytes received from peers",
            metrics.peer_bytes.clone(),
        );
        registry.register(
            "piece_bytes_served",
            "Piece bytes served to peers",
            metrics.piece_bytes_served.clone(),
        );
        registry.register(
            "piece_bytes_served_partial",
            "Piece bytes served to peers while still downloading the blob",
            metrics.piece_bytes_served_partial.clone(),
        );
        registry.register(
            "scrubbed_bytes",
            "Stored bytes re-hashed by the scrubber",
            metrics.scrubbed_bytes.clone(),
        );
        registry.register(
            "scrub_quarantined",
            "Stored blobs that no longer matched their digest, quarantined",
            metrics.scrub_quarantined.clone(),
        );
        registry.register(
            "store_blobs",
            "Blobs and manifests in the store",
            metrics.store_blobs.clone(),
        );
        registry.register(
            "store_bytes",
            "Bytes in the store",
            metrics.store_bytes.clone(),
        );
        registry.register(
            "upstream_up",
            "Whether the last upstream request succeeded",
            metrics.upstream_up.clone(),
        );
        registry.register(
            "http_workers",
            "HTTP worker threads alive",
            metrics.http_workers.clone(),
        );
        registry.register(
            "handler_panics",
            "Request handlers that panicked (the worker survived)",
            metrics.handler_panics.clone(),
        );
        registry.register(
            "databases_failing",
            "Databases refusing writes after a failed one, until reopened",
            metrics.databases_failing.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.cache_hits.inc();
        m.store_bytes.set(42);
        let text = m.render();
        assert!(text.contains("pyrsia_cache_hits_total 1"), "{text}");
        assert!(text.contains("pyrsia_store_bytes 42"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
