//! Each peer's open connections and when they were established, so that a peer that comes
//! back on a new connection is not still written to on a connection it left dead.
//!
//! Over QUIC a killed peer sends nothing: its connection stays open here until QUIC's idle
//! timeout ends it. When the peer restarts and connects again, libp2p keeps both
//! connections, and gossipsub and request-response go on handing messages to the dead one
//! (gossipsub's handlers share one queue per peer; request-response picks a connection by
//! request id). So a new connection closes the peer's connections that were established more
//! than [`SUPERSEDED_AFTER`] before it: a peer does not redial one it is connected to, so a
//! much newer connection means the peer lost the older one. Two peers dialling each other at
//! once connect within the handshake timeout of each other and keep both connections.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::swarm::ConnectionId;

/// How much older than a peer's new connection another of its connections must be to be
/// closed as superseded: longer than a handshake takes (QUIC gives up after 2 s), shorter
/// than a restarted process takes to start and dial.
pub(crate) const SUPERSEDED_AFTER: Duration = Duration::from_secs(3);

/// See the module documentation.
#[derive(Default)]
pub(crate) struct Connections {
    by_peer: HashMap<PeerId, Vec<(ConnectionId, Instant)>>,
}

impl Connections {
    /// Records a connection established at `now`; returns the peer's connections it
    /// supersedes, which the caller closes.
    pub(crate) fn established(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        now: Instant,
    ) -> Vec<ConnectionId> {
        let open = self.by_peer.entry(peer).or_default();
        let superseded = open
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(*at) > SUPERSEDED_AFTER)
            .map(|(id, _)| *id)
            .collect();
        open.push((connection, now));
        superseded
    }

    /// Forgets a closed connection.
    pub(crate) fn closed(&mut self, peer: &PeerId, connection: ConnectionId) {
        if let Some(open) = self.by_peer.get_mut(peer) {
            open.retain(|(id, _)| *id != connection);
            if open.is_empty() {
                self.by_peer.remove(peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_much_newer_connection_supersedes_the_older_ones_and_a_simultaneous_one_does_not() {
        let mut connections = Connections::default();
        let (peer, other) = (PeerId::random(), PeerId::random());
        let start = Instant::now();
        let id = ConnectionId::new_unchecked;
        assert!(connections.established(peer, id(1), start).is_empty());
        // Both sides dialled at once: the second connection comes within the handshake.
        let soon = start + Duration::from_millis(400);
        assert!(connections.established(peer, id(2), soon).is_empty());
        // Another peer's connections are its own.
        assert!(connections.established(other, id(3), soon).is_empty());
        // The peer restarted and dialled again: both older connections are stale.
        let later = start + SUPERSEDED_AFTER + Duration::from_secs(2);
        assert_eq!(connections.established(peer, id(4), later), [id(1), id(2)]);
        // Closed connections are forgotten; the newest is kept.
        connections.closed(&peer, id(1));
        connections.closed(&peer, id(2));
        let much_later = later + SUPERSEDED_AFTER * 2;
        assert_eq!(connections.established(peer, id(5), much_later), [id(4)]);
        connections.closed(&peer, id(4));
        connections.closed(&peer, id(5));
        assert!(!connections.by_peer.contains_key(&peer));
    }
}
