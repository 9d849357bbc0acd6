//! Which connection carries a blob's bytes when some peers are reached only through a relay
//! (issue 19, item 6). A relay's circuit is capped (minutes, kilobytes): it carries
//! coordination, never pieces. A source this node reaches only through relay `R` is still
//! worth asking: `R` is connected directly to both ends of every circuit it carries, so `R`
//! fetches the blob as an ordinary peer (from its peers, the claimant included, over direct
//! connections; from the upstream only when `R` is itself the claimant) and serves it on. `R`
//! is then a *bridge*: it stores and checks what it passes on like any download, and no byte
//! crosses a circuit. The claimants stay the same nodes for everyone (the order is computed
//! over all peers, whatever the path), so a private claimant still fetches a blob once for
//! the whole network.
//!
//! The runtime reads each peer's [`Path`] off its open connections and only does what
//! [`route`], [`claim_walk`] and [`honours_bridge`] decide.

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

/// How this node is connected to a peer now. `P` names peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path<P> {
    /// At least one direct connection (dialled either way, or hole-punched from a circuit).
    Direct,
    /// Only circuits, through the relay named.
    Relayed(P),
    /// No open connection: asking it dials it at the addresses known for it.
    NotConnected,
}

/// Whether a connection on `path` may carry pieces: every path but a relay's circuit.
/// Checked by the asker before it asks and by the server before it answers.
pub fn carries_pieces<P>(path: &Path<P>) -> bool {
    !matches!(path, Path::Relayed(_))
}

/// Where to ask for the pieces of one source (a holder of the blob, or the node fetching it
/// for the network).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route<P> {
    /// Ask the source itself (dialling it when not connected).
    Ask(P),
    /// Ask `relay`, which carries this node's circuit to `source` and so is connected to
    /// both directly: it fetches the blob from its own peers and serves it on.
    Bridge {
        /// The relay that becomes the bridge.
        relay: P,
        /// The source this node reaches only through it.
        source: P,
    },
    /// Nowhere: the source is reached only through a relay, and no bridge may be asked (a
    /// lookup without the blob's origin cannot ask a bridge to fetch).
    Skip,
}

/// The route to `source`, reached on `path`; `bridging` says whether this fetch may ask a
/// bridge (it needs the blob's origin to pass on).
pub fn route<P: Clone>(source: &P, path: &Path<P>, bridging: bool) -> Route<P> {
    match path {
        Path::Direct | Path::NotConnected => Route::Ask(source.clone()),
        Path::Relayed(relay) if bridging => Route::Bridge {
            relay: relay.clone(),
            source: source.clone(),
        },
        Path::Relayed(_) => Route::Skip,
    }
}

/// One step of the walk down the claimants of a blob (`rendezvous::claimants`, nearest
/// first) when no peer holds it whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimStep<P> {
    /// Ask this claimant (or the bridge to it) to fetch the blob for the network and serve
    /// its bytes as they arrive; when it does not, take the next step.
    Ask(Route<P>),
    /// This node is next in line: it fetches the blob from the upstream itself.
    FetchSelf,
}

/// The steps for `claimants` (`None` stands for this node), each reached on the path
/// `path_of` gives: every claimant before this node's turn, a relay-only one through its
/// relay as a bridge; the walk ends at this node's turn. Nodes agree on the claimants
/// whatever their paths, so a bridge never adds an upstream fetch.
#[cfg(feature = "alloc")]
pub fn claim_walk<P: Clone>(
    claimants: &[Option<P>],
    path_of: impl Fn(&P) -> Path<P>,
) -> Vec<ClaimStep<P>> {
    let mut steps = Vec::new();
    for claimant in claimants {
        match claimant {
            None => {
                steps.push(ClaimStep::FetchSelf);
                break;
            }
            Some(peer) => steps.push(ClaimStep::Ask(route(peer, &path_of(peer), true))),
        }
    }
    steps
}

/// Whether this node honours a peer's request to bridge a blob (fetch it from its own
/// peers and serve it on): only for a peer whose circuit it carries as a relay now (so a
/// stranger cannot make every node download what it names), and never on an `offline` node
/// (which fetches nothing for anyone).
pub fn honours_bridge(carries_circuit_of_asker: bool, offline: bool) -> bool {
    carries_circuit_of_asker && !offline
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_piece_crosses_a_circuit() {
        assert!(carries_pieces(&Path::<u8>::Direct));
        assert!(carries_pieces(&Path::<u8>::NotConnected));
        assert!(!carries_pieces(&Path::Relayed(7u8)));
    }

    #[test]
    fn a_relay_only_source_is_reached_through_its_relay_when_the_fetch_can_bridge() {
        assert_eq!(route(&1u8, &Path::Direct, true), Route::Ask(1));
        assert_eq!(route(&1u8, &Path::NotConnected, false), Route::Ask(1));
        assert_eq!(
            route(&1u8, &Path::Relayed(9), true),
            Route::Bridge {
                relay: 9,
                source: 1
            }
        );
        assert_eq!(route(&1u8, &Path::Relayed(9), false), Route::Skip);
    }

    #[test]
    fn the_walk_bridges_relay_only_claimants_and_ends_at_this_nodes_turn() {
        // Claimant 1 is reached through relay 9, claimant 2 directly; this node is third.
        let path = |p: &u8| match p {
            1 => Path::Relayed(9),
            _ => Path::Direct,
        };
        let steps = claim_walk(&[Some(1u8), Some(2), None], path);
        assert_eq!(
            steps,
            [
                ClaimStep::Ask(Route::Bridge {
                    relay: 9,
                    source: 1
                }),
                ClaimStep::Ask(Route::Ask(2)),
                ClaimStep::FetchSelf,
            ]
        );
        // This node first: it fetches, and asks nobody.
        assert_eq!(
            claim_walk(&[None, Some(1u8), Some(2)], path),
            [ClaimStep::FetchSelf]
        );
    }

    #[test]
    fn only_a_relay_carrying_the_askers_circuit_bridges_and_never_offline() {
        assert!(honours_bridge(true, false));
        assert!(!honours_bridge(false, false));
        assert!(!honours_bridge(true, true));
    }
}
