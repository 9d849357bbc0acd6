//! The asker's end of a piece link: a thread that opens the link, then sends up to core's
//! `IN_FLIGHT` piece requests on it, each under an id, and gives up overdue ones (core's
//! `overdue`); a second thread reads the answers, in whatever order the holder sends them,
//! and hands each to the fetcher that asked.

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::time::Instant;

use futures::io::AllowStdIo;
use libp2p::{PeerId, identity};
use pyrsia_core::piece_link::{
    ANSWER_TIMEOUT, AnswerFate, HANDSHAKE_TIMEOUT, IN_FLIGHT, Overdue, answer_fate, overdue,
};
use pyrsia_std::peers::{PieceAnswer, PieceReply};

use super::split::{self, handshake};
use super::std_duration;
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
        let mut config = libp2p::tls::make_client_config(key, Some(peer)).ok()?;
        // After the handshake the link protects its records itself (`split`).
        config.enable_secret_extraction = true;
        let config = Arc::new(config);
        let (requests, queue) = mpsc::channel();
        let state = Arc::new(AtomicU8::new(OPENING));
        let shared = state.clone();
        let received = Arc::new(AtomicU64::new(0));
        let counted = received.clone();
        std::thread::Builder::new()
            .name("link-ask".into())
            .spawn(move || {
                let why = match run(address, peer, config, &queue, &shared, counted) {
                    Ok(()) => return,
                    Err(e) => e.to_string(),
                };
                let opened = shared.swap(CLOSED, Ordering::SeqCst) == READY;
                if opened {
                    tracing::info!(%peer, error = %why, "piece link failed");
                } else {
                    tracing::info!(%peer, %address, error = %why, "could not open a piece link; pieces go over libp2p");
                }
                // What was asked on it failed (as on a lost connection), and so does what the
                // event loop sends before it sees the link closed.
                for Outgoing { tag, reply, .. } in queue.iter() {
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

/// The requests sent on a link and waiting for their answers, shared by the thread that sends
/// them and the one that reads the answers.
struct Waiting {
    requests: HashMap<u64, Sent>,
    /// The id the next request gets (ids count up from 0).
    next_id: u64,
    /// When the last answer frame arrived (or the link opened).
    last_frame: Instant,
    /// Why the link closed, once it has.
    closed: Option<String>,
}

struct Sent {
    tag: u64,
    reply: mpsc::Sender<PieceReply>,
    at: Instant,
}

impl Waiting {
    /// Fails every waiting request (as on a lost connection) and marks the link closed.
    fn close(&mut self, why: &str) {
        if self.closed.is_none() {
            self.closed = Some(why.to_string());
        }
        for (_, Sent { tag, reply, .. }) in self.requests.drain() {
            let _ = reply.send(PieceReply {
                tag,
                result: Err(format!("the piece link closed: {why}")),
            });
        }
    }
}

type Shared = Arc<(Mutex<Waiting>, Condvar)>;

fn lock(shared: &Shared) -> MutexGuard<'_, Waiting> {
    shared.0.lock().unwrap_or_else(|p| p.into_inner())
}

/// How often the sending thread looks for overdue answers while it waits.
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

fn run(
    address: SocketAddr,
    peer: PeerId,
    config: Arc<rustls::ClientConfig>,
    queue: &mpsc::Receiver<Outgoing>,
    state: &AtomicU8,
    received: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let mut tcp = TcpStream::connect_timeout(&address, std_duration(HANDSHAKE_TIMEOUT))?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(std_duration(HANDSHAKE_TIMEOUT)))?;
    tcp.set_write_timeout(Some(std_duration(ANSWER_TIMEOUT)))?;
    let name = rustls::pki_types::ServerName::IpAddress(address.ip().into());
    let mut connection =
        rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    handshake(
        &mut connection,
        &mut tcp,
        Instant::now() + std_duration(HANDSHAKE_TIMEOUT),
    )?;
    // Answers may take long (a holder fetching for the network); core's `overdue` decides
    // when to give up, not a socket timeout that could cut a frame in half.
    tcp.set_read_timeout(None)?;
    let (mut reader, mut writer) = split::split(connection, tcp)?;
    let opened = Instant::now();
    let shared: Shared = Arc::new((
        Mutex::new(Waiting {
            requests: HashMap::new(),
            next_id: 0,
            last_frame: opened,
            closed: None,
        }),
        Condvar::new(),
    ));
    state.store(READY, Ordering::SeqCst);
    let answers = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("link-answers".into())
            .spawn(move || {
                let why = read_answers(&mut reader, &shared, &received);
                reader.shut_down();
                lock(&shared).close(&why);
                shared.1.notify_all();
            })?
    };
    let sent = send_requests(&mut writer, peer, queue, &shared, opened);
    if let Err(e) = &sent {
        // Why the link ends, before the shutdown makes the reader see the socket close.
        lock(&shared).close(&e.to_string());
    }
    writer.shut_down();
    let _ = answers.join();
    let mut waiting = lock(&shared);
    match sent {
        Ok(()) => Ok(()),
        Err(e) => {
            waiting.close(&e.to_string());
            Err(std::io::Error::other(
                waiting.closed.clone().unwrap_or_default(),
            ))
        }
    }
}

