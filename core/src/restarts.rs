//! Which of a peer's connections belong to a process of it that is gone.
//!
//! A peer that dies without closing its connections (killed while on QUIC, which sends
//! nothing; a machine that hung, crashed or lost power, on any transport) leaves them open
//! here until a timeout ends them. When it comes back on a new connection, libp2p keeps both,
//! and gossipsub and request-response go on handing messages to the dead one (request-response
//! picks a peer's connection by request id, so about every second piece request waits out its
//! timeout and the peer is dropped as stalled).
//!
//! **The rule.** Every node starts with a random boot id and names it in the agent string it
//! sends over identify on each connection ([`agent_string`]: `pyrsia/<version> boot/<16 hex
//! digits>`). When a connection is identified with a boot id, every other connection of the
//! same peer that was identified with a different boot id and established before it belongs to
//! a process that has restarted since: the runtime closes it ([`Restarts::identified`]). This
//! holds whichever side dialled and whatever addresses the two connections have (a restarted
//! node on a new port, behind a NAT that mapped it anew, with a new DHCP address), and never
//! closes a live connection: an AutoNAT dial-back, a hole punch or two peers dialling each
//! other at once all carry the same boot id. A peer that lies about its boot id closes only its
//! own connections (its peer id is authenticated by the handshake).
//!
//! **Peers that name no boot id** (nodes built before this rule): a connection the peer dialled
//! closes its connections from the same remote address that were established more than
//! [`SUPERSEDED_AFTER`] before it, unless they were identified with a boot id (those follow the
//! rule above)
//! ([`Restarts::established`]). A restarted node dials from its listening port, over QUIC and
//! over TCP; a connection this node dialled says nothing about a restart (this node's own
//! AutoNAT dial-back to a client reaches the client's listening address, the remote address of
//! the working connection the client dialled from it).
//!
//! The runtime reports every established, identified and closed connection; what it tracks is
//! bounded by its connection limits.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::time::{Duration, Instant};

/// How much older than a peer's new connection another of its connections from the same
/// address must be to be closed by the rule for peers without boot ids: longer than a
/// handshake takes (QUIC gives up after 2 s), shorter than a restarted process takes to start
/// and dial.
pub const SUPERSEDED_AFTER: Duration = Duration::from_secs(3);

/// What names a boot id in an agent string.
pub const BOOT_TAG: &str = "boot/";

/// The agent string a node sends over identify: its software version, its piece link port
/// when it serves links (`link/<port>`, [`crate::piece_link::link_port_of`]) and, last, its
/// boot id.
pub fn agent_string(version: &str, link_port: Option<u16>, boot: u64) -> alloc::string::String {
    match link_port {
        Some(port) => alloc::format!(
            "pyrsia/{version} {}{port} {BOOT_TAG}{boot:016x}",
            crate::piece_link::LINK_TAG
        ),
        None => alloc::format!("pyrsia/{version} {BOOT_TAG}{boot:016x}"),
    }
}

/// The boot id an agent string names: the last space-separated word `boot/` followed by
/// exactly 16 hexadecimal digits. `None` for anything else (another implementation, a node
/// built before boot ids, a malformed string).
pub fn boot_of(agent: &str) -> Option<u64> {
    let word = agent.rsplit(' ').next()?;
    let hex = word.strip_prefix(BOOT_TAG)?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// A new connection, as [`Restarts::established`] takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Established<C, A> {
    /// The connection.
    pub id: C,
    /// The peer's address on it.
    pub remote: A,
    /// Whether the peer dialled it.
    pub inbound: bool,
    /// When it was established.
    pub at: Instant,
}

/// What identify has said on a connection so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Identity {
    /// Nothing yet.
    Unknown,
    /// An agent string without a boot id.
    NoBoot,
    /// This boot id.
    Boot(u64),
}

#[derive(Clone, Debug)]
struct Tracked<C, A> {
    connection: Established<C, A>,
    identity: Identity,
}

/// Each peer's open connections (`P` names a peer, `C` a connection, `A` an address), and
/// the rule above. See the module documentation.
#[derive(Clone, Debug)]
pub struct Restarts<P, C, A> {
    peers: BTreeMap<P, Vec<Tracked<C, A>>>,
}

impl<P, C, A> Default for Restarts<P, C, A> {
    fn default() -> Self {
        Restarts {
            peers: BTreeMap::new(),
        }
    }
}

impl<P: Ord + Clone, C: PartialEq + Clone, A: PartialEq> Restarts<P, C, A> {
    /// Records `connection` to `peer`; returns the peer's connections that the rule for peers
    /// without boot ids closes (see the module documentation), which the runtime closes.
    pub fn established(&mut self, peer: P, connection: Established<C, A>) -> Vec<C> {
        let open = self.peers.entry(peer).or_default();
        let superseded = open
            .iter()
            .filter(|old| {
                connection.inbound
                    && !matches!(old.identity, Identity::Boot(_))
                    && old.connection.remote == connection.remote
                    && connection.at.saturating_since(old.connection.at) > SUPERSEDED_AFTER
            })
            .map(|old| old.connection.id.clone())
            .collect();
        open.push(Tracked {
            connection,
            identity: Identity::Unknown,
        });
        superseded
    }

    /// Identify arrived on connection `id` of `peer`, naming `boot` (from [`boot_of`]);
    /// returns the peer's connections that belong to a process gone since, which the runtime
    /// closes: the boot id of the peer's newest connection identified with one is its live
    /// process's, and every connection identified with another boot id and established before
    /// that one is stale (this one too, when it is an older connection identified late). A
    /// connection this does not track is ignored.
    pub fn identified(&mut self, peer: &P, id: &C, boot: Option<u64>) -> Vec<C> {
        let Some(open) = self.peers.get_mut(peer) else {
            return Vec::new();
        };
        let Some(this) = open.iter_mut().find(|t| t.connection.id == *id) else {
            return Vec::new();
        };
        this.identity = boot.map_or(Identity::NoBoot, Identity::Boot);
        let newest = open
            .iter()
            .filter_map(|t| match t.identity {
                Identity::Boot(b) => Some((t.connection.at, b)),
                _ => None,
            })
            .max_by_key(|(at, _)| *at);
        let Some((live_since, live)) = newest else {
            return Vec::new();
        };
        open.iter()
            .filter(|old| {
                matches!(old.identity, Identity::Boot(b) if b != live)
                    && old.connection.at <= live_since
            })
            .map(|old| old.connection.id.clone())
            .collect()
    }

    /// Forgets a closed connection.
    pub fn closed(&mut self, peer: &P, id: &C) {
        if let Some(open) = self.peers.get_mut(peer) {
            open.retain(|t| t.connection.id != *id);
            if open.is_empty() {
                self.peers.remove(peer);
            }
        }
    }

    /// How many connections to `peer` are tracked.
    pub fn count(&self, peer: &P) -> usize {
        self.peers.get(peer).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests;
