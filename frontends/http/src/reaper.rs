//! Closes connections that never send a request: see [`crate::abort`] for why tiny_http needs
//! this. (A TLS probe from podman or skopeo no longer needs it: the patched tiny_http answers
//! a ClientHello at once; this covers clients that connect and stay silent.)
//!
//! Silence alone is no proof: under load a real client's request can wait in tiny_http's
//! queue. So a silent connection is closed only while the server is idle — no request being
//! answered, and none received or finished for [`FIRST_REQUEST_TIMEOUT`] — which is when a
//! probe arrives in practice (it is a client's first connection). A busy server leaves probes
//! to the client's own timeout. Counting finished requests as activity matters: when every
//! worker finishes at once, requests queued behind them are picked up an instant later, and
//! that instant is not idleness.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::abort::{for_each_connection, shutdown};

/// How long a new connection may stay silent (and the server idle) before it is closed.
pub(crate) const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_millis(750);
/// How often connections are checked.
const SCAN_INTERVAL: Duration = Duration::from_millis(100);
/// How long a peer is remembered after its last request when the reaper no longer sees its
/// connection (a connection may open, ask and close between two scans).
const PEER_MEMORY: Duration = Duration::from_secs(10);

/// What the request handlers tell the reaper: which peers sent requests, how many requests
/// are being answered, and when the last one arrived.
#[derive(Clone, Default)]
pub(crate) struct ActivePeers(Arc<Mutex<Activity>>);

#[derive(Default)]
struct Activity {
    peers: HashMap<SocketAddr, Instant>,
    in_progress: usize,
    /// When a request last started or finished being answered.
    last_activity: Option<Instant>,
}

impl ActivePeers {
    fn lock(&self) -> MutexGuard<'_, Activity> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `peer` sent a request (its connection is a real HTTP client) and that a
    /// request is being answered; call [`ActivePeers::done`] when it is.
    pub(crate) fn started(&self, peer: Option<SocketAddr>) {
        let now = Instant::now();
        let mut activity = self.lock();
        if let Some(peer) = peer {
            activity.peers.insert(peer, now);
        }
        activity.in_progress += 1;
        activity.last_activity = Some(now);
    }

    /// A request has been answered.
    pub(crate) fn done(&self) {
        let mut activity = self.lock();
        activity.in_progress = activity.in_progress.saturating_sub(1);
        activity.last_activity = Some(Instant::now());
    }

    /// Whether the server is idle at `now`: no request being answered, and none received or
    /// finished for [`FIRST_REQUEST_TIMEOUT`]. Only then may a silent connection be closed.
    fn idle(&self, now: Instant) -> bool {
        Self::idle_at(&self.lock(), now)
    }

    fn idle_at(activity: &Activity, now: Instant) -> bool {
        activity.in_progress == 0
            && activity
                .last_activity
                .is_none_or(|t| now - t >= FIRST_REQUEST_TIMEOUT)
    }

    /// Whether a silent connection from `peer` may be closed now.
    fn may_close(&self, peer: &SocketAddr, now: Instant) -> bool {
        let activity = self.lock();
        Self::idle_at(&activity, now) && !activity.peers.contains_key(peer)
    }

    /// Forgets peers whose connections are gone, keeping recent ones the scan may have missed.
    fn retain(&self, alive: &HashSet<SocketAddr>) {
        let now = Instant::now();
        self.lock()
            .peers
            .retain(|peer, last| alive.contains(peer) || now - *last < PEER_MEMORY);
    }
}

/// The reaper thread; stops when dropped.
pub(crate) struct Reaper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    /// Watches connections to `listen` and closes those silent for [`FIRST_REQUEST_TIMEOUT`]
    /// while the server is idle.
    pub(crate) fn start(listen: SocketAddr, peers: ActivePeers) -> std::io::Result<Reaper> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("http-reaper".into())
            .spawn(move || {
                let mut first_seen: HashMap<SocketAddr, Instant> = HashMap::new();
                let mut scanned: Option<Instant> = None;
                while !flag.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    // A busy server closes nothing, and with no connection that is still
                    // silent there is nothing to close, so a scan of every descriptor would be
                    // wasted: then scan only often enough to forget the peers that left (in a
                    // 16-node swarm the scans cost 3% of the CPU; on an idle node, scanning
                    // every 100 ms cost 1.5% of a core).
                    let may_find = peers.idle(now) && tiny_http::silent_connections() > 0;
                    if !may_find && scanned.is_some_and(|at| now - at < PEER_MEMORY) {
                        std::thread::sleep(SCAN_INTERVAL);
                        continue;
                    }
                    scanned = Some(now);
                    let mut alive = HashSet::new();
                    for_each_connection(|local, peer, socket| {
                        if local.port() != listen.port() {
                            return;
                        }
                        alive.insert(peer);
                        let since = *first_seen.entry(peer).or_insert(now);
                        if now - since >= FIRST_REQUEST_TIMEOUT && peers.may_close(&peer, now) && shutdown(socket) {
                            tracing::info!(%peer, "closed a connection that sent no request (a TLS probe?)");
                        }
                    });
                    first_seen.retain(|p, _| alive.contains(p));
                    peers.retain(&alive);
                    std::thread::sleep(SCAN_INTERVAL);
                }
            })?;
        Ok(Reaper {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_silent_connection_may_close_only_after_the_server_has_been_idle() {
        let peers = ActivePeers::default();
        let start = Instant::now();
        assert!(peers.may_close(&peer(1), start), "never busy: idle");
        peers.started(Some(peer(2)));
        let later = Instant::now() + FIRST_REQUEST_TIMEOUT * 2;
        assert!(
            !peers.may_close(&peer(1), later),
            "a request is being answered"
        );
        peers.done();
        // All workers just finished: a request queued behind them is about to be picked up.
        assert!(!peers.may_close(&peer(1), Instant::now()));
        assert!(peers.may_close(&peer(1), Instant::now() + FIRST_REQUEST_TIMEOUT));
        assert!(
            !peers.may_close(&peer(2), Instant::now() + FIRST_REQUEST_TIMEOUT),
            "a peer that sent a request is a real client"
        );
    }
}
