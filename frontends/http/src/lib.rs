//! # pyrsia-http
//!
//! The registry-mirror frontend: tiny_http serving the OCI pull API. Each request is routed by
//! [`pyrsia_core::registry::route`] (validation first, so bad names never reach the store) and
//! answered by [`pyrsia_std::mirror::Mirror`]. Besides `/v2/`, it serves `/metrics`
//! (Prometheus), `/status` (JSON for `pyrsia status`), `/healthz` and the transparency log
//! under `/pyrsia/log/` (checkpoints, entries, proofs: see the `log_api` module).
//!
//! This crate has no libp2p dependency: [`run_node`] is the whole lite mirror, and the
//! `pyrsia-lite` binary is that alone, for small Linux devices.

pub mod abort;
pub mod config;
pub mod config_values;
mod handler;
mod log_api;
mod maven_api;
mod members_api;
pub mod node;
mod npm_api;
pub mod options;
mod package_request_api;
mod pypi_api;
mod reaper;
pub mod server;
pub mod signals;
mod status_page;
pub mod tls;

use std::sync::Arc;
use std::sync::mpsc;

pub use node::Node;
pub use options::NodeOptions;
use pyrsia_core::registry::OciError;
pub use server::HttpServer;

/// The `Content-Type` of OCI error bodies.
pub const ERROR_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// An HTTP response for an [`OciError`]: status, content type and the spec's JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    /// HTTP status code.
    pub status: u16,
    /// The `Content-Type` header value.
    pub content_type: &'static str,
    /// `{"errors":[{"code":…,"message":…}]}`.
    pub body: String,
}

impl From<&OciError> for ErrorResponse {
    fn from(error: &OciError) -> Self {
        ErrorResponse {
            status: error.status(),
            content_type: ERROR_CONTENT_TYPE,
            body: error.json().to_string(),
        }
    }
}

/// Sets up logging for a binary: one line per request at info; `RUST_LOG` overrides.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,fjall=warn,lsm_tree=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs a mirror node with `options` until Ctrl-C or SIGTERM, then stops cleanly.
pub fn run_node(options: &NodeOptions) -> Result<(), String> {
    run_node_with(options, |_| Ok(()))
}

/// [`run_node`] with `attach` called once the node is open and before it serves: how the full
/// node starts its P2P network ([`Node::attach_network`]) without this crate linking libp2p.
pub fn run_node_with(
    options: &NodeOptions,
    attach: impl FnOnce(&Arc<Node>) -> Result<(), String>,
) -> Result<(), String> {
    pyrsia_std::buffers::keep_freed_memory();
    let data_dir = options.mirror_config()?.data_dir;
    let node = Arc::new(Node::open(options)?);
    attach(&node)?;
    if let Some(address) = options.edge_listen {
        let listener = std::net::TcpListener::bind(address)
            .map_err(|e| format!("cannot listen for edge caches on {address}: {e}"))?;
        pyrsia_std::edge::EdgeServer::new(node.log.clone(), node.mirror.clone())
            .spawn(listener)
            .map_err(|e| format!("cannot start the edge server: {e}"))?;
        tracing::info!(%address, "serving edge caches");
    }
    let certificate = options
        .tls_files()?
        .map(tls::ReloadableCert::load)
        .transpose()?;
    let tls_config = certificate
        .as_ref()
        .map(tls::ReloadableCert::server_config)
        .transpose()?;
    // The handlers go in before the port serves anything: a supervisor (or a test) that
    // sees the node answer and stops it at once must get a clean stop, not the default
    // action of SIGTERM (seen in CI: killed between the first answer and the handlers).
    let (stop_tx, stop_rx) = mpsc::channel();
    signals::on_signals(
        move || {
            let _ = stop_tx.send(());
        },
        move || reload_certificate(certificate.as_deref()),
    )?;
    let server = HttpServer::start(options.http, options.http_workers, node.clone(), tls_config)
        .map_err(|e| format!("cannot listen on {}: {e}", options.http))?;
    tracing::info!(
        http = %server.address(),
        tls = options.tls_cert.is_some(),
        data_dir = %data_dir.display(),
        offline = options.offline,
        log = %node.log.origin(),
        log_size = node.log.size(),
        key_id = %node.log.key_id(),
        verified_only = node.verified_only,
        "pyrsia node ready"
    );
    let _ = stop_rx.recv();
    tracing::info!("stopping");
    server.shutdown();
    drop(node);
    tracing::info!("stopped");
    Ok(())
}

/// What SIGHUP does: read the TLS certificate and key again (without TLS, nothing).
fn reload_certificate(certificate: Option<&tls::ReloadableCert>) {
    let Some(certificate) = certificate else {
        tracing::info!("SIGHUP: no --tls-cert to reload");
        return;
    };
    match certificate.reload() {
        Ok(()) => tracing::info!(
            cert = %certificate.files().cert.display(),
            "SIGHUP: TLS certificate reloaded; new connections use it"
        ),
        Err(e) => tracing::error!(
            error = %e,
            "SIGHUP: TLS certificate not reloaded; the node keeps serving the one it had"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrsia_core::registry::{Method, route};

    #[test]
    fn router_errors_become_spec_json() {
        let error = route(Method::Get, "/v2/%2e%2e/manifests/latest", "").unwrap_err();
        let response = ErrorResponse::from(&error);
        assert_eq!(response.status, 400);
        assert!(
            response
                .body
                .starts_with("{\"errors\":[{\"code\":\"NAME_INVALID\""),
            "{}",
            response.body
        );
    }
}
