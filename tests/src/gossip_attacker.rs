//! A raw gossipsub peer for attack tests: a stranger that joins a node's topic and publishes
//! what the test gives it, one message at a time, signed with its own identity as the node's
//! strict validation requires. It keeps the connection until dropped, so the test can look at
//! how the node scores it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub;
use libp2p::identity;
use libp2p::swarm::SwarmEvent;

/// See the module documentation. Runs until dropped.
pub struct GossipAttacker {
    peer_id: String,
    published: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GossipAttacker {
    /// Connects to the node at `address` (a multiaddr ending in `/p2p/<id>`), subscribes to
    /// `topic`, and once the node is subscribed too publishes `messages`, `gap` apart.
    pub fn start(address: &str, topic: &str, messages: Vec<Vec<u8>>, gap: Duration) -> Self {
        let keypair = identity::Keypair::generate_ed25519();
        let peer_id = keypair.public().to_peer_id().to_string();
        let (address, node) = crate::raw_peer::node_address(address);
        let topic = gossipsub::IdentTopic::new(topic);
        let (stop, published) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (stopped, counted) = (stop.clone(), published.clone());
        let thread = std::thread::spawn(move || {
            smol::block_on(async_compat::Compat::new(async move {
                let mut swarm = crate::raw_peer::build_swarm(keypair, true, |key| {
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
                while !stopped.load(Ordering::Relaxed) {
                    let event = futures::future::select(
                        swarm.select_next_some(),
                        Box::pin(smol::Timer::after(Duration::from_millis(50))),
                    )
                    .await;
                    if let futures::future::Either::Left((
                        SwarmEvent::Behaviour(gossipsub::Event::Subscribed { peer_id, .. }),
                        _,
                    )) = event
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
            stop,
            thread: Some(thread),
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

impl Drop for GossipAttacker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