/// Reads answers and hands each to the fetcher waiting for it (core's `answer_fate`); returns
/// why the link ended.
fn read_answers(reader: &mut split::ReadHalf, shared: &Shared, received: &AtomicU64) -> String {
    loop {
        let (id, response) =
            match smol::block_on(link::read_response(&mut AllowStdIo::new(&mut *reader))) {
                Ok(answer) => answer,
                Err(e) => return e.to_string(),
            };
        received.fetch_add(response.piece_payload_len() as u64, Ordering::Relaxed);
        let mut waiting = lock(shared);
        waiting.last_frame = Instant::now();
        let is_waiting = waiting.requests.contains_key(&id);
        match answer_fate(id, waiting.next_id, is_waiting) {
            AnswerFate::Deliver => {
                if let Some(Sent { tag, reply, .. }) = waiting.requests.remove(&id) {
                    let _ = reply.send(PieceReply {
                        tag,
                        result: answer(response),
                    });
                }
                shared.1.notify_all();
            }
            AnswerFate::Late => {}
            AnswerFate::Unasked => return format!("an answer to request {id}, never sent"),
        }
    }
}

/// Sends requests from the event loop as room on the link allows and gives up overdue ones;
/// returns once the event loop dropped the link and every request was answered.
fn send_requests(
    writer: &mut split::WriteHalf,
    peer: PeerId,
    queue: &mpsc::Receiver<Outgoing>,
    shared: &Shared,
    opened: Instant,
) -> std::io::Result<()> {
    let core_now = || {
        pyrsia_core::time::Instant::from_micros(
            u64::try_from(opened.elapsed().as_micros()).unwrap_or(u64::MAX),
        )
    };
    let core_at = |at: Instant| {
        pyrsia_core::time::Instant::from_micros(
            u64::try_from(at.saturating_duration_since(opened).as_micros()).unwrap_or(u64::MAX),
        )
    };
    let mut dropped = false;
    loop {
        {
            let mut waiting = lock(shared);
            loop {
                if let Some(why) = &waiting.closed {
                    return Err(std::io::Error::other(why.clone()));
                }
                let oldest = (waiting.requests.iter())
                    .min_by_key(|(id, _)| **id)
                    .map(|(id, sent)| (*id, sent.at));
                let verdict = overdue(
                    core_now(),
                    oldest.map(|(_, at)| core_at(at)),
                    core_at(waiting.last_frame),
                );
                match verdict {
                    Overdue::Wait => {}
                    Overdue::CloseLink => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no answer on the piece link",
                        ));
                    }
                    Overdue::GiveUpOldest => {
                        if let Some((id, _)) = oldest
                            && let Some(Sent { tag, reply, .. }) = waiting.requests.remove(&id)
                        {
                            // Other answers keep coming on the link, so it stays open.
                            tracing::info!(%peer, id, "a request on the piece link got no answer in time; given up");
                            let _ = reply.send(PieceReply {
                                tag,
                                result: Err("no answer on the piece link in time".to_string()),
                            });
                        }
                        continue;
                    }
                }
                if dropped && waiting.requests.is_empty() {
                    return Ok(());
                }
                if waiting.requests.len() < IN_FLIGHT && !dropped {
                    break;
                }
                waiting = shared
                    .1
                    .wait_timeout(waiting, CHECK_EVERY)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        let Outgoing {
            request,
            tag,
            reply,
        } = match queue.recv_timeout(CHECK_EVERY) {
            Ok(next) => next,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            // The event loop dropped the link (idle, or the peer is gone).
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                dropped = true;
                continue;
            }
        };
        let id = {
            let mut waiting = lock(shared);
            let id = waiting.next_id;
            waiting.next_id += 1;
            waiting.requests.insert(
                id,
                Sent {
                    tag,
                    reply,
                    at: Instant::now(),
                },
            );
            id
        };
        smol::block_on(link::write_request(
            &mut AllowStdIo::new(&mut *writer),
            id,
            &request,
        ))?;
        writer.flush()?;
    }
}

/// A link's answer as the fetcher takes it (as for an answer on libp2p).
fn answer(response: SyncResponse) -> Result<PieceAnswer, String> {
    crate::codec::piece_answer(response)
        .map_err(|_| "an answer of the wrong kind on a piece link".to_string())
}
