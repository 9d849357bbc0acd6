//! The HTTP server: tiny_http accepting connections, a pool of worker threads answering
//! requests, and a clean stop.

use std::net::{SocketAddr, TcpListener};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::handler::handle;
use crate::node::Node;
use crate::reaper::{ActivePeers, Reaper};

/// How long a client may refuse to read before its connection is dropped, so that a stalled
/// client cannot hold a worker forever.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections the kernel completes and holds for the server before tiny_http's acceptor
/// takes them (the listen backlog; Linux caps it at `net.core.somaxconn`, 4,096 by default).
/// Beyond it a connecting client's handshake is dropped and it waits for a retransmission,
/// one second and then more. The standard library's 128 is smaller than a CI fleet starting
/// at once, or than the 128 requests the slowloris test sends beside 2,000 idle sockets.
pub const LISTEN_BACKLOG: i32 = 4096;

/// A running HTTP server. Stop it with [`HttpServer::shutdown`].
pub struct HttpServer {
    server: Arc<tiny_http::Server>,
    workers: Vec<JoinHandle<()>>,
    address: SocketAddr,
    _reaper: Reaper,
}

impl HttpServer {
    /// Binds `address` and starts `workers` threads answering requests for `node`, over TLS
    /// as `tls` says when it is given, in plain HTTP otherwise.
    pub fn start(
        address: SocketAddr,
        workers: usize,
        node: Arc<Node>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<HttpServer> {
        let listener = TcpListener::bind(address)?;
        set_send_timeout(&listener)?;
        set_backlog(&listener)?;
        let server = match tls {
            Some(config) => tiny_http::Server::from_listener_with_rustls(listener, config),
            None => tiny_http::Server::from_listener(listener, None),
        }
        .map_err(std::io::Error::other)?;
        let address = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("not listening on an IP address"))?;
        let server = Arc::new(server);
        let peers = ActivePeers::default();
        let workers = (0..workers.max(1))
            .map(|i| {
                let (server, node, peers) = (server.clone(), node.clone(), peers.clone());
                std::thread::Builder::new()
                    .name(format!("http-{i}"))
                    .spawn(move || {
                        let metrics = node.mirror.metrics();
                        metrics.http_workers.inc();
                        let _alive = WorkerAlive(metrics);
                        while let Ok(request) = server.recv() {
                            peers.started(request.remote_addr().copied());
                            // A handler that panics loses its request (tiny_http answers an
                            // unanswered request 500), never the worker.
                            let answered = std::panic::catch_unwind(AssertUnwindSafe(|| {
                                handle(&node, request)
                            }));
                            if answered.is_err() {
                                metrics.handler_panics.inc();
                                tracing::error!("a request handler panicked; the worker goes on");
                            }
                            peers.done();
                        }
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let reaper = Reaper::start(address, peers)?;
        Ok(HttpServer {
            server,
            workers,
            address,
            _reaper: reaper,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting requests, lets the workers finish what they are answering, and joins
    /// them.
    pub fn shutdown(self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}

/// Counts a worker out of `pyrsia_http_workers` when its thread ends, however it ends.
struct WorkerAlive<'m>(&'m pyrsia_std::metrics::Metrics);

impl Drop for WorkerAlive<'_> {
    fn drop(&mut self) {
        self.0.http_workers.dec();
    }
}

/// Sets the send timeout on the listening socket; accepted sockets inherit it. (A receive
/// timeout would also apply to `accept` itself, which tiny_http does not survive.)
#[cfg(target_os = "linux")]
fn set_send_timeout(listener: &TcpListener) -> std::io::Result<()> {
    use rustix::net::sockopt::{Timeout, set_socket_timeout};
    set_socket_timeout(listener, Timeout::Send, Some(SEND_TIMEOUT))?;
    Ok(())
}

/// Raises the listening socket's backlog to [`LISTEN_BACKLOG`] (Linux takes a second
/// `listen` on a listening socket as a new backlog).
#[cfg(target_os = "linux")]
fn set_backlog(listener: &TcpListener) -> std::io::Result<()> {
    rustix::net::listen(listener, LISTEN_BACKLOG)?;
    Ok(())
}

/// Elsewhere the standard library's backlog stays.
#[cfg(not(target_os = "linux"))]
fn set_backlog(_listener: &TcpListener) -> std::io::Result<()> {
    Ok(())
}

/// Elsewhere accepted sockets may not inherit the listener's timeouts; none is set.
#[cfg(not(target_os = "linux"))]
fn set_send_timeout(_listener: &TcpListener) -> std::io::Result<()> {
    Ok(())
}
