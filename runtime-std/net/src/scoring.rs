//! Gossipsub peer scoring (the libp2p peer-score v1.1 function), tuned for the two topics a
//! node uses — checkpoint announcements and member messages, both a few messages a minute —
//! so that one invalid message takes a peer below the graylist threshold: its gossip is then
//! dropped before any signature is checked, while honest peers, which relay only what they
//! validated, never lose score for what they relay.
//!
//! What counts (per topic, topic weight 1): a little for time in the mesh (P1, at most +1)
//! and for first deliveries (P2, at most +2); nothing for delivery rates (P3, P3b: the topics
//! are too quiet to expect any rate); −100 × (invalid messages)² (P4, decaying by 0.1% a second,
//! so one invalid message keeps a peer graylisted for about two minutes). The node's own strikes
//! (bad log-sync answers, malformed frames) feed the application score (−30 each). The
//! IP-colocation penalty is off: whole LANs and test networks sit behind one address, and
//! connections per IP are bounded elsewhere (`rate::ConnectionsPerAddress`). The behaviour
//! (broken promises) and slow-peer penalties are off: an honest peer under load earns them.

use std::time::Duration;

use libp2p::gossipsub::{PeerScoreParams, PeerScoreThresholds, TopicScoreParams};

/// Below this score a peer's gossip and control messages are ignored (graylisted).
pub(crate) const GRAYLIST: f64 = -80.0;
/// P4's weight: one invalid message is −100.
const INVALID_MESSAGE_WEIGHT: f64 = -100.0;
/// The application score per strike.
const PER_STRIKE: f64 = -30.0;

/// The node's score function.
pub(crate) fn params() -> PeerScoreParams {
    PeerScoreParams {
        app_specific_weight: 1.0,
        ip_colocation_factor_weight: 0.0,
        // An honest peer under load breaks gossip promises and fills send queues too: under a
        // flooder these two terms graylisted honest members from each other and consensus
        // stalled (found by the five-member flooder test). Misbehaviour is scored by what it
        // sends (P4, strikes), not by how slowly it reads.
        behaviour_penalty_weight: 0.0,
        slow_peer_weight: 0.0,
        decay_interval: Duration::from_secs(1),
        ..PeerScoreParams::default()
    }
}

/// What a score means: no gossip to a peer below −10, no publishing to one below −50,
/// nothing from one below [`GRAYLIST`].
pub(crate) fn thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: GRAYLIST,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 1.0,
    }
}

/// The parameters of each of the node's topics.
pub(crate) fn topic() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 0.2,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 10.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: INVALID_MESSAGE_WEIGHT,
        invalid_message_deliveries_decay: 0.999,
        ..TopicScoreParams::default()
    }
}

/// The application score of a peer with `strikes`.
pub(crate) fn for_strikes(strikes: u32) -> f64 {
    PER_STRIKE * f64::from(strikes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameters_are_valid_and_one_invalid_message_graylists() {
        params().validate().unwrap();
        thresholds().validate().unwrap();
        topic().validate().unwrap();
        // The most an honest peer earns on a topic is far less than one invalid message costs.
        let best = 0.01 * 100.0 + 0.2 * 10.0;
        assert!(best + INVALID_MESSAGE_WEIGHT < GRAYLIST);
        // Three strikes (then the peer is blocked) graylist on their own; one does not.
        assert!(for_strikes(3) < GRAYLIST && for_strikes(1) > GRAYLIST);
    }
}
