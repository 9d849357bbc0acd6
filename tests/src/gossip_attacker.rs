//! A raw gossipsub peer for attack tests: a stranger that joins a node's topic and publishes
//! what the test gives it, one message at a time, signed with its own identity as the node's
//! strict validation requires. It keeps the connection until dropped, so the test can look at
//! how the node scores it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use libp2p::gossipsub;
use libp2p::identity;
use libp2p::swarm::SwarmEvent;

use crate::background::Background;
use crate::raw_peer::{build_swarm, next_event_within, node_address};

/// See the module documentation. Runs until dropped.
pub struct GossipAttacker {
    peer_id: String,
    published: Arc<AtomicUsize>,
    _publishing: Background,
}

impl GossipAttacker {
    /// Connects to the node at `address` (a multiaddr ending in `/p2p/<id>`), subscribes to
    /// `topic`, and once the node is subscribed too publishes `messages`, `gap` apart.
    pub fn start(address: &str, topic: &str, messages: Vec<Vec<u8>>, gap: Duration) -> Self {
        let keypair = identity::Keypair::generate_ed25519();
        let peer_id = keypair.public().to_peer_id().to_string();
        let (address, node) = node_address(address);
        let topic = gossipsub::IdentTopic::new(topic);
        let published = Arc::new(AtomicUsize::new(0));
        let counted = published.clone();
        let publishing = Background::spawn(move |stop| {
            smol::block_on(async_compat::Compat::new(async move {
                let mut swarm = build_swarm(keypair, true, |key| {
                    let config = gossipsub::ConfigBuilder::default()
                        .heartbeat_interval(Duration::from_millis(200))
                        .build()
                        .expect("gossipsub config");
                    gossipsub::Behaviour::<gossipsub::IdentityTransform>::new(
                        gossipsub::MessageAuthenticity::Signed(key.clone()),
                        config,
                    )
                    .expect("gossipsub")
                });
                swarm.behaviour_mut().subscribe(&topic).expect("subscribe");
                swarm.dial(address).expect("dial");
                let mut queue: std::collections::VecDeque<Vec<u8>> = messages.into();
                let mut next_at = None;
                while !stop.is_set() {
                    let event = next_event_within(&mut swarm, Duration::from_millis(50)).await;
                    if let Some(SwarmEvent::Behaviour(gossipsub::Event::Subscribed {
                        peer_id, ..
                    })) = event
                        && peer_id == node
                    {
                        next_at.get_or_insert(std::time::Instant::now());
                    }
                    if next_at.is_some_and(|at| at <= std::time::Instant::now()) {
                        let Some(message) = queue.front() else {
                            next_at = None;
                            continue;
                        };
                        // Published only once the node is in the topic's peers (else tried
                        // again after the gap).
                        if swarm
                            .behaviour_mut()
                            .publish(topic.clone(), message.clone())
                            .is_ok()
                        {
                            queue.pop_front();
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                        next_at = Some(std::time::Instant::now() + gap);
                    }
                }
            }));
        });
        GossipAttacker {
            peer_id,
            published,
            _publishing: publishing,
        }
    }

    /// Its peer id.
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// How many messages it published so far.
    pub fn published(&self) -> usize {
        self.published.load(Ordering::Relaxed)
    }
}
