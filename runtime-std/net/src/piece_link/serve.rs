//! The holder's end of piece links: a listener thread that accepts within core's limits and a
//! thread per link that reads requests, hands each to the event loop and writes its answer.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::io::AllowStdIo;
use libp2p::{PeerId, identity};
use pyrsia_core::piece_link::{HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, accepts_link, accepts_peer_link};

use super::{Inbound, handshake, std_duration};
use crate::codec::{SyncResponse, link};

/// What the listener counts, shared with the event loop (for `/peers`).
#[derive(Default)]
pub(crate) struct ServedLinks {
    /// Links accepted and not yet closed.
    open: AtomicUsize,
    /// Open links per authenticated peer.
    per_peer: Mutex<HashMap<PeerId, usize>>,
    /// Sockets closed at once: over a limit.
    pub(crate) refused: AtomicU64,
    /// Piece answers handed to link threads and not yet written out.
    pub(crate) writing: AtomicUsize,
}

impl ServedLinks {
    /// Links accepted and not yet closed.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// Listens for piece links on `ip` (an ephemeral port); returns the port. Requests go to
/// `inbound`, for the event loop.
pub(crate) fn listen(
    ip: IpAddr,
    key: &identity::Keypair,
    inbound: smol::channel::Sender<Inbound>,
    served: Arc<ServedLinks>,
) -> std::io::Result<u16> {
    let config = Arc::new(
        libp2p::tls::make_server_config(key).map_err(|e| std::io::Error::other(e.to_string()))?,
    );
    let listener = TcpListener::bind((ip, 0))?;
    let port = listener.local_addr()?.port();
    std::thread::Builder::new()
        .name("link-accept".into())
        .spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else {
                    // Out of file descriptors, or the like: let some close before trying again.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                };
                if !accepts_link(served.open.load(Ordering::SeqCst)) {
                    served.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("piece link refused: as many open as allowed");
                    continue;
                }
                served.open.fetch_add(1, Ordering::SeqCst);
                let (config, inbound, link_served) =
                    (config.clone(), inbound.clone(), served.clone());
                let spawned =
                    std::thread::Builder::new()
                        .name("link-serve".into())
                        .spawn(move || {
                            if let Err(e) = serve(tcp, config, &inbound, &link_served) {
                                tracing::debug!(error = %e, "piece link closed");
                            }
                            link_served.open.fetch_sub(1, Ordering::SeqCst);
                        });
                if spawned.is_err() {
                    served.open.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })?;
    Ok(port)
}

/// One peer's place among the open links, given back when the link closes.
struct PeerSlot<'a> {
    served: &'a ServedLinks,
    peer: PeerId,
}

impl Drop for PeerSlot<'_> {
    fn drop(&mut self) {
        let mut per_peer = self
            .served
            .per_peer
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_peer.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                per_peer.remove(&self.peer);
            }
        }
    }
}

fn serve(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    inbound: &smol::channel::Sender<Inbound>,
    served: &ServedLinks,
) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(std_duration(HANDSHAKE_TIMEOUT)))?;
    tcp.set_write_timeout(Some(std_duration(HANDSHAKE_TIMEOUT)))?;
    let connection = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    handshake(&mut tls, Instant::now() + std_duration(HANDSHAKE_TIMEOUT))?;
    // libp2p-tls's verifier accepted the certificate: it names the peer's key.
    let peer = tls
        .conn
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|cert| libp2p::tls::certificate::parse(cert).ok())
        .map(|cert| cert.peer_id())
        .ok_or_else(|| std::io::Error::other("no peer certificate"))?;
    let _slot = {
        let mut per_peer = served.per_peer.lock().unwrap_or_else(|p| p.into_inner());
        let count = per_peer.entry(peer).or_default();
        if !accepts_peer_link(*count) {
            served.refused.fetch_add(1, Ordering::Relaxed);
            return Err(std::io::Error::other(format!(
                "{peer} holds as many piece links as allowed"
            )));
        }
        *count += 1;
        PeerSlot { served, peer }
    };
    // Only a peer connected over libp2p keeps a link (checked again at every request).
    let (admitted, admission) = std::sync::mpsc::channel();
    inbound
        .send_blocking(Inbound::Opened { peer, admitted })
        .map_err(|_| std::io::Error::other("node stopping"))?;
    if !admission.recv().unwrap_or(false) {
        return Err(std::io::Error::other(format!(
            "{peer} may not hold a piece link"
        )));
    }
    tls.sock
        .set_read_timeout(Some(std_duration(IDLE_TIMEOUT)))?;
    tls.sock
        .set_write_timeout(Some(std_duration(IDLE_TIMEOUT)))?;
    loop {
        let request = match smol::block_on(link::read_request(&mut AllowStdIo::new(&mut tls))) {
            Ok(request) => request,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let why = format!("malformed frame on a piece link: {e}");
                let _ = inbound.send_blocking(Inbound::Malformed { peer, why });
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let (respond, answer) = std::sync::mpsc::channel();
        inbound
            .send_blocking(Inbound::Request {
                peer,
                request,
                respond,
            })
            .map_err(|_| std::io::Error::other("node stopping"))?;
        let response = answer
            .recv()
            .map_err(|_| std::io::Error::other("request refused"))?;
        let piece = matches!(response, SyncResponse::Piece { .. });
        let written = smol::block_on(link::write_response(
            &mut AllowStdIo::new(&mut tls),
            response,
        ))
        .and_then(|()| tls.flush());
        if piece {
            served.writing.fetch_sub(1, Ordering::SeqCst);
        }
        written?;
    }
}
