//! A raw libp2p peer that lies about the log, for attack tests: it answers a node's checkpoint
//! asks with a real, quorum-signed checkpoint (one the test read from an honest node), then
//! answers the entries the node asks for as its [`LogLie`] says. What the node must do: strike
//! a liar, not blame a silent one, and catch up from an honest peer all the same.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use libp2p::identity;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use pyrsia_net::codec::{LOG_SYNC_PROTOCOL, SyncCodec, SyncRequest, SyncResponse};

use crate::background::Background;
use crate::raw_peer::{build_swarm, next_event_within, node_address};

/// How a [`LogLiar`] answers requests for entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLie {
    /// With an answer of another kind (`Missing`, a piece answer).
    WrongKind,
    /// Never: it keeps every request open and says nothing.
    Silent,
}

/// See the module documentation. Runs until dropped.
pub struct LogLiar {
    peer_id: String,
    entries_asked: Arc<AtomicUsize>,
    _answering: Background,
}

impl LogLiar {
    /// Connects to the node at `address` (a multiaddr ending in `/p2p/<id>`) and answers its
    /// checkpoint asks with `checkpoint` (a signed note's text) and its entry requests as
    /// `lie` says.
    pub fn start(address: &str, checkpoint: String, lie: LogLie) -> LogLiar {
        let keypair = identity::Keypair::generate_ed25519();
        let peer_id = keypair.public().to_peer_id().to_string();
        let (address, _) = node_address(address);
        let entries_asked = Arc::new(AtomicUsize::new(0));
        let asked = entries_asked.clone();
        let answering = Background::spawn(move |stop| {
            smol::block_on(async_compat::Compat::new(async move {
                let mut swarm = build_swarm(keypair, false, |_| {
                    request_response::Behaviour::<SyncCodec>::new(
                        [(LOG_SYNC_PROTOCOL, ProtocolSupport::Full)],
                        request_response::Config::default()
                            .with_request_timeout(Duration::from_secs(600)),
                    )
                });
                swarm.dial(address).expect("dial");
                // A silent liar's open requests: kept, never answered.
                let mut held = Vec::new();
                while !stop.is_set() {
                    let Some(event) =
                        next_event_within(&mut swarm, Duration::from_millis(100)).await
                    else {
                        continue;
                    };
                    let SwarmEvent::Behaviour(request_response::Event::Message {
                        message:
                            request_response::Message::Request {
                                request, channel, ..
                            },
                        ..
                    }) = event
                    else {
                        continue;
                    };
                    let response = match (request, lie) {
                        (SyncRequest::Checkpoint, _) => {
                            SyncResponse::Checkpoint(Some(checkpoint.clone()))
                        }
                        (SyncRequest::Entries { .. }, LogLie::WrongKind) => {
                            asked.fetch_add(1, Ordering::Relaxed);
                            SyncResponse::Missing
                        }
                        (SyncRequest::Entries { .. }, LogLie::Silent) => {
                            asked.fetch_add(1, Ordering::Relaxed);
                            held.push(channel);
                            continue;
                        }
                        _ => SyncResponse::Missing,
                    };
                    let _ = swarm.behaviour_mut().send_response(channel, response);
                }
            }));
        });
        LogLiar {
            peer_id,
            entries_asked,
            _answering: answering,
        }
    }

    /// Its peer id.
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// How many entry requests the node sent it.
    pub fn entries_asked(&self) -> usize {
        self.entries_asked.load(Ordering::Relaxed)
    }
}
