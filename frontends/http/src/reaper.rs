//! Closes connections that never send a request: see [`crate::abort`] for why tiny_http needs
//! this (TLS probes from podman and skopeo would otherwise stall them for 10 s each).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::abort::for_each_connection;

/// How long a new connection may stay silent before it is closed.
pub(crate) const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// How often connections are checked.
const SCAN_INTERVAL: Duration = Duration::from_millis(100);

/// Peers that have sent at least one request, shared with the request handlers.
#[derive(Clone, Default)]
pub(crate) struct ActivePeers(Arc<Mutex<HashSet<SocketAddr>>>);

impl ActivePeers {
    /// Records that `peer` sent a request: its connection is a real HTTP client.
    pub(crate) fn saw(&self, peer: SocketAddr) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(peer);
    }

    fn contains(&self, peer: &SocketAddr) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(peer)
    }

    fn retain(&self, alive: &HashSet<SocketAddr>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| alive.contains(p));
    }
}

/// The reaper thread; stops when dropped.
pub(crate) struct Reaper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    /// Watches connections to `listen` and closes those silent for [`FIRST_REQUEST_TIMEOUT`].
    pub(crate) fn start(listen: SocketAddr, peers: ActivePeers) -> std::io::Result<Reaper> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("http-reaper".into()).spawn(move || {
            let mut first_seen: HashMap<SocketAddr, Instant> = HashMap::new();
            while !flag.load(Ordering::Relaxed) {
                let now = Instant::now();
                let mut alive = HashSet::new();
                for_each_connection(|local, peer, close| {
                    if local.port() != listen.port() {
                        return;
                    }
                    alive.insert(peer);
                    let since = *first_seen.entry(peer).or_insert(now);
                    if now - since >= FIRST_REQUEST_TIMEOUT && !peers.contains(&peer) && close() {
                        tracing::debug!(%peer, "closed a connection that sent no request (TLS probe?)");
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
