//! The holder's end of piece links: a listener thread that accepts within core's limits; per
//! link, a thread that reads requests (at most core's `OUTSTANDING_PER_LINK` unanswered) and
//! hands each to the event loop, and one that writes the answers as they come, each under its
//! request's id.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::time::Instant;

use futures::io::AllowStdIo;
use libp2p::{PeerId, identity};
use pyrsia_core::piece_link::{
    HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, RequestId, WRITE_STALL, accepts_link, accepts_peer_link,
    reads_request, request_id, write_stalled,
};

use super::split::{self, handshake};
use super::{Inbound, LinkAnswer, std_duration};
use crate::codec::{SyncResponse, link};

/// What the listener counts, shared with the event loop (for `/peers`).
pub(crate) struct ServedLinks {
    /// Links accepted and not yet closed.
    open: AtomicUsize,
    /// Open links per authenticated peer.
    per_peer: Mutex<HashMap<PeerId, usize>>,
    /// Sockets closed at once: over a limit.
    pub(crate) refused: AtomicU64,
    /// Piece answers handed to link threads and not yet written out.
    pub(crate) writing: AtomicUsize,
    /// Each open link's writer, for the stall watch (core's `write_stalled`).
    writers: Mutex<HashMap<u64, WriterWatch>>,
    next_link: AtomicU64,
    /// The stall watch's clock: core instants are microseconds since this.
    epoch: Instant,
}

impl Default for ServedLinks {
    fn default() -> Self {
        ServedLinks {
            open: AtomicUsize::new(0),
            per_peer: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
            writing: AtomicUsize::new(0),
            writers: Mutex::new(HashMap::new()),
            next_link: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

/// One link's writer as the stall watch sees it.
struct WriterWatch {
    /// When it began writing its current answer, in microseconds since `epoch`, plus one; 0
    /// while it writes nothing.
    since: Arc<AtomicU64>,
    /// The link's socket, to close it.
    closer: TcpStream,
    peer: PeerId,
}

/// A link's place in the stall watch, given back when the link closes.
struct Watched<'a> {
    served: &'a ServedLinks,
    link: u64,
    since: Arc<AtomicU64>,
}

impl Drop for Watched<'_> {
    fn drop(&mut self) {
        self.served.watch().remove(&self.link);
    }
}

impl ServedLinks {
    fn watch(&self) -> std::sync::MutexGuard<'_, HashMap<u64, WriterWatch>> {
        self.writers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> pyrsia_core::time::Instant {
        pyrsia_core::time::Instant::from_micros(
            u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX),
        )
    }

    /// Puts a link's writer under the stall watch until the returned guard drops.
    fn watched(&self, closer: TcpStream, peer: PeerId) -> Watched<'_> {
        let link = self.next_link.fetch_add(1, Ordering::Relaxed);
        let since = Arc::new(AtomicU64::new(0));
        let watch = WriterWatch {
            since: since.clone(),
            closer,
            peer,
        };
        self.watch().insert(link, watch);
        Watched {
            served: self,
            link,
            since,
        }
    }

    /// Closes every link whose writer has been writing one answer for core's `WRITE_STALL`.
    fn close_stalled(&self) {
        let now = self.now();
        self.watch().retain(|_, watch| {
            let since = match watch.since.load(Ordering::SeqCst) {
                0 => None,
                at => Some(pyrsia_core::time::Instant::from_micros(at - 1)),
            };
            if !write_stalled(now, since) {
                return true;
            }
            tracing::info!(peer = %watch.peer, "closed a piece link: an answer took longer to write than allowed (the peer reads too slowly or not at all)");
            let _ = watch.closer.shutdown(std::net::Shutdown::Both);
            false
        });
    }
    /// Links accepted and not yet closed.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// Listens for piece links on `ip` (an ephemeral port); returns the port. Requests go to
/// `inbound`, for the event loop.
pub(crate) fn listen(
    (ip, port): (IpAddr, u16),
    key: &identity::Keypair,
    inbound: smol::channel::Sender<Inbound>,
    served: Arc<ServedLinks>,
) -> std::io::Result<u16> {
    let mut config =
        libp2p::tls::make_server_config(key).map_err(|e| std::io::Error::other(e.to_string()))?;
    // After the handshake the link protects its records itself (`split`), and a link has no
    // use for session tickets.
    config.enable_secret_extraction = true;
    config.send_tls13_tickets = 0;
    let config = Arc::new(config);
    let listener = TcpListener::bind((ip, port))?;
    let port = listener.local_addr()?.port();
    let watched = served.clone();
    std::thread::Builder::new()
        .name("link-stalls".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(500));
                watched.close_stalled();
            }
        })?;
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
    mut tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    inbound: &smol::channel::Sender<Inbound>,
    served: &ServedLinks,
) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(std_duration(HANDSHAKE_TIMEOUT)))?;
    tcp.set_write_timeout(Some(std_duration(HANDSHAKE_TIMEOUT)))?;
    let mut connection = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    handshake(
        &mut connection,
        &mut tcp,
        Instant::now() + std_duration(HANDSHAKE_TIMEOUT),
    )?;
    // libp2p-tls's verifier accepted the certificate: it names the peer's key.
    let peer = connection
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
    tcp.set_read_timeout(Some(std_duration(IDLE_TIMEOUT)))?;
    // An asker that stops reading would hold the answers given to this link (core's
    // `WRITE_STALL`).
    tcp.set_write_timeout(Some(std_duration(WRITE_STALL)))?;
    let watched = served.watched(tcp.try_clone()?, peer);
    let (mut reader, mut writer) = split::split(connection, tcp)?;
    let outstanding: Outstanding = Arc::new((Mutex::new(Some(HashSet::new())), Condvar::new()));
    let (answers, to_write) = mpsc::channel();
    std::thread::scope(|scope| {
        let writing = {
            let outstanding = outstanding.clone();
            std::thread::Builder::new()
                .name("link-write".into())
                .spawn_scoped(scope, move || {
                    write_answers(&mut writer, &to_write, &outstanding, served, &watched)
                })?
        };
        let read = read_requests(&mut reader, peer, inbound, &outstanding, &answers);
        // The writer ends once every request read has been answered or refused.
        reader.shut_down();
        drop(answers);
        close(&outstanding);
        let written = writing
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the link's writer panicked")));
        read.and(written)
    })
}

