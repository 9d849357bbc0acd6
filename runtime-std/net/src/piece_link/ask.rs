//! The asker's end of a piece link: a thread that opens the link, then keeps up to core's
//! `IN_FLIGHT` piece requests on it and hands each answer to the fetcher that asked.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use futures::io::AllowStdIo;
use libp2p::{PeerId, identity};
use pyrsia_core::piece_link::{ANSWER_TIMEOUT, HANDSHAKE_TIMEOUT, IN_FLIGHT};
use pyrsia_std::peers::{PieceAnswer, PieceReply};

use super::{handshake, std_duration};
use crate::codec::{SyncRequest, SyncResponse, link};

/// A piece request for a link: what to send and where its answer goes.
pub(crate) struct Outgoing {
    pub(crate) request: SyncRequest,
    pub(crate) tag: u64,
    pub(crate) reply: mpsc::Sender<PieceReply>,
}

const OPENING: u8 = 0;
const READY: u8 = 1;
const CLOSED: u8 = 2;

/// This node's link to one peer. Dropping it ends the link once its requests are answered.
pub(crate) struct Link {
    requests: mpsc::Sender<Outgoing>,
    state: Arc<AtomicU8>,
    /// Piece bytes received since [`Link::take_received`] last took them.
    received: Arc<AtomicU64>,
    /// When a request last went on it (the event loop closes links idle for core's
    /// `ASKER_IDLE`).
    pub(crate) last_used: Instant,
}

impl Link {
    /// Opens a link to `peer` at `address` on a thread of its own; requests go over libp2p
    /// until it is ready.
    pub(crate) fn open(address: SocketAddr, key: &identity::Keypair, peer: PeerId) -> Option<Link> {
        let config = Arc::new(libp2p::tls::make_client_config(key, Some(peer)).ok()?);
        let (requests, queue) = mpsc::channel();
        let state = Arc::new(AtomicU8::new(OPENING));
        let shared = state.clone();
        let received = Arc::new(AtomicU64::new(0));
        let counted = received.clone();
        std::thread::Builder::new()
            .name("link-ask".into())
            .spawn(move || {
                let mut pending = VecDeque::new();
                let why = match run(address, config, &queue, &mut pending, &shared, &counted) {
                    Ok(()) => return,
                    Err(e) => e.to_string(),
                };
                let opened = shared.swap(CLOSED, Ordering::SeqCst) == READY;
                if opened {
                    tracing::info!(%peer, error = %why, "piece link failed");
                } else {
                    tracing::info!(%peer, %address, error = %why, "could not open a piece link; pieces go over libp2p");
                }
                // What was asked on it fails (as on a lost connection), and so does what the
                // event loop sends before it sees the link closed.
                for Outgoing { tag, reply, .. } in pending.drain(..).chain(queue.iter()) {
                    let _ = reply.send(PieceReply {
                        tag,
                        result: Err(format!("the piece link closed: {why}")),
                    });
                }
            })
            .ok()?;
        Some(Link {
            requests,
            state,
            received,
            last_used: Instant::now(),
        })
    }

    /// Whether the link is open and authenticated (requests may go on it).
    pub(crate) fn is_ready(&self) -> bool {
        self.state.load(Ordering::SeqCst) == READY
    }

    /// Whether the link closed or never opened.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::SeqCst) == CLOSED
    }

    /// Piece bytes received on the link since the last call.
    pub(crate) fn take_received(&self) -> u64 {
        self.received.swap(0, Ordering::Relaxed)
    }

    /// Sends `outgoing` on the link (call when [`Link::is_ready`]); gives it back when the
    /// link's thread is gone.
    pub(crate) fn send(&mut self, outgoing: Outgoing) -> Result<(), Outgoing> {
        self.last_used = Instant::now();
        self.requests.send(outgoing).map_err(|e| e.0)
    }
}

fn run(
    address: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    queue: &mpsc::Receiver<Outgoing>,
    pending: &mut VecDeque<Outgoing>,
    state: &AtomicU8,
    received: &AtomicU64,
) -> std::io::Result<()> {
    let tcp = TcpStream::connect_timeout(&address, std_duration(HANDSHAKE_TIMEOUT))?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(std_duration(HANDSHAKE_TIMEOUT)))?;
    tcp.set_write_timeout(Some(std_duration(ANSWER_TIMEOUT)))?;
    let name = rustls::pki_types::ServerName::IpAddress(address.ip().into());
    let connection = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    handshake(&mut tls, Instant::now() + std_duration(HANDSHAKE_TIMEOUT))?;
    tls.sock
        .set_read_timeout(Some(std_duration(ANSWER_TIMEOUT)))?;
    state.store(READY, Ordering::SeqCst);
    loop {
        if pending.is_empty() {
            match queue.recv() {
                Ok(next) => ask(&mut tls, next, pending)?,
                // The event loop dropped the link (idle, or the peer is gone).
                Err(_) => return Ok(()),
            }
        }
        while pending.len() < IN_FLIGHT {
            match queue.try_recv() {
                Ok(next) => ask(&mut tls, next, pending)?,
                Err(_) => break,
            }
        }
        std::io::Write::flush(&mut tls)?;
        let response = smol::block_on(link::read_response(&mut AllowStdIo::new(&mut tls)))?;
        if let SyncResponse::Piece { bytes, .. } = &response {
            received.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        let Some(Outgoing { tag, reply, .. }) = pending.pop_front() else {
            return Err(std::io::Error::other("an answer nobody asked for"));
        };
        let _ = reply.send(PieceReply {
            tag,
            result: answer(response),
        });
    }
}

fn ask(
    tls: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    next: Outgoing,
    pending: &mut VecDeque<Outgoing>,
) -> std::io::Result<()> {
    smol::block_on(link::write_request(
        &mut AllowStdIo::new(&mut *tls),
        &next.request,
    ))?;
    pending.push_back(next);
    Ok(())
}

/// A link's answer as the fetcher takes it (as for an answer on libp2p).
fn answer(response: SyncResponse) -> Result<PieceAnswer, String> {
    match response {
        SyncResponse::Piece { total, bytes } => Ok(PieceAnswer::Data { total, bytes }),
        SyncResponse::Missing => Ok(PieceAnswer::Missing),
        SyncResponse::Busy => Ok(PieceAnswer::Busy),
        SyncResponse::Elsewhere(named) => Ok(PieceAnswer::Elsewhere(
            named
                .iter()
                .filter_map(|bytes| PeerId::from_bytes(bytes).ok())
                .take(pyrsia_core::piece_schedule::recent_sends::COPIES_BEFORE_REDIRECT)
                .map(|id| id.to_string())
                .collect(),
        )),
        _ => Err("an answer of the wrong kind on a piece link".to_string()),
    }
}
