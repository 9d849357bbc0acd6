//! Gossipsub peer scoring: `pyrsia_core::gossip_score`'s weights and thresholds (decided in
//! core, with why) mapped onto libp2p's parameter types.

use std::time::Duration;

use libp2p::gossipsub::{PeerScoreParams, PeerScoreThresholds, TopicScoreParams};
use pyrsia_core::gossip_score as score;

/// The node's score function: the application score and, per topic, [`topic`]; every term
/// core leaves out is weighted 0.
pub(crate) fn params() -> PeerScoreParams {
    PeerScoreParams {
        app_specific_weight: 1.0,
        ip_colocation_factor_weight: 0.0,
        behaviour_penalty_weight: 0.0,
        slow_peer_weight: 0.0,
        decay_interval: Duration::from_secs(1),
        ..PeerScoreParams::default()
    }
}

/// The score thresholds.
pub(crate) fn thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: score::GOSSIP,
        publish_threshold: score::PUBLISH,
        graylist_threshold: score::GRAYLIST,
        accept_px_threshold: score::ACCEPT_PX,
        opportunistic_graft_threshold: score::OPPORTUNISTIC_GRAFT,
    }
}

/// The parameters of each of the node's topics.
pub(crate) fn topic() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: score::MESH_SECOND_WEIGHT,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: score::MESH_SECONDS_CAP,
        first_message_deliveries_weight: score::FIRST_DELIVERY_WEIGHT,
        first_message_deliveries_decay: score::FIRST_DELIVERY_DECAY,
        first_message_deliveries_cap: score::FIRST_DELIVERY_CAP,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: score::INVALID_MESSAGE_WEIGHT,
        invalid_message_deliveries_decay: score::INVALID_MESSAGE_DECAY,
        ..TopicScoreParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libp2p_accepts_the_parameters() {
        params().validate().unwrap();
        thresholds().validate().unwrap();
        topic().validate().unwrap();
    }
}