/// The ids of the requests read from a link and not answered yet; `None` once the link closed.
type Outstanding = Arc<(Mutex<Option<HashSet<u64>>>, Condvar)>;

fn lock(outstanding: &Outstanding) -> MutexGuard<'_, Option<HashSet<u64>>> {
    outstanding.0.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks the link closed: the reader stops waiting for room.
fn close(outstanding: &Outstanding) {
    *lock(outstanding) = None;
    outstanding.1.notify_all();
}

/// Reads requests while core's `reads_request` allows, and hands each to the event loop.
fn read_requests(
    reader: &mut split::ReadHalf,
    peer: PeerId,
    inbound: &smol::channel::Sender<Inbound>,
    outstanding: &Outstanding,
    answers: &mpsc::Sender<(u64, Option<SyncResponse>)>,
) -> std::io::Result<()> {
    loop {
        {
            let mut ids = lock(outstanding);
            while ids.as_ref().is_some_and(|ids| !reads_request(ids.len())) {
                ids = outstanding.1.wait(ids).unwrap_or_else(|p| p.into_inner());
            }
            if ids.is_none() {
                return Err(std::io::Error::other("the link's writer stopped"));
            }
        }
        let (id, request) =
            match smol::block_on(link::read_request(&mut AllowStdIo::new(&mut *reader))) {
                Ok(request) => request,
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    return Err(malformed(inbound, peer, e.to_string()));
                }
                Err(e) => return Err(e),
            };
        let fresh = match lock(outstanding).as_mut() {
            Some(ids) => request_id(!ids.insert(id)) == RequestId::Fresh,
            None => return Err(std::io::Error::other("the link's writer stopped")),
        };
        if !fresh {
            return Err(malformed(
                inbound,
                peer,
                format!("request id {id} is already waiting for its answer"),
            ));
        }
        inbound
            .send_blocking(Inbound::Request {
                peer,
                request,
                respond: LinkAnswer::new(id, answers.clone()),
            })
            .map_err(|_| std::io::Error::other("node stopping"))?;
    }
}

/// Tells the event loop of a malformed frame (a strike against the peer); the link closes.
fn malformed(
    inbound: &smol::channel::Sender<Inbound>,
    peer: PeerId,
    what: String,
) -> std::io::Error {
    let why = format!("malformed frame on a piece link: {what}");
    let _ = inbound.send_blocking(Inbound::Malformed {
        peer,
        why: why.clone(),
    });
    std::io::Error::new(std::io::ErrorKind::InvalidData, why)
}

/// Writes answers as the event loop hands them over, in that order; a refusal closes the link.
/// Returns once no answer can come any more (the reader has stopped and every request is
/// answered or refused), having counted every piece handed over as written.
fn write_answers(
    writer: &mut split::WriteHalf,
    to_write: &mpsc::Receiver<(u64, Option<SyncResponse>)>,
    outstanding: &Outstanding,
    served: &ServedLinks,
    watched: &Watched<'_>,
) -> std::io::Result<()> {
    let mut result = Ok(());
    for (id, response) in to_write.iter() {
        if let Some(ids) = lock(outstanding).as_mut() {
            ids.remove(&id);
        }
        outstanding.1.notify_all();
        let Some(response) = response else {
            if result.is_ok() {
                result = Err(std::io::Error::other("request refused"));
                writer.shut_down();
                close(outstanding);
            }
            continue;
        };
        let piece = matches!(response, SyncResponse::Piece { .. });
        if result.is_ok() {
            let started = served.now().as_micros().saturating_add(1);
            watched.since.store(started, Ordering::SeqCst);
            let written = smol::block_on(link::write_response(
                &mut AllowStdIo::new(&mut *writer),
                id,
                response,
            ))
            .and_then(|()| writer.flush());
            watched.since.store(0, Ordering::SeqCst);
            if let Err(e) = written {
                result = Err(e);
                writer.shut_down();
                close(outstanding);
            }
        }
        if piece {
            served.writing.fetch_sub(1, Ordering::SeqCst);
        }
    }
    result
}
