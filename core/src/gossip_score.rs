//! How peers' gossip is scored (docs/PROTOCOL.md §3.2): the weights and thresholds of the
//! libp2p peer-score function for the two topics a node uses — checkpoint announcements and
//! member messages, both a few messages a minute — decided here and mapped onto gossipsub by
//! the network runtime. One invalid message takes a peer below [`GRAYLIST`]: its gossip is then
//! dropped before any signature is checked, while honest peers, which relay only what they
//! validated, never lose score for what they relay.
//!
//! What counts, per topic (weight 1): a little for time in the mesh and first deliveries (at
//! most +3); −100 × (invalid messages)², decaying 0.1% a second (one invalid message keeps a
//! peer graylisted for about two minutes); −30 per strike as the application score. Nothing
//! for delivery rates (the topics are too quiet to expect one), IP colocation (LANs and test
//! networks share one address; connections per IP are bounded by
//! [`crate::rate::ConnectionsPerAddress`]), broken promises or slow reading (an honest peer under
//! a flood earns both: with them, honest members graylisted each other under the flooder test).

/// Below this score a peer's gossip and control messages are ignored (graylisted).
pub const GRAYLIST: f64 = -80.0;
/// Below this score nothing is published to a peer.
pub const PUBLISH: f64 = -50.0;
/// Below this score no gossip (IHAVE/IWANT) is exchanged with a peer.
pub const GOSSIP: f64 = -10.0;
/// Score above which a peer's peer-exchange is accepted.
pub const ACCEPT_PX: f64 = 10.0;
/// Median mesh score below which the node grafts better peers.
pub const OPPORTUNISTIC_GRAFT: f64 = 1.0;

/// Weight of the invalid messages a peer delivered on a topic (squared count).
pub const INVALID_MESSAGE_WEIGHT: f64 = -100.0;
/// What remains of that count after each second.
pub const INVALID_MESSAGE_DECAY: f64 = 0.999;
/// Weight of each second in a topic's mesh, and the most seconds counted.
pub const MESH_SECOND_WEIGHT: f64 = 0.01;
/// See [`MESH_SECOND_WEIGHT`].
pub const MESH_SECONDS_CAP: f64 = 100.0;
/// Weight of each message a peer delivered first, its decay per second and the most counted.
pub const FIRST_DELIVERY_WEIGHT: f64 = 0.2;
/// See [`FIRST_DELIVERY_WEIGHT`].
pub const FIRST_DELIVERY_DECAY: f64 = 0.9;
/// See [`FIRST_DELIVERY_WEIGHT`].
pub const FIRST_DELIVERY_CAP: f64 = 10.0;
/// The application score each strike costs.
pub const PER_STRIKE: f64 = -30.0;

/// The application score of a peer with `strikes` (the network's blame of bad answers and
/// malformed frames).
pub fn for_strikes(strikes: u32) -> f64 {
    PER_STRIKE * f64::from(strikes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_invalid_message_graylists_and_no_honest_score_outweighs_it() {
        let best =
            MESH_SECOND_WEIGHT * MESH_SECONDS_CAP + FIRST_DELIVERY_WEIGHT * FIRST_DELIVERY_CAP;
        assert!(best + INVALID_MESSAGE_WEIGHT < GRAYLIST);
        // Three strikes (then the peer is blocked) graylist on their own; one does not.
        assert!(for_strikes(3) < GRAYLIST && for_strikes(1) > GRAYLIST);
        const { assert!(GRAYLIST < PUBLISH && PUBLISH < GOSSIP && GOSSIP < 0.0) };
    }
}
